//! A child that really fails, run by moto's state-machine engine (execute mode), on
//! this process's executing server: the shared one keeps executions where they were started.

use aws_sdk_sfn::Client;
use pipeline_testing::MotoServer;
use pipeline_testing::sfn::{PASS_ONLY, create_state_machine, start_execution, wait_until_finished};
use serde_json::json;

const FAILING_BUILD: &str = r#"{
  "StartAt": "Build",
  "States": {
    "Build": {"Type": "Pass", "Next": "Fail Build"},
    "Fail Build": {"Type": "Fail", "Error": "BuildFailed", "Cause": "no packages were built for debian-12-bookworm"}
  }
}"#;

async fn start(sfn: &Client, definition: &str) -> String {
    let machine = create_state_machine(sfn, "hhvm-build", definition).await;
    start_execution(sfn, &machine, "run").await
}

#[tokio::test]
async fn a_failed_child_is_reported_with_its_error_and_cause() {
    let server = MotoServer::shared_executing();
    let sfn = Client::new(&server.sdk_config().await);
    let failing = start(&sfn, FAILING_BUILD).await;
    let succeeding = start(&sfn, PASS_ONLY).await;
    wait_until_finished(&sfn, &failing).await;
    wait_until_finished(&sfn, &succeeding).await;

    let output =
        get_state_machine_executions_state::handle(&sfn, json!({"stepFunctionExecutions": [succeeding, failing]}))
            .await
            .unwrap();

    assert_eq!(
        output["stepFunctionExecutionStates"],
        json!({succeeding: "SUCCEEDED", failing.clone(): "FAILED"})
    );
    assert_eq!(output["allStepFunctionExecutionsFinished"], true);
    assert_eq!(output["anyStepFunctionExecutionFailed"], true);
    assert_eq!(
        output["failedStepFunctionExecutions"],
        json!([{
            "executionArn": failing,
            "status": "FAILED",
            "error": "BuildFailed",
            "cause": "no packages were built for debian-12-bookworm"
        }])
    );
    // What the parent's Fail state reads: plain strings naming the child.
    assert_eq!(
        output["executionFailure"],
        json!({"Error": "BuildFailed", "Cause": format!("{failing} ended FAILED: no packages were built for debian-12-bookworm")})
    );
}
