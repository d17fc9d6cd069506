#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<start_nightly::StartNightly>().await
}
