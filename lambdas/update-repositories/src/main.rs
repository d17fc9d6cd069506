#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<update_repositories::UpdateRepositories>().await
}
