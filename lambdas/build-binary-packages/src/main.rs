#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<build_binary_packages::BuildBinaryPackages>().await
}
