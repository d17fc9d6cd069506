#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<publish_single_release::PublishSingleRelease>().await
}
