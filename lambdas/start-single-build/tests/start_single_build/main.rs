//! start-single-build against moto's Step Functions through the real SDK client.

mod finished_children;

use aws_sdk_sfn::Client;
use pipeline_testing::sfn::{PASS_ONLY, create_state_machine, execution_count, execution_input, sfn_client};
use pipeline_testing::unreachable_sdk_config;
use serde_json::{Value, json};

#[tokio::test]
async fn starts_a_named_build_with_what_the_child_needs_and_passes_the_input_through() {
    let sfn = sfn_client().await;
    let machine = create_state_machine(&sfn, "hhvm-build", PASS_ONLY).await;
    let input: Value = serde_json::from_str(
        r#"{"executionName": "nightly-run-1", "version": "4.168.2", "packagingBranch": "HHVM-4.168",
            "distros": ["debian-12-bookworm"], "force": false, "pollIntervalSeconds": 1,
            "unknown": {"nested": [1, null, 2.50]}, "big": 98765432109876543210}"#,
    )
    .unwrap();

    let output = start_single_build::handle(&sfn, &machine, input.clone()).await.unwrap();

    let arns = output["stepFunctionExecutions"].as_array().expect("an array of ARNs");
    assert_eq!(arns.len(), 1);
    let arn = arns[0].as_str().unwrap();
    assert!(arn.ends_with(":nightly-run-1-build-4_168_2"), "{arn}");
    let mut expected = input.clone();
    expected
        .as_object_mut()
        .unwrap()
        .insert("stepFunctionExecutions".into(), json!([arn]));
    assert_eq!(
        serde_json::to_string(&output).unwrap(),
        serde_json::to_string(&expected).unwrap()
    );
    assert_eq!(
        execution_input(&sfn, arn).await,
        json!({
            "version": "4.168.2",
            "packagingBranch": "HHVM-4.168",
            "distros": ["debian-12-bookworm"],
            "force": false,
            "pollIntervalSeconds": 1,
            "parentExecutionName": "nightly-run-1"
        })
    );
}

#[tokio::test]
async fn a_retry_returns_the_same_execution_and_starts_nothing_new() {
    let sfn = sfn_client().await;
    let machine = create_state_machine(&sfn, "hhvm-build", PASS_ONLY).await;
    let input = json!({"executionName": "run-2", "version": "2026.11.21"});
    let first = start_single_build::handle(&sfn, &machine, input.clone()).await.unwrap();
    let second = start_single_build::handle(&sfn, &machine, input.clone()).await.unwrap();
    assert_eq!(first["stepFunctionExecutions"], second["stepFunctionExecutions"]);
    assert_eq!(execution_count(&sfn, &machine).await, 1);

    // A child that was stopped is an earlier attempt's dead work: the same input starts the
    // next attempt, and a retry of that finds it.
    let arn = first["stepFunctionExecutions"][0].as_str().unwrap();
    sfn.stop_execution().execution_arn(arn).send().await.unwrap();
    let third = start_single_build::handle(&sfn, &machine, input.clone()).await.unwrap();
    let next = third["stepFunctionExecutions"][0].as_str().unwrap();
    assert!(next.ends_with(":run-2-build-2026_11_21-r2"), "{next}");
    let fourth = start_single_build::handle(&sfn, &machine, input).await.unwrap();
    assert_eq!(fourth["stepFunctionExecutions"], third["stepFunctionExecutions"]);
    assert_eq!(execution_count(&sfn, &machine).await, 2);
}

#[tokio::test]
async fn a_hand_invocation_without_an_execution_name_derives_a_stable_one() {
    let sfn = sfn_client().await;
    let machine = create_state_machine(&sfn, "hhvm-build", PASS_ONLY).await;
    // What the original's scripts passed: no executionName.
    let input = json!({"version": "4.168.2", "distros": ["debian-12-bookworm"]});
    let first = start_single_build::handle(&sfn, &machine, input.clone()).await.unwrap();
    let arn = first["stepFunctionExecutions"][0].as_str().unwrap();
    assert!(arn.contains(":manual-"), "{arn}");
    let again = start_single_build::handle(&sfn, &machine, input).await.unwrap();
    assert_eq!(again["stepFunctionExecutions"], first["stepFunctionExecutions"]);
    let other = start_single_build::handle(&sfn, &machine, json!({"version": "4.168.2"}))
        .await
        .unwrap();
    assert_ne!(other["stepFunctionExecutions"], first["stepFunctionExecutions"]);
    assert_eq!(execution_count(&sfn, &machine).await, 2);
}

#[tokio::test]
async fn same_name_with_another_input_is_execution_already_exists() {
    let sfn = sfn_client().await;
    let machine = create_state_machine(&sfn, "hhvm-build", PASS_ONLY).await;
    let input = json!({"executionName": "run-3", "version": "4.168.2", "distros": ["debian-12-bookworm"]});
    start_single_build::handle(&sfn, &machine, input).await.unwrap();
    let changed = json!({"executionName": "run-3", "version": "4.168.2", "distros": ["ubuntu-24.04-noble"]});
    let error = start_single_build::handle(&sfn, &machine, changed).await.unwrap_err();
    assert_eq!(error.error_type(), "ExecutionAlreadyExists");
    assert!(error.to_string().contains("run-3-build-4_168_2"), "{error}");
    assert_eq!(execution_count(&sfn, &machine).await, 1);
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_starts_nothing() {
    // Any AWS call through this client would fail as AwsServiceError.
    let sfn = Client::new(&unreachable_sdk_config().await);
    let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:hhvm-build";
    let cases = [
        (
            json!({"executionName": "a b", "version": "4.168.2"}),
            "InvalidInput",
            "`executionName`",
        ),
        (json!({"executionName": "r"}), "InvalidInput", "`version`"),
        (
            json!({"executionName": "r", "version": "4.168"}),
            "InvalidVersion",
            "field `version`",
        ),
        (
            json!({"executionName": "r", "version": "4.168.2", "packagingBranch": "main"}),
            "InvalidInput",
            "packagingBranch",
        ),
        (
            json!({"executionName": "r", "version": "4.168.2", "distros": ["bad"]}),
            "InvalidInput",
            "`distros[0]`",
        ),
        (
            json!({"executionName": "r", "version": "4.168.2", "force": "yes"}),
            "InvalidInput",
            "`force`",
        ),
        (json!(["not", "an", "object"]), "InvalidInput", "expected a JSON object"),
    ];
    for (input, error_type, text) in cases {
        let error = start_single_build::handle(&sfn, machine, input.clone())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), error_type, "{input}: {error}");
        assert!(error.to_string().contains(text), "{input}: {error}");
    }
}
