//! notify-execution-failure against a real SNS API (moto) through the real SDK client.

use notify_execution_failure::{Config, NotifyExecutionFailure};
use pipeline_aws::Function;
use pipeline_testing::{MotoServer, unique_name};
use serde_json::{Value, json};

fn status_change(status: &str) -> Value {
    json!({
        "version": "0",
        "id": "6c5f8a4d-1e8e-4d0a-9f0e-0a1b2c3d4e5f",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2026-12-01T05:12:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:states:us-east-1:123456789012:execution:hhvm-build:nightly-2026-12-01"],
        "detail": {
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:hhvm-build:nightly-2026-12-01",
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:hhvm-build",
            "name": "nightly-2026-12-01",
            "status": status,
            "startDate": 1796108400000_u64,
            "stopDate": 1796112720000_u64,
            "input": "{\"version\":\"2026.12.01\"}",
            "output": null,
            "error": "BuildFailed",
            "cause": "2026.12.01 did not build: debian-12-bookworm has no success marker"
        }
    })
}

async fn notifier(topic_arn: &str) -> NotifyExecutionFailure {
    let sdk_config = MotoServer::shared().sdk_config().await;
    let config = Config {
        topic_arn: topic_arn.to_string(),
    };
    NotifyExecutionFailure::with_client(aws_sdk_sns::Client::new(&sdk_config), config, "us-east-1")
}

#[tokio::test]
async fn a_failed_execution_is_published_to_the_topic_naming_machine_version_and_cause() {
    let sdk_config = MotoServer::shared().sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&sdk_config);
    let topic = sns.create_topic().name(unique_name("failures")).send().await.unwrap();
    let topic_arn = topic.topic_arn().unwrap();

    let answer = notifier(topic_arn).await.handle(status_change("FAILED")).await.unwrap();
    assert!(!answer["messageId"].as_str().unwrap().is_empty(), "{answer}");
    assert_eq!(answer["subject"], "hhvm-build FAILED: 2026.12.01");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("cause:     BuildFailed: 2026.12.01 did not build"),
        "{message}"
    );
}

#[tokio::test]
async fn a_topic_that_does_not_exist_is_a_refused_request() {
    let missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic-for-notifications";
    let error = notifier(missing)
        .await
        .handle(status_change("TIMED_OUT"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "AwsRequestRefused", "{error}");
    assert!(error.to_string().contains("SNS Publish"), "{error}");
}

#[tokio::test]
async fn an_event_of_another_kind_is_invalid_input_and_publishes_nothing() {
    let missing = "arn:aws:sns:us-east-1:123456789012:never-used";
    let error = notifier(missing)
        .await
        .handle(json!({"detail-type": "Scheduled Event", "source": "aws.scheduler", "detail": {}}))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "InvalidInput", "{error}");
}
