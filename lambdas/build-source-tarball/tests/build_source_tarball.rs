//! build-source-tarball against a real EC2 API (moto) through the real SDK client.

use aws_sdk_ec2::types::{Instance, InstanceState, InstanceStateName, Reservation};
use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, mock};
use build_source_tarball::handle;
use pipeline_core::layout::JobKind;
use pipeline_testing::workers::{
    ExpectedWorker, WorkerEnvironment, assert_each_rejected, assert_instances_are_those_of_execution,
    assert_request_passes_through, assert_retry_launches_nothing_new, assert_worker_configured,
    bad_worker_request_fields, release_request,
};
use pipeline_testing::{MotoServer, instance_state, unique_name};
use serde_json::{Value, json};

const ENVIRONMENT: WorkerEnvironment = WorkerEnvironment {
    job: JobKind::SourceTarball,
    instance_profile: "hhvm-source-tarball-builder",
    extra: &[],
};

/// The moto dependencies, with EC2 calls going through `interceptor` first.
async fn moto_deps_intercepted(interceptor: MockResponseInterceptor) -> build_source_tarball::Deps {
    let sdk_config = MotoServer::shared().sdk_config().await;
    let mut deps = ENVIRONMENT.moto_single_worker_deps().await;
    deps.ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&sdk_config)
            .interceptor(interceptor)
            .build(),
    );
    deps
}

fn input(execution: &str) -> Value {
    release_request(
        execution,
        json!({"source": {"bucket": "hhvm-scratch", "path": "hhvm-4.168.2.tar.gz"}}),
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
        instance_type: "t3.large",
        tags: &[
            ("Name", "hhvm-build-4.168.2-source-tarball"),
            ("Version", "4.168.2"),
            ("JobKind", "source-tarball"),
            ("PipelineStack", "hhvm-pipeline"),
        ],
        prelude: &[
            ("VERSION", "4.168.2"),
            ("IS_NIGHTLY", "false"),
            ("SCRATCH_BUCKET", "hhvm-scratch"),
            ("SOURCE_KEY", "hhvm-4.168.2.tar.gz"),
            ("PACKAGING_BRANCH", "HHVM-4.168"),
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
    // The worker writes where `source` says: only the version's own location is accepted.
    let foreign_sources = [
        (
            json!({"source": {"bucket": "someone-elses-bucket", "path": "hhvm-4.168.2.tar.gz"}}),
            "InvalidInput",
            "source",
        ),
        (
            json!({"source": {"bucket": "hhvm-scratch", "path": "hhvm-4.168.1.tar.gz"}}),
            "InvalidInput",
            "source",
        ),
        (
            json!({"source": {"bucket": "hhvm-downloads", "path": "source/hhvm-4.168.2.tar.gz"}}),
            "InvalidInput",
            "source",
        ),
        (
            json!({"source": "s3://hhvm-scratch/hhvm-4.168.2.tar.gz"}),
            "InvalidInput",
            "source",
        ),
    ];
    assert_each_rejected(&foreign_sources, &input("e"), async |request| {
        handle(&deps, request).await
    })
    .await;
}

#[tokio::test]
async fn a_retry_after_the_first_workers_end_launches_a_new_one() {
    let deps = ENVIRONMENT.moto_single_worker_deps().await;
    let input = input(&unique_name("exec"));
    let first = handle(&deps, input.clone()).await.unwrap()["instances"][0]
        .as_str()
        .unwrap()
        .to_string();
    deps.ec2
        .terminate_instances()
        .instance_ids(&first)
        .send()
        .await
        .unwrap();
    // moto reports `shutting-down` first and `terminated` on the next describe.
    let _ = instance_state(&deps.ec2, &first).await;
    assert_eq!(instance_state(&deps.ec2, &first).await, "terminated");

    let again = handle(&deps, input).await.unwrap();
    let second = again["instances"][0].as_str().unwrap();
    assert_ne!(second, first, "the ended worker was handed back");
    assert_eq!(instance_state(&deps.ec2, second).await, "running");
}

#[tokio::test]
async fn a_worker_still_shutting_down_is_not_handed_back() {
    // EC2 lists a terminated instance as `shutting-down` for a while (moto reports `terminated`
    // at once): a retry in that window must not get the dying worker back. The launch's lookup
    // by idempotency key is answered with such an instance; the launch itself is moto's.
    let dying = mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(|request| {
            request
                .filters()
                .iter()
                .any(|filter| filter.name() == Some("tag:IdempotencyKey"))
        })
        .then_output(|| {
            let shutting_down = InstanceState::builder().name(InstanceStateName::ShuttingDown).build();
            let instance = Instance::builder()
                .instance_id("i-0deadbeef0000000b")
                .state(shutting_down)
                .build();
            aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput::builder()
                .reservations(Reservation::builder().instances(instance).build())
                .build()
        });
    let deps = moto_deps_intercepted(
        MockResponseInterceptor::new()
            .rule_mode(RuleMode::MatchAny)
            .with_rule(&dying)
            .allow_passthrough(),
    )
    .await;
    let output = handle(&deps, input(&unique_name("exec"))).await.unwrap();
    let launched = output["instances"][0].as_str().unwrap();
    assert_ne!(
        launched, "i-0deadbeef0000000b",
        "the shutting-down worker was handed back"
    );
    assert_eq!(instance_state(&deps.ec2, launched).await, "running");
    assert_eq!(dying.num_calls(), 1);
}

#[tokio::test]
async fn a_client_token_that_names_an_ended_instance_is_skipped() {
    // EC2 answers a repeated ClientToken with the instance it started for it, even once that
    // instance is terminated; moto ignores tokens, so that answer is injected for the first
    // attempt's token and the next attempt's launch is moto's own.
    let stale = mock!(aws_sdk_ec2::Client::run_instances)
        .match_requests(|request| request.client_token().is_some_and(|token| token.ends_with("-1")))
        .then_output(|| {
            let terminated = InstanceState::builder().name(InstanceStateName::Terminated).build();
            let instance = Instance::builder()
                .instance_id("i-0deadbeef0000000a")
                .state(terminated)
                .build();
            aws_sdk_ec2::operation::run_instances::RunInstancesOutput::builder()
                .instances(instance)
                .build()
        });
    let deps = moto_deps_intercepted(
        MockResponseInterceptor::new()
            .rule_mode(RuleMode::MatchAny)
            .with_rule(&stale)
            .allow_passthrough(),
    )
    .await;
    let output = handle(&deps, input(&unique_name("exec"))).await.unwrap();
    let launched = output["instances"][0].as_str().unwrap();
    assert_ne!(launched, "i-0deadbeef0000000a");
    assert_eq!(instance_state(&deps.ec2, launched).await, "running");
    assert_eq!(stale.num_calls(), 1);
}
