//! The four state machines end to end on the local stack: real ASL in moto's execute mode, the
//! real Lambdas, and the workers' real user data — a nightly (started and followed by hand with
//! `hhvmctl nightly`, its publish re-indexing only what it changed) and a release started
//! together, published one at a time and both fetched with apt, two releases built in parallel and
//! published one at a time, a failed build that publishes nothing and is resumed (and a failed
//! forced rebuild that the older build does not stand in for), a repository update that dies
//! midway and a re-run that finishes it, bad input refused before anything starts, a run
//! stopped by hand mid-build (outside any Catch) and a worker that never finishes, each leaving
//! no worker and no child execution running.
//!
//! Each scenario starts its own stack (its worker is a task of the scenario's runtime); the
//! process runs a few stacks at once (`LocalStack::start` waits for a turn; the two scenarios
//! that wait for a limit take theirs among the stacks that mostly wait, `Options::mostly_waits`).
//! Time bounds are only timeouts, far above what a run takes; nothing asserts a duration.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use aws_sdk_sfn::types::ExecutionListItem;
use pipeline_core::polling::MAX_POLL_LIMIT;
use pipeline_tests::published::{apt_download, apt_download_trusting, inspect_publication};
use pipeline_tests::{ExecutionOutcome, LocalStack, Options, Progress, state_machine_arn};
use serde_json::{Value, json};

use crate::operator_cli::{hhvmctl, hhvmctl_polling};

/// Far above a run's duration: only there so a hung run fails instead of blocking forever.
const RUN_TIMEOUT: Duration = Duration::from_secs(1500);
const DISTROS: [&str; 2] = ["debian-12-bookworm", "ubuntu-24.04-noble"];

/// The stack deployed from infra/template.yaml: its machines are the ones the scenarios run.
async fn start_stack() -> LocalStack {
    start_stack_with(Options::default()).await
}

async fn start_stack_with(options: Options) -> LocalStack {
    let stack = LocalStack::start(options)
        .await
        .unwrap_or_else(|error| panic!("the local stack starts: {error}"));
    assert_eq!(
        stack.machines().keys().collect::<Vec<_>>(),
        [
            "hhvm-build",
            "hhvm-build-and-publish",
            "hhvm-build-and-publish-multi",
            "hhvm-publish-release"
        ],
        "the template's four state machines"
    );
    stack
}

/// Runs an execution to its end, following its children, with progress on stderr.
async fn run(stack: &LocalStack, machine: &str, name: &str, input: Value) -> (ExecutionOutcome, Progress) {
    let arn = start(stack, machine, name, &input).await;
    follow(stack, name, &arn).await
}

async fn start(stack: &LocalStack, machine: &str, name: &str, input: &Value) -> String {
    stack
        .start_execution(machine, name, input)
        .await
        .unwrap_or_else(|error| panic!("start {machine} {name}: {error}"))
}

async fn follow(stack: &LocalStack, name: &str, arn: &str) -> (ExecutionOutcome, Progress) {
    let mut progress =
        Progress::new(&stack.run_dir().join(format!("history-{name}.jsonl")), true).expect("open the history file");
    let outcome = stack
        .follow_execution(arn, RUN_TIMEOUT, &mut progress)
        .await
        .unwrap_or_else(|error| panic!("follow {arn}: {error}"));
    (outcome, progress)
}

/// When each repository update of `version` held the repositories' lease: the times its
/// worker's log gives for taking and releasing it.
async fn lease_sections(stack: &LocalStack, version: &str) -> Vec<(String, String)> {
    let scratch = &stack.settings().scratch_bucket;
    let logs = stack
        .list_keys(scratch, &format!("logs/{version}/update-repositories/"))
        .await
        .expect("list the update logs");
    let mut sections = Vec::new();
    for key in logs {
        let log = String::from_utf8(stack.get_object(scratch, &key).await.expect("get an update log")).unwrap();
        let time_of = |needle: &str| {
            log.lines()
                .find(|line| line.contains(needle))
                .and_then(|line| line.split_whitespace().next())
                .map(str::to_string)
                .unwrap_or_else(|| panic!("{key} has no {needle:?}:\n{log}"))
        };
        sections.push((
            time_of("took the repository lease"),
            time_of("released the repository lease"),
        ));
    }
    sections
}

fn polling(mut input: Value) -> Value {
    input["pollIntervalSeconds"] = json!(1);
    input["pollLimit"] = json!(MAX_POLL_LIMIT);
    input
}

/// Every execution of `machine` (in moto's order).
async fn executions(stack: &LocalStack, machine: &str) -> Vec<ExecutionListItem> {
    let listed = stack
        .sfn()
        .list_executions()
        .state_machine_arn(state_machine_arn(machine))
        .max_results(100)
        .send()
        .await
        .unwrap_or_else(|error| panic!("list the executions of {machine}: {error:?}"));
    listed.executions().to_vec()
}

/// The input of an execution, as JSON.
async fn execution_input(stack: &LocalStack, arn: &str) -> Value {
    let described = stack
        .sfn()
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .unwrap_or_else(|error| panic!("describe {arn}: {error:?}"));
    serde_json::from_str(described.input().unwrap_or("null")).expect("an execution's input is JSON")
}

/// The output of an execution, as JSON.
async fn execution_output(stack: &LocalStack, arn: &str) -> Value {
    let described = stack
        .sfn()
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .unwrap_or_else(|error| panic!("describe {arn}: {error:?}"));
    serde_json::from_str(described.output().unwrap_or("null")).expect("an execution's output is JSON")
}

/// (start, stop) of a finished execution, in seconds.
fn span(execution: &ExecutionListItem) -> (f64, f64) {
    let seconds = |time: &aws_smithy_types::DateTime| time.secs() as f64 + f64::from(time.subsec_nanos()) / 1e9;
    let stop = execution
        .stop_date()
        .unwrap_or_else(|| panic!("{} has not stopped", execution.execution_arn()));
    (seconds(execution.start_date()), seconds(stop))
}

/// Every instance moto knows, with its state and tags.
async fn instances(stack: &LocalStack) -> Vec<(String, String, BTreeMap<String, String>)> {
    let described = stack
        .ec2()
        .describe_instances()
        .send()
        .await
        .unwrap_or_else(|error| panic!("describe the instances: {error:?}"));
    described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|instance| {
            let tags = instance
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect();
            (
                instance.instance_id().unwrap_or_default().to_string(),
                instance
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                tags,
            )
        })
        .collect()
}

/// Instances in `pending` or `running`, asked of moto with a filter as an operator would.
async fn live_instances(stack: &LocalStack) -> Vec<String> {
    let filter = Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .build();
    let described = stack
        .ec2()
        .describe_instances()
        .filters(filter)
        .send()
        .await
        .unwrap_or_else(|error| panic!("describe the live instances: {error:?}"));
    described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect()
}

/// Instance IDs of binary-package workers, with their distro.
async fn binary_package_workers(stack: &LocalStack) -> BTreeMap<String, String> {
    instances(stack)
        .await
        .into_iter()
        .filter(|(_, _, tags)| tags.get("JobKind").map(String::as_str) == Some("binary-package"))
        .map(|(id, _, tags)| (id, tags.get("Distro").cloned().unwrap_or_default()))
        .collect()
}

fn report(scenario: &str, started: Instant) {
    eprintln!(
        "scenario {scenario}: {:.1} s (stack start-up included)",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nightly_and_a_release_published_together_take_turns_and_both_install() {
    let started = Instant::now();
    let mut stack = start_stack().await;
    // The bucket as deployed, indexed whole once.
    let indexed = hhvmctl(&stack, &["reindex"]);
    assert_eq!(indexed.status.code(), Some(0));
    // Started together, the release through its machine and the nightly by hand with hhvmctl,
    // which follows it to its publication: their repository updates contend for the lease.
    let release = "4.168.2";
    let release_arn = start(
        &stack,
        "hhvm-build-and-publish",
        "release",
        &polling(json!({"version": release})),
    )
    .await;
    let nightly = hhvmctl_polling(&stack, &["nightly", "--force", "--interval", "3", "--json"]);
    assert_eq!(nightly.status.code(), Some(0), "the nightly succeeds");
    let document: Value = serde_json::from_slice(&nightly.stdout).expect("the nightly's view is JSON");
    assert_eq!(document["machine"], "hhvm-build-and-publish");
    assert_eq!(document["status"], "SUCCEEDED");
    let nightly_name = document["name"].as_str().unwrap_or_default();
    assert!(nightly_name.starts_with("nightly-"), "{document}");
    let children: Vec<&str> = document["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter_map(|child| child["machine"].as_str())
        .collect();
    assert_eq!(children, ["hhvm-build", "hhvm-publish-release"]);
    let version = document["versions"][0]
        .as_str()
        .expect("the nightly's version")
        .to_string();
    let nightly_execution = executions(&stack, "hhvm-build-and-publish")
        .await
        .into_iter()
        .find(|execution| execution.name() == nightly_name)
        .expect("the nightly hhvmctl started");
    let output = execution_output(&stack, nightly_execution.execution_arn()).await;
    assert_eq!(output["nightly"], true, "{output}");
    assert_eq!(output["version"], version.as_str(), "{output}");
    let (release_outcome, progress) = follow(&stack, "release", &release_arn).await;
    assert!(release_outcome.succeeded(), "{release_outcome:?}");

    // Progress followed the children the release's machine started.
    for label in [
        format!("hhvm-build {release}"),
        format!("hhvm-publish-release {release}"),
    ] {
        assert!(
            progress
                .lines()
                .iter()
                .any(|line| line.contains(&label) && line.ends_with("✓ succeeded")),
            "no successful {label} in the progress:\n{}",
            progress.lines().join("\n")
        );
    }

    let settings = stack.settings().clone();
    let scratch = stack
        .list_keys(&settings.scratch_bucket, "")
        .await
        .expect("list scratch");
    let mut expected = vec![
        format!("markers/{version}/source-tarball.json"),
        format!("markers/{version}/update-repositories.json"),
    ];
    for distro in DISTROS {
        expected.push(format!("markers/{version}/binary-package/{distro}.json"));
    }
    for key in &expected {
        assert!(scratch.contains(key), "{key} missing from scratch: {scratch:?}");
    }
    for distro in DISTROS {
        let staged_debs = scratch
            .iter()
            .filter(|key| {
                key.starts_with(&format!("{version}/{distro}/i-"))
                    && key.contains("/hhvm-nightly")
                    && key.ends_with(".deb")
            })
            .count();
        assert_eq!(staged_debs, 2, "{distro}: {scratch:?}");
    }

    // One publisher at a time: the lease's holders, from their own logs, never overlapped.
    let mut sections = lease_sections(&stack, &version).await;
    sections.extend(lease_sections(&stack, release).await);
    assert_eq!(sections.len(), 2, "one update each: {sections:?}");
    sections.sort();
    assert!(
        sections[0].1 <= sections[1].0,
        "the repository updates held the lease at the same time: {sections:?}"
    );

    let publication = inspect_publication(&stack, &version)
        .await
        .unwrap_or_else(|error| panic!("inspect what was published: {error}"));
    eprintln!("{publication}");
    assert_eq!(
        publication.source_tarball(),
        Some(format!("source/nightlies/hhvm-nightly-{version}.tar.gz").as_str())
    );
    for (repository, suite) in [("debian", "bookworm"), ("ubuntu", "noble")] {
        assert!(
            publication
                .pool_packages
                .iter()
                .any(|key| key.starts_with(&format!("{repository}/pool/"))
                    && key.ends_with(&format!("hhvm-nightly_{version}-1~{suite}_amd64.deb"))),
            "{repository} {suite}: {:?}",
            publication.pool_packages
        );
        // inspect_publication verified every InRelease with gpgv against the run's key.
        assert!(
            publication
                .dists
                .iter()
                .any(|d| d.repository == repository && d.suite == suite && d.signature.contains("Good signature")),
            "{:?}",
            publication.dists
        );
    }
    assert!(
        publication.index_pages.iter().any(|key| key == "index.html"),
        "{:?}",
        publication.index_pages
    );
    // Right after each switch, exactly that suite's Release files were invalidated: the only
    // files invalidated (the index pages' invalidations name directories), and no wildcard.
    let invalidated: Vec<&String> = publication.invalidations.iter().flat_map(|i| &i.paths).collect();
    assert!(
        invalidated.iter().filter(|path| !path.ends_with('/')).all(|path| {
            let name = path.rsplit('/').next().unwrap_or_default();
            path.contains("/dists/") && ["InRelease", "Release", "Release.gpg"].contains(&name)
        }) && !invalidated.iter().any(|path| path.contains('*')),
        "{invalidated:?}"
    );
    for path in ["/debian/dists/bookworm/InRelease", "/ubuntu/dists/noble/Release.gpg"] {
        assert!(invalidated.iter().any(|p| *p == path), "{path}: {invalidated:?}");
    }

    for (repository, suite) in [("debian", "bookworm"), ("ubuntu", "noble")] {
        let download = apt_download(&stack, repository, suite, "hhvm-nightly")
            .await
            .unwrap_or_else(|error| panic!("apt-get from {repository} {suite}: {error}"));
        assert_eq!(
            download.fields,
            format!("Package: hhvm-nightly\nVersion: {version}-1~{suite}\nArchitecture: amd64\n")
        );
    }
    // The release went to the same suite as the nightly, and both are there.
    let download = apt_download(&stack, "debian", "bookworm", "hhvm")
        .await
        .unwrap_or_else(|error| panic!("apt-get hhvm from bookworm: {error}"));
    assert_eq!(
        download.fields,
        format!("Package: hhvm\nVersion: {release}-1~bookworm\nArchitecture: amd64\n")
    );
    // The same check trusting another key (none) fails: apt verified the run's signature.
    let no_key = stack.run_dir().join("no-key.gpg");
    std::fs::write(&no_key, b"").expect("write an empty keyring");
    let refused = apt_download_trusting(&stack, &no_key, "debian", "bookworm", "hhvm-nightly").await;
    assert!(
        refused.is_err(),
        "apt accepted the repository without its key: {refused:?}"
    );

    // The nightly's publish re-indexed only what it changed, and the two publishes left nothing
    // stale: the whole bucket has no page to write.
    let publish = &document["children"][1];
    let index_step = hhvmctl(
        &stack,
        &[
            "history",
            publish["name"].as_str().expect("the publish child's name"),
            "--state",
            "Update Download Indices",
            "--json",
        ],
    );
    let events: Value = serde_json::from_slice(&index_step.stdout).expect("history --json is JSON");
    let index_output = events
        .as_array()
        .and_then(|events| events.iter().find_map(|event| event.get("output")))
        .expect("the step's output");
    // The state keeps the function's whole answer (its input and `indexPages`) as `indexPages`.
    assert_eq!(
        index_output["indexPages"]["indexPages"]["reindexed"],
        json!([
            "/debian/dists/",
            "/debian/pool/main/h/hhvm-nightly/",
            "/source/nightlies/",
            "/ubuntu/dists/",
            "/ubuntu/pool/main/h/hhvm-nightly/"
        ]),
        "{index_output}"
    );
    let reindex = hhvmctl(&stack, &["reindex", "--json"]);
    let answer: Value = serde_json::from_slice(&reindex.stdout).expect("reindex --json prints JSON");
    assert_eq!(answer["indexPages"]["pagesWritten"], 0, "{answer}");
    let shown = hhvmctl(&stack, &["reindex"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.starts_with("reindexed the whole bucket: ")
            && shown.ends_with(&format!(
                "; 0 pages written, {} unchanged\n",
                answer["indexPages"]["pagesUnchanged"]
            )),
        "{shown}"
    );
    assert!(live_instances(&stack).await.is_empty());
    stack.stop();
    report("1 (a nightly by hand and a release together)", started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_releases_build_in_parallel_and_publish_one_at_a_time() {
    let started = Instant::now();
    let mut stack = start_stack().await;
    let versions = ["4.168.2", "4.167.5"];
    let (outcome, _) = run(
        &stack,
        "hhvm-build-and-publish-multi",
        "releases",
        polling(json!({"versions": versions})),
    )
    .await;
    assert!(outcome.succeeded(), "{outcome:?}");

    let builds = executions(&stack, "hhvm-build").await;
    assert_eq!(builds.len(), 2, "{builds:?}");
    let publishes = executions(&stack, "hhvm-publish-release").await;
    assert_eq!(publishes.len(), 2, "{publishes:?}");
    for execution in builds.iter().chain(&publishes) {
        assert_eq!(execution.status().as_str(), "SUCCEEDED", "{execution:?}");
    }
    let (a, b) = (span(&builds[0]), span(&builds[1]));
    assert!(a.0 < b.1 && b.0 < a.1, "the builds did not overlap: {a:?} {b:?}");
    let mut published: Vec<(f64, f64, String)> = Vec::new();
    for execution in &publishes {
        let (start, stop) = span(execution);
        let input = execution_input(&stack, execution.execution_arn()).await;
        published.push((start, stop, input["version"].as_str().unwrap_or_default().to_string()));
    }
    published.sort_by(|x, y| x.0.total_cmp(&y.0));
    assert!(
        published[0].1 <= published[1].0,
        "the publishes overlapped: {published:?}"
    );
    assert_eq!(
        published.iter().map(|p| p.2.as_str()).collect::<Vec<_>>(),
        versions,
        "published in the given order"
    );

    for version in versions {
        let publication = inspect_publication(&stack, version)
            .await
            .unwrap_or_else(|error| panic!("inspect {version}: {error}"));
        assert_eq!(
            publication.pool_packages.len(),
            4,
            "{version}: {:?}",
            publication.pool_packages
        );
        assert_eq!(
            publication.source_tarball(),
            Some(format!("source/hhvm-{version}.tar.gz").as_str())
        );
    }
    // Each release went to its own dist too, from its own packaging branch.
    let download = apt_download(&stack, "debian", "bookworm-4.167", "hhvm")
        .await
        .unwrap_or_else(|error| panic!("apt-get from bookworm-4.167: {error}"));
    assert_eq!(
        download.fields,
        "Package: hhvm\nVersion: 4.167.5-1~bookworm\nArchitecture: amd64\n"
    );
    stack.stop();
    report("2 (two releases, -multi)", started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_build_publishes_nothing_and_a_rerun_rebuilds_only_that_distro() {
    let started = Instant::now();
    let mut stack = start_stack().await;
    let version = "4.168.3";
    let failing = "ubuntu-24.04-noble";
    stack
        .fail_builds_of(failing, Some(version))
        .expect("set the failure knob");

    let (outcome, _) = run(
        &stack,
        "hhvm-build-and-publish",
        "failing",
        polling(json!({"version": version})),
    )
    .await;
    assert_eq!(outcome.status, "FAILED", "{outcome:?}");
    assert_eq!(outcome.error.as_deref(), Some("BuildFailed"), "{outcome:?}");
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(cause.contains(failing), "the cause names the distro: {cause}");
    assert!(!cause.contains("debian-12-bookworm"), "only the failed distro: {cause}");
    let publication = inspect_publication(&stack, version)
        .await
        .expect("inspect the downloads bucket");
    assert!(publication.pool_packages.is_empty(), "{:?}", publication.pool_packages);
    assert!(executions(&stack, "hhvm-publish-release").await.is_empty());
    assert_eq!(
        live_instances(&stack).await,
        Vec::<String>::new(),
        "instances left running"
    );
    let workers_before = binary_package_workers(&stack).await;
    assert_eq!(workers_before.len(), 2, "{workers_before:?}");

    std::fs::remove_file(stack.settings().failing_builds_dir.join(format!("{version}_{failing}")))
        .expect("remove the failure knob");
    let (outcome, _) = run(
        &stack,
        "hhvm-build-and-publish",
        "rerun",
        polling(json!({"version": version})),
    )
    .await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let new_workers: Vec<String> = binary_package_workers(&stack)
        .await
        .into_iter()
        .filter(|(id, _)| !workers_before.contains_key(id))
        .map(|(_, distro)| distro)
        .collect();
    assert_eq!(new_workers, [failing], "only the failed distro is rebuilt");
    let rerun_build = executions(&stack, "hhvm-build")
        .await
        .into_iter()
        .find(|e| e.name().starts_with("rerun"))
        .expect("the rerun started a build");
    let build_output = execution_output(&stack, rerun_build.execution_arn()).await;
    assert_eq!(
        build_output["skippedDistros"],
        json!(["debian-12-bookworm"]),
        "{build_output}"
    );
    let publication = inspect_publication(&stack, version)
        .await
        .expect("inspect the downloads bucket");
    for suite in ["bookworm", "noble"] {
        assert!(
            publication
                .pool_packages
                .iter()
                .any(|key| key.ends_with(&format!("hhvm_{version}-1~{suite}_amd64.deb"))),
            "{suite}: {:?}",
            publication.pool_packages
        );
    }
    assert_eq!(executions(&stack, "hhvm-publish-release").await.len(), 1);

    // A forced rebuild whose worker fails is not satisfied by the marker of the earlier build.
    stack
        .fail_builds_of(failing, Some(version))
        .expect("set the failure knob");
    let (outcome, _) = run(
        &stack,
        "hhvm-build",
        "forced",
        polling(json!({"version": version, "distros": [failing], "force": true})),
    )
    .await;
    assert_eq!(
        (outcome.status.as_str(), outcome.error.as_deref()),
        ("FAILED", Some("BuildFailed")),
        "{outcome:?}"
    );
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(
        cause.contains(&format!("{failing} (failed)"))
            && cause.contains("the one there is from the earlier build by i-"),
        "{cause}"
    );
    stack.stop();
    report("3 (failed build, then resumed; a failed forced rebuild)", started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repository_update_that_dies_after_the_pool_upload_fails_the_publish_and_a_rerun_finishes_it() {
    let started = Instant::now();
    let mut stack = start_stack().await;
    let version = "4.168.4";
    stack.fail_updates_of(version).expect("set the failure knob");
    let (outcome, _) = run(
        &stack,
        "hhvm-build-and-publish",
        "dying-update",
        polling(json!({"version": version, "distros": ["debian-12-bookworm"]})),
    )
    .await;
    assert_eq!(
        (outcome.status.as_str(), outcome.error.as_deref()),
        ("FAILED", Some("PublishFailed")),
        "{outcome:?}"
    );
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(
        cause.contains("the repository update wrote no success marker")
            && cause.contains(&format!("/logs/{version}/update-repositories/i-")),
        "the cause names the repository update and its log: {cause}"
    );
    let publication = inspect_publication(&stack, version)
        .await
        .expect("inspect the downloads bucket");
    assert_eq!(publication.pool_packages.len(), 2, "{:?}", publication.pool_packages);
    assert!(
        publication.dists.is_empty(),
        "no suite was switched: {:?}",
        publication.dists
    );
    assert!(live_instances(&stack).await.is_empty(), "instances left running");

    // The same input again, once the update can finish: the publish completes.
    stack.succeed_updates_of(version).expect("remove the failure knob");
    let failed_publish = executions(&stack, "hhvm-publish-release")
        .await
        .into_iter()
        .next()
        .expect("the parent started a publish");
    assert_eq!(failed_publish.status().as_str(), "FAILED");
    let input = execution_input(&stack, failed_publish.execution_arn()).await;
    let (outcome, _) = run(&stack, "hhvm-publish-release", "publish-again", input).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let download = apt_download(&stack, "debian", "bookworm", "hhvm")
        .await
        .unwrap_or_else(|error| panic!("apt-get from bookworm: {error}"));
    assert_eq!(
        download.fields,
        format!("Package: hhvm\nVersion: {version}-1~bookworm\nArchitecture: amd64\n")
    );
    stack.stop();
    report("5 (a repository update dies, a rerun finishes it)", started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_fails_at_the_first_step_and_starts_nothing() {
    let started = Instant::now();
    let mut stack = start_stack().await;
    let hostile = "4.1; rm -rf /";
    // A running instance the pipeline did not launch: an input naming it must not reach cleanup.
    let bystander = stack
        .ec2()
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("launch a bystander instance");
    let bystander = bystander.instances()[0].instance_id().unwrap().to_string();
    let cases = [
        (
            "hhvm-build-and-publish",
            json!({"version": hostile}),
            "Get Version Number For Build",
            "InvalidVersion",
            "version",
        ),
        (
            "hhvm-build",
            json!({"version": hostile}),
            "Get Version Number For Build",
            "InvalidVersion",
            "version",
        ),
        (
            "hhvm-publish-release",
            json!({"version": hostile}),
            "Get Version Number For Build",
            "InvalidVersion",
            "version",
        ),
        (
            "hhvm-build-and-publish-multi",
            json!({"versions": ["4.168.2", hostile]}),
            "Start Builds",
            "InvalidVersion",
            "version",
        ),
        // Fields only the pipeline's steps write, and what a later step reads, are refused first.
        (
            "hhvm-build",
            json!({"version": "4.168.2", "distros": ["debian-12-bookworm"], "instances": [bystander]}),
            "Get Version Number For Build",
            "InvalidInput",
            "instances",
        ),
        (
            "hhvm-publish-release",
            json!({"version": "4.168.2", "distros": ["debian-12-bookworm; id"]}),
            "Get Version Number For Build",
            "InvalidInput",
            "distros",
        ),
    ];
    for (index, (machine, input, first_step, error, field)) in cases.into_iter().enumerate() {
        let (outcome, progress) = run(&stack, machine, &format!("bad-{index}"), polling(input)).await;
        assert_eq!(
            (outcome.status.as_str(), outcome.error.as_deref()),
            ("FAILED", Some(error)),
            "{machine}: {outcome:?}"
        );
        assert!(
            outcome.cause.as_deref().unwrap_or("").contains(field),
            "{machine}: the cause names the field: {outcome:?}"
        );
        let tasks_entered: Vec<&str> = progress
            .lines()
            .iter()
            .filter_map(|line| line.split_once("▸ ").map(|(_, state)| state))
            .filter(|state| !state.contains("Execution Name"))
            .collect();
        assert_eq!(
            tasks_entered,
            [first_step],
            "{machine}:\n{}",
            progress.lines().join("\n")
        );
    }
    let all = instances(&stack).await;
    assert_eq!(all.len(), 1, "an instance was started: {all:?}");
    assert_eq!(
        stack.instance_state(&bystander).await.expect("the bystander's state"),
        "running",
        "the bystander was left alone"
    );
    // The builds started directly above are the only ones: -multi started none.
    assert_eq!(executions(&stack, "hhvm-build").await.len(), 2);
    assert_eq!(executions(&stack, "hhvm-publish-release").await.len(), 2);
    stack.stop();
    report("4 (bad input)", started);
}

/// Waits until no instance of the pipeline runs and no child execution runs, or fails naming
/// what still does after `timeout`.
async fn wait_until_nothing_runs(stack: &LocalStack, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let workers = live_instances(stack).await;
        let mut children = Vec::new();
        for machine in ["hhvm-build", "hhvm-publish-release"] {
            children.extend(
                executions(stack, machine)
                    .await
                    .into_iter()
                    .filter(|e| e.status().as_str() == "RUNNING")
                    .map(|e| e.name().to_string()),
            );
        }
        if workers.is_empty() && children.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still running after {} s: instances {workers:?}, child executions {children:?}",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The scripts of `workers`, whose instances were terminated, end (the local worker shuts them
/// down, as EC2 would) and none of them reports success.
async fn assert_killed_scripts_failed(stack: &LocalStack, workers: &[String]) {
    let runs = stack
        .wait_for_workers(workers, Duration::from_secs(60))
        .await
        .expect("a hanging worker's script ends once its instance is terminated");
    for run in &runs {
        assert_ne!(
            run.exit_code,
            Some(0),
            "a killed worker does not report success: {run:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_stopped_by_hand_mid_build_leaves_no_worker_and_no_child_running() {
    let started = Instant::now();
    let mut stack = start_stack().await;
    let version = "4.168.4";
    let hanging = "ubuntu-24.04-noble";
    stack.hang_builds_of(hanging, version).expect("set the hang knob");

    let arn = start(
        &stack,
        "hhvm-build-and-publish",
        "stopped",
        &polling(json!({"version": version})),
    )
    .await;
    // Wait until the hanging distro's worker runs: the build is midway.
    let deadline = Instant::now() + RUN_TIMEOUT;
    while !binary_package_workers(&stack)
        .await
        .values()
        .any(|distro| distro == hanging)
    {
        assert!(Instant::now() < deadline, "the {hanging} worker never started");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack
        .sfn()
        .stop_execution()
        .execution_arn(&arn)
        .cause("stopped by hand")
        .send()
        .await
        .expect("stop the run");

    // Outside any Catch: the execution-end handler ends the child build, whose own end ends
    // its workers.
    wait_until_nothing_runs(&stack, Duration::from_secs(300)).await;
    let builds = executions(&stack, "hhvm-build").await;
    assert_eq!(builds.len(), 1, "one child build");
    assert_eq!(builds[0].status().as_str(), "ABORTED", "the child build was stopped");
    let events = std::fs::read_to_string(stack.run_dir().join("events.log")).unwrap_or_default();
    assert!(
        events.contains("ABORTED") && events.contains("hhvm-clean-up-after-execution"),
        "the ends were delivered to the cleanup:\n{events}"
    );
    stack.stop();
    report("6 (stopped by hand)", started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_never_finishes_ends_the_run_at_its_poll_limit_and_is_terminated() {
    let started = Instant::now();
    let mut stack = start_stack_with(Options {
        mostly_waits: true,
        ..Options::default()
    })
    .await;
    let version = "4.168.5";
    let hanging = "ubuntu-24.04-noble";
    stack.hang_builds_of(hanging, version).expect("set the hang knob");

    // Enough polls for the source tarball and the other distro on a loaded machine (the source
    // tarball's worker has taken 94 s with the whole suite running on 2 cores; this scenario
    // starts with the suite's busiest minute), not for a worker that never finishes: the loop
    // gives up at pollLimit and the Catch path cleans up. Waiting costs the suite little: the
    // scenario has a waiting stack's turn.
    let polls = 180;
    let mut input = polling(json!({"version": version, "distros": DISTROS}));
    input["pollLimit"] = json!(polls);
    let (outcome, _) = run(&stack, "hhvm-build", "out-of-polls", input).await;
    assert_eq!(
        (outcome.status.as_str(), outcome.error.as_deref()),
        ("FAILED", Some("PollLimitReached")),
        "{outcome:?}"
    );
    assert!(
        outcome
            .cause
            .as_deref()
            .unwrap_or("")
            .contains(&format!("builds: still not finished after {polls} polls")),
        "{outcome:?}"
    );
    let hung: Vec<String> = binary_package_workers(&stack)
        .await
        .into_iter()
        .filter(|(_, distro)| distro == hanging)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(hung.len(), 1, "the {hanging} worker was launched once");
    wait_until_nothing_runs(&stack, Duration::from_secs(120)).await;
    assert_killed_scripts_failed(&stack, &hung).await;
    stack.stop();
    report("7 (a worker that never finishes)", started);
}

/// The build loop's states: where a build that outlives its machine's time limit is.
const BUILD_LOOP_STATES: [&str; 4] = [
    "Wait For Builds",
    "Fetch Build Instance States",
    "Builds Finished?",
    "Count Poll For Builds",
];

/// The state the execution was in when it ended: the last one entered.
async fn last_state_entered(stack: &LocalStack, arn: &str) -> Option<String> {
    let mut pages = stack
        .sfn()
        .get_execution_history()
        .execution_arn(arn)
        .into_paginator()
        .send();
    let mut last = None;
    while let Some(page) = pages.next().await {
        let page = page.expect("a page of the execution's history");
        if let Some(entered) = page
            .events()
            .iter()
            .rev()
            .find_map(|event| event.state_entered_event_details())
        {
            last = Some(entered.name().to_string());
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_launcher_that_times_out_after_launching_and_a_run_past_its_time_limit_leave_nothing_running() {
    let started = Instant::now();
    // Long enough for the source tarball and the builds to start on a loaded machine (the
    // source tarball's worker has taken 94 s with the whole suite running on 2 cores; this
    // scenario starts with the suite's busiest minute), far shorter than a worker that never
    // finishes.
    let time_limit = 210;
    let options = Options {
        time_limits: [("hhvm-build".to_string(), time_limit)].into(),
        mostly_waits: true,
        ..Options::default()
    };
    let mut stack = start_stack_with(options).await;
    let version = "4.168.6";
    let hanging = "ubuntu-24.04-noble";
    stack.hang_builds_of(hanging, version).expect("set the hang knob");
    // "Start Builds" launches both workers, then its answer is lost as if it had run out of
    // time: the retry must find those workers, not launch two more.
    stack.lose_answers_of("hhvm-build-binary-packages", 1);

    let input = polling(json!({"version": version, "distros": DISTROS}));
    let (outcome, _) = run(&stack, "hhvm-build", "timed-out", input).await;
    assert_eq!(outcome.status.as_str(), "TIMED_OUT", "{outcome:?}");
    let last = last_state_entered(&stack, &outcome.arn).await;
    assert!(
        last.as_deref().is_some_and(|state| BUILD_LOOP_STATES.contains(&state)),
        "timed out waiting for the builds, not in {last:?}"
    );
    let service_log = std::fs::read_to_string(stack.run_dir().join("lambdas/lambda-service.log")).unwrap_or_default();
    assert!(
        service_log
            .lines()
            .any(|line| line.contains(" hhvm-build-binary-packages ") && line.ends_with("error Sandbox.Timedout")),
        "the launcher's first answer was lost:\n{service_log}"
    );
    let workers = binary_package_workers(&stack).await;
    let mut distros: Vec<&str> = workers.values().map(String::as_str).collect();
    distros.sort();
    assert_eq!(
        distros, DISTROS,
        "one worker per distro, the retry launched none: {workers:?}"
    );

    // Outside any Catch: the execution-end handler terminates the workers.
    wait_until_nothing_runs(&stack, Duration::from_secs(120)).await;
    let events = std::fs::read_to_string(stack.run_dir().join("events.log")).unwrap_or_default();
    assert!(
        events.contains("TIMED_OUT") && events.contains("hhvm-clean-up-after-execution"),
        "the end was delivered to the cleanup:\n{events}"
    );
    let hung: Vec<String> = workers
        .into_iter()
        .filter(|(_, distro)| distro == hanging)
        .map(|(id, _)| id)
        .collect();
    assert_killed_scripts_failed(&stack, &hung).await;
    stack.stop();
    report("8 (a launcher that times out, a run past its time limit)", started);
}
