use pipeline_aws::config::{self, ProcessEnv};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    let state_machine = config::required(
        &ProcessEnv,
        "BUILD_STATE_MACHINE_ARN",
        "the ARN of the hhvm-build state machine",
    )?;
    let sfn = aws_sdk_sfn::Client::new(&pipeline_aws::load_sdk_config().await);
    let (sfn, state_machine) = (&sfn, state_machine.as_str());
    pipeline_aws::run(move |event| start_single_build::handle(sfn, state_machine, event)).await
}
