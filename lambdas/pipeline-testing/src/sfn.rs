//! Step Functions in moto: state machines to start executions of, and what became of them.

use std::time::Duration;

use aws_sdk_sfn::Client;
use serde_json::Value;

use crate::{MotoServer, unique_name};

/// The role every test state machine names; moto does not check it.
pub const TEST_ROLE: &str = "arn:aws:iam::123456789012:role/pipeline-test";

/// A state machine that succeeds at once (when moto runs executions at all).
pub const PASS_ONLY: &str = r#"{"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}"#;

/// A definition whose executions fail at once.
pub const FAIL_ONLY: &str =
    r#"{"StartAt": "Broken", "States": {"Broken": {"Type": "Fail", "Error": "Broken", "Cause": "on purpose"}}}"#;

/// A Step Functions client for the shared moto server.
pub async fn sfn_client() -> Client {
    Client::new(&MotoServer::shared().sdk_config().await)
}

/// Creates a state machine named `prefix` plus a unique suffix; returns its ARN.
pub async fn create_state_machine(sfn: &Client, prefix: &str, definition: &str) -> String {
    let output = sfn
        .create_state_machine()
        .name(unique_name(prefix))
        .definition(definition)
        .role_arn(TEST_ROLE)
        .send()
        .await
        .expect("create a test state machine");
    output.state_machine_arn().to_string()
}

/// Starts an execution named `name` with an empty input; returns its ARN.
pub async fn start_execution(sfn: &Client, state_machine: &str, name: &str) -> String {
    let output = sfn
        .start_execution()
        .state_machine_arn(state_machine)
        .name(name)
        .input("{}")
        .send()
        .await
        .expect("start a test execution");
    output.execution_arn().to_string()
}

/// How many executions the state machine has had.
pub async fn execution_count(sfn: &Client, state_machine: &str) -> usize {
    let output = sfn
        .list_executions()
        .state_machine_arn(state_machine)
        .send()
        .await
        .expect("list executions");
    output.executions().len()
}

/// The input an execution was started with, parsed.
pub async fn execution_input(sfn: &Client, execution: &str) -> Value {
    let output = sfn
        .describe_execution()
        .execution_arn(execution)
        .send()
        .await
        .expect("describe the execution");
    serde_json::from_str(output.input().expect("the execution has an input")).expect("the input is JSON")
}

/// Waits until moto's engine (execute mode) has finished the execution; it runs in the
/// background.
pub async fn wait_until_finished(sfn: &Client, execution: &str) {
    for _ in 0..600 {
        let described = sfn
            .describe_execution()
            .execution_arn(execution)
            .send()
            .await
            .expect("describe the execution");
        if described.status().as_str() != "RUNNING" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{execution} never finished");
}
