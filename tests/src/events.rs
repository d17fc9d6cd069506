//! EventBridge's part for the local stack: moto emits no "Step Functions Execution Status
//! Change" events, so this watches the deployed machines' executions and, when one ends, sends
//! the event EventBridge would to the targets of every deployed rule whose pattern matches it —
//! the template's rules, read back from moto, so the wiring under test is the template's.
//! Every delivery is a line of `events.log` in the run directory.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};

use crate::{StackError, deploy};
use pipeline_testing::http;

/// A deployed rule on Step Functions events: its pattern and the functions it targets.
#[derive(Debug, Clone)]
pub(crate) struct ExecutionRule {
    pub name: String,
    pub pattern: Value,
    /// Function names (the last part of each target's ARN).
    pub targets: Vec<String>,
}

/// Whether `pattern` (an EventBridge event pattern of lists of exact values, nested for
/// `detail`) matches `event`.
pub(crate) fn matches(pattern: &Value, event: &Value) -> bool {
    let Some(fields) = pattern.as_object() else {
        return false;
    };
    fields.iter().all(|(field, wanted)| match (wanted, event.get(field)) {
        (Value::Array(values), Some(value)) => values.contains(value),
        (Value::Object(_), Some(value)) => matches(wanted, value),
        _ => false,
    })
}

/// The rules of the deployed stack whose pattern is on `aws.states`, with their targets.
pub(crate) fn execution_rules(endpoint: &str) -> Result<Vec<ExecutionRule>, StackError> {
    let listed: Value = serde_json::from_str(&deploy::aws_cli(endpoint, &["events", "list-rules"])?)
        .map_err(|error| StackError(format!("events list-rules answered no JSON: {error}")))?;
    let mut rules = Vec::new();
    for rule in listed["Rules"].as_array().into_iter().flatten() {
        let Some(pattern) = rule["EventPattern"].as_str() else {
            continue;
        };
        let pattern: Value = serde_json::from_str(pattern)
            .map_err(|error| StackError(format!("rule {} has no JSON pattern: {error}", rule["Name"])))?;
        if !pattern["source"]
            .as_array()
            .is_some_and(|sources| sources.contains(&json!("aws.states")))
        {
            continue;
        }
        let name = rule["Name"].as_str().unwrap_or_default().to_string();
        let targets: Value = serde_json::from_str(&deploy::aws_cli(
            endpoint,
            &["events", "list-targets-by-rule", "--rule", &name],
        )?)
        .map_err(|error| StackError(format!("events list-targets-by-rule answered no JSON: {error}")))?;
        let targets = targets["Targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|target| target["Arn"].as_str())
            .map(|arn| arn.rsplit(':').next().unwrap_or(arn).to_string())
            .collect();
        rules.push(ExecutionRule { name, pattern, targets });
    }
    Ok(rules)
}

/// The event EventBridge sends when an execution's status changes.
fn status_change_event(execution: &aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput) -> Value {
    let region = execution.execution_arn().split(':').nth(3).unwrap_or("us-east-1");
    let account = execution.execution_arn().split(':').nth(4).unwrap_or("123456789012");
    json!({
        "version": "0",
        "id": format!("local-{}", execution.name().unwrap_or_default()),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": account,
        "time": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": region,
        "resources": [execution.execution_arn()],
        "detail": {
            "executionArn": execution.execution_arn(),
            "stateMachineArn": execution.state_machine_arn(),
            "name": execution.name(),
            "status": execution.status().as_str(),
            "input": execution.input(),
            "output": execution.output(),
            "error": execution.error(),
            "cause": execution.cause(),
        }
    })
}

pub(crate) struct EventDelivery {
    task: tokio::task::JoinHandle<()>,
    stopping: Arc<AtomicBool>,
}

impl EventDelivery {
    /// Watches the executions of `machines` (ARNs) every `interval` and delivers their ends.
    pub(crate) fn start(
        sfn: aws_sdk_sfn::Client,
        machines: Vec<String>,
        rules: Vec<ExecutionRule>,
        lambda_port: u16,
        log: PathBuf,
        interval: Duration,
    ) -> EventDelivery {
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let task = tokio::spawn(async move {
            let mut delivered: HashSet<String> = HashSet::new();
            while !flag.load(Ordering::SeqCst) {
                for machine in &machines {
                    deliver_ended(&sfn, machine, &rules, lambda_port, &log, &mut delivered).await;
                }
                tokio::time::sleep(interval).await;
            }
        });
        EventDelivery { task, stopping }
    }

    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.task.abort();
    }
}

async fn deliver_ended(
    sfn: &aws_sdk_sfn::Client,
    machine: &str,
    rules: &[ExecutionRule],
    lambda_port: u16,
    log: &std::path::Path,
    delivered: &mut HashSet<String>,
) {
    let Ok(listed) = sfn.list_executions().state_machine_arn(machine).send().await else {
        return;
    };
    for summary in listed.executions() {
        if summary.status() == &ExecutionStatus::Running || delivered.contains(summary.execution_arn()) {
            continue;
        }
        let Ok(execution) = sfn
            .describe_execution()
            .execution_arn(summary.execution_arn())
            .send()
            .await
        else {
            continue;
        };
        delivered.insert(summary.execution_arn().to_string());
        let event = status_change_event(&execution);
        for rule in rules.iter().filter(|rule| matches(&rule.pattern, &event)) {
            for target in &rule.targets {
                let outcome = invoke(lambda_port, target, &event).await;
                let line = format!(
                    "{} {} {} -> {} ({}): {outcome}\n",
                    chrono::Utc::now().format("%H:%M:%S"),
                    execution.status().as_str(),
                    summary.execution_arn(),
                    target,
                    rule.name
                );
                if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                    let _ = file.write_all(line.as_bytes());
                }
            }
        }
    }
}

/// Invokes a target as EventBridge does (asynchronously for the rule, but awaited here so the
/// log says how it went).
async fn invoke(port: u16, function: &str, event: &Value) -> String {
    let path = format!("/2015-03-31/functions/{function}/invocations");
    let body = event.to_string().into_bytes();
    match tokio::task::spawn_blocking(move || http::request(port, "POST", &path, &body, Duration::from_secs(300))).await
    {
        Ok(Ok(response)) => match response.header("x-amz-function-error") {
            Some(_) => format!("error {}", response.text()),
            None => format!("ok {}", response.text()),
        },
        Ok(Err(error)) => format!("not delivered: {error}"),
        Err(error) => format!("not delivered: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_values_nested() {
        let pattern = json!({"source": ["aws.states"], "detail": {"status": ["FAILED", "ABORTED"]}});
        assert!(matches(
            &pattern,
            &json!({"source": "aws.states", "detail": {"status": "ABORTED"}})
        ));
        assert!(!matches(
            &pattern,
            &json!({"source": "aws.states", "detail": {"status": "SUCCEEDED"}})
        ));
        assert!(!matches(
            &pattern,
            &json!({"source": "aws.ec2", "detail": {"status": "FAILED"}})
        ));
        assert!(!matches(&pattern, &json!({"source": "aws.states"})));
    }
}
