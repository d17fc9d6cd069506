#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    let sfn = aws_sdk_sfn::Client::new(&pipeline_aws::load_sdk_config().await);
    let sfn = &sfn;
    pipeline_aws::run(move |event| get_state_machine_executions_state::handle(sfn, event)).await
}
