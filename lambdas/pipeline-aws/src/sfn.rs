//! Step Functions calls.

use aws_sdk_sfn::Client;
use aws_sdk_sfn::error::SdkError;
use aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryError;
use aws_sdk_sfn::types::ExecutionStatus as SfnStatus;
use aws_sdk_sfn::types::HistoryEvent;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use pipeline_core::PipelineError;
use pipeline_core::executions::{MAX_CHILD_ATTEMPTS, attempt_name};
use serde_json::Value;

/// Starts an execution of `state_machine_arn` named `name` with `input`, or finds the one a
/// previous attempt started. Step Functions answers a repeated start of a running execution
/// with the same ARN, and a repeated start of a finished one with `ExecutionAlreadyExists`. An
/// existing execution with the same input counts as ours while it runs or once it succeeded
/// (finished work is not redone); one that failed, timed out or was stopped is an earlier
/// attempt's dead work, so the next attempt's name is started (`attempt_name`). Another input
/// under the same name is the typed error `ExecutionAlreadyExists`.
pub async fn start_execution_once(
    sfn: &Client,
    state_machine_arn: &str,
    name: &str,
    input: &Value,
) -> Result<String, PipelineError> {
    let input_text = serde_json::to_string(input).expect("a JSON value always serializes");
    for attempt in 1..=MAX_CHILD_ATTEMPTS {
        let attempt_name = attempt_name(name, attempt);
        let result = sfn
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(&attempt_name)
            .input(&input_text)
            .send()
            .await;
        match result {
            Ok(output) => return Ok(output.execution_arn().to_string()),
            Err(SdkError::ServiceError(context)) if context.err().is_execution_already_exists() => {
                let arn = execution_arn(state_machine_arn, &attempt_name).ok_or_else(|| {
                    PipelineError::configuration(
                        "(state machine ARN)",
                        format!("{state_machine_arn:?} is not a state machine ARN"),
                    )
                })?;
                let existing = sfn
                    .describe_execution()
                    .execution_arn(&arn)
                    .send()
                    .await
                    .map_err(|error| crate::service_error("Step Functions DescribeExecution", error))?;
                let existing_input = existing
                    .input()
                    .and_then(|text| serde_json::from_str::<Value>(text).ok());
                if existing_input.as_ref() != Some(input) {
                    return Err(PipelineError::ExecutionAlreadyExists {
                        name: attempt_name,
                        problem: format!(
                            "{arn} was started with a different input ({}); expected {input_text}",
                            existing.input().unwrap_or("none")
                        ),
                    });
                }
                match existing.status() {
                    SfnStatus::Running | SfnStatus::Succeeded | SfnStatus::PendingRedrive => {
                        tracing::info!(%arn, status = existing.status().as_str(), "execution already started by an earlier attempt");
                        return Ok(arn);
                    }
                    status => {
                        tracing::info!(%arn, status = status.as_str(), "an earlier attempt ended without success; starting the next");
                    }
                }
            }
            Err(error) => return Err(crate::service_error("Step Functions StartExecution", error)),
        }
    }
    Err(PipelineError::ExecutionAlreadyExists {
        name: name.to_string(),
        problem: format!("all {MAX_CHILD_ATTEMPTS} attempts of it have ended without success"),
    })
}

/// The ARN an execution named `name` of a standard state machine gets.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> Option<String> {
    let (prefix, machine) = state_machine_arn.split_once(":stateMachine:")?;
    Some(format!("{prefix}:execution:{machine}:{name}"))
}

/// What a parent needs to know about a child execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionStatus {
    pub status: String,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// The status of an execution, or `None` when Step Functions does not know it.
pub async fn describe_execution_status(sfn: &Client, arn: &str) -> Result<Option<ExecutionStatus>, PipelineError> {
    match sfn.describe_execution().execution_arn(arn).send().await {
        Ok(output) => Ok(Some(ExecutionStatus {
            status: output.status().as_str().to_string(),
            error: output.error().filter(|e| !e.is_empty()).map(str::to_string),
            cause: output.cause().filter(|c| !c.is_empty()).map(str::to_string),
        })),
        Err(SdkError::ServiceError(context)) if context.err().is_execution_does_not_exist() => Ok(None),
        Err(error) => Err(crate::service_error(
            &format!("Step Functions DescribeExecution {arn}"),
            error,
        )),
    }
}

/// How many events `history_after` asks for at a time, newest first: a follower's interval adds
/// a few, and each page's events all come back, the ones already read too.
const NEWEST_EVENTS_PAGE: i32 = 25;
/// Step Functions' largest page: a history read whole takes as few calls as it can.
const HISTORY_PAGE_MAX: i32 = 1000;

/// The events of execution `arn` after event `after` (0: every event), oldest first. A follower
/// refreshes a running execution every few seconds for hours, and a build that polls its
/// workers for hours has thousands of events: after the first read, each refresh reads newest
/// first, a page at a time, until a page reaches `after`, not the whole history again.
pub async fn history_after(
    sfn: &Client,
    arn: &str,
    after: i64,
) -> Result<Vec<HistoryEvent>, SdkError<GetExecutionHistoryError, HttpResponse>> {
    let newest_first = after > 0;
    let mut pages = sfn
        .get_execution_history()
        .execution_arn(arn)
        .reverse_order(newest_first)
        .max_results(if newest_first {
            NEWEST_EVENTS_PAGE
        } else {
            HISTORY_PAGE_MAX
        })
        .into_paginator()
        .send();
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        if take_newer(&mut events, page?.events, after) {
            break;
        }
    }
    // By ID whatever the pages' order: an endpoint that ignores `reverseOrder` answers oldest first.
    events.sort_by_key(HistoryEvent::id);
    Ok(events)
}

/// Adds the events of `page` that come after event `after` to `events`; whether the page
/// reached `after` (held it or an older event), so that no later page holds a newer one.
fn take_newer(events: &mut Vec<HistoryEvent>, page: Vec<HistoryEvent>, after: i64) -> bool {
    let reached = page.is_empty() || page.iter().any(|event| event.id() <= after);
    events.extend(page.into_iter().filter(|event| event.id() > after));
    reached
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::primitives::DateTime;
    use aws_sdk_sfn::types::HistoryEventType;

    fn events(ids: &[i64]) -> Vec<HistoryEvent> {
        ids.iter()
            .map(|&id| {
                HistoryEvent::builder()
                    .id(id)
                    .r#type(HistoryEventType::PassStateEntered)
                    .timestamp(DateTime::from_secs(id))
                    .build()
                    .expect("a history event")
            })
            .collect()
    }

    fn ids(events: &[HistoryEvent]) -> Vec<i64> {
        events.iter().map(HistoryEvent::id).collect()
    }

    #[test]
    fn a_page_adds_only_the_events_after_the_last_read_and_says_when_it_reached_it() {
        // Read up to event 1; the newest page of two does not reach it, the next one does.
        let mut read = Vec::new();
        assert!(!take_newer(&mut read, events(&[4, 3]), 1));
        assert!(take_newer(&mut read, events(&[2, 1]), 1));
        assert_eq!(ids(&read), [4, 3, 2]);
        // An endpoint that ignores reverseOrder: the whole history, oldest first, in one page.
        let mut read = Vec::new();
        assert!(take_newer(&mut read, events(&[1, 2, 3, 4]), 3));
        assert_eq!(ids(&read), [4]);
        // Nothing new: an empty page, or one of what was read, ends the reading.
        assert!(take_newer(&mut Vec::new(), Vec::new(), 4));
        assert!(take_newer(&mut Vec::new(), events(&[4]), 4));
        // The first read (after 0) takes every page.
        let mut read = Vec::new();
        assert!(!take_newer(&mut read, events(&[1, 2]), 0));
        assert_eq!(ids(&read), [1, 2]);
    }

    #[test]
    fn execution_arns_follow_the_state_machine_arn() {
        assert_eq!(
            execution_arn(
                "arn:aws:states:us-west-2:123456789012:stateMachine:hhvm-build",
                "run-build-4_1_2"
            )
            .as_deref(),
            Some("arn:aws:states:us-west-2:123456789012:execution:hhvm-build:run-build-4_1_2")
        );
        assert_eq!(execution_arn("not-an-arn", "x"), None);
    }
}
