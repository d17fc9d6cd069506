//! publish-release-source against a real EC2 API (moto) through the real SDK client.

use pipeline_core::layout::JobKind;
use pipeline_testing::unique_name;
use pipeline_testing::workers::{
    ExpectedWorker, WorkerEnvironment, assert_each_rejected, assert_instances_are_those_of_execution,
    assert_request_passes_through, assert_retry_launches_nothing_new, assert_worker_configured,
    bad_worker_request_fields, release_request,
};
use publish_release_source::handle;
use serde_json::{Value, json};

const ENVIRONMENT: WorkerEnvironment = WorkerEnvironment {
    job: JobKind::PublishReleaseSource,
    instance_profile: "hhvm-source-publisher",
    extra: &[],
};

fn input(execution: &str) -> Value {
    release_request(execution, json!({}))
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
            ("Name", "hhvm-4.168.2-publish-source"),
            ("Version", "4.168.2"),
            ("JobKind", "publish-release-source"),
            ("PipelineStack", "hhvm-pipeline"),
        ],
        prelude: &[
            ("VERSION", "4.168.2"),
            ("IS_NIGHTLY", "false"),
            ("SCRATCH_BUCKET", "hhvm-scratch"),
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
async fn bad_input_makes_no_aws_call_and_names_the_field() {
    let deps = ENVIRONMENT.unreachable_single_worker_deps().await;
    assert_each_rejected(&bad_worker_request_fields(), &input("e"), async |request| {
        handle(&deps, request).await
    })
    .await;
}

#[tokio::test]
async fn nightlies_are_not_published_and_make_no_aws_call() {
    let deps = ENVIRONMENT.unreachable_single_worker_deps().await;
    let output = handle(&deps, json!({"version": "2026.11.21", "nightly": true, "k": [1]}))
        .await
        .unwrap();
    assert_eq!(
        output,
        json!({"version": "2026.11.21", "nightly": true, "k": [1], "instances": [], "comment": "Not published sources, nightly build"})
    );
}
