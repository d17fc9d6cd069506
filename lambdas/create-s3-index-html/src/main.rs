use create_s3_index_html::Config;
use pipeline_aws::config::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    let config = Config::from_source(&ProcessEnv)?;
    let sdk_config = pipeline_aws::load_sdk_config().await;
    let s3 = pipeline_aws::s3_client(&sdk_config);
    let cloudfront = aws_sdk_cloudfront::Client::new(&sdk_config);
    let (s3, cloudfront, config) = (&s3, &cloudfront, &config);
    pipeline_aws::run(move |event| create_s3_index_html::handle(s3, cloudfront, config, event)).await
}
