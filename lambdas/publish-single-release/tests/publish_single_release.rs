//! publish-single-release against moto's Step Functions through the real SDK client.

use aws_sdk_sfn::Client;
use pipeline_testing::sfn::{PASS_ONLY, create_state_machine, execution_count, execution_input, sfn_client};
use pipeline_testing::unreachable_sdk_config;
use serde_json::json;

#[tokio::test]
async fn publishes_with_branch_and_distros_and_replaces_the_execution_list() {
    let sfn = sfn_client().await;
    let machine = create_state_machine(&sfn, "hhvm-publish-release", PASS_ONLY).await;
    let input = json!({
        "executionName": "multi-1",
        "version": "4.168.2",
        "packagingBranch": "HHVM-4.168",
        "distros": ["debian-12-bookworm", "ubuntu-24.04-noble"],
        "stepFunctionExecutions": ["arn:aws:states:us-east-1:123456789012:execution:hhvm-build:old"],
        "versions": ["4.167.1"],
        "unknown": {"kept": true}
    });
    let output = publish_single_release::handle(&sfn, &machine, input.clone())
        .await
        .unwrap();

    let arn = output["stepFunctionExecutions"][0]
        .as_str()
        .expect("an ARN")
        .to_string();
    assert!(arn.ends_with(":multi-1-publish-4_168_2"), "{arn}");
    assert_eq!(output["stepFunctionExecutions"].as_array().unwrap().len(), 1);
    for field in [
        "executionName",
        "version",
        "packagingBranch",
        "distros",
        "versions",
        "unknown",
    ] {
        assert_eq!(output[field], input[field], "{field}");
    }
    assert_eq!(
        execution_input(&sfn, &arn).await,
        json!({
            "version": "4.168.2",
            "packagingBranch": "HHVM-4.168",
            "distros": ["debian-12-bookworm", "ubuntu-24.04-noble"],
            "parentExecutionName": "multi-1"
        })
    );

    let again = publish_single_release::handle(&sfn, &machine, input).await.unwrap();
    assert_eq!(again["stepFunctionExecutions"], output["stepFunctionExecutions"]);
    assert_eq!(execution_count(&sfn, &machine).await, 1);
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_starts_nothing() {
    let sfn = Client::new(&unreachable_sdk_config().await);
    let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:hhvm-publish-release";
    let cases = [
        (
            json!({"executionName": "x/y", "version": "4.168.2"}),
            "InvalidInput",
            "`executionName`",
        ),
        (
            json!({"executionName": "r", "version": ""}),
            "InvalidVersion",
            "field `version`",
        ),
        (
            json!({"executionName": "r", "version": "latest"}),
            "InvalidVersion",
            "field `version`",
        ),
        (
            json!({"executionName": "r", "version": "4.168.2", "distros": "all"}),
            "InvalidInput",
            "`distros`",
        ),
    ];
    for (input, error_type, text) in cases {
        let error = publish_single_release::handle(&sfn, machine, input.clone())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), error_type, "{input}: {error}");
        assert!(error.to_string().contains(text), "{input}: {error}");
    }
}
