//! Where an execution is, computed from its history alone (no AWS types, so recorded
//! histories replay in tests): its phases (task states), the workers it launched with their
//! last known EC2 state, the market and instance type they ran on, when they ran and whether
//! EC2 interrupted them, what they cost in instance-hours, its children, and on failure the
//! step, error and cause. Rendered as plain lines or serialised as JSON (`--json`).

use std::collections::BTreeMap;

use pipeline_core::InstanceState;
use pipeline_core::layout::{JobKind, log_key};
use pipeline_core::{Distro, Version};
use serde::Serialize;
use serde_json::Value;

use crate::history::Event;

/// The state of `hhvm-publish-release` that holds a release until an operator approves it.
pub const APPROVAL_STATE: &str = "Wait For Approval";

/// The task token the release gate waits with: in the parameters of the task it scheduled last
/// (`Message.taskToken`; the message may also come as JSON text).
pub fn approval_token(events: &[Event]) -> Option<String> {
    let entered = events
        .iter()
        .rposition(|event| event.is("TaskStateEntered") && event.state.as_deref() == Some(APPROVAL_STATE))?;
    events[entered..].iter().find_map(|event| {
        if !event.is("TaskScheduled") {
            return None;
        }
        let message = event.input.as_ref()?.get("Message")?;
        let message = match message {
            Value::String(text) => serde_json::from_str(text).ok()?,
            other => other.clone(),
        };
        message.get("taskToken")?.as_str().map(str::to_string)
    })
}

/// How far a phase, worker or execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    Running,
    Done,
    Failed,
    /// A worker that has ended, before any check said whether its work succeeded.
    Finished,
    /// A task whose error a `Catch` took, and the run went on: an expected branch (no source
    /// tarball yet) or the way to cleanup. The execution's failure names the one that failed it.
    Caught,
    /// A worker EC2 reclaimed (a spot interruption) before its work was done: its distro was
    /// rebuilt, or is about to be. One reclaimed after its success marker, whose build stood,
    /// is `interrupted` but not this.
    Interrupted,
}

impl Progress {
    pub fn as_str(self) -> &'static str {
        match self {
            Progress::Running => "running",
            Progress::Done => "done",
            Progress::Failed => "failed",
            Progress::Finished => "finished",
            Progress::Caught => "caught",
            Progress::Interrupted => "interrupted",
        }
    }
}

/// One task state of the execution (every entry of a poll loop's task counts in `entries`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    pub name: String,
    pub progress: Progress,
    pub started_at: f64,
    pub ended_at: Option<f64>,
    pub entries: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    last_attempt_failed: bool,
}

/// A worker the execution launched: a distro's build, or the job of the state that launched it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    /// The distro, or the state that launched it (`Build Source Tarball`).
    pub target: String,
    pub instance: String,
    /// EC2's state as last polled (`pending`, `running`, `terminated`, …), if polled.
    pub instance_state: Option<String>,
    pub progress: Progress,
    pub launched_at: f64,
    /// When a poll first saw it ended; when it was never seen ended but the run is over, when
    /// the run ended (cleanup terminated it). `None` while it runs.
    pub ended_at: Option<f64>,
    /// `spot` or `on-demand`, for distro builds (`builds` says; older records do not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub market: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// EC2 reclaimed its spot capacity (`interruptedInstances` of a poll).
    pub interrupted: bool,
    /// Reclaimed after it wrote its success marker: the rebuild step kept its build.
    pub build_stood: bool,
    /// The interrupted worker this on-demand rebuild took over from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// Where the worker uploads its log (distro builds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// What an execution's workers cost, in instance-hours (each worker's wall time from its launch
/// to its end, or to `now` while it runs): the run's, by market, and each target's (a distro,
/// or the state that launched the worker), in the order of the workers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildHours {
    pub instance_hours: f64,
    /// `spot`, `on-demand`, or `unknown` for workers whose market no record says.
    pub by_market: BTreeMap<String, f64>,
    pub by_target: Vec<TargetHours>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHours {
    pub target: String,
    pub instance_hours: f64,
}

/// A worker's instance-hours at `now`.
pub fn worker_hours(worker: &Worker, now: f64) -> f64 {
    (worker.ended_at.unwrap_or(now) - worker.launched_at).max(0.0) / 3600.0
}

/// The instance-hours of `workers` at `now`: per run, by market and per target.
pub fn build_hours(workers: &[Worker], now: f64) -> BuildHours {
    let mut hours = BuildHours {
        instance_hours: 0.0,
        by_market: BTreeMap::new(),
        by_target: Vec::new(),
    };
    for worker in workers {
        let worked = worker_hours(worker, now);
        hours.instance_hours += worked;
        let market = worker.market.clone().unwrap_or_else(|| "unknown".to_string());
        *hours.by_market.entry(market).or_insert(0.0) += worked;
        match hours.by_target.iter_mut().find(|target| target.target == worker.target) {
            Some(target) => target.instance_hours += worked,
            None => hours.by_target.push(TargetHours {
                target: worker.target.clone(),
                instance_hours: worked,
            }),
        }
    }
    hours
}

/// Instance-hours as the cost line shows them: three decimals (a local build is seconds).
fn hours_text(hours: f64) -> String {
    format!("{hours:.3}")
}

/// The cost line: the run's instance-hours, by market, and each target's.
fn cost_text(hours: &BuildHours) -> String {
    let markets: Vec<String> = hours
        .by_market
        .iter()
        .map(|(market, worked)| format!("{market} {}", hours_text(*worked)))
        .collect();
    let targets: Vec<String> = hours
        .by_target
        .iter()
        .map(|target| format!("{} {}", target.target, hours_text(target.instance_hours)))
        .collect();
    format!(
        "{} instance-hours ({}): {}",
        hours_text(hours.instance_hours),
        markets.join(", "),
        targets.join(", ")
    )
}

/// A time of day in UTC, `13:05:09`.
fn clock(seconds: f64) -> String {
    chrono::DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
        .map(|time| time.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "?".to_string())
}

/// Why the execution did not succeed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The task state that failed, when one did.
    pub step: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// One execution as the status view shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    pub name: String,
    pub arn: String,
    /// The machine, without the stack's prefix.
    pub machine: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    /// The versions of its input (`version`, or `versions`).
    pub versions: Vec<String>,
    /// When its first event happened; `None` while its history is still empty (right after
    /// it was started).
    pub started_at: Option<f64>,
    pub ended_at: Option<f64>,
    pub phases: Vec<Phase>,
    pub workers: Vec<Worker>,
    /// What the workers cost, as of the last event of the history (`None` without workers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<BuildHours>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Its publish waits for an operator (`hhvmctl approve` / `reject`).
    pub awaiting_approval: bool,
    /// The child executions it started (`stepFunctionExecutions`), in order.
    pub child_arns: Vec<String>,
    pub children: Vec<ExecutionView>,
}

fn versions_of(input: Option<&Value>) -> Vec<String> {
    let Some(input) = input else { return Vec::new() };
    if let Some(version) = input.get("version").and_then(Value::as_str) {
        return vec![version.to_string()];
    }
    input
        .get("versions")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// `s3://bucket/path` of an S3 location as the functions write it (`{bucket, path}`).
pub(crate) fn s3_url(value: &Value) -> Option<String> {
    Some(format!(
        "s3://{}/{}",
        value.get("bucket")?.as_str()?,
        value.get("path")?.as_str()?
    ))
}

/// The strings of an array field (none when it is not one).
pub(crate) fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The interrupted workers a rebuild step kept: those of its input's `interruptedInstances`
/// whose entry of `builds` its output still names (it found their success marker), where any
/// other would have given way to an on-demand rebuild.
fn builds_that_stood(entered: Option<&Value>, output: &Value) -> Vec<String> {
    let reclaimed = strings(entered.and_then(|input| input.get("interruptedInstances")));
    let cleared = output
        .get("interruptedInstances")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty);
    let Some(builds) = output.get("builds").and_then(Value::as_array).filter(|_| cleared) else {
        return Vec::new();
    };
    let kept: Vec<&str> = builds
        .iter()
        .filter_map(|build| build.get("instance").and_then(Value::as_str))
        .collect();
    reclaimed
        .into_iter()
        .filter(|instance| kept.contains(&instance.as_str()))
        .collect()
}

/// The log a distro's build worker uploads.
fn distro_log(scratch_bucket: Option<&str>, version: Option<&str>, distro: &str, instance: &str) -> Option<String> {
    let version: Version = version?.parse().ok()?;
    let distro: Distro = distro.parse().ok()?;
    let key = log_key(&version, JobKind::BinaryPackage, Some(&distro), instance);
    Some(format!("s3://{}/{key}", scratch_bucket?))
}

impl ExecutionView {
    /// The view of one execution from its events (oldest first). `scratch_bucket` places the
    /// workers' logs; children are added with `add_child`.
    pub fn from_history(arn: &str, machine: &str, events: &[Event], scratch_bucket: Option<&str>) -> ExecutionView {
        let name = arn.rsplit(':').next().unwrap_or(arn).to_string();
        let mut view = ExecutionView {
            name,
            arn: arn.to_string(),
            machine: machine.to_string(),
            status: "RUNNING".to_string(),
            versions: Vec::new(),
            started_at: events.first().map(|event| event.timestamp),
            ended_at: None,
            phases: Vec::new(),
            workers: Vec::new(),
            cost: None,
            failure: None,
            awaiting_approval: false,
            child_arns: Vec::new(),
            children: Vec::new(),
        };
        // The input of each state's current entry, to see what its task changed.
        let mut entered_inputs: BTreeMap<String, Value> = BTreeMap::new();
        let mut current_task: Option<usize> = None;
        let mut last_state: Option<String> = None;
        let mut instance_states: BTreeMap<String, String> = BTreeMap::new();
        // When a poll first saw each instance ended, and the instances EC2 interrupted.
        let mut ended_times: BTreeMap<String, f64> = BTreeMap::new();
        let mut interrupted: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        // Interrupted workers the rebuild step kept (their success marker was there).
        let mut stood: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for event in events {
            if event.is("ExecutionStarted") {
                view.versions = versions_of(event.input.as_ref());
            }
            if event.is_state_entered() {
                let state = event.state.clone().unwrap_or_default();
                last_state = Some(state.clone());
                if let Some(input) = &event.input {
                    entered_inputs.insert(state.clone(), input.clone());
                }
                if event.is("TaskStateEntered") {
                    let index = match view.phases.iter().position(|phase| phase.name == state) {
                        Some(index) => index,
                        None => {
                            view.phases.push(Phase {
                                name: state.clone(),
                                progress: Progress::Running,
                                started_at: event.timestamp,
                                ended_at: None,
                                entries: 0,
                                error: None,
                                last_attempt_failed: false,
                            });
                            view.phases.len() - 1
                        }
                    };
                    let phase = &mut view.phases[index];
                    phase.entries += 1;
                    phase.progress = Progress::Running;
                    phase.ended_at = None;
                    phase.last_attempt_failed = false;
                    current_task = Some(index);
                }
                continue;
            }
            if let (Some(error), Some(index)) = (&event.error, current_task)
                && !event.ends_execution()
            {
                let phase = &mut view.phases[index];
                phase.last_attempt_failed = true;
                phase.error = Some(error.clone());
            }
            if matches!(event.kind.as_str(), "LambdaFunctionSucceeded" | "TaskSucceeded")
                && let Some(index) = current_task
            {
                view.phases[index].last_attempt_failed = false;
            }
            if event.is("TaskStateExited")
                && let Some(index) = current_task.take()
            {
                let phase = &mut view.phases[index];
                phase.ended_at = Some(event.timestamp);
                phase.progress = if phase.last_attempt_failed {
                    Progress::Caught
                } else {
                    phase.error = None;
                    Progress::Done
                };
                let entered = entered_inputs.get(&phase.name);
                let state = phase.name.clone();
                if let Some(output) = &event.output {
                    view.note_launches(&state, entered, output, event.timestamp, scratch_bucket);
                    if let Some(states) = output.get("instanceStates").and_then(Value::as_object) {
                        for (id, state) in states {
                            if let Some(state) = state.as_str() {
                                instance_states.insert(id.clone(), state.to_string());
                                // `missing` right after a launch is EC2 not listing it yet.
                                if state != InstanceState::MISSING && InstanceState::named(state).is_finished() {
                                    ended_times.entry(id.clone()).or_insert(event.timestamp);
                                }
                            }
                        }
                    }
                    stood.extend(builds_that_stood(entered, output));
                    interrupted.extend(strings(output.get("interruptedInstances")));
                    for child in strings(output.get("stepFunctionExecutions")) {
                        if !view.child_arns.contains(&child) {
                            view.child_arns.push(child);
                        }
                    }
                }
            }
            if event.ends_execution() {
                view.ended_at = Some(event.timestamp);
                view.status = match event.kind.as_str() {
                    "ExecutionSucceeded" => "SUCCEEDED",
                    "ExecutionFailed" => "FAILED",
                    "ExecutionTimedOut" => "TIMED_OUT",
                    _ => "ABORTED",
                }
                .to_string();
                if view.status != "SUCCEEDED" {
                    // The step that failed the run: the last task whose error the run ended
                    // with (a Catch may have led through cleanup states first).
                    let failed_phase = view
                        .phases
                        .iter_mut()
                        .rev()
                        .find(|phase| phase.error.is_some() && phase.error == event.error);
                    let failed_step = match failed_phase {
                        Some(phase) => {
                            phase.progress = Progress::Failed;
                            Some(phase.name.clone())
                        }
                        None => last_state.clone(),
                    };
                    view.failure = Some(Failure {
                        step: failed_step,
                        error: event.error.clone(),
                        cause: event.cause.clone(),
                    });
                }
            }
        }
        view.awaiting_approval = view.ended_at.is_none()
            && view
                .phases
                .iter()
                .any(|phase| phase.name == APPROVAL_STATE && phase.progress == Progress::Running);
        if view.ended_at.is_some() {
            // A task still open when the run ended: stopped, timed out, or left by its Catch.
            for phase in &mut view.phases {
                if phase.progress == Progress::Running {
                    phase.progress = if phase.last_attempt_failed {
                        Progress::Caught
                    } else {
                        Progress::Failed
                    };
                }
            }
            if let Some(step) = view.failure.as_ref().and_then(|failure| failure.step.clone())
                && let Some(phase) = view.phases.iter_mut().find(|phase| phase.name == step)
            {
                phase.progress = Progress::Failed;
            }
        }
        let cause = view
            .failure
            .as_ref()
            .and_then(|failure| failure.cause.clone())
            .unwrap_or_default();
        // A build check that failed named every artifact short of its success marker: the
        // ended workers it did not name did their work.
        let checked = view
            .failure
            .as_ref()
            .is_some_and(|failure| failure.error.as_deref() == Some("BuildFailed"));
        let status = view.status.clone();
        let replaced: Vec<String> = view.workers.iter().filter_map(|w| w.replaces.clone()).collect();
        for worker in &mut view.workers {
            worker.instance_state = instance_states.get(&worker.instance).cloned();
            worker.interrupted = interrupted.contains(&worker.instance) || replaced.contains(&worker.instance);
            worker.build_stood = stood.contains(&worker.instance);
            worker.ended_at = ended_times.get(&worker.instance).copied().or(view.ended_at);
            let ended = worker
                .instance_state
                .as_deref()
                .is_some_and(|state| InstanceState::named(state).is_finished());
            // The failure's cause names the distros whose builds failed ("<distro> (failed), log …").
            let named_as_failed = cause.contains(&format!("{} (", worker.target));
            worker.progress = match status.as_str() {
                _ if worker.interrupted && !worker.build_stood => Progress::Interrupted,
                "SUCCEEDED" => Progress::Done,
                "RUNNING" if ended => Progress::Finished,
                "RUNNING" => Progress::Running,
                _ if named_as_failed => Progress::Failed,
                _ if ended && checked => Progress::Done,
                _ if ended => Progress::Finished,
                // The run is over and cleanup terminated whatever was still running.
                _ => Progress::Failed,
            };
        }
        let as_of = events.last().map_or(0.0, |event| event.timestamp);
        view.cost = (!view.workers.is_empty()).then(|| build_hours(&view.workers, as_of));
        view
    }

    /// The workers `state`'s task launched: `builds` (one per distro), or the `instances` it
    /// changed (a pass-through payload carries an earlier step's `instances` along unchanged).
    fn note_launches(
        &mut self,
        state: &str,
        entered: Option<&Value>,
        output: &Value,
        at: f64,
        scratch_bucket: Option<&str>,
    ) {
        let version = self.versions.first().cloned();
        if let Some(builds) = output.get("builds").and_then(Value::as_array)
            && entered.and_then(|input| input.get("builds")) != Some(&output["builds"])
        {
            for build in builds {
                let text = |field: &str| build.get(field).and_then(Value::as_str).map(str::to_string);
                let (Some(distro), Some(instance)) = (text("distro"), text("instance")) else {
                    continue;
                };
                // A rebuild lists the builds it did not touch again.
                if self.workers.iter().any(|worker| worker.instance == instance) {
                    continue;
                }
                let replaces = text("replaces");
                // An on-demand rebuild keeps the interrupted worker it replaces in view; any
                // other new worker of a distro stands in for the one before.
                if replaces.is_none() {
                    self.workers.retain(|worker| worker.target != distro);
                }
                self.workers.push(Worker {
                    log: distro_log(scratch_bucket, version.as_deref(), &distro, &instance),
                    target: distro,
                    instance,
                    instance_state: None,
                    progress: Progress::Running,
                    launched_at: at,
                    ended_at: None,
                    market: text("market"),
                    instance_type: text("instanceType"),
                    interrupted: false,
                    build_stood: false,
                    replaces,
                });
            }
            return;
        }
        let launched = strings(output.get("instances"));
        if launched.is_empty() || entered.map(|input| strings(input.get("instances"))) == Some(launched.clone()) {
            return;
        }
        for instance in launched {
            if self.workers.iter().any(|worker| worker.instance == instance) {
                continue;
            }
            self.workers.push(Worker {
                target: state.to_string(),
                instance,
                instance_state: None,
                progress: Progress::Running,
                launched_at: at,
                ended_at: None,
                // Only the binary package builds may run on spot (BINARY_PACKAGE_MARKET, and
                // then `builds` says so); every other launcher starts its worker on demand.
                market: Some(pipeline_core::launch::Market::OnDemand.to_string()),
                instance_type: None,
                interrupted: false,
                build_stood: false,
                replaces: None,
                log: None,
            });
        }
    }

    pub fn add_child(&mut self, child: ExecutionView) {
        self.children.push(child);
    }

    /// Whether this execution and every child have ended.
    pub fn is_over(&self) -> bool {
        self.ended_at.is_some() && self.children.iter().all(ExecutionView::is_over)
    }

    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }
}

/// `95.2s`, `4m 12s`, `2h 05m`.
pub fn duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else if seconds < 3600.0 {
        format!("{}m {:02}s", (seconds / 60.0) as u64, (seconds % 60.0) as u64)
    } else {
        format!(
            "{}h {:02}m",
            (seconds / 3600.0) as u64,
            ((seconds % 3600.0) / 60.0) as u64
        )
    }
}

/// One line of the view: a stable key (what it is about), and its text at time `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub key: String,
    pub depth: usize,
    pub text: String,
    /// The text without elapsed times: a change of it is news.
    pub news: String,
    pub progress: Progress,
}

fn progress_of_status(status: &str) -> Progress {
    match status {
        "RUNNING" => Progress::Running,
        "SUCCEEDED" => Progress::Done,
        _ => Progress::Failed,
    }
}

/// The view as lines: the execution, its phases and workers, its failure, then each child the
/// same way, indented. `now` (seconds since the epoch) times what is still running.
pub fn lines(view: &ExecutionView, now: f64) -> Vec<Line> {
    let mut out = Vec::new();
    push_lines(view, now, 0, &mut out);
    out
}

fn push_lines(view: &ExecutionView, now: f64, depth: usize, out: &mut Vec<Line>) {
    let elapsed = match view.started_at {
        Some(started) => duration(view.ended_at.unwrap_or(now) - started),
        None => "starting".to_string(),
    };
    let versions = if view.versions.is_empty() {
        String::new()
    } else {
        format!(" {}", view.versions.join(" "))
    };
    let head = format!("{}{versions} {} {}", view.machine, view.name, view.status);
    out.push(Line {
        key: view.arn.clone(),
        depth,
        text: format!("{head} ({elapsed})"),
        news: head,
        progress: progress_of_status(&view.status),
    });
    for phase in &view.phases {
        let elapsed = phase.ended_at.unwrap_or(now) - phase.started_at;
        let polls = if phase.entries > 1 {
            format!(", {} polls", phase.entries)
        } else {
            String::new()
        };
        let error = phase.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default();
        let news = format!("{:<8} {}{error}", phase.progress.as_str(), phase.name);
        out.push(Line {
            key: format!("{}/phase/{}", view.arn, phase.name),
            depth: depth + 1,
            text: format!("{news} ({}{polls})", duration(elapsed)),
            news,
            progress: phase.progress,
        });
    }
    for worker in &view.workers {
        let state = worker.instance_state.as_deref().unwrap_or("launched");
        let runs_on: String = [worker.market.as_deref(), worker.instance_type.as_deref()]
            .into_iter()
            .flatten()
            .map(|part| format!(" {part}"))
            .collect();
        let when = match worker.ended_at {
            Some(ended) => format!(
                ", {}–{} UTC ({})",
                clock(worker.launched_at),
                clock(ended),
                duration(ended - worker.launched_at)
            ),
            None => format!(", launched {} UTC", clock(worker.launched_at)),
        };
        let replaces = worker
            .replaces
            .as_ref()
            .map(|old| format!(", replaces {old}"))
            .unwrap_or_default();
        let stood = if worker.build_stood {
            ", reclaimed after its success marker (the build stands)"
        } else {
            ""
        };
        let news = format!(
            "{:<8} {} on {} ({state}){runs_on}{when}{replaces}{stood}",
            worker.progress.as_str(),
            worker.target,
            worker.instance
        );
        let elapsed = if worker.progress == Progress::Running {
            format!(", {}", duration(now - worker.launched_at))
        } else {
            String::new()
        };
        let log = match (&worker.log, worker.progress) {
            (Some(log), Progress::Failed) => format!("; log {log}"),
            _ => String::new(),
        };
        out.push(Line {
            key: format!("{}/worker/{}", view.arn, worker.instance),
            depth: depth + 1,
            text: format!("{news}{elapsed}{log}"),
            news: format!("{news}{log}"),
            progress: worker.progress,
        });
    }
    if !view.workers.is_empty() {
        let hours = build_hours(&view.workers, now);
        let text = format!("cost     {}", cost_text(&hours));
        // Hours grow while a worker runs: only the final figure is news.
        let running = view.workers.iter().any(|worker| worker.ended_at.is_none());
        out.push(Line {
            key: format!("{}/cost", view.arn),
            depth: depth + 1,
            news: if running {
                "cost     (workers running)".to_string()
            } else {
                text.clone()
            },
            text,
            progress: if running { Progress::Running } else { Progress::Done },
        });
    }
    if view.awaiting_approval {
        let text = format!(
            "waiting  for approval: hhvmctl approve {0}, or hhvmctl reject {0} --reason WHY",
            view.name
        );
        out.push(Line {
            key: format!("{}/approval", view.arn),
            depth: depth + 1,
            text: text.clone(),
            news: text,
            progress: Progress::Running,
        });
    }
    if let Some(failure) = &view.failure {
        let text = format!(
            "{} at {}: {}",
            failure.error.as_deref().unwrap_or("(no error)"),
            failure.step.as_deref().unwrap_or("(no step)"),
            failure.cause.as_deref().map(readable_cause).unwrap_or_default()
        );
        out.push(Line {
            key: format!("{}/failure", view.arn),
            depth: depth + 1,
            text: text.clone(),
            news: text,
            progress: Progress::Failed,
        });
    }
    for child in &view.children {
        push_lines(child, now, depth + 1, out);
    }
}

/// A Lambda error's cause is a JSON object (`{"errorType", "errorMessage"}`); its message is
/// what a person reads.
pub fn readable_cause(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|value| value.get("errorMessage").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| cause.to_string())
}

/// The view as text, one line each, indented by depth.
pub fn render(view: &ExecutionView, now: f64) -> String {
    lines(view, now)
        .iter()
        .map(|line| format!("{}{}\n", "  ".repeat(line.depth), line.text))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn worker(target: &str, market: Option<&str>, launched_at: f64, ended_at: Option<f64>) -> Worker {
        Worker {
            target: target.to_string(),
            instance: format!("i-{:08x}", launched_at as u64),
            instance_state: None,
            progress: Progress::Done,
            launched_at,
            ended_at,
            market: market.map(str::to_string),
            instance_type: Some("m5.2xlarge".to_string()),
            interrupted: false,
            build_stood: false,
            replaces: None,
            log: None,
        }
    }

    #[test]
    fn a_worker_costs_its_wall_time_and_one_still_running_costs_until_now() {
        assert_eq!(
            worker_hours(&worker("d", None, 1000.0, Some(1000.0 + 5400.0)), 0.0),
            1.5
        );
        assert_eq!(worker_hours(&worker("d", None, 1000.0, None), 1000.0 + 1800.0), 0.5);
        // A clock that went backwards costs nothing rather than something negative.
        assert_eq!(worker_hours(&worker("d", None, 1000.0, Some(900.0)), 0.0), 0.0);
    }

    #[test]
    fn build_hours_add_up_per_run_per_market_and_per_target() {
        let workers = [
            worker("Create Source Tarball", None, 0.0, Some(1800.0)),
            worker("debian-12-bookworm", Some("spot"), 2000.0, Some(2000.0 + 3600.0)),
            // Interrupted after half an hour, then rebuilt on demand in two hours.
            worker("ubuntu-24.04-noble", Some("spot"), 2000.0, Some(2000.0 + 1800.0)),
            worker("ubuntu-24.04-noble", Some("on-demand"), 6000.0, Some(6000.0 + 7200.0)),
        ];
        let hours = build_hours(&workers, 99_999.0);
        assert_eq!(hours.instance_hours, 4.0);
        assert_eq!(
            hours.by_market,
            BTreeMap::from([
                ("on-demand".to_string(), 2.0),
                ("spot".to_string(), 1.5),
                ("unknown".to_string(), 0.5)
            ])
        );
        let targets: Vec<(&str, f64)> = hours
            .by_target
            .iter()
            .map(|target| (target.target.as_str(), target.instance_hours))
            .collect();
        assert_eq!(
            targets,
            [
                ("Create Source Tarball", 0.5),
                ("debian-12-bookworm", 1.0),
                ("ubuntu-24.04-noble", 2.5)
            ]
        );
        assert_eq!(
            cost_text(&hours),
            "4.000 instance-hours (on-demand 2.000, spot 1.500, unknown 0.500): Create Source Tarball 0.500, \
             debian-12-bookworm 1.000, ubuntu-24.04-noble 2.500"
        );
        assert_eq!(build_hours(&[], 0.0).instance_hours, 0.0);
    }

    fn event(id: i64, kind: &str, timestamp: f64, state: Option<&str>, output: Option<Value>) -> Event {
        Event {
            id,
            kind: kind.to_string(),
            timestamp,
            state: state.map(str::to_string),
            input: None,
            output,
            error: None,
            cause: None,
        }
    }

    /// A build whose noble worker EC2 reclaimed, rebuilt on demand: its history as the view reads
    /// it (each task's entry and exit).
    fn interrupted_build() -> Vec<Event> {
        let started = 1_796_184_000.0;
        let spot = |distro: &str, instance: &str| json!({"distro": distro, "instance": instance, "market": "spot", "instanceType": "m5.2xlarge"});
        let builds = json!([
            spot("debian-12-bookworm", "i-00000001"),
            spot("ubuntu-24.04-noble", "i-00000002")
        ]);
        let rebuilt = json!([spot("debian-12-bookworm", "i-00000001"), {
            "distro": "ubuntu-24.04-noble", "instance": "i-00000003", "market": "on-demand",
            "instanceType": "m5.2xlarge", "replaces": "i-00000002"}]);
        let poll =
            |states: Value, interrupted: Value| json!({"instanceStates": states, "interruptedInstances": interrupted});
        let task = |id: i64, at: f64, state: &str, output: Value| {
            [
                event(id, "TaskStateEntered", at, Some(state), None),
                event(id + 1, "TaskStateExited", at + 1.0, Some(state), Some(output)),
            ]
        };
        let mut events = vec![event(1, "ExecutionStarted", started, None, None)];
        events[0].input = Some(json!({"version": "4.168.2"}));
        events.extend(task(
            2,
            started + 10.0,
            "Start Builds",
            json!({"builds": builds.clone()}),
        ));
        events.extend(task(
            4,
            started + 20.0,
            "Fetch Build Instance States",
            poll(
                json!({"i-00000001": "running", "i-00000002": "terminated"}),
                json!(["i-00000002"]),
            ),
        ));
        events.extend(task(
            6,
            started + 3610.0,
            "Fetch Build Instance States",
            poll(
                json!({"i-00000001": "terminated", "i-00000002": "terminated"}),
                json!(["i-00000002"]),
            ),
        ));
        let mut rebuild = task(
            8,
            started + 3620.0,
            "Rebuild Interrupted Distros On Demand",
            json!({"builds": rebuilt}),
        );
        rebuild[0].input = Some(json!({"builds": builds}));
        events.extend(rebuild);
        events.extend(task(
            10,
            started + 7220.0,
            "Fetch Build Instance States",
            poll(
                json!({"i-00000001": "terminated", "i-00000003": "terminated"}),
                json!([]),
            ),
        ));
        events.push(event(12, "ExecutionSucceeded", started + 7300.0, None, None));
        events
    }

    #[test]
    fn an_interrupted_worker_stays_in_view_beside_its_on_demand_rebuild() {
        let arn = "arn:aws:states:us-east-1:123456789012:execution:hhvm-build:b";
        let view = ExecutionView::from_history(arn, "hhvm-build", &interrupted_build(), Some("hhvm-scratch"));
        assert_eq!(view.status, "SUCCEEDED");
        let workers: Vec<(&str, &str, Progress, Option<&str>, bool)> = view
            .workers
            .iter()
            .map(|w| {
                (
                    w.target.as_str(),
                    w.instance.as_str(),
                    w.progress,
                    w.market.as_deref(),
                    w.interrupted,
                )
            })
            .collect();
        assert_eq!(
            workers,
            [
                ("debian-12-bookworm", "i-00000001", Progress::Done, Some("spot"), false),
                (
                    "ubuntu-24.04-noble",
                    "i-00000002",
                    Progress::Interrupted,
                    Some("spot"),
                    true
                ),
                (
                    "ubuntu-24.04-noble",
                    "i-00000003",
                    Progress::Done,
                    Some("on-demand"),
                    false
                ),
            ]
        );
        let started = 1_796_184_000.0;
        let ends: Vec<Option<f64>> = view.workers.iter().map(|w| w.ended_at).collect();
        assert_eq!(
            ends,
            [Some(started + 3611.0), Some(started + 21.0), Some(started + 7221.0)],
            "each ended at the first poll that saw it ended"
        );
        assert_eq!(view.workers[2].replaces.as_deref(), Some("i-00000002"));
        let cost = view.cost.as_ref().expect("a cost");
        assert_eq!(cost.by_target.len(), 2);
        assert!((cost.by_market["on-demand"] - 3600.0 / 3600.0).abs() < 1e-9, "{cost:?}");

        let text = render(&view, started + 9999.0);
        for expected in [
            "done     debian-12-bookworm on i-00000001 (terminated) spot m5.2xlarge, 04:00:11–05:00:11 UTC (1h 00m)",
            "interrupted ubuntu-24.04-noble on i-00000002 (terminated) spot m5.2xlarge, 04:00:11–04:00:21 UTC (10.0s)",
            "done     ubuntu-24.04-noble on i-00000003 (terminated) on-demand m5.2xlarge, 05:00:21–06:00:21 UTC (1h 00m), replaces i-00000002",
            "cost     2.003 instance-hours (on-demand 1.000, spot 1.003): debian-12-bookworm 1.000, ubuntu-24.04-noble 1.003",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn a_worker_reclaimed_after_its_success_marker_is_done_and_says_so() {
        let arn = "arn:aws:states:us-east-1:123456789012:execution:hhvm-build:b";
        let started = 1_796_184_000.0;
        let builds = json!([
            {"distro": "debian-12-bookworm", "instance": "i-00000001", "market": "spot"},
            {"distro": "ubuntu-24.04-noble", "instance": "i-00000002", "market": "spot"}
        ]);
        let ended = json!({"i-00000001": "terminated", "i-00000002": "terminated"});
        let after_poll = json!({"builds": builds, "instanceStates": ended, "interruptedInstances": ["i-00000001"]});
        let mut rebuilt = after_poll.clone();
        rebuilt["interruptedInstances"] = json!([]);
        let mut events = vec![event(1, "ExecutionStarted", started, None, None)];
        events[0].input = Some(json!({"version": "4.168.2"}));
        events.push(event(2, "TaskStateEntered", started + 1.0, Some("Start Builds"), None));
        events.push(event(
            3,
            "TaskStateExited",
            started + 2.0,
            Some("Start Builds"),
            Some(json!({"builds": builds})),
        ));
        events.push(event(
            4,
            "TaskStateEntered",
            started + 60.0,
            Some("Fetch Build Instance States"),
            None,
        ));
        events.push(event(
            5,
            "TaskStateExited",
            started + 61.0,
            Some("Fetch Build Instance States"),
            Some(after_poll.clone()),
        ));
        let mut entered = event(
            6,
            "TaskStateEntered",
            started + 62.0,
            Some("Rebuild Interrupted Distros On Demand"),
            None,
        );
        entered.input = Some(after_poll);
        events.push(entered);
        events.push(event(
            7,
            "TaskStateExited",
            started + 63.0,
            Some("Rebuild Interrupted Distros On Demand"),
            Some(rebuilt),
        ));
        events.push(event(8, "ExecutionSucceeded", started + 70.0, None, None));

        let view = ExecutionView::from_history(arn, "hhvm-build", &events, None);
        let shown: Vec<(&str, Progress, bool, bool)> = view
            .workers
            .iter()
            .map(|w| (w.instance.as_str(), w.progress, w.interrupted, w.build_stood))
            .collect();
        assert_eq!(
            shown,
            [
                ("i-00000001", Progress::Done, true, true),
                ("i-00000002", Progress::Done, false, false)
            ]
        );
        let text = render(&view, started + 99.0);
        assert!(
            text.contains("done     debian-12-bookworm on i-00000001 (terminated) spot, 04:00:02–04:01:01 UTC (59.0s), reclaimed after its success marker (the build stands)"),
            "{text}"
        );
        // Before the rebuild step has looked at its marker, it is an interruption.
        let view = ExecutionView::from_history(arn, "hhvm-build", &events[..5], None);
        assert_eq!(view.workers[0].progress, Progress::Interrupted);
        assert!(!view.workers[0].build_stood);
    }

    #[test]
    fn while_workers_run_the_cost_grows_but_is_no_news() {
        let arn = "arn:aws:states:us-east-1:123456789012:execution:hhvm-build:b";
        let events: Vec<Event> = interrupted_build().into_iter().take(3).collect();
        let view = ExecutionView::from_history(arn, "hhvm-build", &events, None);
        let cost_at = |now: f64| {
            lines(&view, now)
                .into_iter()
                .find(|line| line.key.ends_with("/cost"))
                .expect("a cost line")
        };
        let (early, later) = (cost_at(1_796_184_000.0 + 3611.0), cost_at(1_796_184_000.0 + 7211.0));
        assert_ne!(early.text, later.text);
        assert_eq!(early.news, later.news);
        assert_eq!(early.progress, Progress::Running);
        assert!(
            later.text.starts_with("cost     4.000 instance-hours (spot 4.000)"),
            "{}",
            later.text
        );
    }
}
