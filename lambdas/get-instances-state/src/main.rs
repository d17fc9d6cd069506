#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    let ec2 = pipeline_aws::ec2_client(&pipeline_aws::load_sdk_config().await);
    let ec2 = &ec2;
    pipeline_aws::run(move |event| get_instances_state::handle(ec2, event)).await
}
