#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<notify_execution_failure::NotifyExecutionFailure>().await
}
