//! get-instances-state against a real EC2 API (moto) through the real SDK client.

mod interruptions;
mod pages;

use pipeline_testing::{MotoServer, launch_instances, unreachable_sdk_config};
use serde_json::{Value, json};

async fn ec2() -> aws_sdk_ec2::Client {
    pipeline_aws::ec2_client(&MotoServer::shared().sdk_config().await)
}

#[tokio::test]
async fn running_instances_are_unfinished_and_unknown_fields_pass_through() {
    let ec2 = ec2().await;
    let ids = launch_instances(&ec2, 2).await;
    let mut input: Value =
        serde_json::from_str(r#"{"version": "2026.11.21", "deep": {"x": [null, 1.10]}, "n": null}"#).unwrap();
    input["instances"] = json!(ids);
    let output = get_instances_state::handle(&ec2, input.clone()).await.unwrap();

    assert_eq!(output["allInstancesFinished"], false);
    let states = output["instanceStates"].as_object().unwrap();
    assert_eq!(states.keys().collect::<Vec<_>>(), ids.iter().collect::<Vec<_>>());
    for state in states.values() {
        assert!(matches!(state.as_str(), Some("pending" | "running")), "{state}");
    }
    assert_eq!(output["interruptedInstances"], json!([]), "nothing was interrupted");
    for field in ["instances", "version", "deep", "n"] {
        assert_eq!(output[field], input[field], "{field}");
    }
    assert_eq!(serde_json::to_string(&output["deep"]).unwrap(), r#"{"x":[null,1.10]}"#);
}

#[tokio::test]
async fn terminated_and_unknown_instances_are_finished_not_errors() {
    let ec2 = ec2().await;
    let ids = launch_instances(&ec2, 1).await;
    ec2.terminate_instances().instance_ids(&ids[0]).send().await.unwrap();
    let unknown = "i-0badc0ffee0000001";
    let output = get_instances_state::handle(&ec2, json!({"instances": [ids[0], unknown]}))
        .await
        .unwrap();

    let state = output["instanceStates"][&ids[0]].as_str().unwrap();
    assert!(matches!(state, "shutting-down" | "terminated"), "{state}");
    assert_eq!(output["instanceStates"][unknown], "missing");
    assert_eq!(output["allInstancesFinished"], true);
    assert_eq!(
        output["interruptedInstances"],
        json!([]),
        "terminated by a user and unknown are not interrupted"
    );

    // What EC2 answered for the terminated one: its state reason, read from the XML, is the
    // user's, not a spot reclaim's.
    let described =
        pipeline_aws::ec2::describe_instances_as_asked(&ec2, &[ids[0].parse().unwrap(), unknown.parse().unwrap()])
            .await
            .unwrap();
    let terminated = described[0].1.as_ref().expect("the terminated instance is described");
    assert_eq!(terminated.state_reason.as_deref(), Some("Client.UserInitiatedShutdown"));
    assert!(!terminated.was_interrupted());
    assert_eq!(described[1].1, None, "an unknown ID is not described");
}

#[tokio::test]
async fn a_running_instance_has_no_state_reason() {
    let ec2 = ec2().await;
    let ids = launch_instances(&ec2, 1).await;
    let described = pipeline_aws::ec2::describe_instances_as_asked(&ec2, &[ids[0].parse().unwrap()])
        .await
        .unwrap();
    // EC2 (and moto) answer an empty code; the pipeline reads it as none.
    assert_eq!(described[0].1.as_ref().expect("described").state_reason, None);
}

#[tokio::test]
async fn more_instances_than_one_filter_holds_are_all_described() {
    let ec2 = ec2().await;
    let ids = launch_instances(&ec2, 230).await;
    let output = get_instances_state::handle(&ec2, json!({"instances": ids}))
        .await
        .unwrap();
    let states = output["instanceStates"].as_object().unwrap();
    assert_eq!(states.len(), 230);
    assert!(
        states.values().all(|s| s != "missing"),
        "every launched instance is found"
    );
}

#[tokio::test]
async fn empty_list_describes_nothing_and_is_finished() {
    // Against an endpoint where nothing listens: any call would fail.
    let ec2 = pipeline_aws::ec2_client(&unreachable_sdk_config().await);
    let output = get_instances_state::handle(&ec2, json!({"instances": [], "keep": 1}))
        .await
        .unwrap();
    assert_eq!(
        output,
        json!({"instances": [], "keep": 1, "instanceStates": {}, "allInstancesFinished": true, "interruptedInstances": []})
    );
}

#[tokio::test]
async fn bad_instances_are_invalid_input_naming_the_field() {
    let ec2 = pipeline_aws::ec2_client(&unreachable_sdk_config().await);
    let cases: [(Value, &str); 5] = [
        (json!({}), "field `instances`: missing"),
        (
            json!({"instances": "i-0123abcd"}),
            "field `instances`: expected an array",
        ),
        (
            json!({"instances": ["i-0123abcd", 5]}),
            "field `instances[1]`: expected a string",
        ),
        (
            json!({"instances": ["i-0123abcd", "i-nope; reboot"]}),
            "field `instances[1]`: \"i-nope; reboot\" is not an EC2 instance ID",
        ),
        (json!(null), "expected a JSON object"),
    ];
    for (input, expected) in cases {
        let error = get_instances_state::handle(&ec2, input.clone()).await.unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput", "{input}");
        assert!(error.to_string().contains(expected), "{input}: {error}");
    }
}

#[tokio::test]
async fn unreachable_ec2_is_an_aws_service_error() {
    let ec2 = pipeline_aws::ec2_client(&unreachable_sdk_config().await);
    let error = get_instances_state::handle(&ec2, json!({"instances": ["i-0123abcd"]}))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "AwsServiceError");
    assert!(error.to_string().starts_with("EC2 DescribeInstances failed"), "{error}");
}
