//! get-state-machine-executions-state against moto's Step Functions (executions stay RUNNING
//! until stopped, as moto does without execute mode).

mod failed_child_execution;

use aws_sdk_sfn::Client;
use pipeline_testing::sfn::{PASS_ONLY, create_state_machine, sfn_client, start_execution};
use pipeline_testing::unreachable_sdk_config;
use serde_json::json;

async fn start_two_executions(sfn: &Client) -> (String, String) {
    let machine = create_state_machine(sfn, "hhvm-build", PASS_ONLY).await;
    (
        start_execution(sfn, &machine, "a").await,
        start_execution(sfn, &machine, "b").await,
    )
}

#[tokio::test]
async fn running_children_are_unfinished_and_an_aborted_one_is_reported() {
    let sfn = sfn_client().await;
    let (running, aborted) = start_two_executions(&sfn).await;
    sfn.stop_execution().execution_arn(&aborted).send().await.unwrap();
    let input = json!({"stepFunctionExecutions": [running, aborted], "version": "4.168.2", "other": {"x": [1]}});

    let output = get_state_machine_executions_state::handle(&sfn, input.clone())
        .await
        .unwrap();

    assert_eq!(
        output["stepFunctionExecutionStates"],
        json!({running.clone(): "RUNNING", aborted.clone(): "ABORTED"})
    );
    assert_eq!(output["allStepFunctionExecutionsFinished"], false);
    assert_eq!(output["anyStepFunctionExecutionFailed"], true);
    assert_eq!(output["failedStepFunctionExecutions"][0]["executionArn"], aborted);
    assert_eq!(output["failedStepFunctionExecutions"][0]["status"], "ABORTED");
    assert_eq!(output["failedStepFunctionExecutions"].as_array().unwrap().len(), 1);
    for field in ["stepFunctionExecutions", "version", "other"] {
        assert_eq!(output[field], input[field], "{field}");
    }

    sfn.stop_execution().execution_arn(&running).send().await.unwrap();
    let output = get_state_machine_executions_state::handle(&sfn, input).await.unwrap();
    assert_eq!(output["allStepFunctionExecutionsFinished"], true);
    assert_eq!(output["failedStepFunctionExecutions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_unknown_execution_is_invalid_input_naming_the_element() {
    let sfn = sfn_client().await;
    let (running, _) = start_two_executions(&sfn).await;
    let unknown = "arn:aws:states:us-east-1:123456789012:execution:no-such-machine:no-such-run";
    let error = get_state_machine_executions_state::handle(&sfn, json!({"stepFunctionExecutions": [running, unknown]}))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "InvalidInput");
    assert!(error.to_string().contains("`stepFunctionExecutions[1]`"), "{error}");
}

#[tokio::test]
async fn no_children_are_finished_without_any_call() {
    let sfn = Client::new(&unreachable_sdk_config().await);
    let output = get_state_machine_executions_state::handle(&sfn, json!({"stepFunctionExecutions": []}))
        .await
        .unwrap();
    assert_eq!(output["allStepFunctionExecutionsFinished"], true);
    assert_eq!(output["anyStepFunctionExecutionFailed"], false);
    assert_eq!(output["failedStepFunctionExecutions"], json!([]));
    assert!(
        output.get("executionFailure").is_none(),
        "no failure to report: {output}"
    );
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_calls_nothing() {
    let sfn = Client::new(&unreachable_sdk_config().await);
    let cases = [
        (json!({}), "`stepFunctionExecutions`: missing"),
        (
            json!({"stepFunctionExecutions": "arn"}),
            "`stepFunctionExecutions`: expected an array",
        ),
        (json!({"stepFunctionExecutions": [1]}), "`stepFunctionExecutions[0]`"),
        (
            json!({"stepFunctionExecutions": ["arn:aws:states:us-east-1:123456789012:stateMachine:hhvm-build"]}),
            "not a Step Functions execution ARN",
        ),
        (json!(null), "expected a JSON object"),
    ];
    for (input, text) in cases {
        let error = get_state_machine_executions_state::handle(&sfn, input.clone())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput", "{input}");
        assert!(error.to_string().contains(text), "{input}: {error}");
    }
}
