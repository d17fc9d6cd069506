#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    pipeline_aws::run(|event| async move { shift_version::handle(event) }).await
}
