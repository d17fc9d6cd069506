//! The EventBridge events the pipeline's functions answer: a "Step Functions Execution Status
//! Change" of one of its executions ending outside success. One reader, so every target of the
//! rule accepts exactly the same events and refuses everything else before acting on it.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use pipeline_core::PipelineError;
use pipeline_core::executions::ExecutionName;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The statuses the template's rule matches: an execution that ended without success.
pub const ENDED_STATUSES: [&str; 3] = ["FAILED", "TIMED_OUT", "ABORTED"];

/// Step Functions' limits on what the event carries.
const MAX_ERROR_LEN: usize = 256;
const MAX_CAUSE_LEN: usize = 32_768;
const MAX_INPUT_LEN: usize = 256 * 1024;

/// The `detail` of a "Step Functions Execution Status Change" event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatusChange {
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub name: String,
    pub status: String,
    /// The execution's input as JSON text.
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}

impl ExecutionStatusChange {
    /// The execution's name, as its workers and children are tagged and named.
    pub fn execution_name(&self) -> ExecutionName {
        self.name.parse().expect("validated when the event was read")
    }
}

/// Reads an execution's end from an EventBridge event: from `aws.states`, of the detail type
/// the rule matches, with one of `ENDED_STATUSES`, ARNs of a Step Functions execution and state
/// machine that agree with each other and the name, and fields within Step Functions' limits.
pub fn read_execution_end(event: Value) -> Result<ExecutionStatusChange, PipelineError> {
    let event: EventBridgeEvent<ExecutionStatusChange> = serde_json::from_value(event).map_err(|error| {
        PipelineError::invalid_input(
            "(event)",
            format!("not a \"Step Functions Execution Status Change\" event: {error}"),
        )
    })?;
    if event.source != "aws.states" {
        return Err(PipelineError::invalid_input(
            "source",
            format!("is {:?}; expected \"aws.states\"", event.source),
        ));
    }
    if event.detail_type != "Step Functions Execution Status Change" {
        return Err(PipelineError::invalid_input(
            "detail-type",
            format!(
                "is {:?}; expected \"Step Functions Execution Status Change\"",
                event.detail_type
            ),
        ));
    }
    let change = event.detail;
    if !ENDED_STATUSES.contains(&change.status.as_str()) {
        return Err(PipelineError::invalid_input(
            "detail.status",
            format!("is {:?}; expected one of {ENDED_STATUSES:?}", change.status),
        ));
    }
    change
        .name
        .parse::<ExecutionName>()
        .map_err(|problem| PipelineError::invalid_input("detail.name", problem))?;
    let machine = arn_resource(&change.state_machine_arn, "stateMachine")
        .ok_or_else(|| PipelineError::invalid_input("detail.stateMachineArn", "is not a state machine ARN"))?;
    let execution = arn_resource(&change.execution_arn, "execution")
        .ok_or_else(|| PipelineError::invalid_input("detail.executionArn", "is not an execution ARN"))?;
    if execution != format!("{machine}:{}", change.name) {
        return Err(PipelineError::invalid_input(
            "detail.executionArn",
            "does not name this execution of this state machine",
        ));
    }
    for (field, value, max) in [
        ("detail.error", &change.error, MAX_ERROR_LEN),
        ("detail.cause", &change.cause, MAX_CAUSE_LEN),
        ("detail.input", &change.input, MAX_INPUT_LEN),
    ] {
        if let Some(value) = value
            && value.len() > max
        {
            return Err(PipelineError::invalid_input(
                field,
                format!("is {} bytes; Step Functions sends at most {max}", value.len()),
            ));
        }
    }
    Ok(change)
}

/// `arn:<partition>:states:<region>:<account>:<kind>:<rest>` → `<rest>`, when every part is
/// plausible (no spaces, slashes or shell characters).
fn arn_resource<'a>(arn: &'a str, kind: &str) -> Option<&'a str> {
    let plain = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let mut parts = arn.splitn(7, ':');
    let (arn_word, partition, service, region, account, arn_kind, rest) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let ok = arn_word == "arn"
        && plain(partition)
        && service == "states"
        && plain(region)
        && account.bytes().all(|b| b.is_ascii_digit())
        && !account.is_empty()
        && arn_kind == kind
        && !rest.is_empty()
        && !rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/$`;|&".contains(c));
    ok.then_some(rest)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(status: &str) -> Value {
        json!({
            "version": "0", "id": "1", "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states", "account": "123456789012", "time": "2026-12-01T03:00:00Z",
            "region": "us-west-2", "resources": [],
            "detail": {
                "executionArn": "arn:aws:states:us-west-2:123456789012:execution:hhvm-build:run+1",
                "stateMachineArn": "arn:aws:states:us-west-2:123456789012:stateMachine:hhvm-build",
                "name": "run+1", "status": status, "input": "{}", "error": null, "cause": null
            }
        })
    }

    #[test]
    fn an_execution_that_ended_without_success_is_read() {
        for status in ENDED_STATUSES {
            let change = read_execution_end(event(status)).unwrap();
            assert_eq!(change.execution_name().as_str(), "run+1");
        }
    }

    #[test]
    fn anything_else_is_refused_naming_the_field() {
        let with = |pointer: &str, value: Value| {
            let mut event = event("FAILED");
            *event.pointer_mut(pointer).unwrap() = value;
            event
        };
        let cases = [
            (with("/detail/status", json!("SUCCEEDED")), "detail.status"),
            (with("/detail/status", json!("FAILED; rm -rf /")), "detail.status"),
            (with("/source", json!("aws.ec2")), "`source`"),
            (with("/detail-type", json!("Scheduled Event")), "detail-type"),
            (with("/detail/name", json!("run\n1")), "detail.name"),
            (with("/detail/executionArn", json!("$(id)")), "detail.executionArn"),
            (
                with(
                    "/detail/executionArn",
                    json!("arn:aws:states:us-west-2:123456789012:execution:other:run+1"),
                ),
                "detail.executionArn",
            ),
            (with("/detail/stateMachineArn", json!("../x")), "detail.stateMachineArn"),
            (with("/detail/cause", json!("x".repeat(40_000))), "detail.cause"),
            (json!([1]), "(event)"),
        ];
        for (event, field) in cases {
            let error = read_execution_end(event.clone()).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput", "{event}");
            assert!(error.to_string().contains(field), "{field}: {error}");
        }
    }
}
