#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    let s3 = pipeline_aws::s3_client(&pipeline_aws::load_sdk_config().await);
    let s3 = &s3;
    pipeline_aws::run(move |event| have_source_tarball::handle(s3, event)).await
}
