use invalidate_repository_metadata_on_cloudfront::Config;
use pipeline_aws::config::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    let config = Config::from_source(&ProcessEnv)?;
    let cloudfront = aws_sdk_cloudfront::Client::new(&pipeline_aws::load_sdk_config().await);
    let (cloudfront, config) = (&cloudfront, &config);
    pipeline_aws::run(move |event| invalidate_repository_metadata_on_cloudfront::handle(cloudfront, config, event))
        .await
}
