use get_build_status::Config;
use pipeline_aws::config::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    let config = Config::from_source(&ProcessEnv)?;
    let s3 = pipeline_aws::s3_client(&pipeline_aws::load_sdk_config().await);
    let (s3, config) = (&s3, &config);
    pipeline_aws::run(move |event| get_build_status::handle(s3, config, event)).await
}
