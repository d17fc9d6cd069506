use pipeline_aws::config::ProcessEnv;
use pipeline_core::layout::JobKind;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    let sdk_config = pipeline_aws::load_sdk_config().await;
    let deps = build_source_tarball::Deps::from_environment(&sdk_config, &ProcessEnv, JobKind::SourceTarball)?;
    let deps = &deps;
    pipeline_aws::run(move |event| build_source_tarball::handle(deps, event)).await
}
