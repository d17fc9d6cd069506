#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::serve::<get_state_machine_executions_state::GetStateMachineExecutionsState>().await
}
