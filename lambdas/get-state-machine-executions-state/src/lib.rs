//! `get-state-machine-executions-state`: describes each execution in `stepFunctionExecutions`
//! and adds `stepFunctionExecutionStates` (ARN → status), `allStepFunctionExecutionsFinished`
//! (false while any is `RUNNING`), `anyStepFunctionExecutionFailed` and
//! `failedStepFunctionExecutions` (ARN, status, error, cause of each child that ended in
//! `FAILED`, `TIMED_OUT` or `ABORTED`), so the parent can fail with the child's reason instead
//! of publishing after a failed build as the original did. With a failed child it also adds
//! `executionFailure: {"Error", "Cause"}` (the first failed child's error, and a cause naming
//! that child): plain strings, for the parent's `Fail` state (`ErrorPath`/`CausePath`).

use pipeline_aws::config::Source;
use pipeline_aws::sfn::ExecutionStatus;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::payload::string_element;
use pipeline_core::{Payload, PipelineError};
use serde::Serialize;
use serde_json::{Map, Value};

/// A child that did not succeed, as the parent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedExecution {
    pub execution_arn: String,
    pub status: String,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// What the parent decides from its children's states: pure.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionsSummary {
    pub states: Map<String, Value>,
    pub all_finished: bool,
    pub failed: Vec<FailedExecution>,
}

pub fn summarize(executions: &[(String, ExecutionStatus)]) -> ExecutionsSummary {
    let mut states = Map::new();
    let mut failed = Vec::new();
    for (arn, execution) in executions {
        states.insert(arn.clone(), Value::String(execution.status.clone()));
        if matches!(execution.status.as_str(), "FAILED" | "TIMED_OUT" | "ABORTED") {
            failed.push(FailedExecution {
                execution_arn: arn.clone(),
                status: execution.status.clone(),
                error: execution.error.clone(),
                cause: execution.cause.clone(),
            });
        }
    }
    // PENDING_REDRIVE is a failed execution that an operator may redrive: it is still running
    // from the parent's point of view.
    let all_finished = executions
        .iter()
        .all(|(_, e)| !matches!(e.status.as_str(), "RUNNING" | "PENDING_REDRIVE"));
    ExecutionsSummary {
        states,
        all_finished,
        failed,
    }
}

/// The `Error` and `Cause` the parent fails with: the first failed child's error (or its status,
/// as `States.Timeout` for a timed-out one) and a cause naming the child.
pub fn execution_failure(failed: &[FailedExecution]) -> Option<Value> {
    let first = failed.first()?;
    let error = first.error.clone().unwrap_or_else(|| match first.status.as_str() {
        "TIMED_OUT" => "States.Timeout".to_string(),
        "ABORTED" => "ExecutionAborted".to_string(),
        other => other.to_string(),
    });
    let mut cause = format!("{} ended {}", first.execution_arn, first.status);
    if let Some(text) = &first.cause {
        cause.push_str(&format!(": {text}"));
    }
    if failed.len() > 1 {
        cause.push_str(&format!(
            " (and {} more failed; see failedStepFunctionExecutions)",
            failed.len() - 1
        ));
    }
    Some(serde_json::json!({"Error": error, "Cause": cause}))
}

/// An execution ARN: `arn:<partition>:states:<region>:<account>:execution:<machine>:<name>`.
fn execution_arn(value: &Value) -> Result<String, String> {
    let text = string_element(value)?;
    let parts: Vec<&str> = text.split(':').collect();
    let valid = parts.len() == 8
        && parts[0] == "arn"
        && parts[2] == "states"
        && parts[5] == "execution"
        && parts.iter().all(|p| !p.is_empty());
    if valid {
        Ok(text)
    } else {
        Err(format!("{text:?} is not a Step Functions execution ARN"))
    }
}

pub async fn handle(sfn: &aws_sdk_sfn::Client, event: Value) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let arns = payload.required_array("stepFunctionExecutions", "execution ARNs", execution_arn)?;
    let mut executions = Vec::with_capacity(arns.len());
    for (index, arn) in arns.into_iter().enumerate() {
        let status = pipeline_aws::sfn::describe_execution_status(sfn, &arn)
            .await?
            .ok_or_else(|| {
                PipelineError::invalid_input(
                    format!("stepFunctionExecutions[{index}]"),
                    format!("execution {arn} does not exist"),
                )
            })?;
        executions.push((arn, status));
    }
    let summary = summarize(&executions);
    for failed in &summary.failed {
        tracing::warn!(arn = failed.execution_arn, status = failed.status, error = ?failed.error, cause = ?failed.cause, "child execution did not succeed");
    }
    payload.set("stepFunctionExecutionStates", summary.states);
    payload.set("allStepFunctionExecutionsFinished", summary.all_finished);
    payload.set("anyStepFunctionExecutionFailed", !summary.failed.is_empty());
    if let Some(failure) = execution_failure(&summary.failed) {
        payload.set("executionFailure", failure);
    }
    payload.set("failedStepFunctionExecutions", summary.failed);
    Ok(payload.into_value())
}

/// The deployed function: `handle` with its client.
pub struct GetStateMachineExecutionsState {
    sfn: aws_sdk_sfn::Client,
}

impl Function for GetStateMachineExecutionsState {
    const NAME: &'static str = "get-state-machine-executions-state";
    type Config = ();

    fn configuration(_: &impl Source) -> Result<(), PipelineError> {
        Ok(())
    }

    fn new(_: (), sdk_config: &SdkConfig) -> Self {
        GetStateMachineExecutionsState {
            sfn: aws_sdk_sfn::Client::new(sdk_config),
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.sfn, event).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn status(status: &str) -> ExecutionStatus {
        ExecutionStatus {
            status: status.into(),
            error: None,
            cause: None,
        }
    }

    #[test]
    fn running_children_are_unfinished_and_failures_are_listed() {
        let failed = ExecutionStatus {
            status: "FAILED".into(),
            error: Some("BuildFailed".into()),
            cause: Some("no .deb".into()),
        };
        let summary = summarize(&[
            ("a".into(), status("SUCCEEDED")),
            ("b".into(), failed),
            ("c".into(), status("RUNNING")),
        ]);
        assert!(!summary.all_finished);
        assert_eq!(
            summary.states,
            json!({"a": "SUCCEEDED", "b": "FAILED", "c": "RUNNING"})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(
            summary.failed,
            [FailedExecution {
                execution_arn: "b".into(),
                status: "FAILED".into(),
                error: Some("BuildFailed".into()),
                cause: Some("no .deb".into())
            }]
        );
    }

    #[test]
    fn the_first_failure_becomes_the_parents_error_and_cause() {
        let failed = |arn: &str, status: &str, error: Option<&str>, cause: Option<&str>| FailedExecution {
            execution_arn: arn.into(),
            status: status.into(),
            error: error.map(Into::into),
            cause: cause.map(Into::into),
        };
        assert_eq!(execution_failure(&[]), None);
        let one = [failed(
            "arn:b",
            "FAILED",
            Some("BuildFailed"),
            Some("4.168.2 did not build: noble (failed)"),
        )];
        assert_eq!(
            execution_failure(&one),
            Some(json!({"Error": "BuildFailed", "Cause": "arn:b ended FAILED: 4.168.2 did not build: noble (failed)"}))
        );
        let two = [
            failed("arn:t", "TIMED_OUT", None, None),
            failed("arn:a", "ABORTED", None, None),
        ];
        assert_eq!(
            execution_failure(&two),
            Some(
                json!({"Error": "States.Timeout", "Cause": "arn:t ended TIMED_OUT (and 1 more failed; see failedStepFunctionExecutions)"})
            )
        );
    }

    #[test]
    fn timed_out_and_aborted_are_failures_and_finished() {
        let summary = summarize(&[("a".into(), status("TIMED_OUT")), ("b".into(), status("ABORTED"))]);
        assert!(summary.all_finished);
        assert_eq!(summary.failed.len(), 2);
    }

    #[test]
    fn no_children_means_finished_without_failures() {
        let summary = summarize(&[]);
        assert!(summary.all_finished);
        assert!(summary.failed.is_empty());
    }

    #[test]
    fn execution_arns_are_checked() {
        assert!(
            execution_arn(&json!(
                "arn:aws:states:us-east-1:123456789012:execution:hhvm-build:run-1"
            ))
            .is_ok()
        );
        for bad in [
            json!("arn:aws:states:us-east-1:123456789012:stateMachine:hhvm-build"),
            json!("x"),
            json!(3),
        ] {
            assert!(execution_arn(&bad).is_err(), "{bad}");
        }
    }
}
