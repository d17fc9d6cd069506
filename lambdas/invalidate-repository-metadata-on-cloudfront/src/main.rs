#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<invalidate_repository_metadata_on_cloudfront::InvalidateRepositoryMetadataOnCloudfront>()
        .await
}
