use pipeline_aws::config::ProcessEnv;
use pipeline_core::layout::JobKind;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    let sdk_config = pipeline_aws::load_sdk_config().await;
    let deps = publish_release_source::Deps::from_environment(&sdk_config, &ProcessEnv, JobKind::PublishReleaseSource)?;
    let deps = &deps;
    pipeline_aws::run(move |event| publish_release_source::handle(deps, event)).await
}
