//! Where an execution is, computed from its history alone (no AWS types, so recorded
//! histories replay in tests): its phases (task states), the workers it launched with their
//! last known EC2 state, its children, and on failure the step, error and cause. Rendered as
//! plain lines or serialised as JSON (`--json`).

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
}

impl Progress {
    pub fn as_str(self) -> &'static str {
        match self {
            Progress::Running => "running",
            Progress::Done => "done",
            Progress::Failed => "failed",
            Progress::Finished => "finished",
            Progress::Caught => "caught",
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
    /// Where the worker uploads its log (distro builds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
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

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
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
                            }
                        }
                    }
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
        for worker in &mut view.workers {
            worker.instance_state = instance_states.get(&worker.instance).cloned();
            let ended = worker
                .instance_state
                .as_deref()
                .is_some_and(|state| InstanceState::named(state).is_finished());
            // The failure's cause names the distros whose builds failed ("<distro> (failed), log …").
            let named_as_failed = cause.contains(&format!("{} (", worker.target));
            worker.progress = match status.as_str() {
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
                let (Some(distro), Some(instance)) = (
                    build.get("distro").and_then(Value::as_str),
                    build.get("instance").and_then(Value::as_str),
                ) else {
                    continue;
                };
                self.workers.retain(|worker| worker.target != distro);
                self.workers.push(Worker {
                    target: distro.to_string(),
                    instance: instance.to_string(),
                    instance_state: None,
                    progress: Progress::Running,
                    launched_at: at,
                    log: distro_log(scratch_bucket, version.as_deref(), distro, instance),
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
        let news = format!(
            "{:<8} {} on {} ({state})",
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
