#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<build_source_tarball::BuildSourceTarball>().await
}
