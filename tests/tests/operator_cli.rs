//! `hhvmctl` against the local stack, as an operator uses it: the real binary, finding the
//! stack's machines and functions through CloudFormation, talking to moto and the local Lambda
//! service through the standard endpoint variables. A build with a failing distro is followed
//! to its failure (the cause, the failed step and the worker's log on screen), its log is
//! printed, its status read as JSON, and a rerun rebuilds only that distro — the one `plan`
//! said would build; a function's typed error is shown with a non-zero exit; the release gate
//! holds a publish until `approve`, and `reject` fails it with the reason, having published
//! nothing; `logs --follow` waits for the repository update's log and ends with its job; the
//! publish updates the suites and invalidates the paths `plan` named (a nightly started by hand
//! with `hhvmctl nightly` is in pipeline_end_to_end's first scenario, which runs one anyway); a
//! build whose spot worker EC2 reclaims rebuilds that distro,
//! and only that one, once on demand, while a distro whose worker EC2 reclaims just after its
//! success marker keeps its build, and `status` shows both, the markets and the run's
//! instance-hours.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pipeline_core::polling::MAX_POLL_LIMIT;
use pipeline_tests::published::inspect_publication;
use pipeline_tests::{LocalStack, Options};
use serde_json::Value;

const VERSION: &str = "4.168.2";
const FAILING: &str = "ubuntu-24.04-noble";
const PASSING: &str = "debian-12-bookworm";

async fn start_stack() -> LocalStack {
    LocalStack::start(Options::default())
        .await
        .unwrap_or_else(|error| panic!("the local stack starts: {error}"))
}

/// `hhvmctl ARGS` with the machines polling every second, as many times as they allow: on a
/// loaded 2-core machine one repository update has taken 5 min 20 s.
pub(crate) fn hhvmctl_polling(stack: &LocalStack, args: &[&str]) -> Output {
    let limit = MAX_POLL_LIMIT.to_string();
    hhvmctl(
        stack,
        &[args, &["--poll-interval", "1", "--poll-limit", &limit]].concat(),
    )
}

/// Runs `hhvmctl` with `args` against the stack, without a terminal (plain progress lines).
pub(crate) fn hhvmctl(stack: &LocalStack, args: &[&str]) -> Output {
    let output = Command::new(pipeline_tests::workspace_binary("hhvmctl"))
        .args(args)
        .envs(stack.client_environment())
        .env_remove("HHVM_PIPELINE_STACK")
        .stdin(Stdio::null())
        .output()
        .expect("run target/debug/hhvmctl");
    eprintln!(
        "$ hhvmctl {}\n{}{}(exit {:?})",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout),
        output.status.code()
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits until `hhvmctl status NAME` says the execution waits for approval (far above the few
/// seconds it takes; a bound only).
async fn wait_for_the_gate(stack: &LocalStack, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = hhvmctl(stack, &["status", name]);
        let shown = stdout(&status);
        if shown.contains("waiting  for approval: hhvmctl approve") {
            return shown;
        }
        assert!(Instant::now() < deadline, "{name} never waited for approval: {shown}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `plan VERSION --json [OPTIONS]`'s plan of the version.
fn plan_of(stack: &LocalStack, version: &str, options: &[&str]) -> Value {
    let plan = hhvmctl(stack, &[&["plan", version, "--json"], options].concat());
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let mut plans: Vec<Value> = serde_json::from_slice(&plan.stdout).expect("plan --json is JSON");
    assert_eq!(plans.len(), 1);
    plans.remove(0)
}

/// The distros a plan gives `action`.
fn planned(plan: &Value, action: &str) -> Vec<String> {
    plan["distros"]
        .as_array()
        .expect("distros")
        .iter()
        .filter(|step| step["action"] == action)
        .filter_map(|step| step["distro"].as_str().map(str::to_string))
        .collect()
}

/// The execution name a starting command reports (`started MACHINE NAME with INPUT`).
fn started_name(output: &Output) -> String {
    stderr(output)
        .lines()
        .find_map(|line| line.strip_prefix("started ")?.split(' ').nth(1).map(str::to_string))
        .unwrap_or_else(|| panic!("no `started` line in {}", stderr(output)))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_follows_a_failed_build_reads_its_log_and_reruns_only_what_failed() {
    let stack = start_stack().await;
    let scratch = stack.settings().scratch_bucket.clone();

    let refused = hhvmctl(
        &stack,
        &[
            "invoke",
            "hhvm-get-build-version",
            "--payload",
            r#"{"version": "4.168"}"#,
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("InvalidVersion"), "{}", stderr(&refused));

    let unknown = hhvmctl(&stack, &["status", "no-such-execution"]);
    assert_eq!(unknown.status.code(), Some(3));

    let fresh = plan_of(&stack, VERSION, &[]);
    assert_eq!(fresh["sourceTarball"]["action"], "build");
    assert_eq!(planned(&fresh, "build"), [PASSING, FAILING], "nothing is built yet");
    let bad_plan = hhvmctl(&stack, &["plan", "4.168"]);
    assert_eq!(bad_plan.status.code(), Some(2), "a bad version is a usage error");

    stack
        .fail_builds_of(FAILING, Some(VERSION))
        .expect("set the failure knob");
    let failed = hhvmctl_polling(&stack, &["build", VERSION, "--interval", "1"]);
    assert_eq!(failed.status.code(), Some(1), "a failed build exits 1");
    let name = started_name(&failed);
    let shown = stdout(&failed);
    let log_prefix = format!("s3://{scratch}/logs/{VERSION}/binary-package/{FAILING}/i-");
    assert!(shown.contains(&format!("failed   {FAILING} on i-")), "{shown}");
    assert!(
        shown.contains(&format!("; log {log_prefix}")),
        "the failed worker's log: {shown}"
    );
    assert!(shown.contains(&format!("done     {PASSING} on i-")), "{shown}");
    assert!(shown.contains("BuildFailed at "), "the failed step: {shown}");
    assert!(
        stderr(&failed).contains("done     Create Source Tarball"),
        "progress: {}",
        stderr(&failed)
    );
    assert!(
        stderr(&failed).contains(&format!("hhvmctl rerun {name}")),
        "what to do next"
    );

    let log = hhvmctl(&stack, &["logs", VERSION, "--distro", FAILING]);
    assert_eq!(log.status.code(), Some(0));
    assert!(stderr(&log).starts_with(&log_prefix), "{}", stderr(&log));
    assert!(!stdout(&log).is_empty(), "the log's text");

    let status = hhvmctl(&stack, &["status", &name, "--json"]);
    assert_eq!(status.status.code(), Some(0));
    let document: Value = serde_json::from_slice(&status.stdout).expect("status --json is JSON");
    assert_eq!(document["status"], "FAILED");
    assert_eq!(document["failure"]["error"], "BuildFailed");
    assert_eq!(document["machine"], "hhvm-build");

    let history = hhvmctl(&stack, &["history", &name, "--state", "Start Builds"]);
    assert_eq!(history.status.code(), Some(0));
    assert!(
        stdout(&history).contains("TaskStateExited Start Builds"),
        "{}",
        stdout(&history)
    );

    std::fs::remove_file(stack.settings().failing_builds_dir.join(format!("{VERSION}_{FAILING}")))
        .expect("remove the failure knob");
    let after_failure = plan_of(&stack, VERSION, &[]);
    assert_eq!(after_failure["sourceTarball"]["action"], "skip");
    assert_eq!(planned(&after_failure, "skip"), [PASSING]);
    assert_eq!(planned(&after_failure, "build"), [FAILING]);
    let rerun = hhvmctl(&stack, &["rerun", &name, "--interval", "1", "--json"]);
    assert_eq!(rerun.status.code(), Some(0), "the rerun succeeds");
    assert!(started_name(&rerun).starts_with(&format!("{name}-rerun-")));
    let document: Value = serde_json::from_slice(&rerun.stdout).expect("the rerun's view is JSON");
    assert_eq!(document["status"], "SUCCEEDED");
    let rebuilt: Vec<&str> = document["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|worker| worker["target"].as_str())
        .collect();
    assert_eq!(
        rebuilt,
        planned(&after_failure, "build"),
        "the rerun rebuilds what the plan said"
    );
    assert_eq!(rebuilt, [FAILING], "only the failed distro is rebuilt");

    let version_status = hhvmctl(&stack, &["status", VERSION, "--json"]);
    assert_eq!(version_status.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&version_status.stdout).expect("status VERSION --json is JSON");
    assert_eq!(
        report["built_not_published"],
        serde_json::json!(["source", PASSING, FAILING])
    );
    let shown = hhvmctl(&stack, &["status", VERSION]);
    assert_eq!(shown.status.code(), Some(0));
    let lines: Vec<String> = stdout(&shown).lines().map(str::to_string).collect();
    assert_eq!(
        lines[0],
        format!("{VERSION} (packaging branch HHVM-4.168): 3 built, not published")
    );
    for (line, artifact) in lines[1..].iter().zip(["source", PASSING, FAILING]) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[..4], [artifact, "built,", "not", "published"], "{line}");
    }
    assert_eq!(lines.len(), 4, "{lines:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_release_gate_holds_a_publish_until_approved_and_a_rejection_publishes_nothing() {
    let stack = start_stack().await;
    let built = hhvmctl_polling(&stack, &["build", VERSION, "--interval", "1"]);
    assert_eq!(built.status.code(), Some(0), "the build succeeds");

    let rejected = hhvmctl_polling(&stack, &["publish", VERSION, "--approval", "--detach"]);
    assert_eq!(rejected.status.code(), Some(0));
    let name = started_name(&rejected);
    wait_for_the_gate(&stack, &name).await;
    let answer = hhvmctl(&stack, &["reject", &name, "--reason", "the changelog is not ready"]);
    assert_eq!(answer.status.code(), Some(0));
    let status = hhvmctl(&stack, &["status", &name, "--watch", "--interval", "1", "--json"]);
    let document: Value = serde_json::from_slice(&status.stdout).expect("status --json is JSON");
    assert_eq!(document["status"], "FAILED");
    assert_eq!(document["failure"]["error"], "ReleaseRejected");
    assert_eq!(document["failure"]["step"], "Wait For Approval");
    let cause = document["failure"]["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("the changelog is not ready"), "{cause}");
    assert_eq!(
        document["workers"],
        serde_json::json!([]),
        "a rejected release started no worker"
    );
    let publication = inspect_publication(&stack, VERSION)
        .await
        .expect("inspect the downloads bucket");
    assert!(publication.pool_packages.is_empty(), "{:?}", publication.pool_packages);

    let before_publish = plan_of(&stack, VERSION, &["--approval"]);
    assert_eq!(before_publish["waitsForApproval"], true);
    assert_eq!(
        planned(&before_publish, "skip"),
        [PASSING, FAILING],
        "built: nothing to build"
    );
    let held = hhvmctl_polling(&stack, &["publish", VERSION, "--approval", "--detach"]);
    let name = started_name(&held);
    // Started before any repository update ran: it waits for the worker's log.
    let follower = Command::new(pipeline_tests::workspace_binary("hhvmctl"))
        .args(["logs", VERSION, "--update", "--follow", "--interval", "1"])
        .envs(stack.client_environment())
        .env_remove("HHVM_PIPELINE_STACK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run target/debug/hhvmctl logs --follow");
    let waiting = wait_for_the_gate(&stack, &name).await;
    assert!(waiting.contains("running  Wait For Approval"), "{waiting}");
    let still = hhvmctl(&stack, &["status", &name, "--json"]);
    let document: Value = serde_json::from_slice(&still.stdout).expect("status --json is JSON");
    assert_eq!(document["awaitingApproval"], true);
    assert_eq!(
        document["workers"],
        serde_json::json!([]),
        "nothing is published before approval"
    );
    let approved = hhvmctl(&stack, &["approve", &name]);
    assert_eq!(approved.status.code(), Some(0));
    assert!(
        stdout(&approved).starts_with(&format!("approved {name}")),
        "{}",
        stdout(&approved)
    );
    let followed = hhvmctl(&stack, &["status", &name, "--watch", "--interval", "1", "--json"]);
    let document: Value = serde_json::from_slice(&followed.stdout).expect("status --json is JSON");
    assert_eq!(document["status"], "SUCCEEDED", "{document}");
    let again = hhvmctl(&stack, &["approve", &name]);
    assert_eq!(again.status.code(), Some(3), "nothing waits any more");

    let followed_log = follower.wait_with_output().expect("logs --follow ends");
    eprintln!(
        "$ hhvmctl logs {VERSION} --update --follow\n{}{}",
        stderr(&followed_log),
        stdout(&followed_log)
    );
    assert_eq!(followed_log.status.code(), Some(0), "{}", stderr(&followed_log));
    assert!(
        stderr(&followed_log).starts_with("waiting for a log under "),
        "{}",
        stderr(&followed_log)
    );
    let whole_log = hhvmctl(&stack, &["logs", VERSION, "--update"]);
    assert_eq!(
        stdout(&followed_log),
        stdout(&whole_log),
        "following printed the whole log, once"
    );
    assert!(
        stdout(&whole_log).contains("[update-repositories] finished"),
        "{}",
        stdout(&whole_log)
    );

    let publication = inspect_publication(&stack, VERSION)
        .await
        .expect("inspect the downloads bucket");
    let invalidated: Vec<&str> = publication
        .invalidations
        .iter()
        .flat_map(|invalidation| invalidation.paths.iter().map(String::as_str))
        // The suites' release files; the index pages' invalidations are directories (`…/`).
        .filter(|path| path.contains("/dists/") && !path.ends_with('/'))
        .collect();
    let mut invalidated = invalidated;
    invalidated.sort_unstable();
    invalidated.dedup();
    let planned_paths: Vec<&str> = before_publish["invalidations"]
        .as_array()
        .expect("invalidations")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(invalidated, planned_paths, "the publish invalidated what the plan said");
    let suites: Vec<&str> = before_publish["publish"]["suites"]
        .as_array()
        .expect("suites")
        .iter()
        .flat_map(|distro| distro["suites"].as_array().expect("a distro's suites").iter())
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        suites.len(),
        4,
        "two distros, each to its codename and its release's: {suites:?}"
    );
    let signed: Vec<String> = publication
        .dists
        .iter()
        .map(|dist| format!("{}/{}", dist.repository, dist.suite))
        .collect();
    for suite in suites {
        assert!(
            signed.iter().any(|published| published == suite),
            "{suite} is published and signed: {signed:?}"
        );
    }
    assert_eq!(
        before_publish["publish"]["releaseSource"]["tag"],
        format!("HHVM-{VERSION}")
    );
}

/// The distro whose spot worker the interruption scenario has reclaimed mid-build.
const INTERRUPTED: &str = "ubuntu-24.04-noble";

/// The distro whose spot worker the interruption scenario reclaims just after its success
/// marker.
const RECLAIMED_AFTER_MARKER: &str = PASSING;

/// A worker of a status document (`workers` of `status --json`).
#[derive(Debug)]
struct ShownWorker {
    target: String,
    instance: String,
    progress: String,
    market: Option<String>,
    interrupted: bool,
    build_stood: bool,
    replaces: Option<String>,
}

impl ShownWorker {
    /// What the scenario checks of it: target, progress, market, interrupted.
    fn summary(&self) -> (&str, &str, Option<&str>, bool) {
        (
            self.target.as_str(),
            self.progress.as_str(),
            self.market.as_deref(),
            self.interrupted,
        )
    }
}

fn workers_of(document: &Value) -> Vec<ShownWorker> {
    document["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|worker| {
            let text = |field: &str| worker[field].as_str().map(str::to_string);
            ShownWorker {
                target: text("target").expect("a target"),
                instance: text("instance").expect("an instance"),
                progress: text("progress").expect("a progress"),
                market: text("market"),
                interrupted: worker["interrupted"].as_bool().expect("interrupted is a boolean"),
                build_stood: worker["buildStood"].as_bool().expect("buildStood is a boolean"),
                replaces: text("replaces"),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spot_interruption_rebuilds_that_distro_once_on_demand_one_after_the_marker_stands_and_status_shows_it() {
    let stack = start_stack().await;
    let function = stack
        .deployed()
        .functions
        .iter()
        .find(|function| function.name.ends_with("hhvm-build-binary-packages"))
        .expect("the binary-package launcher is deployed");
    assert_eq!(
        function.environment.get("BINARY_PACKAGE_MARKET").map(String::as_str),
        Some("spot"),
        "the local stack deploys the builds on spot"
    );
    let instance_type = function.environment["BINARY_PACKAGE_INSTANCE_TYPE"].clone();

    stack
        .interrupt_spot_build_of(VERSION, INTERRUPTED)
        .expect("set the interruption knob");
    stack
        .interrupt_spot_build_after_marker_of(VERSION, RECLAIMED_AFTER_MARKER)
        .expect("set the after-marker interruption knob");
    let built = hhvmctl_polling(&stack, &["build", VERSION, "--interval", "1", "--json"]);
    assert_eq!(built.status.code(), Some(0), "the build succeeds: {}", stderr(&built));
    let name = started_name(&built);
    let document: Value = serde_json::from_slice(&built.stdout).expect("the build's view is JSON");
    assert_eq!(document["status"], "SUCCEEDED");
    let rebuild_phase: Vec<&Value> = document["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter(|phase| phase["name"] == "Rebuild Interrupted Distros On Demand")
        .collect();
    assert_eq!(rebuild_phase.len(), 1, "{document}");
    assert_eq!(
        rebuild_phase[0]["entries"], 1,
        "the rebuild ran once: the worker whose build stood is not reported again"
    );
    assert_eq!(rebuild_phase[0]["progress"], "done");

    let builds: Vec<ShownWorker> = workers_of(&document)
        .into_iter()
        .filter(|worker| worker.target == PASSING || worker.target == INTERRUPTED)
        .collect();
    assert_eq!(
        builds.len(),
        3,
        "one worker for {PASSING}, two for {INTERRUPTED}: {builds:?}"
    );
    let (passing, interrupted, rebuild) = (&builds[0], &builds[1], &builds[2]);
    assert_eq!(
        passing.summary(),
        (RECLAIMED_AFTER_MARKER, "done", Some("spot"), true),
        "the other distro ran on spot, once, and was reclaimed after its marker"
    );
    assert!(passing.build_stood, "{passing:?}");
    assert_eq!(interrupted.summary(), (INTERRUPTED, "interrupted", Some("spot"), true));
    assert!(!interrupted.build_stood && !rebuild.build_stood);
    assert_eq!(
        rebuild.summary(),
        (INTERRUPTED, "done", Some("on-demand"), false),
        "rebuilt on demand"
    );
    assert_eq!(
        rebuild.replaces.as_ref(),
        Some(&interrupted.instance),
        "the rebuild names what it replaces"
    );
    for worker in document["workers"].as_array().expect("workers") {
        if worker["target"] == PASSING || worker["target"] == INTERRUPTED {
            assert_eq!(worker["instanceType"], instance_type.as_str(), "{worker}");
        }
        let (launched, ended) = (worker["launchedAt"].as_f64(), worker["endedAt"].as_f64());
        assert!(
            launched.zip(ended).is_some_and(|(launched, ended)| ended >= launched),
            "{worker}"
        );
    }
    let cost = &document["cost"];
    for market in ["spot", "on-demand"] {
        assert!(
            cost["byMarket"][market].as_f64().is_some_and(|hours| hours > 0.0),
            "{cost}"
        );
    }
    let targets: Vec<&str> = cost["byTarget"]
        .as_array()
        .expect("byTarget")
        .iter()
        .filter_map(|target| target["target"].as_str())
        .collect();
    assert!(targets.contains(&PASSING) && targets.contains(&INTERRUPTED), "{cost}");

    // What EC2 says of the three: the reclaimed one ended with a spot interruption.
    let described = stack
        .ec2()
        .describe_instances()
        .instance_ids(&passing.instance)
        .instance_ids(&interrupted.instance)
        .instance_ids(&rebuild.instance)
        .send()
        .await
        .expect("describe the build workers");
    let instances: Vec<_> = described.reservations().iter().flat_map(|r| r.instances()).collect();
    assert_eq!(instances.len(), 3);
    for instance in instances {
        let id = instance.instance_id().unwrap_or_default();
        let spot = instance.instance_lifecycle() == Some(&aws_sdk_ec2::types::InstanceLifecycleType::Spot);
        let reason = instance
            .state_reason()
            .and_then(|reason| reason.code())
            .unwrap_or_default();
        if id == rebuild.instance {
            assert!(!spot, "{id}: the rebuild runs on demand");
            assert_ne!(reason, "Server.SpotInstanceTermination", "{id}");
        } else {
            assert!(spot, "{id}");
            assert_eq!(reason, "Server.SpotInstanceTermination", "{id}: reclaimed");
        }
    }
    let runs = stack.worker_runs();
    let run_of = |id: &str| runs.iter().find(|run| run.instance == id).expect("a local worker run");
    assert!(
        !run_of(&interrupted.instance).succeeded(),
        "the reclaimed worker's script was stopped"
    );
    assert!(run_of(&rebuild.instance).succeeded() && run_of(&passing.instance).succeeded());
    let failing_builds = &stack.settings().failing_builds_dir;
    for knob in [
        format!("{VERSION}_{INTERRUPTED}.interrupt"),
        format!("{VERSION}_{RECLAIMED_AFTER_MARKER}.interrupt-after-marker"),
    ] {
        assert!(!failing_builds.join(&knob).exists(), "{knob} is used up");
    }

    // As an operator reads it.
    let status = hhvmctl(&stack, &["status", &name]);
    assert_eq!(status.status.code(), Some(0));
    let shown = stdout(&status);
    for expected in [
        format!(
            "interrupted {INTERRUPTED} on {} (terminated) spot {instance_type}, ",
            interrupted.instance
        ),
        format!(
            "done     {INTERRUPTED} on {} (terminated) on-demand {instance_type}, ",
            rebuild.instance
        ),
        format!(", replaces {}", interrupted.instance),
        format!(
            "done     {RECLAIMED_AFTER_MARKER} on {} (terminated) spot {instance_type}, ",
            passing.instance
        ),
        format!("{INTERRUPTED} 0."),
    ] {
        assert!(shown.contains(&expected), "missing {expected:?} in\n{shown}");
    }
    let stood_line = shown
        .lines()
        .find(|line| line.contains(&passing.instance))
        .expect("a line for the worker reclaimed after its marker");
    assert!(
        stood_line.ends_with(", reclaimed after its success marker (the build stands)"),
        "{stood_line}"
    );
    let cost_line = shown
        .lines()
        .find(|line| line.trim_start().starts_with("cost "))
        .expect("a cost line");
    assert!(
        cost_line.contains(" instance-hours (") && cost_line.contains("on-demand 0.") && cost_line.contains("spot 0."),
        "{cost_line}"
    );
}
