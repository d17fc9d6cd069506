//! Execution histories: each event as a plain record (the SDK's event types have no
//! serialisation), read by `pipeline_aws::sfn::history_after`. `history --json` prints these
//! records, the status view is computed from them, and its snapshot tests replay recorded ones.

use std::collections::HashMap;

use aws_sdk_sfn::Client;
use aws_sdk_sfn::types::HistoryEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CliError, CliResult};

/// One history event: what the status view and `history` read of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: i64,
    /// Step Functions' event type (`TaskStateEntered`, `ExecutionFailed`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    /// The state entered or exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The state's or execution's input (JSON, parsed when it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// A JSON text as JSON, or as a string when it is not JSON.
fn document(text: Option<&str>) -> Option<Value> {
    text.map(|text| serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
}

impl Event {
    pub fn from_sdk(event: &HistoryEvent) -> Event {
        let mut record = Event {
            id: event.id(),
            kind: event.r#type().as_str().to_string(),
            timestamp: event.timestamp().as_secs_f64(),
            state: None,
            input: None,
            output: None,
            error: None,
            cause: None,
        };
        let mut failure = |error: Option<&str>, cause: Option<&str>| {
            record.error = error.map(str::to_string);
            record.cause = cause.map(str::to_string);
        };
        if let Some(d) = event.execution_failed_event_details() {
            failure(d.error(), d.cause());
        } else if let Some(d) = event.execution_timed_out_event_details() {
            failure(d.error(), d.cause());
        } else if let Some(d) = event.execution_aborted_event_details() {
            failure(d.error(), d.cause());
        } else if let Some(d) = event.lambda_function_failed_event_details() {
            failure(d.error(), d.cause());
        } else if let Some(d) = event.lambda_function_timed_out_event_details() {
            failure(d.error(), d.cause());
        } else if let Some(d) = event.lambda_function_start_failed_event_details() {
            failure(d.error(), d.cause());
        } else if let Some(d) = event.lambda_function_schedule_failed_event_details() {
            failure(d.error(), d.cause());
        } else if let Some(d) = event.task_failed_event_details() {
            failure(d.error(), d.cause());
        }
        if let Some(d) = event.state_entered_event_details() {
            record.state = Some(d.name().to_string());
            record.input = document(d.input());
        } else if let Some(d) = event.state_exited_event_details() {
            record.state = Some(d.name().to_string());
            record.output = document(d.output());
        } else if let Some(d) = event.execution_started_event_details() {
            record.input = document(d.input());
        } else if let Some(d) = event.execution_succeeded_event_details() {
            record.output = document(d.output());
        } else if let Some(d) = event.lambda_function_succeeded_event_details() {
            record.output = document(d.output());
        } else if let Some(d) = event.task_scheduled_event_details() {
            // A service task's parameters: the release gate's carry its task token.
            record.input = document(Some(d.parameters()));
        }
        record
    }

    pub fn is(&self, kind: &str) -> bool {
        self.kind == kind
    }

    /// A state's entry (`TaskStateEntered`, `WaitStateEntered`, …).
    pub fn is_state_entered(&self) -> bool {
        self.kind.ends_with("StateEntered")
    }

    pub fn is_state_exited(&self) -> bool {
        self.kind.ends_with("StateExited")
    }

    /// An event that ends the execution.
    pub fn ends_execution(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "ExecutionSucceeded" | "ExecutionFailed" | "ExecutionTimedOut" | "ExecutionAborted"
        )
    }
}

/// Whether history `events` is complete, so need not be read again: its last event ends the
/// execution. A redriven execution's history goes on after its first end.
pub fn is_complete(events: &[Event]) -> bool {
    events.last().is_some_and(Event::ends_execution)
}

/// The histories a watch has read, by execution ARN: each refresh reads only the events added
/// since the last (`events_after`), and none of an execution that has ended.
#[derive(Debug, Default)]
pub struct Histories(HashMap<String, Vec<Event>>);

impl Histories {
    /// Execution `arn`'s whole history, oldest first, as of now.
    pub async fn refresh(&mut self, sfn: &Client, arn: &str) -> CliResult<&[Event]> {
        let events = self.0.entry(arn.to_string()).or_default();
        if !is_complete(events) {
            let added = events_after(sfn, arn, events.last().map_or(0, |last| last.id)).await?;
            events.extend(added);
        }
        Ok(events)
    }
}

/// The events of execution `arn` after event `after` (0: every event), oldest first: what
/// `pipeline_aws::sfn::history_after` reads, as records.
pub async fn events_after(sfn: &Client, arn: &str, after: i64) -> CliResult<Vec<Event>> {
    let events = pipeline_aws::sfn::history_after(sfn, arn, after)
        .await
        .map_err(|error| CliError::aws("Step Functions GetExecutionHistory", error))?;
    Ok(events.iter().map(Event::from_sdk).collect())
}

/// Every event of execution `arn`, oldest first.
pub async fn execution_history(sfn: &Client, arn: &str) -> CliResult<Vec<Event>> {
    events_after(sfn, arn, 0).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(kinds: &[&str]) -> Vec<Event> {
        kinds
            .iter()
            .enumerate()
            .map(|(id, kind)| Event {
                id: id as i64 + 1,
                kind: kind.to_string(),
                timestamp: id as f64,
                state: None,
                input: None,
                output: None,
                error: None,
                cause: None,
            })
            .collect()
    }

    #[test]
    fn a_history_is_complete_only_while_its_last_event_ends_the_execution() {
        assert!(!is_complete(&[]));
        assert!(!is_complete(&history(&["ExecutionStarted", "TaskStateEntered"])));
        for end in [
            "ExecutionSucceeded",
            "ExecutionFailed",
            "ExecutionTimedOut",
            "ExecutionAborted",
        ] {
            assert!(is_complete(&history(&["ExecutionStarted", end])), "{end}");
        }
        // Failed, then redriven: it runs again, and its history grows until its next end.
        let redriven = [
            "ExecutionStarted",
            "ExecutionFailed",
            "ExecutionRedriven",
            "TaskStateEntered",
        ];
        assert!(!is_complete(&history(&redriven)));
        assert!(is_complete(&history(
            &[&redriven[..], &["ExecutionSucceeded"]].concat()
        )));
    }
}
