//! Following an execution and the child executions it starts, as short progress lines:
//!
//! ```text
//!     0.0s  hhvm-build-and-publish           started local-4242
//!     0.4s  hhvm-build-and-publish           ▸ Get Version Number For Build
//!     1.9s  hhvm-build-and-publish           ◂ Get Version Number For Build
//!     2.3s  hhvm-build 2026.11.21            ▸ Have Source Tarball?
//!     2.5s  hhvm-build 2026.11.21            ✗ Have Source Tarball?: SourceTarballNotFound: source tarball …
//!    41.0s  hhvm-build 2026.11.21            ↻ 12 polls
//!    95.2s  hhvm-build-and-publish           ✓ succeeded
//! ```
//!
//! One line per state entered (`▸`), per task state exited (`◂`; Pass and Choice states exit
//! at once), per failure (`✗`, with error and cause), and for each execution's start and end.
//! A poll loop prints its states once: later rounds (a state entered again, when it is a Pass,
//! Choice or Wait state or a task right after a Wait) are counted and summed up as `↻ N polls`
//! before the next new line. Every event, in full, goes to `history.jsonl` in the run
//! directory: `{"execution", "label", "event": {id, type, timestamp, details…}}`.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use aws_smithy_types::DateTime;
use serde_json::{Map, Value, json};

use crate::executions::{HISTORY_INTERVAL, history_after};
use crate::{Context, ExecutionOutcome, LocalStack, StackError};

/// Width of the label column, so lines of several executions line up.
const LABEL_WIDTH: usize = 32;
/// Error causes longer than this are cut in progress lines (the history file has them whole).
const CAUSE_LIMIT: usize = 400;

/// What the progress of one execution needs to remember between events.
#[derive(Debug, Default)]
struct ExecutionProgress {
    entered: HashSet<String>,
    previous_was_wait: bool,
    skipped_polls: usize,
    suppressing: bool,
    /// The state entered last: failures of a task name it.
    current: String,
}

/// Turns history events into progress lines (on stderr when `echo`) and the history file.
pub struct Progress {
    origin: Option<f64>,
    history: Option<File>,
    echo: bool,
    lines: Vec<String>,
    executions: Vec<(String, ExecutionProgress)>,
}

impl Progress {
    /// Progress whose full events go to `history_file` (appended), and whose lines are printed
    /// to stderr when `echo`.
    pub fn new(history_file: &Path, echo: bool) -> Result<Progress, StackError> {
        let history = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(history_file)
            .context(format!("open {}", history_file.display()))?;
        Ok(Progress {
            origin: None,
            history: Some(history),
            echo,
            lines: Vec::new(),
            executions: Vec::new(),
        })
    }

    /// Every progress line so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    fn say(&mut self, seconds: f64, label: &str, text: &str) {
        let line = format!("{seconds:>7.1}s  {label:<LABEL_WIDTH$} {text}");
        if self.echo {
            eprintln!("{line}");
        }
        self.lines.push(line);
    }

    fn state_of(&mut self, execution: &str) -> &mut ExecutionProgress {
        let index = match self.executions.iter().position(|(arn, _)| arn == execution) {
            Some(index) => index,
            None => {
                self.executions
                    .push((execution.to_string(), ExecutionProgress::default()));
                self.executions.len() - 1
            }
        };
        &mut self.executions[index].1
    }

    /// Records one event of execution `execution` (shown as `label`).
    pub fn event(&mut self, execution: &str, label: &str, event: &HistoryEvent) {
        let full = event_json(event);
        if let Some(file) = &mut self.history {
            let record = json!({"execution": execution, "label": label, "event": full});
            // The history file is for reading afterwards; losing it must not stop a run.
            let _ = writeln!(file, "{record}");
        }
        let at = seconds(event.timestamp());
        let origin = *self.origin.get_or_insert(at);
        let elapsed = (at - origin).max(0.0);
        for text in self.lines_for(execution, event) {
            self.say(elapsed, label, &text);
        }
    }

    /// The progress lines of one event (none for most).
    fn lines_for(&mut self, execution: &str, event: &HistoryEvent) -> Vec<String> {
        let kind = event.r#type();
        let mut lines = Vec::new();
        if let Some(details) = event.state_entered_event_details() {
            let name = details.name().to_string();
            let is_wait = *kind == HistoryEventType::WaitStateEntered;
            let is_quick = matches!(
                kind,
                HistoryEventType::PassStateEntered | HistoryEventType::ChoiceStateEntered
            ) || is_wait;
            let progress = self.state_of(execution);
            progress.current = name.clone();
            let repeated = progress.entered.contains(&name) && (is_quick || progress.previous_was_wait);
            progress.previous_was_wait = is_wait;
            progress.suppressing = repeated;
            if repeated {
                if is_wait {
                    progress.skipped_polls += 1;
                }
                return lines;
            }
            progress.entered.insert(name.clone());
            if progress.skipped_polls > 0 {
                lines.push(format!("↻ {} polls", progress.skipped_polls));
                progress.skipped_polls = 0;
            }
            lines.push(format!("▸ {name}"));
            return lines;
        }
        let state = self.state_of(execution).current.clone();
        let failure = |error: Option<&str>, cause: Option<&str>| {
            format!(
                "{state}: {}: {}",
                error.unwrap_or("(no error)"),
                shorten(&readable_cause(cause.unwrap_or("")), CAUSE_LIMIT)
            )
        };
        match kind {
            HistoryEventType::TaskStateExited => {
                if let Some(details) = event.state_exited_event_details()
                    && !self.state_of(execution).suppressing
                {
                    lines.push(format!("◂ {}", details.name()));
                }
            }
            HistoryEventType::ExecutionStarted => {
                let name = execution.rsplit(':').next().unwrap_or(execution);
                lines.push(format!("started {name}"));
            }
            HistoryEventType::LambdaFunctionFailed => {
                if let Some(d) = event.lambda_function_failed_event_details() {
                    lines.push(format!("✗ {}", failure(d.error(), d.cause())));
                }
            }
            HistoryEventType::LambdaFunctionTimedOut => {
                if let Some(d) = event.lambda_function_timed_out_event_details() {
                    lines.push(format!("✗ {} (timed out)", failure(d.error(), d.cause())));
                }
            }
            HistoryEventType::TaskFailed => {
                if let Some(d) = event.task_failed_event_details() {
                    lines.push(format!("✗ {}", failure(d.error(), d.cause())));
                }
            }
            HistoryEventType::ExecutionFailed => {
                let d = event.execution_failed_event_details();
                lines.extend(self.flush(execution));
                lines.push(format!(
                    "✗ failed: {}: {}",
                    d.and_then(|d| d.error()).unwrap_or("(no error)"),
                    shorten(&readable_cause(d.and_then(|d| d.cause()).unwrap_or("")), CAUSE_LIMIT)
                ));
            }
            HistoryEventType::ExecutionTimedOut => {
                lines.extend(self.flush(execution));
                lines.push("✗ timed out".to_string());
            }
            HistoryEventType::ExecutionAborted => {
                lines.extend(self.flush(execution));
                lines.push("✗ aborted".to_string());
            }
            HistoryEventType::ExecutionSucceeded => {
                lines.extend(self.flush(execution));
                lines.push("✓ succeeded".to_string());
            }
            _ => {}
        }
        lines
    }

    fn flush(&mut self, execution: &str) -> Option<String> {
        let progress = self.state_of(execution);
        let polls = std::mem::take(&mut progress.skipped_polls);
        (polls > 0).then(|| format!("↻ {polls} polls"))
    }
}

/// An execution being followed.
struct Followed {
    arn: String,
    label: String,
    /// The ID of the last event read.
    last_seen: i64,
    finished: bool,
}

/// The state machine's name in an execution ARN (`…:execution:<machine>:<name>`).
pub fn machine_of_execution(arn: &str) -> &str {
    arn.split(':').nth(6).unwrap_or(arn)
}

impl LocalStack {
    /// Follows execution `arn` until it ends, and the child executions it starts (the
    /// `stepFunctionExecutions` of its states' outputs, and theirs) while it runs, feeding
    /// every event to `progress`; fails after `timeout`. Returns how `arn` ended.
    pub async fn follow_execution(
        &self,
        arn: &str,
        timeout: Duration,
        progress: &mut Progress,
    ) -> Result<ExecutionOutcome, StackError> {
        let sfn = self.sfn();
        let deadline = Instant::now() + timeout;
        let mut followed = vec![Followed {
            arn: arn.to_string(),
            label: machine_of_execution(arn).to_string(),
            last_seen: 0,
            finished: false,
        }];
        let mut histories_read: Option<Instant> = None;
        loop {
            let mut outcome = None;
            // Fed in time order, so the lines of parent and children interleave as they happened.
            let mut pass: Vec<(String, String, HistoryEvent)> = Vec::new();
            // Every running execution's history in the same pass: the lines stay in time order.
            let histories_due = histories_read.is_none_or(|read| read.elapsed() >= HISTORY_INTERVAL);
            if histories_due {
                histories_read = Some(Instant::now());
            }
            let mut index = 0;
            while index < followed.len() {
                if followed[index].finished {
                    index += 1;
                    continue;
                }
                let current = &followed[index];
                let described = sfn
                    .describe_execution()
                    .execution_arn(&current.arn)
                    .send()
                    .await
                    .context(format!("Step Functions DescribeExecution {}", current.arn))?;
                let finished = *described.status() != ExecutionStatus::Running;
                if !finished && !histories_due {
                    index += 1;
                    continue;
                }
                // History after the status: a finished execution's last events are then all there.
                let events = history_after(&sfn, &current.arn, current.last_seen).await?;
                let mut children = Vec::new();
                for event in &events {
                    pass.push((current.arn.clone(), current.label.clone(), event.clone()));
                    children.extend(started_children(event));
                }
                if finished && index == 0 {
                    outcome = Some(ExecutionOutcome {
                        arn: arn.to_string(),
                        status: described.status().as_str().to_string(),
                        output: described.output().and_then(|text| serde_json::from_str(text).ok()),
                        error: described.error().map(str::to_string),
                        cause: described.cause().map(str::to_string),
                    });
                }
                if let Some(last) = events.last() {
                    followed[index].last_seen = last.id();
                }
                followed[index].finished = finished;
                for child in children {
                    if followed.iter().any(|f| f.arn == child) {
                        continue;
                    }
                    let label = child_label(&sfn, &child).await;
                    followed.push(Followed {
                        arn: child,
                        label,
                        last_seen: 0,
                        finished: false,
                    });
                }
                index += 1;
            }
            pass.sort_by(|a, b| seconds(a.2.timestamp()).total_cmp(&seconds(b.2.timestamp())));
            for (execution, label, event) in &pass {
                progress.event(execution, label, event);
            }
            if let Some(outcome) = outcome {
                return Ok(outcome);
            }
            if Instant::now() > deadline {
                return Err(self.still_running(arn, timeout));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// `hhvm-build 4.168.2`: the machine, and the version of the child's input when it has one.
async fn child_label(sfn: &aws_sdk_sfn::Client, arn: &str) -> String {
    let machine = machine_of_execution(arn);
    let version = match sfn.describe_execution().execution_arn(arn).send().await {
        Ok(described) => described
            .input()
            .and_then(|input| serde_json::from_str::<Value>(input).ok())
            .and_then(|input| input["version"].as_str().map(str::to_string)),
        Err(_) => None,
    };
    match version {
        Some(version) => format!("{machine} {version}"),
        None => machine.to_string(),
    }
}

fn seconds(time: &DateTime) -> f64 {
    time.secs() as f64 + f64::from(time.subsec_nanos()) / 1e9
}

/// A Lambda's error document (`{"errorType", "errorMessage", …}`) as its message alone; any
/// other cause as it is.
fn readable_cause(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|document| document["errorMessage"].as_str().map(str::to_string))
        .unwrap_or_else(|| cause.to_string())
}

fn shorten(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A JSON document of a payload string: parsed when it is JSON, else the string.
fn payload(text: Option<&str>) -> Value {
    match text {
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
        None => Value::Null,
    }
}

/// One history event as JSON: ID, type, time and the details of its kind (the SDK's event types
/// have no serialisation of their own).
pub fn event_json(event: &HistoryEvent) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), json!(event.id()));
    object.insert("previousEventId".into(), json!(event.previous_event_id()));
    object.insert("type".into(), json!(event.r#type().as_str()));
    object.insert("timestamp".into(), json!(seconds(event.timestamp())));
    let error = |error: Option<&str>, cause: Option<&str>| json!({"error": error, "cause": cause});
    let details = if let Some(d) = event.state_entered_event_details() {
        json!({"name": d.name(), "input": payload(d.input())})
    } else if let Some(d) = event.state_exited_event_details() {
        json!({"name": d.name(), "output": payload(d.output())})
    } else if let Some(d) = event.execution_started_event_details() {
        json!({"input": payload(d.input()), "roleArn": d.role_arn()})
    } else if let Some(d) = event.execution_succeeded_event_details() {
        json!({"output": payload(d.output())})
    } else if let Some(d) = event.execution_failed_event_details() {
        error(d.error(), d.cause())
    } else if let Some(d) = event.execution_timed_out_event_details() {
        error(d.error(), d.cause())
    } else if let Some(d) = event.execution_aborted_event_details() {
        error(d.error(), d.cause())
    } else if let Some(d) = event.lambda_function_scheduled_event_details() {
        json!({"resource": d.resource(), "input": payload(d.input())})
    } else if let Some(d) = event.lambda_function_succeeded_event_details() {
        json!({"output": payload(d.output())})
    } else if let Some(d) = event.lambda_function_failed_event_details() {
        error(d.error(), d.cause())
    } else if let Some(d) = event.lambda_function_schedule_failed_event_details() {
        error(d.error(), d.cause())
    } else if let Some(d) = event.lambda_function_start_failed_event_details() {
        error(d.error(), d.cause())
    } else if let Some(d) = event.lambda_function_timed_out_event_details() {
        error(d.error(), d.cause())
    } else if let Some(d) = event.task_scheduled_event_details() {
        json!({"resourceType": d.resource_type(), "resource": d.resource(), "parameters": payload(Some(d.parameters()))})
    } else if let Some(d) = event.task_succeeded_event_details() {
        json!({"resourceType": d.resource_type(), "resource": d.resource(), "output": payload(d.output())})
    } else if let Some(d) = event.task_failed_event_details() {
        json!({"resourceType": d.resource_type(), "resource": d.resource(), "error": d.error(), "cause": d.cause()})
    } else {
        Value::Null
    };
    if !details.is_null() {
        object.insert("details".into(), details);
    }
    Value::Object(object)
}

/// Child execution ARNs named by an event: the `stepFunctionExecutions` of a state's output.
pub fn started_children(event: &HistoryEvent) -> Vec<String> {
    let Some(output) = event.state_exited_event_details().and_then(|d| d.output()) else {
        return Vec::new();
    };
    let Ok(Value::Object(output)) = serde_json::from_str::<Value>(output) else {
        return Vec::new();
    };
    output
        .get("stepFunctionExecutions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::types::{ExecutionFailedEventDetails, StateEnteredEventDetails, StateExitedEventDetails};

    fn entered(id: i64, kind: HistoryEventType, name: &str) -> HistoryEvent {
        HistoryEvent::builder()
            .id(id)
            .r#type(kind)
            .timestamp(DateTime::from_secs(1000 + id))
            .state_entered_event_details(
                StateEnteredEventDetails::builder()
                    .name(name)
                    .input("{}")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    fn exited(id: i64, kind: HistoryEventType, name: &str, output: &str) -> HistoryEvent {
        HistoryEvent::builder()
            .id(id)
            .r#type(kind)
            .timestamp(DateTime::from_secs(1000 + id))
            .state_exited_event_details(
                StateExitedEventDetails::builder()
                    .name(name)
                    .output(output)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn a_poll_loop_is_printed_once_and_counted() {
        let dir = std::env::temp_dir().join(format!("progress-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut progress = Progress::new(&dir.join("history.jsonl"), false).unwrap();
        let arn = "arn:aws:states:us-east-1:123456789012:execution:hhvm-build:run";
        let mut id = 0;
        let mut next = || {
            id += 1;
            id
        };
        progress.event(
            arn,
            "hhvm-build",
            &entered(next(), HistoryEventType::TaskStateEntered, "Start Builds"),
        );
        progress.event(
            arn,
            "hhvm-build",
            &exited(next(), HistoryEventType::TaskStateExited, "Start Builds", "{}"),
        );
        for _ in 0..3 {
            for (kind, name) in [
                (HistoryEventType::WaitStateEntered, "Wait For Builds"),
                (HistoryEventType::TaskStateEntered, "Fetch Build Instance States"),
                (HistoryEventType::ChoiceStateEntered, "Builds Finished?"),
            ] {
                progress.event(arn, "hhvm-build", &entered(next(), kind, name));
            }
            progress.event(
                arn,
                "hhvm-build",
                &exited(
                    next(),
                    HistoryEventType::TaskStateExited,
                    "Fetch Build Instance States",
                    "{}",
                ),
            );
        }
        progress.event(
            arn,
            "hhvm-build",
            &entered(next(), HistoryEventType::TaskStateEntered, "Verify Builds"),
        );
        let failed = HistoryEvent::builder()
            .id(next())
            .r#type(HistoryEventType::ExecutionFailed)
            .timestamp(DateTime::from_secs(1100))
            .execution_failed_event_details(
                ExecutionFailedEventDetails::builder()
                    .error("BuildFailed")
                    .cause("ubuntu-24.04-noble: no marker")
                    .build(),
            )
            .build()
            .unwrap();
        progress.event(arn, "hhvm-build", &failed);
        let texts: Vec<&str> = progress
            .lines()
            .iter()
            .map(|line| line.split_once("hhvm-build").map(|(_, rest)| rest.trim()).unwrap_or(""))
            .collect();
        assert_eq!(
            texts,
            [
                "▸ Start Builds",
                "◂ Start Builds",
                "▸ Wait For Builds",
                "▸ Fetch Build Instance States",
                "▸ Builds Finished?",
                "◂ Fetch Build Instance States",
                "↻ 2 polls",
                "▸ Verify Builds",
                "✗ failed: BuildFailed: ubuntu-24.04-noble: no marker",
            ]
        );
        assert!(
            progress.lines()[0].starts_with("    0.0s  hhvm-build "),
            "{:?}",
            progress.lines()
        );
        let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
        assert_eq!(history.lines().count(), 16);
        let last: Value = serde_json::from_str(history.lines().last().unwrap()).unwrap();
        assert_eq!(last["event"]["details"]["error"], "BuildFailed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn children_are_found_in_state_outputs() {
        let event = exited(
            1,
            HistoryEventType::TaskStateExited,
            "Start Build",
            r#"{"stepFunctionExecutions": ["arn:a", "arn:b"], "version": "4.168.2"}"#,
        );
        assert_eq!(started_children(&event), ["arn:a", "arn:b"]);
        let event = exited(
            2,
            HistoryEventType::TaskStateExited,
            "Other",
            r#"{"version": "4.168.2"}"#,
        );
        assert!(started_children(&event).is_empty());
    }
}
