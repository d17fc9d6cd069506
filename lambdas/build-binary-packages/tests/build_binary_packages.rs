//! build-binary-packages against a real EC2 and S3 API (moto) through the real SDK clients.

use aws_sdk_ec2::error::ErrorMetadata;
use aws_sdk_ec2::operation::run_instances::RunInstancesError;
use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, mock};
use build_binary_packages::{Deps, handle};
use pipeline_core::layout::JobKind;
use pipeline_core::s3::Buckets;
use pipeline_core::{Distro, PackagingBranch, PipelineError};
use pipeline_testing::capacity::{SpotRefusals, without_spot_capacity};
use pipeline_testing::workers::{
    ExpectedWorker, WorkerEnvironment, assert_each_rejected, assert_retry_launches_nothing_new,
    assert_worker_configured, default_buckets, instance_ids_of_execution, instances_of_execution,
};
use pipeline_testing::{MotoServer, create_bucket, unique_name, unreachable_sdk_config};
use serde_json::{Value, json};

const ENVIRONMENT: WorkerEnvironment = WorkerEnvironment {
    job: JobKind::BinaryPackage,
    instance_profile: "hhvm-binary-package-builder",
    extra: &[
        ("BINARY_PACKAGE_INSTANCE_TYPE", "m5.2xlarge"),
        ("NODIST_BUCKET", "hhvm-nodist"),
    ],
};

/// As deployed by default: the workers on spot capacity.
const SPOT_ENVIRONMENT: WorkerEnvironment = WorkerEnvironment {
    job: JobKind::BinaryPackage,
    instance_profile: "hhvm-binary-package-builder",
    extra: &[
        ("BINARY_PACKAGE_INSTANCE_TYPE", "c7i.4xlarge"),
        ("NODIST_BUCKET", "hhvm-nodist"),
        ("BINARY_PACKAGE_MARKET", "spot"),
    ],
};

async fn deps_with(ec2: aws_sdk_ec2::Client) -> Deps {
    deps_in(ec2, &ENVIRONMENT).await
}

async fn deps_in(ec2: aws_sdk_ec2::Client, environment: &WorkerEnvironment) -> Deps {
    let config = MotoServer::shared().sdk_config().await;
    let s3 = pipeline_aws::s3_client(&config);
    let scratch = create_bucket(&s3, "scratch").await;
    let buckets = Buckets {
        downloads: "hhvm-downloads".parse().unwrap(),
        scratch: scratch.parse().unwrap(),
    };
    let config = environment.moto_launch_config().await;
    Deps {
        ec2,
        s3,
        buckets,
        config,
        parallelism: 1,
    }
}

async fn deps() -> Deps {
    let config = MotoServer::shared().sdk_config().await;
    deps_with(pipeline_aws::ec2_client(&config)).await
}

async fn spot_deps() -> Deps {
    let config = MotoServer::shared().sdk_config().await;
    deps_in(pipeline_aws::ec2_client(&config), &SPOT_ENVIRONMENT).await
}

/// Whether EC2 describes instance `id` as a spot instance (its lifecycle).
async fn is_spot_instance(ec2: &aws_sdk_ec2::Client, id: &str) -> bool {
    let described = ec2.describe_instances().instance_ids(id).send().await.unwrap();
    let instance = &described.reservations()[0].instances()[0];
    instance.instance_lifecycle() == Some(&aws_sdk_ec2::types::InstanceLifecycleType::Spot)
}

/// A launching EC2 client (as the function builds it: adaptive retries, 8 attempts) of an EC2
/// that has no spot capacity: spot requests are answered with `code` and HTTP `status`, the rest
/// reaches moto.
async fn ec2_without_spot_capacity(code: &'static str, status: u16) -> (aws_sdk_ec2::Client, SpotRefusals) {
    let sdk_config = MotoServer::shared().sdk_config().await;
    let (refusing, refusals) = without_spot_capacity(&sdk_config, code, status);
    (pipeline_aws::launch::launch_ec2_client(&refusing), refusals)
}

/// A request as get-build-version's output has it: `source` is where the version's tarball
/// belongs (the test's scratch bucket).
fn input(deps: &Deps, execution: &str, distros: Value) -> Value {
    json!({
        "version": "4.168.2",
        "nightly": false,
        "source": {"bucket": deps.buckets.scratch.as_str(), "path": "hhvm-4.168.2.tar.gz"},
        "packagingBranch": "HHVM-4.168",
        "distros": distros,
        "executionName": execution,
        "extra": {"kept": [1, null]}
    })
}

async fn no_fetch(_: PackagingBranch) -> Result<Vec<Distro>, PipelineError> {
    panic!("CURRENT_TARGETS must not be fetched when distros are given")
}

#[tokio::test]
async fn launches_one_configured_worker_per_distro() {
    let deps = deps().await;
    let execution = unique_name("exec");
    let input = input(&deps, &execution, json!(["debian-12-bookworm", "ubuntu-24.04-noble"]));
    let output = handle(&deps, no_fetch, input.clone()).await.unwrap();

    assert_eq!(output["distros"], json!(["debian-12-bookworm", "ubuntu-24.04-noble"]));
    assert_eq!(output["skippedDistros"], json!([]));
    let ids: Vec<String> = serde_json::from_value(output["instances"].clone()).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        output["builds"],
        json!([
            {"distro": "debian-12-bookworm", "instance": ids[0], "market": "on-demand", "instanceType": "m5.2xlarge"},
            {"distro": "ubuntu-24.04-noble", "instance": ids[1], "market": "on-demand", "instanceType": "m5.2xlarge"},
        ]),
        "each started worker with its distro and what it runs on"
    );
    for field in ["version", "source", "packagingBranch", "executionName", "extra"] {
        assert_eq!(output[field], input[field], "{field} passes through");
    }

    let launched = instances_of_execution(&deps.ec2, &execution).await;
    assert_eq!(launched.len(), 2);
    for (id, distro) in ids.iter().zip(["debian-12-bookworm", "ubuntu-24.04-noble"]) {
        assert!(launched.iter().any(|instance| &instance.id == id), "{id} is launched");
        let expected = ExpectedWorker {
            instance_type: "m5.2xlarge",
            tags: &[
                ("Name", &format!("hhvm-build-4.168.2-{distro}")),
                ("Distro", distro),
                ("Version", "4.168.2"),
                ("JobKind", "binary-package"),
                ("PipelineStack", "hhvm-pipeline"),
                ("Market", "on-demand"),
            ],
            prelude: &[
                ("DISTRO", distro),
                ("VERSION", "4.168.2"),
                ("IS_NIGHTLY", "false"),
                ("PACKAGING_BRANCH", "HHVM-4.168"),
                ("SOURCE_BUCKET", deps.buckets.scratch.as_str()),
                ("SOURCE_KEY", "hhvm-4.168.2.tar.gz"),
                ("SCRATCH_BUCKET", deps.buckets.scratch.as_str()),
                ("NODIST_BUCKET", "hhvm-nodist"),
                ("EXECUTION_NAME", &execution),
            ],
        };
        let script = assert_worker_configured(&deps.ec2, id, &expected).await;
        assert!(
            script.contains("worker_begin binary-package 180"),
            "the embedded script follows the prelude"
        );
        assert!(!is_spot_instance(&deps.ec2, id).await, "on-demand unless configured");
    }
}

#[tokio::test]
async fn configured_for_spot_the_workers_launch_on_spot_capacity() {
    let deps = spot_deps().await;
    let execution = unique_name("exec");
    let input = input(&deps, &execution, json!(["debian-12-bookworm", "ubuntu-24.04-noble"]));
    let output = handle(&deps, no_fetch, input).await.unwrap();
    let ids: Vec<String> = serde_json::from_value(output["instances"].clone()).unwrap();
    assert_eq!(
        output["builds"],
        json!([
            {"distro": "debian-12-bookworm", "instance": ids[0], "market": "spot", "instanceType": "c7i.4xlarge"},
            {"distro": "ubuntu-24.04-noble", "instance": ids[1], "market": "spot", "instanceType": "c7i.4xlarge"},
        ])
    );
    for (id, distro) in ids.iter().zip(["debian-12-bookworm", "ubuntu-24.04-noble"]) {
        assert!(is_spot_instance(&deps.ec2, id).await, "{id} is a spot instance");
        let expected = ExpectedWorker {
            instance_type: "c7i.4xlarge",
            tags: &[("Distro", distro), ("Market", "spot"), ("JobKind", "binary-package")],
            prelude: &[("DISTRO", distro)],
        };
        assert_worker_configured(&deps.ec2, id, &expected).await;
    }
}

#[tokio::test]
async fn without_spot_capacity_a_distro_launches_on_demand_and_a_retry_finds_it() {
    // EC2 answers no capacity as a server error: the SDK must not retry it seven times over.
    let (ec2, refusals) = ec2_without_spot_capacity("InsufficientInstanceCapacity", 500).await;
    let deps = deps_in(ec2, &SPOT_ENVIRONMENT).await;
    let execution = unique_name("exec");
    let input = input(&deps, &execution, json!(["debian-12-bookworm", "ubuntu-24.04-noble"]));
    let output = handle(&deps, no_fetch, input.clone()).await.unwrap();
    assert_eq!(
        refusals.count(),
        2,
        "each distro asked for spot capacity once, and took no for an answer"
    );
    let ids: Vec<String> = serde_json::from_value(output["instances"].clone()).unwrap();
    assert_eq!(
        output["builds"],
        json!([
            {"distro": "debian-12-bookworm", "instance": ids[0], "market": "on-demand", "instanceType": "c7i.4xlarge"},
            {"distro": "ubuntu-24.04-noble", "instance": ids[1], "market": "on-demand", "instanceType": "c7i.4xlarge"},
        ]),
        "what actually runs"
    );
    let launched = instances_of_execution(&deps.ec2, &execution).await;
    assert_eq!(launched.len(), 2, "only the on-demand instances exist");
    for instance in &launched {
        assert_eq!(instance.tags["Market"], "on-demand");
        assert!(!is_spot_instance(&deps.ec2, &instance.id).await);
    }

    // A retry of the whole call finds the on-demand workers by their own key: nothing is asked
    // of EC2 again, spot or on-demand.
    let again = handle(&deps, no_fetch, input).await.unwrap();
    assert_eq!(again["instances"], output["instances"]);
    assert_eq!(again["builds"], output["builds"]);
    assert_eq!(refusals.count(), 2, "no new spot request");
    assert_eq!(instance_ids_of_execution(&deps.ec2, &execution).await.len(), 2);
}

#[tokio::test]
async fn a_spot_launch_refused_for_another_reason_fails_instead_of_falling_back() {
    let (ec2, refusals) = ec2_without_spot_capacity("UnauthorizedOperation", 403).await;
    let deps = deps_in(ec2, &SPOT_ENVIRONMENT).await;
    let execution = unique_name("exec");
    let error = handle(&deps, no_fetch, input(&deps, &execution, json!(["debian-12-bookworm"])))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "WorkerLaunchFailed");
    assert!(error.to_string().contains("UnauthorizedOperation"), "{error}");
    assert_eq!(refusals.count(), 1, "a refusal is not retried");
    assert!(
        instance_ids_of_execution(&deps.ec2, &execution).await.is_empty(),
        "no on-demand instance either"
    );
}

/// Starts the builds of `distros` for `execution` on spot capacity and ends every worker, as EC2
/// ends reclaimed ones (moto cannot say why an instance ended: get-instances-state's tests and
/// the local stack cover the reason). The first call's output and its workers' IDs.
async fn builds_whose_workers_ended(deps: &Deps, execution: &str, distros: Value) -> (Value, Vec<String>) {
    let started = handle(deps, no_fetch, input(deps, execution, distros)).await.unwrap();
    let ids: Vec<String> = serde_json::from_value(started["instances"].clone()).unwrap();
    deps.ec2
        .terminate_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    (started, ids)
}

#[tokio::test]
async fn an_interrupted_distro_is_rebuilt_once_on_demand_in_its_place() {
    let deps = spot_deps().await;
    let execution = unique_name("exec");
    let distros = json!(["debian-12-bookworm", "ubuntu-24.04-noble", "debian-11-bullseye"]);
    // EC2 reclaims noble's instance; the others finish.
    let (started, ids) = builds_whose_workers_ended(&deps, &execution, distros).await;
    let mut finished = started.clone();
    finished["interruptedInstances"] = json!([ids[1]]);
    finished["allInstancesFinished"] = json!(true);

    let rebuilt = handle(&deps, no_fetch, finished.clone()).await.unwrap();
    let new_ids: Vec<String> = serde_json::from_value(rebuilt["instances"].clone()).unwrap();
    assert_eq!(new_ids.len(), 3);
    assert_eq!((&new_ids[0], &new_ids[2]), (&ids[0], &ids[2]), "the others are kept");
    assert_ne!(
        new_ids[1], ids[1],
        "noble's new worker takes the interrupted one's place"
    );
    assert_eq!(
        rebuilt["builds"],
        json!([
            started["builds"][0],
            {"distro": "ubuntu-24.04-noble", "instance": new_ids[1], "market": "on-demand",
             "instanceType": "c7i.4xlarge", "replaces": ids[1]},
            started["builds"][2],
        ])
    );
    assert_eq!(
        rebuilt["interruptedInstances"],
        json!([]),
        "cleared: the machine waits again"
    );
    for field in ["distros", "skippedDistros", "allInstancesFinished", "extra", "source"] {
        assert_eq!(rebuilt[field], finished[field], "{field} passes through");
    }
    assert!(
        !is_spot_instance(&deps.ec2, &new_ids[1]).await,
        "the rebuild runs on demand"
    );
    let expected = ExpectedWorker {
        instance_type: "c7i.4xlarge",
        tags: &[
            ("Distro", "ubuntu-24.04-noble"),
            ("Market", "on-demand"),
            ("Execution", &execution),
        ],
        prelude: &[("DISTRO", "ubuntu-24.04-noble"), ("VERSION", "4.168.2")],
    };
    assert_worker_configured(&deps.ec2, &new_ids[1], &expected).await;

    // A retried rebuild finds its worker.
    let again = handle(&deps, no_fetch, finished).await.unwrap();
    assert_eq!(again["instances"], rebuilt["instances"]);
    assert_eq!(instance_ids_of_execution(&deps.ec2, &execution).await.len(), 4);

    // The rebuild reclaimed too (it cannot be, on demand; but the rule holds): no third try.
    let mut twice = rebuilt.clone();
    twice["interruptedInstances"] = json!([new_ids[1]]);
    let error = handle(&deps, no_fetch, twice).await.unwrap_err();
    assert_eq!(error.error_type(), "BuildFailed");
    assert!(
        error.to_string().contains("ubuntu-24.04-noble (interrupted again"),
        "{error}"
    );
    assert_eq!(
        instance_ids_of_execution(&deps.ec2, &execution).await.len(),
        4,
        "nothing more launched"
    );
}

/// Writes `distro`'s success marker of 4.168.2 as the worker `instance` writes it.
async fn write_marker(deps: &Deps, distro: &str, instance: &str) {
    let marker = json!({"version": "4.168.2", "distro": distro, "instance": instance,
        "files": [{"name": "hhvm_4.168.2-1_amd64.deb", "sha256": "0".repeat(64)}]});
    deps.s3
        .put_object()
        .bucket(deps.buckets.scratch.as_str())
        .key(format!("markers/4.168.2/binary-package/{distro}.json"))
        .body(serde_json::to_vec(&marker).unwrap().into())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_interrupted_worker_that_wrote_its_marker_is_not_rebuilt() {
    let deps = spot_deps().await;
    let execution = unique_name("exec");
    let distros = json!(["debian-12-bookworm", "ubuntu-24.04-noble"]);
    let (started, ids) = builds_whose_workers_ended(&deps, &execution, distros).await;
    // EC2 reclaimed both. bookworm's worker had written its marker (the last thing a build
    // does); noble's marker is an earlier build's, by another instance.
    write_marker(&deps, "debian-12-bookworm", &ids[0]).await;
    write_marker(&deps, "ubuntu-24.04-noble", "i-0123456789abcdef0").await;
    let mut finished = started.clone();
    finished["interruptedInstances"] = json!(ids);
    finished["allInstancesFinished"] = json!(true);

    let rebuilt = handle(&deps, no_fetch, finished).await.unwrap();
    let new_ids: Vec<String> = serde_json::from_value(rebuilt["instances"].clone()).unwrap();
    assert_eq!(
        new_ids.len(),
        1,
        "bookworm's ended worker leaves the instances waited for: {new_ids:?}"
    );
    assert!(
        !ids.contains(&new_ids[0]),
        "noble is rebuilt: the marker there is not its worker's"
    );
    assert_eq!(rebuilt["builds"][0], started["builds"][0], "bookworm's build stands");
    assert_eq!(rebuilt["builds"][1]["instance"], json!(new_ids[0]));
    assert_eq!(rebuilt["builds"][1]["replaces"], json!(ids[1]));
    assert_eq!(rebuilt["interruptedInstances"], json!([]));
    assert_eq!(
        instance_ids_of_execution(&deps.ec2, &execution).await.len(),
        3,
        "one rebuild launched"
    );

    // Once every interrupted worker wrote its marker, nothing is launched.
    let mut done = rebuilt.clone();
    done["interruptedInstances"] = json!([new_ids[0]]);
    write_marker(&deps, "ubuntu-24.04-noble", &new_ids[0]).await;
    let output = handle(&deps, no_fetch, done).await.unwrap();
    assert_eq!(output["instances"], json!([]), "nothing left to wait for");
    assert_eq!(output["builds"], rebuilt["builds"]);
    assert_eq!(output["interruptedInstances"], json!([]));
    assert_eq!(instance_ids_of_execution(&deps.ec2, &execution).await.len(), 3);
}

#[tokio::test]
async fn bad_rebuild_input_launches_nothing_and_names_the_field() {
    let unreachable = unreachable_sdk_config().await;
    let deps = Deps {
        ec2: pipeline_aws::ec2_client(&unreachable),
        s3: pipeline_aws::s3_client(&unreachable),
        buckets: default_buckets(),
        config: SPOT_ENVIRONMENT.offline_launch_config(),
        parallelism: 2,
    };
    let mut base = input(&deps, "e", json!(["debian-12-bookworm"]));
    base["instances"] = json!(["i-00000001"]);
    base["builds"] = json!([{"distro": "debian-12-bookworm", "instance": "i-00000001", "market": "spot"}]);
    base["interruptedInstances"] = json!(["i-00000001"]);
    let cases = [
        (
            json!({"interruptedInstances": "i-00000001"}),
            "InvalidInput",
            "interruptedInstances",
        ),
        (
            json!({"interruptedInstances": ["i-1; reboot"]}),
            "InvalidInput",
            "interruptedInstances[0]",
        ),
        (
            json!({"interruptedInstances": ["i-0000000f"]}),
            "InvalidInput",
            "interruptedInstances[0]",
        ),
        (json!({"builds": null}), "InvalidInput", "builds"),
        (
            json!({"builds": [{"distro": "debian-12-bookworm", "instance": "i-00000001", "market": "cheap"}]}),
            "InvalidInput",
            "builds[0]",
        ),
        (
            json!({"builds": [{"distro": "debian-12-bookworm", "instance": "i-00000001", "replaces": "$(id)"}]}),
            "InvalidInput",
            "builds[0]",
        ),
        (json!({"instances": null}), "InvalidInput", "instances"),
    ];
    assert_each_rejected(&cases, &base, async |request| handle(&deps, no_fetch, request).await).await;
}

#[tokio::test]
async fn retry_with_same_input_launches_nothing_new() {
    let deps = deps().await;
    let execution = unique_name("exec");
    let input = input(&deps, &execution, json!(["debian-12-bookworm", "ubuntu-24.04-noble"]));
    assert_retry_launches_nothing_new(&deps.ec2, &execution, 2, async || {
        handle(&deps, no_fetch, input.clone()).await
    })
    .await;
}

#[tokio::test]
async fn distros_with_a_success_marker_are_skipped_unless_forced() {
    let deps = deps().await;
    deps.s3
        .put_object()
        .bucket(deps.buckets.scratch.as_str())
        .key("markers/4.168.2/binary-package/debian-12-bookworm.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    let execution = unique_name("exec");
    let output = handle(
        &deps,
        no_fetch,
        input(&deps, &execution, json!(["debian-12-bookworm", "ubuntu-24.04-noble"])),
    )
    .await
    .unwrap();
    assert_eq!(output["skippedDistros"], json!(["debian-12-bookworm"]));
    assert_eq!(output["distros"], json!(["debian-12-bookworm", "ubuntu-24.04-noble"]));
    let launched = instances_of_execution(&deps.ec2, &execution).await;
    assert_eq!(launched.len(), 1);
    assert_eq!(launched[0].tags["Distro"], "ubuntu-24.04-noble");
    assert_eq!(
        output["builds"],
        json!([{"distro": "ubuntu-24.04-noble", "instance": launched[0].id, "market": "on-demand", "instanceType": "m5.2xlarge"}]),
        "a skipped distro has no build of this call"
    );

    let execution = unique_name("exec");
    let mut forced = input(&deps, &execution, json!(["debian-12-bookworm", "ubuntu-24.04-noble"]));
    forced["force"] = json!(true);
    let output = handle(&deps, no_fetch, forced).await.unwrap();
    assert_eq!(output["skippedDistros"], json!([]));
    assert_eq!(instance_ids_of_execution(&deps.ec2, &execution).await.len(), 2);
}

#[tokio::test]
async fn without_distros_the_branch_current_targets_are_built() {
    let deps = deps().await;
    let execution = unique_name("exec");
    let mut request = input(&deps, &execution, Value::Null);
    request.as_object_mut().unwrap().remove("distros");
    let fetch = |branch: PackagingBranch| async move {
        assert_eq!(branch.to_string(), "HHVM-4.168");
        Ok(vec!["debian-11-bullseye".parse().unwrap()])
    };
    let output = handle(&deps, fetch, request).await.unwrap();
    assert_eq!(output["distros"], json!(["debian-11-bullseye"]));
    assert_eq!(instance_ids_of_execution(&deps.ec2, &execution).await.len(), 1);

    let unavailable = |_: PackagingBranch| async {
        Err(PipelineError::CurrentTargetsUnavailable {
            url: "http://x".into(),
            problem: "404".into(),
        })
    };
    let mut request = input(&deps, &unique_name("exec"), Value::Null);
    request.as_object_mut().unwrap().remove("distros");
    assert_eq!(
        handle(&deps, unavailable, request).await.unwrap_err().error_type(),
        "CurrentTargetsUnavailable"
    );
}

#[tokio::test]
async fn a_launch_that_fails_midway_leaves_no_running_instance() {
    // moto launches whatever it is asked to, so the failure of the second distro's launch is
    // injected: its request still reaches moto (which starts the instance) but the answer is
    // replaced by an error — the worst case, a launch that happened though the call failed.
    // Every other call (the first launch, the lookups, the termination) is moto's own.
    let no_capacity = mock!(aws_sdk_ec2::Client::run_instances)
        .match_requests(|request| {
            request
                .tag_specifications()
                .iter()
                .flat_map(|s| s.tags())
                .any(|t| t.value() == Some("ubuntu-24.04-noble"))
        })
        .then_error(|| {
            let metadata = ErrorMetadata::builder()
                .code("InsufficientInstanceCapacity")
                .message("no capacity")
                .build();
            RunInstancesError::generic(metadata)
        });
    let interceptor = MockResponseInterceptor::new()
        .rule_mode(RuleMode::MatchAny)
        .with_rule(&no_capacity)
        .allow_passthrough();
    let sdk_config = MotoServer::shared().sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&sdk_config)
            .interceptor(interceptor)
            .build(),
    );
    let deps = deps_with(ec2).await;

    let execution = unique_name("exec");
    let distros = json!(["debian-12-bookworm", "ubuntu-24.04-noble", "debian-11-bullseye"]);
    let error = handle(&deps, no_fetch, input(&deps, &execution, distros))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "WorkerLaunchFailed");
    assert!(error.to_string().contains("ubuntu-24.04-noble"), "{error}");
    assert!(error.to_string().contains("InsufficientInstanceCapacity"), "{error}");
    assert!(no_capacity.num_calls() >= 1);

    let launched = instances_of_execution(&deps.ec2, &execution).await;
    let mut distros: Vec<&str> = launched
        .iter()
        .map(|instance| instance.tags["Distro"].as_str())
        .collect();
    distros.sort();
    assert_eq!(
        distros,
        ["debian-12-bookworm", "ubuntu-24.04-noble"],
        "bullseye was never launched"
    );
    for instance in &launched {
        assert!(
            matches!(instance.state.as_str(), "shutting-down" | "terminated"),
            "{} is {}",
            instance.id,
            instance.state
        );
    }
}

#[tokio::test]
async fn bad_input_launches_nothing_and_names_the_field() {
    let unreachable = unreachable_sdk_config().await;
    let deps = Deps {
        ec2: pipeline_aws::ec2_client(&unreachable),
        s3: pipeline_aws::s3_client(&unreachable),
        buckets: default_buckets(),
        config: ENVIRONMENT.offline_launch_config(),
        parallelism: 2,
    };
    let cases = [
        (
            json!({"distros": ["debian-12-bookworm;id"]}),
            "InvalidInput",
            "distros[0]",
        ),
        (json!({"version": "4.168.2'$(id)'"}), "InvalidVersion", "version"),
        (
            json!({"source": {"bucket": "hhvm-scratch", "path": "a b.tar.gz"}}),
            "InvalidInput",
            "source",
        ),
        (
            json!({"source": {"bucket": "someone-elses-bucket", "path": "hhvm-4.168.2.tar.gz"}}),
            "InvalidInput",
            "belongs at",
        ),
        (
            json!({"source": {"bucket": "Bad_Bucket", "path": "x.tar.gz"}}),
            "InvalidInput",
            "source",
        ),
        (
            json!({"packagingBranch": "master && id"}),
            "InvalidInput",
            "packagingBranch",
        ),
        (json!({"executionName": "a b"}), "InvalidInput", "executionName"),
        (json!({"force": "yes"}), "InvalidInput", "force"),
        (json!({"nightly": true}), "InvalidInput", "nightly"),
    ];
    assert_each_rejected(
        &cases,
        &input(&deps, "e", json!(["debian-12-bookworm"])),
        async |request| handle(&deps, no_fetch, request).await,
    )
    .await;
}
