//! A child that really fails, run by moto's state-machine engine (execute mode). Its own test
//! file, so its own process and moto server: execute mode must be on before any state machine
//! is created.

use std::time::Duration;

use aws_sdk_sfn::Client;
use pipeline_testing::{MotoServer, unique_name};
use serde_json::json;

const ROLE: &str = "arn:aws:iam::123456789012:role/pipeline-test";
const FAILING_BUILD: &str = r#"{
  "StartAt": "Build",
  "States": {
    "Build": {"Type": "Pass", "Next": "Fail Build"},
    "Fail Build": {"Type": "Fail", "Error": "BuildFailed", "Cause": "no packages were built for debian-12-bookworm"}
  }
}"#;
const SUCCEEDING_BUILD: &str = r#"{"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}"#;

async fn start(sfn: &Client, definition: &str) -> String {
    let machine = sfn
        .create_state_machine()
        .name(unique_name("hhvm-build"))
        .definition(definition)
        .role_arn(ROLE)
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string();
    sfn.start_execution()
        .state_machine_arn(&machine)
        .name("run")
        .input("{}")
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_string()
}

/// Waits until the engine has finished the execution (it runs in the background).
async fn wait_until_finished(sfn: &Client, arn: &str) {
    for _ in 0..600 {
        let described = sfn.describe_execution().execution_arn(arn).send().await.unwrap();
        if described.status().as_str() != "RUNNING" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{arn} never finished");
}

#[tokio::test]
async fn a_failed_child_is_reported_with_its_error_and_cause() {
    let server = MotoServer::shared();
    let (status, body) = server.control(
        "POST",
        "/moto-api/config",
        r#"{"stepfunctions":{"execute_state_machine":true}}"#,
    );
    assert_eq!(status, 201, "enabling execute mode: {body}");
    let sfn = Client::new(&server.sdk_config().await);
    let failing = start(&sfn, FAILING_BUILD).await;
    let succeeding = start(&sfn, SUCCEEDING_BUILD).await;
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
