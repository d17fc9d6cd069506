//! clean-up-after-execution against moto's EC2, S3 and Step Functions through the real SDK
//! clients. moto does not run these executions (no execute mode), so they stay RUNNING until
//! stopped, as a child does while its parent ends.

use aws_sdk_s3::primitives::ByteStream;
use clean_up_after_execution::{Config, Deps, handle, handle_at};
use pipeline_testing::sfn::{PASS_ONLY, create_state_machine};
use pipeline_testing::{
    MotoServer, create_bucket, instance_state, launch_instances, launch_workers_in, launch_workers_of, test_stack,
    unique_name,
};
use serde_json::{Value, json};

async fn deps() -> Deps {
    let config = MotoServer::shared().sdk_config().await;
    let s3 = pipeline_aws::s3_client(&config);
    let sfn = aws_sdk_sfn::Client::new(&config);
    let scratch = create_bucket(&s3, "scratch").await.parse().unwrap();
    let child_machines = vec![
        create_state_machine(&sfn, "hhvm-build", PASS_ONLY).await,
        create_state_machine(&sfn, "hhvm-publish-release", PASS_ONLY).await,
    ];
    Deps {
        ec2: pipeline_aws::ec2_client(&config),
        s3,
        sfn,
        config: Config {
            stack: test_stack(),
            scratch,
            child_machines,
            sweep_margin_minutes: 30,
        },
    }
}

/// The event EventBridge delivers when `execution` of `machine` ends with `status`.
fn execution_ended(machine: &str, execution: &str, status: &str) -> Value {
    let (prefix, name) = machine.split_once(":stateMachine:").unwrap();
    json!({
        "version": "0", "id": unique_name("event"), "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states", "account": "123456789012", "time": "2026-12-01T03:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": {
            "executionArn": format!("{prefix}:execution:{name}:{execution}"),
            "stateMachineArn": machine, "name": execution, "status": status,
            "input": "{}", "error": null, "cause": null
        }
    })
}

async fn start_child(deps: &Deps, machine: &str, parent: &str) -> String {
    deps.sfn
        .start_execution()
        .state_machine_arn(machine)
        .name(unique_name("child"))
        .input(json!({"version": "4.168.2", "parentExecutionName": parent}).to_string())
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_string()
}

async fn status(deps: &Deps, arn: &str) -> String {
    let described = deps.sfn.describe_execution().execution_arn(arn).send().await.unwrap();
    described.status().as_str().to_string()
}

fn is_terminating(state: &str) -> bool {
    matches!(state, "shutting-down" | "terminated")
}

async fn put_lease(deps: &Deps, holder: &str) {
    let body = json!({"holder": holder, "version": "4.168.2"}).to_string();
    deps.s3
        .put_object()
        .bucket(deps.config.scratch.as_str())
        .key("locks/apt-repositories.json")
        .body(ByteStream::from(body.into_bytes()))
        .send()
        .await
        .unwrap();
}

async fn lease_exists(deps: &Deps) -> bool {
    deps.s3
        .head_object()
        .bucket(deps.config.scratch.as_str())
        .key("locks/apt-repositories.json")
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn an_ended_execution_loses_its_workers_and_children_and_nothing_else() {
    let deps = deps().await;
    let parent = unique_name("parent");
    let other = unique_name("other");
    let workers = launch_workers_of(&deps.ec2, 2, &parent, "binary-package").await;
    let others = launch_workers_of(&deps.ec2, 1, &other, "binary-package").await;
    // Another deployment's execution of the same name.
    let other_stacks = launch_workers_in(&deps.ec2, "staging-hhvm-pipeline", 1, &parent, "binary-package").await;
    let foreign = launch_instances(&deps.ec2, 1).await;
    let build = &deps.config.child_machines[0];
    let publish = &deps.config.child_machines[1];
    let children = [
        start_child(&deps, build, &parent).await,
        start_child(&deps, publish, &parent).await,
    ];
    let unrelated = start_child(&deps, build, &other).await;

    let machine = build.replace("hhvm-build", "hhvm-build-and-publish");
    let output = handle(&deps, execution_ended(&machine, &parent, "TIMED_OUT"))
        .await
        .unwrap();

    let mut terminated: Vec<String> = serde_json::from_value(output["terminatedInstances"].clone()).unwrap();
    terminated.sort();
    let mut expected = workers.clone();
    expected.sort();
    assert_eq!(terminated, expected);
    for id in &workers {
        assert!(is_terminating(&instance_state(&deps.ec2, id).await), "{id}");
    }
    for id in others.iter().chain(&other_stacks).chain(&foreign) {
        let state = instance_state(&deps.ec2, id).await;
        assert!(!is_terminating(&state), "{id} was not left alone: {state}");
    }
    let mut stopped: Vec<String> = serde_json::from_value(output["stoppedExecutions"].clone()).unwrap();
    stopped.sort();
    let mut expected = children.to_vec();
    expected.sort();
    assert_eq!(stopped, expected);
    for child in &children {
        assert_eq!(status(&deps, child).await, "ABORTED", "{child}");
    }
    assert_eq!(status(&deps, &unrelated).await, "RUNNING");

    // Repeating it finds nothing left to do.
    let again = handle(&deps, execution_ended(&machine, &parent, "TIMED_OUT"))
        .await
        .unwrap();
    assert_eq!(again["stoppedExecutions"], json!([]));
}

#[tokio::test]
async fn a_lease_is_released_only_when_its_holder_is_gone() {
    let deps = deps().await;
    let holder = launch_workers_of(&deps.ec2, 1, &unique_name("update"), "update-repositories").await;
    put_lease(&deps, &holder[0]).await;
    let machine = &deps.config.child_machines[1];
    let event = execution_ended(machine, &unique_name("publish"), "ABORTED");
    let output = handle(&deps, event.clone()).await.unwrap();
    assert_eq!(output["releasedLeaseOf"], Value::Null);
    assert!(lease_exists(&deps).await, "a running holder keeps its lease");

    deps.ec2
        .terminate_instances()
        .instance_ids(&holder[0])
        .send()
        .await
        .unwrap();
    // moto reports `shutting-down` first and `terminated` on the next describe.
    let _ = instance_state(&deps.ec2, &holder[0]).await;
    assert_eq!(instance_state(&deps.ec2, &holder[0]).await, "terminated");
    let output = handle(&deps, event).await.unwrap();
    assert_eq!(output["releasedLeaseOf"], json!(holder[0]));
    assert!(!lease_exists(&deps).await, "the gone holder's lease is released");
}

#[tokio::test]
async fn a_sweep_terminates_only_workers_past_their_hard_timeout() {
    let deps = deps().await;
    let execution = unique_name("sweep");
    let publisher = launch_workers_of(&deps.ec2, 1, &execution, "publish-release-source").await;
    let builder = launch_workers_of(&deps.ec2, 1, &execution, "binary-package").await;
    let other_stacks = launch_workers_in(
        &deps.ec2,
        "staging-hhvm-pipeline",
        1,
        &execution,
        "publish-release-source",
    )
    .await;
    let foreign = launch_instances(&deps.ec2, 1).await;
    // 65 minutes on: past publish-release-source's 30 min + 30 min margin, not a build's 180 + 30.
    let later = chrono::Utc::now().timestamp() + 65 * 60;
    let scheduled = json!({"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.scheduler",
        "account": "123456789012", "time": "2026-12-01T04:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    let output = handle_at(&deps, scheduled, later).await.unwrap();
    let terminated: Vec<String> = serde_json::from_value(output["terminatedInstances"].clone()).unwrap();
    assert!(terminated.contains(&publisher[0]), "{output}");
    assert!(!terminated.contains(&builder[0]), "{output}");
    assert!(is_terminating(&instance_state(&deps.ec2, &publisher[0]).await));
    assert!(!terminated.contains(&other_stacks[0]), "{output}");
    for id in [&builder[0], &other_stacks[0], &foreign[0]] {
        assert!(!is_terminating(&instance_state(&deps.ec2, id).await), "{id}");
    }
}

#[tokio::test]
async fn other_events_change_nothing() {
    let deps = deps().await;
    let parent = unique_name("parent");
    let workers = launch_workers_of(&deps.ec2, 1, &parent, "binary-package").await;
    let machine = deps.config.child_machines[0].clone();
    for (pointer, value) in [
        ("/detail/status", json!("SUCCEEDED")),
        ("/detail/status", json!("RUNNING")),
        ("/source", json!("aws.ec2")),
    ] {
        let mut event = execution_ended(&machine, &parent, "FAILED");
        *event.pointer_mut(pointer).unwrap() = value;
        let error = handle(&deps, event).await.unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput", "{pointer}");
    }
    assert!(!is_terminating(&instance_state(&deps.ec2, &workers[0]).await));
}
