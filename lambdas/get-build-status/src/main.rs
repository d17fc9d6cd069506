#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<get_build_status::GetBuildStatus>().await
}
