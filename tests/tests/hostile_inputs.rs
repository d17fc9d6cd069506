//! A hostile corpus against every function of the pipeline, run in-process against one moto.
//!
//! The payloads are what a caller other than the pipeline's own state machines could send:
//! wrong JSON types, missing fields, megabyte strings, shell metacharacters, path traversal,
//! control characters and look-alike digits, impossible dates, buckets, instances and
//! distributions that are not the pipeline's, a `source` that is not where the version's tarball
//! belongs, fields the pipeline reserves for its own steps in a machine's first step, and
//! execution names Step Functions would never give. Each one must be refused with the typed
//! error its field calls for, and afterwards the emulator must show no side effect: no instance
//! launched, terminated or stopped, no execution started, no S3 object written, changed or
//! deleted in any bucket, no CloudFront invalidation, no SNS notification.
//!
//! A control run first sends each function a valid payload of the same shape and checks that
//! what it should do is seen. So a refusal in the corpus is the hostile field's refusal, and a
//! clean snapshot means nothing happened, not that nothing could have been observed.
//!
//! Nothing leaves the machine: every URL a function would fetch (GitHub in production) points
//! at 127.0.0.1:9, where nothing listens.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::error::display::DisplayErrorContext;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::PipelineError;
use pipeline_core::executions::ExecutionName;
use pipeline_core::launch::{InstanceProfile, InstanceSettings, LaunchPlan};
use pipeline_core::layout::{JobKind, marker_key};
use pipeline_core::s3::Buckets;
use pipeline_core::{Distro, Version};
use pipeline_testing::MotoServer;
use pipeline_testing::cloudfront::create_distribution;
use pipeline_testing::sfn::{PASS_ONLY, create_state_machine, start_execution};
use pipeline_testing::workers::{WORKER_AMI, create_instance_profile, moto_default_network};
use serde_json::{Value, json};

const BUILD_BINARY_PACKAGES: &str = <build_binary_packages::BuildBinaryPackages as Function>::NAME;
const BUILD_SOURCE_TARBALL: &str = <build_source_tarball::BuildSourceTarball as Function>::NAME;
const CREATE_S3_INDEX_HTML: &str = <create_s3_index_html::CreateS3IndexHtml as Function>::NAME;
const GET_BUILD_STATUS: &str = <get_build_status::GetBuildStatus as Function>::NAME;
const GET_BUILD_VERSION: &str = <get_build_version::GetBuildVersion as Function>::NAME;
const GET_INSTANCES_STATE: &str = <get_instances_state::GetInstancesState as Function>::NAME;
const GET_EXECUTIONS_STATE: &str =
    <get_state_machine_executions_state::GetStateMachineExecutionsState as Function>::NAME;
const HAVE_SOURCE_TARBALL: &str = <have_source_tarball::HaveSourceTarball as Function>::NAME;
const INVALIDATE_METADATA: &str =
    <invalidate_repository_metadata_on_cloudfront::InvalidateRepositoryMetadataOnCloudfront as Function>::NAME;
const NOTIFY_EXECUTION_FAILURE: &str = <notify_execution_failure::NotifyExecutionFailure as Function>::NAME;
const CLEAN_UP_AFTER_EXECUTION: &str = <clean_up_after_execution::CleanUpAfterExecution as Function>::NAME;
const PUBLISH_RELEASE_SOURCE: &str = <publish_release_source::PublishReleaseSource as Function>::NAME;
const PUBLISH_SINGLE_RELEASE: &str = <publish_single_release::PublishSingleRelease as Function>::NAME;
const SHIFT_VERSION: &str = <shift_version::ShiftVersion as Function>::NAME;
const START_MULTIPLE_BUILDS: &str = <start_multiple_builds::StartMultipleBuilds as Function>::NAME;
const START_NIGHTLY: &str = <start_nightly::StartNightly as Function>::NAME;
const START_SINGLE_BUILD: &str = <start_single_build::StartSingleBuild as Function>::NAME;
const TERMINATE_INSTANCES: &str = <terminate_instances::TerminateInstances as Function>::NAME;
const UPDATE_REPOSITORIES: &str = <update_repositories::UpdateRepositories as Function>::NAME;

const SCRATCH: &str = "hhvm-scratch";
const DOWNLOADS: &str = "hhvm-downloads";
/// A bucket that exists and holds a complete-looking tarball, but is not the pipeline's.
const FOREIGN_BUCKET: &str = "someone-elses-bucket";
/// Where nothing listens: the stand-in for every URL a function would fetch.
const UNREACHABLE: &str = "http://127.0.0.1:9";
const INSTANCE_PROFILE: &str = "hostile-inputs-worker";
const RELEASE: &str = "4.168.2";
const RELEASE_BRANCH: &str = "HHVM-4.168";
/// A release whose complete source tarball is in the scratch bucket too.
const OTHER_RELEASE: &str = "4.168.1";
const DISTRO: &str = "debian-12-bookworm";
const ACCOUNT_ARN: &str = "arn:aws:states:us-east-1:123456789012";
const MEGABYTE: usize = 1 << 20;
/// Long enough for a launch through the SDK's retries, short enough to report a hang.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(60);

// Stand-ins in payloads for what exists only once moto is seeded, replaced in every string.
/// A fresh execution name per case (`hostile-<n>`; `control-<function>` in the control run), so
/// that whatever a wrongly accepted case starts is its own and is seen.
const RUN: &str = "@run@";
/// A running instance the pipeline did not launch: no tags at all.
const UNTAGGED_INSTANCE: &str = "@untagged-instance@";
/// A running instance tagged as a binary-package worker of another execution.
const OTHER_EXECUTIONS_WORKER: &str = "@other-executions-worker@";
/// A running instance tagged as a binary-package worker of another deployment (stack).
const OTHER_STACKS_WORKER: &str = "@other-stacks-worker@";
/// The deployment `OTHER_STACKS_WORKER` belongs to.
const OTHER_STACK: &str = "staging-hhvm-pipeline";
/// A CloudFront distribution that exists but is not the configured one.
const FOREIGN_DISTRIBUTION: &str = "@foreign-distribution@";
/// The configured distribution (`CLOUDFRONT_DISTRIBUTION_ID`).
const OUR_DISTRIBUTION: &str = "@our-distribution@";
/// An execution of the pipeline's build machine.
const SEED_EXECUTION: &str = "@seed-execution@";
/// The source tarball worker the control run launched (for terminate-instances' control).
const CONTROL_WORKER: &str = "@control-worker@";

#[tokio::test]
async fn every_hostile_payload_is_refused_with_a_typed_error_and_changes_nothing() {
    tokio::task::LocalSet::new().run_until(run_corpus()).await;
}

async fn run_corpus() {
    let started = Instant::now();
    // The shared moto: no other test of this process may write to it (the snapshots compare
    // every bucket, instance and execution in it); those that need a moto start their own.
    let sdk_config = MotoServer::shared().sdk_config().await;
    let mut world = World::seed(&sdk_config).await;
    let handlers = handlers(&world.environment, &world.requests.counting(&sdk_config));
    assert_eq!(
        handlers.keys().map(|name| name.to_string()).collect::<BTreeSet<_>>(),
        deployed_function_names(),
        "the corpus covers exactly the functions infra/template.yaml deploys"
    );
    let seeded = started.elapsed();

    let control_failures = run_controls(&mut world, &handlers).await;
    let controlled = started.elapsed();

    let corpus = corpus();
    let covered: BTreeSet<&str> = corpus.iter().map(|case| case.function).collect();
    assert_eq!(
        covered,
        handlers.keys().copied().collect(),
        "every function has hostile cases"
    );
    let mut results = Vec::with_capacity(corpus.len());
    for (index, case) in corpus.into_iter().enumerate() {
        world.substitutions.insert(RUN, format!("hostile-{index:03}"));
        let payload = substituted(&case.payload, &world.substitutions);
        let (outcome, changes) = world.exercise(&handlers[case.function], payload).await;
        results.push(CaseResult { case, outcome, changes });
    }
    // Cases that sent no request were not listed; nothing may have changed behind their back.
    let unattributed = changes(&world.baseline, &world.snapshot().await);
    let finished = started.elapsed();

    print_tally(&results);
    let failures: Vec<&CaseResult> = results.iter().filter(|result| result.failure().is_some()).collect();
    println!(
        "\n{} of {} hostile payloads were not refused cleanly:",
        failures.len(),
        results.len()
    );
    for result in &failures {
        println!("{}", result.report());
    }
    if !unattributed.is_empty() {
        println!("\nchanges no case accounts for: {}", listed(&unattributed));
    }
    if !control_failures.is_empty() {
        println!("\n{} control payloads did not behave:", control_failures.len());
        for failure in &control_failures {
            println!("{failure}");
        }
    }
    println!(
        "\ntime: seeding {:.1} s, control run {:.1} s, corpus {:.1} s ({} payloads)",
        seeded.as_secs_f64(),
        (controlled - seeded).as_secs_f64(),
        (finished - controlled).as_secs_f64(),
        results.len()
    );
    assert!(
        control_failures.is_empty(),
        "{} control payloads did not behave (listed above): the corpus proves nothing about them",
        control_failures.len()
    );
    assert!(
        unattributed.is_empty(),
        "the emulator changed outside any listed case (above)"
    );
    assert!(
        failures.is_empty(),
        "{} of {} hostile payloads were not refused with their typed error or changed something (listed above)",
        failures.len(),
        results.len()
    );
}

// ---------------------------------------------------------------------------------------------
// The functions, as deployed: each built through its `Function` impl from one environment.

type Answer = Pin<Box<dyn Future<Output = Result<Value, PipelineError>>>>;
type Handler = Rc<dyn Fn(Value) -> Answer>;

fn handlers(environment: &BTreeMap<String, String>, sdk_config: &SdkConfig) -> BTreeMap<&'static str, Handler> {
    let mut handlers = BTreeMap::new();
    register::<build_binary_packages::BuildBinaryPackages>(&mut handlers, environment, sdk_config);
    register::<build_source_tarball::BuildSourceTarball>(&mut handlers, environment, sdk_config);
    register::<create_s3_index_html::CreateS3IndexHtml>(&mut handlers, environment, sdk_config);
    register::<get_build_status::GetBuildStatus>(&mut handlers, environment, sdk_config);
    register::<get_build_version::GetBuildVersion>(&mut handlers, environment, sdk_config);
    register::<get_instances_state::GetInstancesState>(&mut handlers, environment, sdk_config);
    register::<get_state_machine_executions_state::GetStateMachineExecutionsState>(
        &mut handlers,
        environment,
        sdk_config,
    );
    register::<have_source_tarball::HaveSourceTarball>(&mut handlers, environment, sdk_config);
    register::<invalidate_repository_metadata_on_cloudfront::InvalidateRepositoryMetadataOnCloudfront>(
        &mut handlers,
        environment,
        sdk_config,
    );
    register::<notify_execution_failure::NotifyExecutionFailure>(&mut handlers, environment, sdk_config);
    register::<clean_up_after_execution::CleanUpAfterExecution>(&mut handlers, environment, sdk_config);
    register::<publish_release_source::PublishReleaseSource>(&mut handlers, environment, sdk_config);
    register::<publish_single_release::PublishSingleRelease>(&mut handlers, environment, sdk_config);
    register::<shift_version::ShiftVersion>(&mut handlers, environment, sdk_config);
    register::<start_multiple_builds::StartMultipleBuilds>(&mut handlers, environment, sdk_config);
    register::<start_nightly::StartNightly>(&mut handlers, environment, sdk_config);
    register::<start_single_build::StartSingleBuild>(&mut handlers, environment, sdk_config);
    register::<terminate_instances::TerminateInstances>(&mut handlers, environment, sdk_config);
    register::<update_repositories::UpdateRepositories>(&mut handlers, environment, sdk_config);
    handlers
}

fn register<F: Function + 'static>(
    handlers: &mut BTreeMap<&'static str, Handler>,
    environment: &BTreeMap<String, String>,
    sdk_config: &SdkConfig,
) {
    let source = |name: &str| environment.get(name).cloned();
    let config = F::configuration(&source)
        .unwrap_or_else(|error| panic!("{} does not load the test environment: {error}", F::NAME));
    let function = Rc::new(F::new(config, sdk_config));
    let handler: Handler = Rc::new(move |event: Value| -> Answer {
        let function = Rc::clone(&function);
        Box::pin(async move { function.handle(event).await })
    });
    handlers.insert(F::NAME, handler);
}

/// The functions `infra/template.yaml` deploys, without the stack's name prefix.
fn deployed_function_names() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    let template = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {path}: {error}"));
    let names: BTreeSet<String> = template
        .lines()
        .filter_map(|line| line.trim().strip_prefix("FunctionName: !Sub ${NamePrefix}"))
        .map(|name| name.trim().to_string())
        .collect();
    assert!(names.len() >= 18, "no function names found in {path}: {names:?}");
    names
}

/// What a handler did with one payload.
#[derive(Debug)]
enum Outcome {
    Accepted(Value),
    Refused(PipelineError),
    Panicked(String),
    TimedOut,
}

impl Outcome {
    /// The `errorType`, or what happened instead of an error.
    fn answer(&self) -> String {
        match self {
            Outcome::Accepted(_) => "(accepted)".into(),
            Outcome::Refused(error) => error.error_type().into(),
            Outcome::Panicked(_) => "(panicked)".into(),
            Outcome::TimedOut => "(no answer)".into(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Outcome::Accepted(output) => format!("accepted, answering {}", shortened(&abbreviated(output), 400)),
            Outcome::Refused(error) => format!("{}: {}", error.error_type(), shortened(&error.to_string(), 400)),
            Outcome::Panicked(message) => format!("panicked: {}", shortened(message, 400)),
            Outcome::TimedOut => format!("no answer within {} s", CASE_TIME_LIMIT.as_secs()),
        }
    }
}

/// Runs the handler as its own task, so that a panic is an outcome instead of the test's end.
async fn invoke(handler: &Handler, payload: Value) -> Outcome {
    let task = tokio::task::spawn_local(handler(payload));
    let abort = task.abort_handle();
    match tokio::time::timeout(CASE_TIME_LIMIT, task).await {
        Err(_) => {
            abort.abort();
            Outcome::TimedOut
        }
        Ok(Err(error)) if error.is_panic() => {
            let panic = error.into_panic();
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            Outcome::Panicked(message)
        }
        Ok(Err(error)) => Outcome::Panicked(format!("the task was cancelled: {error}")),
        Ok(Ok(Ok(output))) => Outcome::Accepted(output),
        Ok(Ok(Err(error))) => Outcome::Refused(error),
    }
}

// ---------------------------------------------------------------------------------------------
// The emulator: what is seeded, and what a case may not change.

struct World {
    s3: aws_sdk_s3::Client,
    ec2: aws_sdk_ec2::Client,
    sfn: aws_sdk_sfn::Client,
    cloudfront: aws_sdk_cloudfront::Client,
    distributions: Vec<String>,
    notifications: Notifications,
    /// The functions' requests to moto (the world's own listing goes around it).
    requests: Requests,
    environment: BTreeMap<String, String>,
    substitutions: BTreeMap<&'static str, String>,
    /// The state after the last case.
    baseline: Snapshot,
}

impl World {
    async fn seed(sdk_config: &SdkConfig) -> World {
        let s3 = pipeline_aws::s3_client(sdk_config);
        let ec2 = pipeline_aws::ec2_client(sdk_config);
        let sfn = aws_sdk_sfn::Client::new(sdk_config);
        let cloudfront = aws_sdk_cloudfront::Client::new(sdk_config);
        let sns = aws_sdk_sns::Client::new(sdk_config);

        seed_buckets(&s3).await;
        let untagged = launch_untagged_instance(&ec2).await;
        let other_worker = launch_other_executions_worker(&ec2, pipeline_testing::TEST_STACK).await;
        let other_stacks_worker = launch_other_executions_worker(&ec2, OTHER_STACK).await;
        let build = create_state_machine(&sfn, "hhvm-build", PASS_ONLY).await;
        let publish = create_state_machine(&sfn, "hhvm-publish-release", PASS_ONLY).await;
        let build_and_publish = create_state_machine(&sfn, "hhvm-build-and-publish", PASS_ONLY).await;
        let seed_execution = start_execution(&sfn, &build, "seed-build").await;
        let distribution = create_distribution(&cloudfront).await;
        let foreign_distribution = create_distribution(&cloudfront).await;
        let notifications = Notifications::listen();
        let topic = sns
            .create_topic()
            .name("hhvm-execution-failures")
            .send()
            .await
            .expect("create the notification topic");
        let topic_arn = topic.topic_arn().expect("the topic's ARN").to_string();
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("http")
            .endpoint(&notifications.endpoint)
            .send()
            .await
            .expect("subscribe the test's listener to the topic");

        create_instance_profile(INSTANCE_PROFILE);
        let (subnet, group) = moto_default_network(&ec2).await;

        let mut environment: BTreeMap<String, String> = [
            ("DOWNLOADS_BUCKET", DOWNLOADS.to_string()),
            ("SCRATCH_BUCKET", SCRATCH.to_string()),
            ("PIPELINE_STACK", pipeline_testing::TEST_STACK.to_string()),
            ("WORKER_AMI_ID", WORKER_AMI.to_string()),
            ("WORKER_SUBNET_ID", subnet),
            ("WORKER_SECURITY_GROUP_IDS", group),
            (
                "CURRENT_TARGETS_URL",
                format!("{UNREACHABLE}/{{branch}}/CURRENT_TARGETS"),
            ),
            ("PACKAGING_REPO_URL", format!("{UNREACHABLE}/packaging.git")),
            (
                "NIGHTLY_SOURCE_REFS_URL",
                format!("{UNREACHABLE}/hhvm.git/info/refs?service=git-upload-pack"),
            ),
            ("BUILD_STATE_MACHINE_ARN", build),
            ("PUBLISH_STATE_MACHINE_ARN", publish),
            ("BUILD_AND_PUBLISH_STATE_MACHINE_ARN", build_and_publish),
            ("CLOUDFRONT_DISTRIBUTION_ID", distribution.clone()),
            ("NOTIFICATION_TOPIC_ARN", topic_arn),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        for job in [
            "SOURCE_TARBALL",
            "BINARY_PACKAGE",
            "UPDATE_REPOSITORIES",
            "PUBLISH_RELEASE_SOURCE",
        ] {
            environment.insert(format!("{job}_INSTANCE_PROFILE"), INSTANCE_PROFILE.to_string());
            environment.insert(format!("{job}_INSTANCE_TYPE"), "t3.micro".to_string());
        }

        let substitutions = BTreeMap::from([
            (UNTAGGED_INSTANCE, untagged),
            (OTHER_EXECUTIONS_WORKER, other_worker),
            (OTHER_STACKS_WORKER, other_stacks_worker),
            (FOREIGN_DISTRIBUTION, foreign_distribution.clone()),
            (OUR_DISTRIBUTION, distribution.clone()),
            (SEED_EXECUTION, seed_execution),
        ]);
        let mut world = World {
            s3,
            ec2,
            sfn,
            cloudfront,
            distributions: vec![distribution, foreign_distribution],
            notifications,
            requests: Requests::default(),
            environment,
            substitutions,
            baseline: Snapshot::default(),
        };
        world.baseline = world.snapshot().await;
        world
    }

    /// Sends one payload; returns what the handler answered and what changed in the emulator.
    /// A case that sent moto no request changed nothing there, and is not listed (most refusals
    /// happen before any request; the final listing checks that no change went unseen).
    async fn exercise(&mut self, handler: &Handler, payload: Value) -> (Outcome, Vec<String>) {
        let sent_before = self.requests.sent();
        let outcome = invoke(handler, payload).await;
        if self.requests.sent() == sent_before {
            return (outcome, Vec::new());
        }
        let after = self.snapshot().await;
        let changes = changes(&self.baseline, &after);
        self.baseline = after;
        if self.replace_stopped_seed_instances().await {
            self.baseline = self.snapshot().await;
        }
        (outcome, changes)
    }

    /// A case that terminated a seeded instance has been reported; the next case gets a running
    /// one again, so that it can show the same harm.
    async fn replace_stopped_seed_instances(&mut self) -> bool {
        let mut replaced = false;
        for seed in [UNTAGGED_INSTANCE, OTHER_EXECUTIONS_WORKER, OTHER_STACKS_WORKER] {
            let running = self
                .baseline
                .instances
                .get(&self.substitutions[seed])
                .map(String::as_str)
                == Some("running");
            if !running {
                let id = match seed {
                    UNTAGGED_INSTANCE => launch_untagged_instance(&self.ec2).await,
                    OTHER_STACKS_WORKER => launch_other_executions_worker(&self.ec2, OTHER_STACK).await,
                    _ => launch_other_executions_worker(&self.ec2, pipeline_testing::TEST_STACK).await,
                };
                self.substitutions.insert(seed, id);
                replaced = true;
            }
        }
        replaced
    }

    async fn snapshot(&self) -> Snapshot {
        let ((buckets, objects), instances, executions, invalidations) = tokio::join!(
            self.objects(),
            self.instances(),
            self.executions(),
            self.invalidations()
        );
        Snapshot {
            buckets,
            objects,
            instances,
            executions,
            invalidations,
            notifications: self.notifications.count(),
        }
    }

    /// Every bucket, and every object of each with its ETag.
    async fn objects(&self) -> (BTreeSet<String>, BTreeMap<(String, String), String>) {
        let listed = self.s3.list_buckets().send().await.expect("list buckets");
        let buckets: BTreeSet<String> = listed
            .buckets()
            .iter()
            .filter_map(|bucket| bucket.name().map(str::to_string))
            .collect();
        let mut objects = BTreeMap::new();
        for bucket in &buckets {
            let mut pages = self.s3.list_objects_v2().bucket(bucket).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.unwrap_or_else(|error| panic!("list s3://{bucket}: {}", DisplayErrorContext(&error)));
                for object in page.contents() {
                    let key = object.key().unwrap_or_default().to_string();
                    objects.insert((bucket.clone(), key), object.e_tag().unwrap_or_default().to_string());
                }
            }
        }
        (buckets, objects)
    }

    /// Every instance and its state; `pending` counts as `running` (moto moves on by itself).
    async fn instances(&self) -> BTreeMap<String, String> {
        let mut instances = BTreeMap::new();
        let mut pages = self.ec2.describe_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|error| panic!("describe instances: {}", DisplayErrorContext(&error)));
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let state = instance
                    .state()
                    .and_then(|s| s.name())
                    .map_or("unknown", |n| n.as_str());
                let state = if state == "pending" { "running" } else { state };
                instances.insert(
                    instance.instance_id().unwrap_or_default().to_string(),
                    state.to_string(),
                );
            }
        }
        instances
    }

    /// Every execution of every state machine.
    async fn executions(&self) -> BTreeSet<String> {
        let machines = self
            .sfn
            .list_state_machines()
            .send()
            .await
            .expect("list state machines");
        let mut executions = BTreeSet::new();
        for machine in machines.state_machines() {
            let mut pages = self
                .sfn
                .list_executions()
                .state_machine_arn(machine.state_machine_arn())
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.unwrap_or_else(|error| panic!("list executions: {}", DisplayErrorContext(&error)));
                executions.extend(page.executions().iter().map(|e| e.execution_arn().to_string()));
            }
        }
        executions
    }

    /// Every invalidation of both distributions, as (distribution, invalidation).
    async fn invalidations(&self) -> BTreeSet<(String, String)> {
        let mut invalidations = BTreeSet::new();
        for distribution in &self.distributions {
            let list = self
                .cloudfront
                .list_invalidations()
                .distribution_id(distribution)
                .send()
                .await
                .unwrap_or_else(|error| panic!("list invalidations: {}", DisplayErrorContext(&error)));
            let items = list.invalidation_list().map(|l| l.items().to_vec()).unwrap_or_default();
            invalidations.extend(items.iter().map(|i| (distribution.clone(), i.id().to_string())));
        }
        invalidations
    }
}

/// The buckets and what is in them: each release's complete source tarball (tarball, `.sig`,
/// `.sha256`, the source job's marker), a published nightly, and a foreign bucket holding a
/// complete-looking tarball of its own. The downloads bucket has no index pages yet, so an index
/// run that should not have happened writes some.
async fn seed_buckets(s3: &aws_sdk_s3::Client) {
    for bucket in [SCRATCH, DOWNLOADS, FOREIGN_BUCKET] {
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap_or_else(|error| panic!("create {bucket}: {}", DisplayErrorContext(&error)));
    }
    let buckets = pipeline_buckets();
    let mut objects: Vec<(String, String)> = Vec::new();
    for release in [RELEASE, OTHER_RELEASE] {
        let version: Version = release.parse().expect("a release");
        let tarball = buckets.source_tarball(&version);
        for suffix in ["", ".sig", ".sha256"] {
            objects.push((tarball.bucket.to_string(), format!("{}{suffix}", tarball.path)));
        }
        let marker = marker_key(&version, JobKind::SourceTarball, None);
        objects.push((SCRATCH.to_string(), marker.to_string()));
    }
    let nightly = buckets.source_tarball(&"2026.11.20".parse().expect("a nightly"));
    objects.push((nightly.bucket.to_string(), nightly.path.to_string()));
    for key in ["debian/dists/bookworm/InRelease", "conf/hhvm.gpg.key"] {
        objects.push((DOWNLOADS.to_string(), key.to_string()));
    }
    for key in [
        "x",
        "x.sig",
        "x.sha256",
        "hhvm-4.168.2.tar.gz",
        "hhvm-4.168.2.tar.gz.sig",
    ] {
        objects.push((FOREIGN_BUCKET.to_string(), key.to_string()));
    }
    for (bucket, key) in objects {
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(aws_sdk_s3::primitives::ByteStream::from(
                format!("seeded {key}\n").into_bytes(),
            ))
            .send()
            .await
            .unwrap_or_else(|error| panic!("seed s3://{bucket}/{key}: {}", DisplayErrorContext(&error)));
    }
}

fn pipeline_buckets() -> Buckets {
    Buckets {
        downloads: DOWNLOADS.parse().expect("a bucket name"),
        scratch: SCRATCH.parse().expect("a bucket name"),
    }
}

/// The release's tarball location as get-build-version computes it: the only valid `source`.
fn release_source() -> Value {
    let version: Version = RELEASE.parse().expect("a release");
    serde_json::to_value(pipeline_buckets().source_tarball(&version)).expect("a location serializes")
}

async fn launch_untagged_instance(ec2: &aws_sdk_ec2::Client) -> String {
    pipeline_testing::launch_instances(ec2, 1).await.remove(0)
}

/// An instance tagged exactly as build-binary-packages of the stack `stack` tags its workers,
/// for execution `other-execution`.
async fn launch_other_executions_worker(ec2: &aws_sdk_ec2::Client, stack: &str) -> String {
    let settings = InstanceSettings {
        stack: stack.parse().expect("a stack name"),
        image_id: WORKER_AMI.into(),
        instance_type: "t3.micro".parse().expect("an instance type"),
        market: pipeline_core::launch::Market::OnDemand,
        subnet_id: "subnet-12345678".into(),
        security_group_ids: vec!["sg-12345678".into()],
        instance_profile: InstanceProfile::parse(INSTANCE_PROFILE),
        key_name: None,
        root_device_name: "/dev/sda1".into(),
        root_volume_gib: 8,
    };
    let plan = LaunchPlan::new(
        JobKind::BinaryPackage,
        RELEASE.parse().expect("a release"),
        Some(DISTRO.parse::<Distro>().expect("a distro")),
        "other-execution".parse::<ExecutionName>().expect("an execution name"),
        String::new(),
        settings,
    );
    let tags = plan
        .tags()
        .into_iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect();
    let output = ec2
        .run_instances()
        .image_id(WORKER_AMI)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .set_tags(Some(tags))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|error| panic!("launch the other execution's worker: {}", DisplayErrorContext(&error)));
    output.instances()[0].instance_id().expect("an instance ID").to_string()
}

/// Everything a case could change.
#[derive(Debug, Clone, Default, PartialEq)]
struct Snapshot {
    buckets: BTreeSet<String>,
    /// (bucket, key) → ETag.
    objects: BTreeMap<(String, String), String>,
    /// Instance ID → state.
    instances: BTreeMap<String, String>,
    executions: BTreeSet<String>,
    invalidations: BTreeSet<(String, String)>,
    notifications: usize,
}

/// What differs between two snapshots, a sentence each.
fn changes(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut changes = Vec::new();
    for bucket in after.buckets.difference(&before.buckets) {
        changes.push(format!("created bucket {bucket}"));
    }
    for bucket in before.buckets.difference(&after.buckets) {
        changes.push(format!("deleted bucket {bucket}"));
    }
    for ((bucket, key), etag) in &after.objects {
        match before.objects.get(&(bucket.clone(), key.clone())) {
            None => changes.push(format!("wrote s3://{bucket}/{key}")),
            Some(earlier) if earlier != etag => changes.push(format!("changed s3://{bucket}/{key}")),
            Some(_) => {}
        }
    }
    for (bucket, key) in before.objects.keys() {
        if !after.objects.contains_key(&(bucket.clone(), key.clone())) {
            changes.push(format!("deleted s3://{bucket}/{key}"));
        }
    }
    for (id, state) in &after.instances {
        match before.instances.get(id) {
            None => changes.push(format!("launched {id} ({state})")),
            Some(earlier) if earlier != state => changes.push(format!("{id}: {earlier} -> {state}")),
            Some(_) => {}
        }
    }
    for arn in after.executions.difference(&before.executions) {
        changes.push(format!("started execution {arn}"));
    }
    for (distribution, id) in after.invalidations.difference(&before.invalidations) {
        changes.push(format!("created invalidation {id} of distribution {distribution}"));
    }
    if after.notifications != before.notifications {
        changes.push(format!(
            "published {} SNS notification(s)",
            after.notifications.abs_diff(before.notifications)
        ));
    }
    changes
}

/// The topic's HTTP subscription: moto posts each notification to it before its Publish
/// answers, so a count read after a call includes whatever the call published.
#[derive(Clone)]
struct Notifications {
    received: Arc<Mutex<usize>>,
    endpoint: String,
}

impl Notifications {
    fn listen() -> Notifications {
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
        let address = listener.local_addr().expect("the listener's address");
        let received = Arc::new(Mutex::new(0));
        let count = Arc::clone(&received);
        // Runs until the test process ends.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if read_notification(&stream) {
                    *count.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                let _ = (&stream).write_all(answer);
            }
        });
        Notifications {
            received,
            endpoint: format!("http://{address}/notifications"),
        }
    }

    fn count(&self) -> usize {
        *self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Reads one request; whether it is an SNS notification (not, say, a subscription message).
fn read_notification(stream: &TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return false;
    }
    serde_json::from_slice::<Value>(&body).is_ok_and(|message| message["Type"] == "Notification")
}

/// Counts the requests the functions send: their SDK configuration's HTTP client passes every
/// request through `CountingConnector`.
#[derive(Debug, Clone, Default)]
struct Requests(Arc<AtomicUsize>);

impl Requests {
    fn sent(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// `sdk_config` with its requests counted here.
    fn counting(&self, sdk_config: &SdkConfig) -> SdkConfig {
        let inner = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .build_https();
        let requests = self.clone();
        let client = http_client_fn(move |settings, components| {
            SharedHttpConnector::new(CountingConnector {
                inner: inner.http_connector(settings, components),
                requests: requests.clone(),
            })
        });
        sdk_config.to_builder().http_client(client).build()
    }
}

#[derive(Debug)]
struct CountingConnector {
    inner: SharedHttpConnector,
    requests: Requests,
}

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.requests.0.fetch_add(1, Ordering::SeqCst);
        self.inner.call(request)
    }
}

// ---------------------------------------------------------------------------------------------
// The control run: valid payloads of the corpus's shapes, and what each must do.

#[derive(Debug, Clone, Copy)]
enum Expected {
    /// An answer, and nothing changed (the function only reads).
    Answer,
    /// An answer, and the emulator shows the function's work.
    AnswerAndWork,
    /// This error, and nothing changed.
    Error(&'static str),
}

async fn run_controls(world: &mut World, handlers: &BTreeMap<&'static str, Handler>) -> Vec<String> {
    let release = release_request();
    // Source tarball first: terminate-instances' control terminates the worker it launches.
    let controls = [
        (BUILD_SOURCE_TARBALL, source_tarball_request(), Expected::AnswerAndWork),
        (
            TERMINATE_INSTANCES,
            json!({"instances": [CONTROL_WORKER], "executionName": control_run(BUILD_SOURCE_TARBALL)}),
            Expected::AnswerAndWork,
        ),
        (GET_BUILD_VERSION, get_build_version_request(), Expected::Answer),
        (HAVE_SOURCE_TARBALL, have_source_tarball_request(), Expected::Answer),
        (
            BUILD_BINARY_PACKAGES,
            binary_packages_request(),
            Expected::AnswerAndWork,
        ),
        (
            UPDATE_REPOSITORIES,
            with(&release, "distros", json!([DISTRO])),
            Expected::AnswerAndWork,
        ),
        (PUBLISH_RELEASE_SOURCE, release.clone(), Expected::AnswerAndWork),
        (GET_INSTANCES_STATE, get_instances_state_request(), Expected::Answer),
        (SHIFT_VERSION, versions_request(), Expected::Answer),
        (START_SINGLE_BUILD, child_request(), Expected::AnswerAndWork),
        (PUBLISH_SINGLE_RELEASE, child_request(), Expected::AnswerAndWork),
        (START_MULTIPLE_BUILDS, versions_request(), Expected::AnswerAndWork),
        (GET_EXECUTIONS_STATE, executions_state_request(), Expected::Answer),
        (INVALIDATE_METADATA, invalidation_request(), Expected::AnswerAndWork),
        (CREATE_S3_INDEX_HTML, index_request(), Expected::AnswerAndWork),
        (GET_BUILD_STATUS, build_status_request(), Expected::Answer),
        // Its source's refs are out of reach, which it must say as such.
        (START_NIGHTLY, nightly_event(), Expected::Error("SourceUnavailable")),
        (NOTIFY_EXECUTION_FAILURE, status_change(), Expected::AnswerAndWork),
        // The execution of the event left nothing running: nothing to end.
        (CLEAN_UP_AFTER_EXECUTION, status_change(), Expected::Answer),
        // Operators' payloads keep working: what the original pipeline's machines and bin/
        // scripts passed, without an executionName (a name is derived from the payload).
        (
            BUILD_SOURCE_TARBALL,
            without(&source_tarball_request(), "executionName"),
            Expected::AnswerAndWork,
        ),
        (
            BUILD_BINARY_PACKAGES,
            without(&binary_packages_request(), "executionName"),
            Expected::AnswerAndWork,
        ),
        (
            UPDATE_REPOSITORIES,
            json!({"packagingBranch": RELEASE_BRANCH, "version": RELEASE}),
            Expected::AnswerAndWork,
        ),
        (
            PUBLISH_RELEASE_SOURCE,
            json!({"nightly": false, "version": RELEASE}),
            Expected::AnswerAndWork,
        ),
        (START_SINGLE_BUILD, json!({"version": RELEASE}), Expected::AnswerAndWork),
        (
            START_MULTIPLE_BUILDS,
            json!({"versions": [RELEASE, "4.167.5"]}),
            Expected::AnswerAndWork,
        ),
        (
            PUBLISH_SINGLE_RELEASE,
            json!({"version": RELEASE}),
            Expected::AnswerAndWork,
        ),
        (INVALIDATE_METADATA, json!({}), Expected::AnswerAndWork),
        // The read-only steps, as the original machines called them.
        (GET_BUILD_VERSION, json!({"version": RELEASE}), Expected::Answer),
        (
            HAVE_SOURCE_TARBALL,
            without(&have_source_tarball_request(), "executionName"),
            Expected::Answer,
        ),
        (
            GET_INSTANCES_STATE,
            without(&get_instances_state_request(), "executionName"),
            Expected::Answer,
        ),
        (
            GET_EXECUTIONS_STATE,
            without(&executions_state_request(), "executionName"),
            Expected::Answer,
        ),
        (
            SHIFT_VERSION,
            without(&versions_request(), "executionName"),
            Expected::Answer,
        ),
        // bin/update-directory-indices: the pages are up to date, so nothing is rewritten.
        (
            CREATE_S3_INDEX_HTML,
            json!({"bucket": DOWNLOADS, "cloudfront": OUR_DISTRIBUTION}),
            Expected::Answer,
        ),
    ];
    let mut failures = Vec::new();
    for (function, payload, expected) in controls {
        // Each its own run: two controls that started children of one name would collide.
        world.substitutions.insert(RUN, control_run(function));
        let payload = substituted(&payload, &world.substitutions);
        let (outcome, changes) = world.exercise(&handlers[function], payload.clone()).await;
        if function == BUILD_SOURCE_TARBALL
            && let Outcome::Accepted(output) = &outcome
            && let Some(id) = output["instances"][0].as_str()
        {
            world.substitutions.insert(CONTROL_WORKER, id.to_string());
        }
        let behaved = match (expected, &outcome) {
            (Expected::Answer, Outcome::Accepted(_)) => changes.is_empty(),
            (Expected::AnswerAndWork, Outcome::Accepted(_)) => !changes.is_empty(),
            (Expected::Error(error_type), Outcome::Refused(error)) => {
                error.error_type() == error_type && changes.is_empty()
            }
            _ => false,
        };
        if !behaved {
            failures.push(format!(
                "CONTROL {function}: {}\n    expected {expected:?}; got {}\n    changes: {}",
                abbreviated(&payload),
                outcome.describe(),
                listed(&changes)
            ));
        }
    }
    failures
}

fn control_run(function: &str) -> String {
    format!("control-{function}")
}

// ---------------------------------------------------------------------------------------------
// Valid requests of each function, which the corpus makes hostile one field at a time.

fn release_request() -> Value {
    json!({"version": RELEASE, "packagingBranch": RELEASE_BRANCH, "executionName": RUN})
}

fn get_build_version_request() -> Value {
    json!({"version": RELEASE, "executionName": RUN})
}

fn have_source_tarball_request() -> Value {
    json!({"version": RELEASE, "source": release_source(), "executionName": RUN})
}

fn source_tarball_request() -> Value {
    json!({
        "version": RELEASE,
        "nightly": false,
        "packagingBranch": RELEASE_BRANCH,
        "source": release_source(),
        "executionName": RUN,
    })
}

fn binary_packages_request() -> Value {
    with(&source_tarball_request(), "distros", json!([DISTRO]))
}

fn get_instances_state_request() -> Value {
    json!({"instances": [OTHER_EXECUTIONS_WORKER], "executionName": RUN})
}

fn versions_request() -> Value {
    json!({"versions": [RELEASE, "4.167.5"], "executionName": RUN})
}

fn child_request() -> Value {
    json!({"version": RELEASE, "packagingBranch": RELEASE_BRANCH, "distros": [DISTRO], "executionName": RUN})
}

fn executions_state_request() -> Value {
    json!({"stepFunctionExecutions": [SEED_EXECUTION], "executionName": RUN})
}

fn invalidation_request() -> Value {
    json!({"version": RELEASE, "executionName": RUN})
}

fn index_request() -> Value {
    json!({"executionName": RUN})
}

fn build_status_request() -> Value {
    json!({"version": RELEASE, "packagingBranch": RELEASE_BRANCH, "distros": [DISTRO]})
}

fn nightly_event() -> Value {
    json!({"time": "2026-12-01T03:00:00Z", "detail": {"force": false}})
}

/// A "Step Functions Execution Status Change" event as EventBridge delivers it.
fn status_change() -> Value {
    let execution = format!("{ACCOUNT_ARN}:execution:hhvm-build:nightly-2026-12-01");
    json!({
        "version": "0",
        "id": "6c5f8a4d-1e8e-4d0a-9f0e-0a1b2c3d4e5f",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2026-12-01T05:12:00Z",
        "region": "us-east-1",
        "resources": [execution],
        "detail": {
            "executionArn": execution,
            "stateMachineArn": format!("{ACCOUNT_ARN}:stateMachine:hhvm-build"),
            "name": "nightly-2026-12-01",
            "status": "FAILED",
            "startDate": 1796108400000_u64,
            "stopDate": 1796112720000_u64,
            "input": "{\"version\":\"2026.12.01\"}",
            "output": null,
            "error": "BuildFailed",
            "cause": "2026.12.01 did not build: debian-12-bookworm has no success marker"
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The corpus.

struct Case {
    function: &'static str,
    label: String,
    payload: Value,
    expected: &'static str,
}

struct CaseResult {
    case: Case,
    outcome: Outcome,
    changes: Vec<String>,
}

impl CaseResult {
    /// What is wrong with the answer, if anything.
    fn failure(&self) -> Option<String> {
        let refused_as_expected =
            matches!(&self.outcome, Outcome::Refused(error) if error.error_type() == self.case.expected);
        if refused_as_expected && self.changes.is_empty() {
            return None;
        }
        let mut text = format!("expected {}; got {}", self.case.expected, self.outcome.describe());
        if !self.changes.is_empty() {
            text.push_str(&format!("\n    and it changed: {}", listed(&self.changes)));
        }
        Some(text)
    }

    fn report(&self) -> String {
        format!(
            "FAIL {}: {}\n    payload: {}\n    {}",
            self.case.function,
            self.case.label,
            shortened(&abbreviated(&self.case.payload), 600),
            self.failure().unwrap_or_default()
        )
    }
}

const INVALID_INPUT: &str = "InvalidInput";
const INVALID_VERSION: &str = "InvalidVersion";

#[derive(Default)]
struct Corpus {
    cases: Vec<Case>,
}

impl Corpus {
    /// The cases of `function`, made from `base` (a valid request), starting with payloads that
    /// are not JSON objects.
    fn of(&mut self, function: &'static str, base: Value) -> Cases<'_> {
        let mut cases = Cases {
            corpus: self,
            function,
            base,
        };
        let not_objects = [
            json!(null),
            json!("text"),
            json!(42),
            json!(true),
            json!([]),
            json!([cases.base]),
        ];
        for value in not_objects {
            let label = format!("payload = {}", shortened(&abbreviated(&value), 120));
            cases.case(INVALID_INPUT, label, value);
        }
        cases
    }
}

/// One function's cases: its valid request with one field made hostile at a time.
struct Cases<'a> {
    corpus: &'a mut Corpus,
    function: &'static str,
    base: Value,
}

impl Cases<'_> {
    fn case(&mut self, expected: &'static str, label: impl Into<String>, payload: Value) {
        self.corpus.cases.push(Case {
            function: self.function,
            label: label.into(),
            payload,
            expected,
        });
    }

    /// The request with `field` set to each of `values`.
    fn values(&mut self, expected: &'static str, field: &str, values: Vec<Value>) {
        for value in values {
            let label = format!("{field} = {}", shortened(&abbreviated(&value), 120));
            let payload = with(&self.base, field, value);
            self.case(expected, label, payload);
        }
    }

    /// The request (an EventBridge event) with `detail.field` set to each of `values`.
    fn detail_values(&mut self, field: &str, values: Vec<Value>) {
        for value in values {
            let label = format!("detail.{field} = {}", shortened(&abbreviated(&value), 120));
            let payload = with(&self.base, "detail", with(&self.base["detail"], field, value));
            self.case(INVALID_INPUT, label, payload);
        }
    }

    /// The request without each of `fields`, which the function requires.
    fn missing(&mut self, fields: &[&str]) {
        for field in fields {
            let mut payload = self.base.clone();
            if let Value::Object(fields) = &mut payload {
                fields.shift_remove(*field);
            }
            self.case(INVALID_INPUT, format!("no `{field}`"), payload);
        }
    }

    /// Each field the pipeline's own steps write, set in a first step's input.
    fn reserved_fields(&mut self) {
        for (field, value) in reserved_fields() {
            let label = format!("reserved {field} = {}", abbreviated(&value));
            let payload = with(&self.base, field, value);
            self.case(INVALID_INPUT, label, payload);
        }
    }

    fn poll_settings(&mut self) {
        self.values(INVALID_INPUT, "pollIntervalSeconds", vec![json!("60; id"), json!(-1)]);
        self.values(INVALID_INPUT, "pollLimit", vec![json!({"$gt": 0}), json!(1e300)]);
    }
}

fn corpus() -> Vec<Case> {
    let mut corpus = Corpus::default();
    first_steps(&mut corpus);
    source_and_build_workers(&mut corpus);
    repository_workers(&mut corpus);
    instances_and_executions(&mut corpus);
    child_executions(&mut corpus);
    cdn_and_indexes(&mut corpus);
    status_and_notifications(&mut corpus);
    corpus.cases
}

/// The first steps of the machines: get-build-version, start-multiple-builds, start-nightly.
fn first_steps(corpus: &mut Corpus) {
    let mut cases = corpus.of(GET_BUILD_VERSION, get_build_version_request());
    cases.values(INVALID_VERSION, "version", hostile_versions());
    cases.values(INVALID_INPUT, "version", not_strings());
    cases.values(INVALID_INPUT, "packagingBranch", hostile_branches());
    cases.values(INVALID_INPUT, "executionName", hostile_execution_names());
    // What later steps of its machines read.
    cases.values(INVALID_INPUT, "distros", some_hostile_distros());
    cases.values(INVALID_INPUT, "force", vec![json!("yes")]);
    cases.values(INVALID_INPUT, "requireApproval", vec![json!("yes"), json!(1)]);
    let nightly_asking = json!({"version": "2026.12.02", "requireApproval": true, "executionName": RUN});
    cases.case(INVALID_INPUT, "a nightly asking for approval", nightly_asking);
    let parents = vec![json!("$(id)"), json!("run\n1"), json!("x".repeat(81))];
    cases.values(INVALID_INPUT, "parentExecutionName", parents);
    cases.reserved_fields();
    cases.poll_settings();

    let mut cases = corpus.of(START_MULTIPLE_BUILDS, versions_request());
    cases.missing(&["versions"]);
    cases.values(INVALID_INPUT, "versions", not_version_lists());
    cases.values(INVALID_VERSION, "versions", hostile_version_lists());
    cases.values(INVALID_INPUT, "executionName", hostile_execution_names());
    cases.values(INVALID_INPUT, "packagingBranch", some_hostile_branches());
    cases.values(INVALID_INPUT, "distros", some_hostile_distros());
    cases.values(INVALID_INPUT, "force", vec![json!("yes")]);
    cases.values(INVALID_INPUT, "continueOnFailure", vec![json!("yes")]);
    cases.values(INVALID_INPUT, "requireApproval", vec![json!("yes")]);
    cases.reserved_fields();
    cases.poll_settings();

    let mut cases = corpus.of(START_NIGHTLY, nightly_event());
    let times = vec![
        json!("yesterday"),
        json!(5),
        json!("2026-02-30T03:00:00Z"),
        json!("2026-12-01T03:00:00Z; id"),
        huge("2026-12-01T03:00:00Z"),
    ];
    cases.values(INVALID_INPUT, "time", times);
    let details = vec![
        json!("force"),
        json!([]),
        json!({"force": "yes"}),
        json!({"force": 1}),
        json!({"force": {"$ne": false}}),
    ];
    cases.values(INVALID_INPUT, "detail", details);
    for (field, value) in reserved_fields() {
        cases.detail_values(field, vec![value]);
    }
    let outside_detail = ["instances", "stepFunctionExecutions"];
    for (field, value) in reserved_fields()
        .into_iter()
        .filter(|(field, _)| outside_detail.contains(field))
    {
        let label = format!("reserved {field} = {} outside detail", abbreviated(&value));
        let payload = with(&cases.base, field, value);
        cases.case(INVALID_INPUT, label, payload);
    }
}

/// A nightly version with the release's source (and the nightly's own branch).
fn nightly_with_release_source(request: &Value) -> Value {
    let mut payload = with(request, "version", json!("2026.11.21"));
    for (field, value) in [("nightly", json!(true)), ("packagingBranch", json!("master"))] {
        if payload.get(field).is_some() {
            payload = with(&payload, field, value);
        }
    }
    payload
}

/// The source tarball (its check and its worker) and the binary package workers.
fn source_and_build_workers(corpus: &mut Corpus) {
    let label = "a nightly version with the release's source";

    // `source` may be left out everywhere: one reader gives the version's own location.
    let mut cases = corpus.of(HAVE_SOURCE_TARBALL, have_source_tarball_request());
    cases.missing(&["version"]);
    cases.values(INVALID_VERSION, "version", some_hostile_versions());
    cases.values(INVALID_INPUT, "version", not_strings());
    cases.values(INVALID_INPUT, "source", hostile_sources());
    let payload = nightly_with_release_source(&cases.base);
    cases.case(INVALID_INPUT, label, payload);

    let mut cases = corpus.of(BUILD_SOURCE_TARBALL, source_tarball_request());
    cases.missing(&["version"]);
    cases.values(INVALID_VERSION, "version", some_hostile_versions());
    cases.values(INVALID_INPUT, "version", not_strings());
    cases.values(INVALID_INPUT, "source", hostile_sources());
    let payload = nightly_with_release_source(&cases.base);
    cases.case(INVALID_INPUT, label, payload);
    cases.values(INVALID_INPUT, "executionName", some_hostile_execution_names());
    cases.values(INVALID_INPUT, "packagingBranch", some_hostile_branches());
    cases.values(INVALID_INPUT, "nightly", vec![json!("false"), json!(true)]);

    let mut cases = corpus.of(BUILD_BINARY_PACKAGES, binary_packages_request());
    cases.missing(&["version"]);
    cases.values(INVALID_VERSION, "version", some_hostile_versions());
    cases.values(INVALID_INPUT, "source", hostile_sources());
    let payload = nightly_with_release_source(&cases.base);
    cases.case(INVALID_INPUT, label, payload);
    cases.values(INVALID_INPUT, "distros", hostile_distros());
    cases.values(INVALID_INPUT, "force", vec![json!("yes"), json!(1)]);
    cases.values(INVALID_INPUT, "executionName", some_hostile_execution_names());
    cases.values(INVALID_INPUT, "packagingBranch", some_hostile_branches());

    // Rebuild mode: the payload as the machine passes it once the builds finished with an
    // interruption (a valid one would launch the distro's on-demand rebuild).
    let rebuild = rebuild_request();
    for value in malformed_instances() {
        let label = format!(
            "rebuild: interruptedInstances = {}",
            shortened(&abbreviated(&value), 120)
        );
        cases.case(INVALID_INPUT, label, with(&rebuild, "interruptedInstances", value));
    }
    let not_a_build = with(&rebuild, "interruptedInstances", json!([UNTAGGED_INSTANCE]));
    cases.case(
        INVALID_INPUT,
        "rebuild: an interrupted instance of no build",
        not_a_build,
    );
    let build = |fields: Value| {
        let mut entry = rebuild["builds"][0].clone();
        for (key, value) in fields.as_object().expect("fields are an object") {
            entry[key] = value.clone();
        }
        with(&rebuild, "builds", json!([entry]))
    };
    for (label, fields) in [
        ("market = \"Spot\"", json!({"market": "Spot"})),
        ("market = \"spot; id\"", json!({"market": "spot; id"})),
        ("market = 1", json!({"market": 1})),
        (
            "instanceType = \"t3.micro $(id)\"",
            json!({"instanceType": "t3.micro $(id)"}),
        ),
        ("replaces = \"$(id)\"", json!({"replaces": "$(id)"})),
        ("replaces = itself", json!({"replaces": OTHER_EXECUTIONS_WORKER})),
    ] {
        cases.case(INVALID_INPUT, format!("rebuild: builds[0].{label}"), build(fields));
    }
    // A distro is rebuilt once: its rebuild reclaimed too fails the build.
    let twice = build(json!({"replaces": UNTAGGED_INSTANCE}));
    cases.case("BuildFailed", "rebuild: a rebuild interrupted again", twice);
    cases.case(INVALID_INPUT, "rebuild: no `builds`", without(&rebuild, "builds"));
    cases.case(INVALID_INPUT, "rebuild: no `instances`", without(&rebuild, "instances"));
}

/// build-binary-packages' input in rebuild mode: the other execution's worker (a stand-in for
/// this execution's interrupted one) was the distro's spot build and was interrupted.
fn rebuild_request() -> Value {
    let mut request = binary_packages_request();
    request["instances"] = json!([OTHER_EXECUTIONS_WORKER]);
    request["builds"] =
        json!([{"distro": DISTRO, "instance": OTHER_EXECUTIONS_WORKER, "market": "spot", "instanceType": "t3.micro"}]);
    request["interruptedInstances"] = json!([OTHER_EXECUTIONS_WORKER]);
    request
}

/// The repository update and the release source publication.
fn repository_workers(corpus: &mut Corpus) {
    let mut cases = corpus.of(
        UPDATE_REPOSITORIES,
        with(&release_request(), "distros", json!([DISTRO])),
    );
    cases.missing(&["version"]);
    cases.values(INVALID_VERSION, "version", some_hostile_versions());
    cases.values(INVALID_INPUT, "distros", hostile_distros());
    cases.values(INVALID_INPUT, "executionName", some_hostile_execution_names());
    cases.values(INVALID_INPUT, "packagingBranch", some_hostile_branches());

    let mut cases = corpus.of(PUBLISH_RELEASE_SOURCE, release_request());
    cases.missing(&["version"]);
    cases.values(INVALID_VERSION, "version", some_hostile_versions());
    cases.values(INVALID_INPUT, "executionName", some_hostile_execution_names());
    cases.values(INVALID_INPUT, "packagingBranch", some_hostile_branches());
    cases.values(INVALID_INPUT, "nightly", vec![json!(true)]);
    // A nightly starts no worker, but its input is still read in full.
    let nightly = with(
        &with(&cases.base, "version", json!("2026.11.21")),
        "packagingBranch",
        json!("master"),
    );
    for name in [json!("$(id)"), json!("x".repeat(81))] {
        let label = format!("a nightly, executionName = {}", abbreviated(&name));
        cases.case(INVALID_INPUT, label, with(&nightly, "executionName", name));
    }
}

/// Instances (their state, their termination), child executions' states, the publish loop.
fn instances_and_executions(corpus: &mut Corpus) {
    let mut cases = corpus.of(GET_INSTANCES_STATE, get_instances_state_request());
    cases.missing(&["instances"]);
    cases.values(INVALID_INPUT, "instances", malformed_instances());

    let mut cases = corpus.of(TERMINATE_INSTANCES, json!({"instances": [], "executionName": RUN}));
    // With an executionName, `instances` is optional: the execution's workers are found by tag.
    cases.case(INVALID_INPUT, "no `instances` and no `executionName`", json!({}));
    cases.values(INVALID_INPUT, "instances", malformed_instances());
    let foreign = vec![
        json!([UNTAGGED_INSTANCE]),
        json!([OTHER_EXECUTIONS_WORKER]),
        json!([OTHER_EXECUTIONS_WORKER, UNTAGGED_INSTANCE]),
        json!([OTHER_STACKS_WORKER]),
    ];
    cases.values(INVALID_INPUT, "instances", foreign);
    let label = "instances = [\"@untagged-instance@\"], by hand (no executionName)";
    cases.case(INVALID_INPUT, label, json!({"instances": [UNTAGGED_INSTANCE]}));
    let label = "instances = [\"@other-stacks-worker@\"], by hand (no executionName)";
    cases.case(INVALID_INPUT, label, json!({"instances": [OTHER_STACKS_WORKER]}));

    let mut cases = corpus.of(GET_EXECUTIONS_STATE, executions_state_request());
    cases.missing(&["stepFunctionExecutions"]);
    cases.values(INVALID_INPUT, "stepFunctionExecutions", hostile_execution_arns());

    let mut cases = corpus.of(SHIFT_VERSION, versions_request());
    cases.missing(&["versions"]);
    cases.values(INVALID_INPUT, "versions", not_version_lists());
    cases.values(INVALID_VERSION, "versions", hostile_version_lists());
}

/// The functions that start child executions.
fn child_executions(corpus: &mut Corpus) {
    for function in [START_SINGLE_BUILD, PUBLISH_SINGLE_RELEASE] {
        let mut cases = corpus.of(function, child_request());
        cases.missing(&["version"]);
        cases.values(INVALID_VERSION, "version", some_hostile_versions());
        cases.values(INVALID_INPUT, "version", not_strings());
        cases.values(INVALID_INPUT, "packagingBranch", some_hostile_branches());
        cases.values(INVALID_INPUT, "distros", some_hostile_distros());
        cases.values(INVALID_INPUT, "force", vec![json!("yes")]);
        let names = if function == START_SINGLE_BUILD {
            hostile_execution_names()
        } else {
            some_hostile_execution_names()
        };
        cases.values(INVALID_INPUT, "executionName", names);
    }
}

/// The CloudFront invalidation and the index pages.
fn cdn_and_indexes(corpus: &mut Corpus) {
    let mut cases = corpus.of(INVALIDATE_METADATA, invalidation_request());
    cases.values(INVALID_INPUT, "cloudfront", hostile_distribution_ids());
    cases.values(INVALID_INPUT, "paths", hostile_paths());
    cases.values(INVALID_VERSION, "version", some_hostile_versions());
    cases.values(INVALID_INPUT, "executionName", some_hostile_execution_names());

    let mut cases = corpus.of(CREATE_S3_INDEX_HTML, index_request());
    let buckets = vec![
        json!(FOREIGN_BUCKET),
        json!(SCRATCH),
        json!("../x"),
        json!("Someone_Elses_Bucket"),
        json!("$(id)"),
        huge("b"),
        json!(5),
        json!([DOWNLOADS]),
        json!({"name": DOWNLOADS}),
    ];
    cases.values(INVALID_INPUT, "bucket", buckets);
    let distributions = vec![
        json!(FOREIGN_DISTRIBUTION),
        json!("e35ybtv6qcr5ba"),
        json!("$(id)"),
        json!(5),
    ];
    cases.values(INVALID_INPUT, "cloudfront", distributions);
    cases.values(INVALID_INPUT, "executionName", some_hostile_execution_names());
    // What a publish changed is found from its version and distros.
    cases.values(INVALID_VERSION, "version", some_hostile_versions());
    cases.values(INVALID_INPUT, "distros", some_hostile_distros());
    cases.values(
        INVALID_INPUT,
        "wholeBucket",
        vec![json!("yes"), json!(1), json!([true])],
    );
}

/// The build status report and the failure notification.
fn status_and_notifications(corpus: &mut Corpus) {
    let mut cases = corpus.of(GET_BUILD_STATUS, build_status_request());
    cases.values(INVALID_VERSION, "version", some_hostile_versions());
    cases.values(INVALID_INPUT, "version", not_strings());
    cases.values(INVALID_INPUT, "packagingBranch", some_hostile_branches());
    cases.values(INVALID_INPUT, "distros", some_hostile_distros());
    let requirements = vec![json!("built; id"), json!("BUILT"), json!(5), json!(["built"])];
    cases.values(INVALID_INPUT, "require", requirements);
    let builds = vec![
        json!("x"),
        json!([5]),
        json!([{"distro": "../x", "instance": OTHER_EXECUTIONS_WORKER}]),
        json!([{"distro": DISTRO, "instance": "$(id)"}]),
        json!([{"distro": [DISTRO], "instance": OTHER_EXECUTIONS_WORKER}]),
        json!([{"distro": DISTRO}]),
        json!([{"distro": DISTRO, "instance": OTHER_EXECUTIONS_WORKER, "market": "reserved"}]),
        json!([{"distro": DISTRO, "instance": OTHER_EXECUTIONS_WORKER, "market": ["spot"]}]),
        json!([{"distro": DISTRO, "instance": OTHER_EXECUTIONS_WORKER, "instanceType": "../x"}]),
        json!([{"distro": DISTRO, "instance": OTHER_EXECUTIONS_WORKER, "replaces": "i-nope"}]),
        json!([{"distro": DISTRO, "instance": OTHER_EXECUTIONS_WORKER, "replaces": 5}]),
    ];
    cases.values(INVALID_INPUT, "builds", builds);

    // Both targets of the failure rule read the event the same way.
    for function in [NOTIFY_EXECUTION_FAILURE, CLEAN_UP_AFTER_EXECUTION] {
        let mut cases = corpus.of(function, status_change());
        cases.missing(&["detail"]);
        cases.values(INVALID_INPUT, "detail", vec![json!("x"), json!([]), json!({})]);
        cases.detail_values(
            "executionArn",
            vec![json!(5), json!("$(id)"), json!("../../etc/passwd")],
        );
        let machines = vec![json!("../x"), json!([format!("{ACCOUNT_ARN}:stateMachine:hhvm-build")])];
        cases.detail_values("stateMachineArn", machines);
        cases.detail_values("name", vec![json!("run\n1"), json!("x".repeat(81)), huge("run-")]);
        // Only failures are reported; the rule never forwards anything else.
        let statuses = vec![
            json!("SUCCEEDED"),
            json!("RUNNING"),
            json!("FAILED; rm -rf /"),
            json!(5),
        ];
        cases.detail_values("status", statuses);
        // Step Functions' causes end at 32,768 characters and EventBridge events at 256 KB.
        cases.detail_values("cause", vec![huge("BuildFailed: ")]);
        cases.values(INVALID_INPUT, "detail-type", vec![json!("Scheduled Event")]);
        cases.values(INVALID_INPUT, "source", vec![json!("aws.ec2")]);
    }
    let mut cases = corpus.of(CLEAN_UP_AFTER_EXECUTION, status_change());
    let sweep_from_elsewhere = json!({"detail-type": "Scheduled Event", "source": "aws.ec2", "detail": {}});
    cases.case(
        INVALID_INPUT,
        "a scheduled sweep from another source",
        sweep_from_elsewhere,
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile values by field.

/// A megabyte after `prefix`.
fn huge(prefix: &str) -> Value {
    Value::String(format!("{prefix}{}", "x".repeat(MEGABYTE)))
}

/// Everything a version string must not be: shell metacharacters, traversal, impossible dates,
/// control characters, look-alike digits, leading zeros, two parts, a megabyte.
fn hostile_versions() -> Vec<Value> {
    vec![
        json!("1.2.3; rm -rf /"),
        json!("4.168.2$(id)"),
        json!("`id`"),
        json!("4.168.2 | sh"),
        json!("4.168.2\nid"),
        json!("../4.168.2"),
        json!("/4.168.2"),
        json!("%2e%2e/4.168.2"),
        json!("2026.02.30"),
        json!("2026.13.01"),
        json!("0000.00.00"),
        json!("\u{ff14}.168.2"),
        json!("4.168.2\u{0}"),
        json!("04.168.2"),
        json!("4.168"),
        huge("4.168.2"),
    ]
}

/// A few of each kind, for the functions that read `version` through the same reader.
fn some_hostile_versions() -> Vec<Value> {
    vec![
        json!("1.2.3; rm -rf /"),
        json!("$(id)"),
        json!("../4.168.2"),
        json!("2026.02.30"),
        json!("2026.13.01"),
        json!("0000.00.00"),
        huge("4.168.2"),
    ]
}

/// `versions` with a valid version and a hostile one.
fn hostile_version_lists() -> Vec<Value> {
    some_hostile_versions()
        .into_iter()
        .map(|version| json!([RELEASE, version]))
        .collect()
}

/// Values of the wrong JSON type for a string field.
fn not_strings() -> Vec<Value> {
    vec![json!(4.1682), json!([RELEASE]), json!({"$ne": null}), json!(true)]
}

/// Values of `versions` that are not an array of strings.
fn not_version_lists() -> Vec<Value> {
    vec![
        json!(RELEASE),
        json!({"0": RELEASE}),
        json!([4]),
        json!([[RELEASE]]),
        json!([null]),
    ]
}

/// Names Step Functions never gives an execution: control characters (C0, DEL, C1), more than
/// 80 characters, whitespace and the characters it refuses. (`run+1`, `a=b`, `x@y`, `ok!` and
/// `ñame` are valid names and are not here.)
fn hostile_execution_names() -> Vec<Value> {
    vec![
        json!("run\u{0}1"),
        json!("run\n1"),
        json!("run\t1"),
        json!("run\u{7f}"),
        json!("run\u{85}"),
        json!("x".repeat(81)),
        json!("a b"),
        json!("$(id)"),
        json!("`id`"),
        json!("run; rm -rf /"),
        json!("a|b"),
        json!("../../etc/passwd"),
        json!("arn:aws:states:x"),
        json!("run?"),
        json!("<script>"),
        huge("run-"),
        json!(5),
        json!(["run"]),
        json!({"name": "run"}),
    ]
}

fn some_hostile_execution_names() -> Vec<Value> {
    vec![
        json!("run\n1"),
        json!("x".repeat(81)),
        json!("$(id)"),
        json!("../x"),
        huge("run-"),
        json!(5),
    ]
}

fn hostile_branches() -> Vec<Value> {
    vec![
        json!("HHVM-4.168; id"),
        json!("$(id)"),
        json!("../master"),
        json!("master\n"),
        json!("HHVM-4.168/../../x"),
        huge("HHVM-"),
        json!(4.168),
    ]
}

fn some_hostile_branches() -> Vec<Value> {
    vec![json!("HHVM-4.168; id"), json!("../master"), json!(4.168)]
}

fn hostile_distros() -> Vec<Value> {
    vec![
        json!(["../x"]),
        json!([""]),
        json!(["debian-12-bookworm; id"]),
        json!(["debian-12-bookworm\n"]),
        json!(["/etc/passwd"]),
        json!(["debian-12-bookw\u{f6}rm"]),
        json!(["debian-12-$(id)"]),
        json!([huge("debian-12-")]),
        json!(DISTRO),
        json!([5]),
        json!([[DISTRO]]),
        json!([{"name": DISTRO}]),
    ]
}

fn some_hostile_distros() -> Vec<Value> {
    vec![
        json!(["../x"]),
        json!([""]),
        json!(["debian-12-bookworm; id"]),
        json!(DISTRO),
    ]
}

/// Sources that are not the release's tarball location: other buckets (one that exists and
/// holds a complete-looking tarball), another version's tarball, the public bucket, traversal,
/// absolute and encoded paths, shell metacharacters, control characters, a megabyte, and shapes
/// other than `{bucket, path}`.
fn hostile_sources() -> Vec<Value> {
    vec![
        json!({"bucket": FOREIGN_BUCKET, "path": "x"}),
        json!({"bucket": FOREIGN_BUCKET, "path": "hhvm-4.168.2.tar.gz"}),
        json!({"bucket": SCRATCH, "path": format!("hhvm-{OTHER_RELEASE}.tar.gz")}),
        json!({"bucket": DOWNLOADS, "path": "hhvm-4.168.2.tar.gz"}),
        json!({"bucket": DOWNLOADS, "path": "source/nightlies/hhvm-nightly-2026.11.20.tar.gz"}),
        json!({"bucket": SCRATCH, "path": "../hhvm-4.168.2.tar.gz"}),
        json!({"bucket": SCRATCH, "path": "/etc/passwd"}),
        json!({"bucket": SCRATCH, "path": "%2e%2e/%2e%2e/etc/passwd"}),
        json!({"bucket": SCRATCH, "path": "hhvm-4.168.2.tar.gz; rm -rf /"}),
        json!({"bucket": SCRATCH, "path": "$(id).tar.gz"}),
        json!({"bucket": SCRATCH, "path": "hhvm-4.168.2.tar.gz\n"}),
        json!({"bucket": SCRATCH, "path": huge("hhvm-")}),
        json!({"bucket": "Someone_Elses_Bucket", "path": "x"}),
        json!({"bucket": "../x", "path": "x"}),
        json!("s3://hhvm-scratch/hhvm-4.168.2.tar.gz"),
        json!([SCRATCH, "hhvm-4.168.2.tar.gz"]),
        json!({"bucket": {"name": SCRATCH}, "path": "hhvm-4.168.2.tar.gz"}),
        json!({"bucket": SCRATCH}),
    ]
}

fn malformed_instances() -> Vec<Value> {
    vec![
        json!("i-0123456789abcdef0"),
        json!([5]),
        json!([null]),
        json!([["i-0123456789abcdef0"]]),
        json!([{"id": "i-0123456789abcdef0"}]),
        json!(["i-123"]),
        json!(["i-0123ABCD"]),
        json!(["../i-01234567"]),
        json!(["$(id)"]),
        json!(["i-01234567; rm -rf /"]),
        json!(["i-01234567\n"]),
        json!([""]),
        json!(["/etc/passwd"]),
        json!([huge("i-")]),
    ]
}

fn hostile_execution_arns() -> Vec<Value> {
    let execution = |name: &str| format!("{ACCOUNT_ARN}:execution:hhvm-build:{name}");
    vec![
        json!(execution("run")),
        json!([5]),
        json!([[execution("run")]]),
        json!([{"executionArn": execution("run")}]),
        json!(["x"]),
        json!([format!("{ACCOUNT_ARN}:stateMachine:hhvm-build")]),
        json!([format!("{ACCOUNT_ARN}:execution:hhvm-build")]),
        json!([execution("$(id)")]),
        json!([format!("{ACCOUNT_ARN}:execution:../..:x")]),
        json!([execution("run\n1")]),
        json!([huge(&execution(""))]),
    ]
}

/// `cloudfront` values: a distribution that exists but is not the configured one, and values
/// that are no distribution ID at all.
fn hostile_distribution_ids() -> Vec<Value> {
    vec![
        json!(FOREIGN_DISTRIBUTION),
        json!("e35ybtv6qcr5ba"),
        json!("E35YBTV6QCR5BA; id"),
        json!("../E35YBTV6QCR5BA"),
        json!("$(id)"),
        json!("E".repeat(33)),
        huge("E"),
        json!(5),
        json!(["E35YBTV6QCR5BA"]),
    ]
}

/// `paths` that CloudFront would refuse or that climb out of the site: no leading slash,
/// control characters, traversal (plain and encoded), unencoded space and non-ASCII, more paths
/// or wildcards than one invalidation may hold, a megabyte, and wrong shapes.
fn hostile_paths() -> Vec<Value> {
    let many: Vec<String> = (0..3001).map(|i| format!("/{i}")).collect();
    let wildcards: Vec<String> = (0..16).map(|i| format!("/{i}/*")).collect();
    vec![
        json!("/debian/dists/*"),
        json!(["debian/dists/*"]),
        json!([]),
        json!(["/a\nb"]),
        json!(["/../etc/passwd"]),
        json!(["/debian/../../etc/passwd"]),
        json!(["/%2e%2e/%2e%2e/etc/passwd"]),
        json!(["/a b"]),
        json!(["/\u{fc}n\u{ef}code"]),
        json!([5]),
        json!([["/x"]]),
        json!(many),
        json!(wildcards),
        json!([huge("/")]),
    ]
}

/// The fields the pipeline's own steps write, each with a value a later step would act on.
fn reserved_fields() -> Vec<(&'static str, Value)> {
    vec![
        ("instances", json!([UNTAGGED_INSTANCE])),
        ("terminatedInstances", json!([])),
        (
            "builds",
            json!([{"distro": DISTRO, "instance": OTHER_EXECUTIONS_WORKER}]),
        ),
        (
            "stepFunctionExecutions",
            json!([format!("{ACCOUNT_ARN}:execution:someone-elses-machine:run")]),
        ),
        ("poll", json!({"count": -1000})),
        // A forged spot interruption: a rebuild of a distro nobody interrupted.
        ("interruptedInstances", json!([OTHER_EXECUTIONS_WORKER])),
        // A forged "every build succeeded" for the multi machine's build check.
        (
            "buildExecutionStates",
            json!({format!("{ACCOUNT_ARN}:execution:hhvm-build:forged-build-4_168_2"): "SUCCEEDED"}),
        ),
        ("error", json!({"Error": "States.ALL", "Cause": "forged"})),
        ("executionFailure", json!({"Error": "BuildFailed", "Cause": "forged"})),
        ("buildStatus", json!({"success": true})),
        ("publishStatus", json!({"success": true})),
    ]
}

// ---------------------------------------------------------------------------------------------
// Payload plumbing and reporting.

/// `base` (an object) with `field` set to `value`.
fn without(base: &Value, field: &str) -> Value {
    let mut payload = base.clone();
    if let Value::Object(fields) = &mut payload {
        fields.remove(field);
    }
    payload
}

fn with(base: &Value, field: &str, value: Value) -> Value {
    let mut payload = base.clone();
    let Value::Object(fields) = &mut payload else {
        panic!("{base} is not an object");
    };
    fields.insert(field.to_string(), value);
    payload
}

/// `value` with every placeholder replaced.
fn substituted(value: &Value, substitutions: &BTreeMap<&'static str, String>) -> Value {
    match value {
        Value::String(text) if text.contains('@') => {
            let mut text = text.clone();
            for (placeholder, actual) in substitutions {
                text = text.replace(placeholder, actual);
            }
            Value::String(text)
        }
        Value::Array(items) => Value::Array(items.iter().map(|item| substituted(item, substitutions)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, item)| (key.clone(), substituted(item, substitutions)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Compact JSON with long strings and arrays cut short, so a megabyte prints as a line.
fn abbreviated(value: &Value) -> String {
    fn shorten(value: &Value) -> Value {
        match value {
            Value::String(text) if text.len() > 60 => {
                let start: String = text.chars().take(24).collect();
                Value::String(format!("{start}...({} bytes)", text.len()))
            }
            Value::Array(items) if items.len() > 8 => {
                let mut kept: Vec<Value> = items.iter().take(3).map(shorten).collect();
                kept.push(Value::String(format!("...({} elements)", items.len())));
                Value::Array(kept)
            }
            Value::Array(items) => Value::Array(items.iter().map(shorten).collect()),
            Value::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), shorten(v))).collect()),
            other => other.clone(),
        }
    }
    shorten(value).to_string()
}

fn shortened(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(limit).collect::<String>())
    }
}

fn listed(changes: &[String]) -> String {
    if changes.is_empty() {
        "nothing".into()
    } else {
        changes.join("; ")
    }
}

fn print_tally(results: &[CaseResult]) {
    let mut by_function: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut by_answer: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_expected: BTreeMap<&str, usize> = BTreeMap::new();
    for result in results {
        let entry = by_function.entry(result.case.function).or_default();
        entry.0 += 1;
        if result.failure().is_none() {
            entry.1 += 1;
        }
        *by_answer.entry(result.outcome.answer()).or_default() += 1;
        *by_expected.entry(result.case.expected).or_default() += 1;
    }
    let with_changes = results.iter().filter(|result| !result.changes.is_empty()).count();
    println!(
        "\nhostile corpus: {} payloads across {} functions",
        results.len(),
        by_function.len()
    );
    println!("{:<52} {:>6} {:>9} {:>8}", "function", "cases", "refused", "failing");
    for (function, (cases, refused)) in &by_function {
        println!("{function:<52} {cases:>6} {refused:>9} {:>8}", cases - refused);
    }
    println!("answers (errorType, or what happened instead):");
    for (answer, count) in &by_answer {
        println!("  {answer:<28} {count:>6}");
    }
    println!("expected:");
    for (expected, count) in &by_expected {
        println!("  {expected:<28} {count:>6}");
    }
    println!("payloads that changed something: {with_changes}");
}
