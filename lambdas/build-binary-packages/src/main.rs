use pipeline_aws::config::{ProcessEnv, required};
use pipeline_core::layout::JobKind;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    let sdk_config = pipeline_aws::load_sdk_config().await;
    let deps = build_binary_packages::Deps {
        ec2: pipeline_aws::launch::launch_ec2_client(&sdk_config),
        s3: pipeline_aws::s3_client(&sdk_config),
        buckets: pipeline_aws::config::buckets(&ProcessEnv)?,
        config: pipeline_aws::launch_config::launch_config(&ProcessEnv, JobKind::BinaryPackage)?,
        parallelism: pipeline_aws::launch_config::launch_parallelism(&ProcessEnv)?,
    };
    let targets_url = required(&ProcessEnv, "CURRENT_TARGETS_URL", "a URL template with {branch}")?;
    let (deps, targets_url) = (&deps, targets_url.as_str());
    pipeline_aws::run(move |event| {
        let fetch =
            move |branch| async move { pipeline_aws::packaging::fetch_current_targets(targets_url, &branch).await };
        build_binary_packages::handle(deps, fetch, event)
    })
    .await
}
