#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<have_source_tarball::HaveSourceTarball>().await
}
