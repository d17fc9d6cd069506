//! build-binary-packages against a real EC2 and S3 API (moto) through the real SDK clients.

use aws_sdk_ec2::error::ErrorMetadata;
use aws_sdk_ec2::operation::run_instances::RunInstancesError;
use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, mock};
use build_binary_packages::{Deps, handle};
use pipeline_core::layout::JobKind;
use pipeline_core::s3::Buckets;
use pipeline_core::{Distro, PackagingBranch, PipelineError};
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

async fn deps_with(ec2: aws_sdk_ec2::Client) -> Deps {
    let config = MotoServer::shared().sdk_config().await;
    let s3 = pipeline_aws::s3_client(&config);
    let scratch = create_bucket(&s3, "scratch").await;
    let buckets = Buckets {
        downloads: "hhvm-downloads".parse().unwrap(),
        scratch: scratch.parse().unwrap(),
    };
    let config = ENVIRONMENT.moto_launch_config().await;
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
            {"distro": "debian-12-bookworm", "instance": ids[0]},
            {"distro": "ubuntu-24.04-noble", "instance": ids[1]},
        ]),
        "each started worker with its distro"
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
    }
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
        json!([{"distro": "ubuntu-24.04-noble", "instance": launched[0].id}]),
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
