//! terminate-instances against a real EC2 API (moto) through the real SDK client.

use pipeline_testing::{
    MotoServer, instance_state, launch_instances, launch_workers_in, launch_workers_of, test_stack, unique_name,
    unreachable_sdk_config,
};
use serde_json::json;

/// Workers of some execution, as the launchers tag them.
async fn launch_workers(ec2: &aws_sdk_ec2::Client, count: i32) -> Vec<String> {
    launch_workers_of(ec2, count, &unique_name("other"), "binary-package").await
}

fn is_terminating(state: &str) -> bool {
    matches!(state, "shutting-down" | "terminated")
}

async fn ec2() -> aws_sdk_ec2::Client {
    pipeline_aws::ec2_client(&MotoServer::shared().sdk_config().await)
}

#[tokio::test]
async fn running_instances_are_terminated_and_unknown_fields_pass_through() {
    let ec2 = ec2().await;
    let ids = launch_workers(&ec2, 2).await;
    let mut input: serde_json::Value =
        serde_json::from_str(r#"{"distros": ["debian-12-bookworm"], "x": {"y": [null, 3.0]}}"#).unwrap();
    input["instances"] = json!(ids);
    let output = terminate_instances::handle(&ec2, &test_stack(), input.clone())
        .await
        .unwrap();

    assert_eq!(output["terminatedInstances"], json!(ids));
    for id in &ids {
        let state = instance_state(&ec2, id).await;
        assert!(
            matches!(state.as_str(), "shutting-down" | "terminated"),
            "{id}: {state}"
        );
    }
    for field in ["instances", "distros", "x"] {
        assert_eq!(output[field], input[field], "{field}");
    }
    assert_eq!(serde_json::to_string(&output["x"]).unwrap(), r#"{"y":[null,3.0]}"#);
}

#[tokio::test]
async fn already_terminated_and_unknown_instances_do_not_fail_it() {
    let ec2 = ec2().await;
    let ids = launch_workers(&ec2, 2).await;
    ec2.terminate_instances().instance_ids(&ids[0]).send().await.unwrap();
    // moto reports `shutting-down` first and `terminated` on the next describe.
    let _ = instance_state(&ec2, &ids[0]).await;
    assert_eq!(instance_state(&ec2, &ids[0]).await, "terminated");

    let unknown = "i-0badc0ffee0000002";
    let output = terminate_instances::handle(&ec2, &test_stack(), json!({"instances": [ids[0], unknown, ids[1]]}))
        .await
        .unwrap();
    assert_eq!(output["terminatedInstances"], json!([ids[1]]));
    let state = instance_state(&ec2, &ids[1]).await;
    assert!(matches!(state.as_str(), "shutting-down" | "terminated"), "{state}");
}

#[tokio::test]
async fn repeating_the_call_is_harmless() {
    let ec2 = ec2().await;
    let ids = launch_workers(&ec2, 1).await;
    let input = json!({"instances": ids});
    terminate_instances::handle(&ec2, &test_stack(), input.clone())
        .await
        .unwrap();
    let again = terminate_instances::handle(&ec2, &test_stack(), input).await.unwrap();
    let terminated = again["terminatedInstances"].as_array().unwrap();
    // A second call finds it terminated (skipped) or still shutting down (asked again): never an error.
    assert!(terminated.is_empty() || terminated == &vec![json!(ids[0])], "{again}");
}

#[tokio::test]
async fn empty_list_is_a_no_op() {
    let ec2 = pipeline_aws::ec2_client(&unreachable_sdk_config().await);
    let output = terminate_instances::handle(&ec2, &test_stack(), json!({"instances": [], "k": "v"}))
        .await
        .unwrap();
    assert_eq!(output, json!({"instances": [], "k": "v", "terminatedInstances": []}));
}

#[tokio::test]
async fn bad_instances_are_invalid_input_and_terminate_nothing() {
    let ec2 = ec2().await;
    let ids = launch_workers(&ec2, 1).await;
    let input = json!({"instances": [ids[0], "i-bad id"]});
    let error = terminate_instances::handle(&ec2, &test_stack(), input)
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "InvalidInput");
    assert!(error.to_string().contains("field `instances[1]`"), "{error}");
    let state = instance_state(&ec2, &ids[0]).await;
    assert!(
        matches!(state.as_str(), "pending" | "running"),
        "the valid instance was left alone: {state}"
    );

    let error = terminate_instances::handle(&ec2, &test_stack(), json!({"instances": {"a": 1}}))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("field `instances`: expected an array"),
        "{error}"
    );
}

#[tokio::test]
async fn an_executions_workers_are_found_by_their_tag_not_by_the_payload() {
    let ec2 = ec2().await;
    let execution = unique_name("run");
    let mine = launch_workers_of(&ec2, 2, &execution, "binary-package").await;
    let others = launch_workers(&ec2, 1).await;
    let output = terminate_instances::handle(&ec2, &test_stack(), json!({"executionName": execution}))
        .await
        .unwrap();
    let mut terminated: Vec<String> = serde_json::from_value(output["terminatedInstances"].clone()).unwrap();
    terminated.sort();
    let mut expected = mine.clone();
    expected.sort();
    assert_eq!(terminated, expected);
    for id in &mine {
        assert!(is_terminating(&instance_state(&ec2, id).await), "{id}");
    }
    let state = instance_state(&ec2, &others[0]).await;
    assert!(
        !is_terminating(&state),
        "another execution's worker was left alone: {state}"
    );
}

#[tokio::test]
async fn another_deployments_workers_of_the_same_execution_are_neither_found_nor_terminated() {
    let ec2 = ec2().await;
    let execution = unique_name("nightly");
    let mine = launch_workers_of(&ec2, 1, &execution, "binary-package").await;
    let theirs = launch_workers_in(&ec2, "staging-hhvm-pipeline", 1, &execution, "binary-package").await;

    let listed = json!({"executionName": execution, "instances": [theirs[0]]});
    let error = terminate_instances::handle(&ec2, &test_stack(), listed)
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "InvalidInput");
    assert!(error.to_string().contains("PipelineStack=hhvm-pipeline"), "{error}");
    for id in [&mine[0], &theirs[0]] {
        let state = instance_state(&ec2, id).await;
        assert!(!is_terminating(&state), "a refused call terminated {id}: {state}");
    }

    let output = terminate_instances::handle(&ec2, &test_stack(), json!({"executionName": execution}))
        .await
        .unwrap();
    assert_eq!(output["terminatedInstances"], json!(mine));
    assert!(is_terminating(&instance_state(&ec2, &mine[0]).await));
    let state = instance_state(&ec2, &theirs[0]).await;
    assert!(!is_terminating(&state), "the other deployment's worker: {state}");
}

#[tokio::test]
async fn an_instance_the_pipeline_did_not_launch_is_refused_and_nothing_terminated() {
    let ec2 = ec2().await;
    let execution = unique_name("run");
    let mine = launch_workers_of(&ec2, 1, &execution, "source-tarball").await;
    let foreign = launch_instances(&ec2, 1).await;
    let input = json!({"executionName": execution, "instances": [foreign[0]]});
    let error = terminate_instances::handle(&ec2, &test_stack(), input)
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "InvalidInput");
    assert!(error.to_string().contains("not a pipeline worker"), "{error}");
    for id in [&mine[0], &foreign[0]] {
        let state = instance_state(&ec2, id).await;
        assert!(!is_terminating(&state), "{id}: {state}");
    }
}

#[tokio::test]
async fn without_an_execution_or_a_list_nothing_is_guessed() {
    let ec2 = pipeline_aws::ec2_client(&unreachable_sdk_config().await);
    let error = terminate_instances::handle(&ec2, &test_stack(), json!({"version": "4.168.2"}))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "InvalidInput");
    assert!(error.to_string().contains("`instances`"), "{error}");
}

#[tokio::test]
async fn unreachable_ec2_is_an_aws_service_error() {
    let ec2 = pipeline_aws::ec2_client(&unreachable_sdk_config().await);
    let error = terminate_instances::handle(&ec2, &test_stack(), json!({"instances": ["i-0123abcd"]}))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "AwsServiceError");
}
