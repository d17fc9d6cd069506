//! update-repositories against a real EC2 API (moto) through the real SDK client.

use pipeline_core::layout::JobKind;
use pipeline_testing::unique_name;
use pipeline_testing::workers::{
    ExpectedWorker, WorkerEnvironment, assert_each_rejected, assert_instances_are_those_of_execution,
    assert_request_passes_through, assert_retry_launches_nothing_new, assert_worker_configured,
    bad_worker_request_fields, release_request,
};
use serde_json::{Value, json};
use update_repositories::handle;

const ENVIRONMENT: WorkerEnvironment = WorkerEnvironment {
    job: JobKind::UpdateRepositories,
    instance_profile: "hhvm-repo-builders",
    extra: &[],
};

fn input(execution: &str) -> Value {
    release_request(
        execution,
        json!({"distros": ["debian-12-bookworm", "ubuntu-24.04-noble"]}),
    )
}

#[tokio::test]
async fn launches_a_configured_worker_and_passes_the_input_through() {
    let deps = ENVIRONMENT.moto_single_worker_deps().await;
    let execution = unique_name("exec");
    let input = input(&execution);
    let output = handle(&deps, input.clone()).await.unwrap();
    let ids = assert_instances_are_those_of_execution(&output, &deps.ec2, &execution).await;
    assert_request_passes_through(&input, &output);

    let expected = ExpectedWorker {
        instance_type: "t3.medium",
        tags: &[
            ("Name", "hhvm-4.168.2-update-repos"),
            ("Version", "4.168.2"),
            ("JobKind", "update-repositories"),
            ("PipelineStack", "hhvm-pipeline"),
        ],
        prelude: &[
            ("VERSION", "4.168.2"),
            ("IS_NIGHTLY", "false"),
            ("SCRATCH_BUCKET", "hhvm-scratch"),
            ("DISTROS", "debian-12-bookworm ubuntu-24.04-noble"),
        ],
    };
    assert_worker_configured(&deps.ec2, &ids[0], &expected).await;
}

#[tokio::test]
async fn retry_with_same_input_launches_nothing_new() {
    let deps = ENVIRONMENT.moto_single_worker_deps().await;
    let execution = unique_name("exec");
    assert_retry_launches_nothing_new(&deps.ec2, &execution, 1, async || {
        handle(&deps, input(&execution)).await
    })
    .await;
}

#[tokio::test]
async fn a_running_worker_is_handed_only_to_the_request_it_was_launched_for() {
    let deps = ENVIRONMENT.moto_single_worker_deps().await;
    let execution = unique_name("exec");
    let instances = |output: &Value| output["instances"].clone();
    let all_distros = handle(&deps, release_request(&execution, json!({}))).await.unwrap();
    // The same execution asking for one distro only: that worker would publish every distro.
    let one_distro = handle(
        &deps,
        release_request(&execution, json!({"distros": ["debian-12-bookworm"]})),
    )
    .await
    .unwrap();
    assert_ne!(instances(&one_distro), instances(&all_distros));
    // Each request, repeated, finds its own worker again.
    let again = handle(&deps, release_request(&execution, json!({}))).await.unwrap();
    assert_eq!(instances(&again), instances(&all_distros));
    let again = handle(
        &deps,
        release_request(&execution, json!({"distros": ["debian-12-bookworm"]})),
    )
    .await
    .unwrap();
    assert_eq!(instances(&again), instances(&one_distro));
}

#[tokio::test]
async fn bad_input_makes_no_aws_call_and_names_the_field() {
    let deps = ENVIRONMENT.unreachable_single_worker_deps().await;
    assert_each_rejected(&bad_worker_request_fields(), &input("e"), async |request| {
        handle(&deps, request).await
    })
    .await;
}
