#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<clean_up_after_execution::CleanUpAfterExecution>().await
}
