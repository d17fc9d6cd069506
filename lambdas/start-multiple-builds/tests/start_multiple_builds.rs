//! start-multiple-builds against moto's Step Functions through the real SDK client.

use aws_sdk_sfn::Client;
use pipeline_testing::sfn::{PASS_ONLY, create_state_machine, execution_count, execution_input, sfn_client};
use pipeline_testing::unreachable_sdk_config;
use serde_json::json;

#[tokio::test]
async fn starts_one_build_per_version_in_order_and_a_retry_starts_nothing_new() {
    let sfn = sfn_client().await;
    let machine = create_state_machine(&sfn, "hhvm-build", PASS_ONLY).await;
    let input = json!({
        "executionName": "releases-1",
        "versions": ["4.168.2", "4.167.5", "2026.11.21"],
        "initialWaitSeconds": 1,
        "pollIntervalSeconds": 2,
        "unknown": [1, {"a": null}]
    });
    let output = start_multiple_builds::handle(&sfn, &machine, input.clone())
        .await
        .unwrap();

    let arns: Vec<&str> = output["stepFunctionExecutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(arns.len(), 3);
    for (arn, suffix) in arns.iter().zip(["4_168_2", "4_167_5", "2026_11_21"]) {
        assert!(arn.ends_with(&format!(":releases-1-build-{suffix}")), "{arn}");
    }
    for field in [
        "executionName",
        "versions",
        "initialWaitSeconds",
        "pollIntervalSeconds",
        "unknown",
    ] {
        assert_eq!(output[field], input[field], "{field}");
    }
    // The first step of the multi machine fills in the poll settings the input leaves out.
    assert_eq!(output["pollLimit"], 200);
    assert_eq!(
        execution_input(&sfn, arns[1]).await,
        json!({
            "version": "4.167.5",
            "packagingBranch": "HHVM-4.167",
            "initialWaitSeconds": 1,
            "pollIntervalSeconds": 2,
            "pollLimit": 200,
            "parentExecutionName": "releases-1"
        })
    );

    let again = start_multiple_builds::handle(&sfn, &machine, input).await.unwrap();
    assert_eq!(again["stepFunctionExecutions"], output["stepFunctionExecutions"]);
    assert_eq!(execution_count(&sfn, &machine).await, 3);
}

#[tokio::test]
async fn one_bad_version_starts_nothing() {
    let sfn = sfn_client().await;
    let machine = create_state_machine(&sfn, "hhvm-build", PASS_ONLY).await;
    let input = json!({"executionName": "releases-2", "versions": ["4.168.2", "4.x.1"]});
    let error = start_multiple_builds::handle(&sfn, &machine, input).await.unwrap_err();
    assert_eq!(error.error_type(), "InvalidVersion");
    assert!(error.to_string().contains("versions[1]"), "{error}");
    assert_eq!(execution_count(&sfn, &machine).await, 0);
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_starts_nothing() {
    let sfn = Client::new(&unreachable_sdk_config().await);
    let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:hhvm-build";
    let cases = [
        (
            json!({"executionName": "a b", "versions": ["4.168.2"]}),
            "InvalidInput",
            "`executionName`",
        ),
        (
            json!({"executionName": "r", "versions": []}),
            "InvalidInput",
            "`versions`: is empty",
        ),
        (
            json!({"executionName": "r", "versions": ["4.168.2", "4.168.2"]}),
            "InvalidInput",
            "`versions[1]`",
        ),
        (
            json!({"executionName": "r", "versions": ["4.168.2"], "instances": ["i-0123456789abcdef0"]}),
            "InvalidInput",
            "`instances`",
        ),
        (
            json!({"executionName": "r", "versions": ["4.168.2"], "poll": {"count": 3}}),
            "InvalidInput",
            "`poll`",
        ),
        (
            json!({"executionName": "r", "versions": ["4.168.2"], "distros": []}),
            "InvalidInput",
            "`distros`",
        ),
        (
            json!({"executionName": "r", "versions": ["4.168.2"], "continueOnFailure": "yes"}),
            "InvalidInput",
            "`continueOnFailure`",
        ),
        (json!({"executionName": "r"}), "InvalidInput", "`versions`: missing"),
        (
            json!({"executionName": "r", "versions": "4.168.2"}),
            "InvalidInput",
            "`versions`",
        ),
        (
            json!({"executionName": "r", "versions": [4]}),
            "InvalidInput",
            "`versions[0]`",
        ),
        (
            json!({"executionName": "r", "versions": ["4.168.2"], "packagingBranch": "x"}),
            "InvalidInput",
            "packagingBranch",
        ),
    ];
    for (input, error_type, text) in cases {
        let error = start_multiple_builds::handle(&sfn, machine, input.clone())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), error_type, "{input}: {error}");
        assert!(error.to_string().contains(text), "{input}: {error}");
    }
}
