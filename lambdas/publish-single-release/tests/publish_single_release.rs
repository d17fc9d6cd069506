//! publish-single-release against moto's Step Functions through the real SDK client.

use aws_sdk_sfn::Client;
use pipeline_testing::{MotoServer, unique_name, unreachable_sdk_config};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::123456789012:role/pipeline-test";
const PASS_ONLY: &str = r#"{"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}"#;

async fn sfn() -> Client {
    Client::new(&MotoServer::shared().sdk_config().await)
}

async fn create_state_machine(sfn: &Client) -> String {
    let output = sfn
        .create_state_machine()
        .name(unique_name("hhvm-publish-release"))
        .definition(PASS_ONLY)
        .role_arn(ROLE)
        .send()
        .await
        .expect("create a test state machine");
    output.state_machine_arn().to_string()
}

#[tokio::test]
async fn publishes_with_branch_and_distros_and_replaces_the_execution_list() {
    let sfn = sfn().await;
    let machine = create_state_machine(&sfn).await;
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
    let described = sfn.describe_execution().execution_arn(&arn).send().await.unwrap();
    let child: Value = serde_json::from_str(described.input().unwrap()).unwrap();
    assert_eq!(
        child,
        json!({
            "version": "4.168.2",
            "packagingBranch": "HHVM-4.168",
            "distros": ["debian-12-bookworm", "ubuntu-24.04-noble"],
            "parentExecutionName": "multi-1"
        })
    );

    let again = publish_single_release::handle(&sfn, &machine, input).await.unwrap();
    assert_eq!(again["stepFunctionExecutions"], output["stepFunctionExecutions"]);
    let listed = sfn.list_executions().state_machine_arn(&machine).send().await.unwrap();
    assert_eq!(listed.executions().len(), 1);
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_starts_nothing() {
    let sfn = Client::new(&unreachable_sdk_config().await);
    let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:hhvm-publish-release";
    let cases = [
        (json!({"version": "4.168.2"}), "InvalidInput", "`executionName`"),
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
