#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<shift_version::ShiftVersion>().await
}
