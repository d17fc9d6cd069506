#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<create_s3_index_html::CreateS3IndexHtml>().await
}
