//! Names and ARNs of the local stack's functions and state machines, and the `${Placeholder}`
//! substitution of state machine definitions (pure, so the conventions are tested alone).
//!
//! - Function `hhvm-get-build-version` or `build-source-tarball` (each Lambda binary of the
//!   workspace): `${GetBuildVersionFunctionArn}`, `${BuildSourceTarballFunctionArn}` — PascalCase
//!   of the name without its `hhvm-` prefix, then `FunctionArn`.
//! - State machine file `state-machines/build.asl.json` (or `hhvm-build.asl.json`): machine
//!   `hhvm-build`, `${BuildStateMachineArn}`; `publish-release.asl.json`: `hhvm-publish-release`,
//!   `${PublishReleaseStateMachineArn}`.

use std::collections::BTreeMap;

use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType};

use crate::StackError;

/// moto's account and the stack's region.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// `hello-world` → `HelloWorld`.
fn pascal_case(name: &str) -> String {
    name.split(['-', '_', '.'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The ARN the Step Functions engine invokes function `name` by (the Lambda service maps it back).
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

/// The placeholder standing for function `name`'s ARN, without `${}`.
pub fn function_placeholder(name: &str) -> String {
    format!("{}FunctionArn", pascal_case(name.strip_prefix("hhvm-").unwrap_or(name)))
}

/// The machine name of a definition file stem: `build` and `hhvm-build` are both `hhvm-build`.
pub fn machine_name(stem: &str) -> String {
    if stem.starts_with("hhvm-") {
        stem.to_string()
    } else {
        format!("hhvm-{stem}")
    }
}

/// The placeholder standing for state machine `name`'s ARN, without `${}`.
pub fn machine_placeholder(name: &str) -> String {
    format!(
        "{}StateMachineArn",
        pascal_case(name.strip_prefix("hhvm-").unwrap_or(name))
    )
}

/// moto names state machines deterministically, so every ARN is known before any is created
/// (the Lambdas that start child executions get theirs in their environment at start-up).
pub fn state_machine_arn(name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}")
}

/// Every `${Name}` of `text` (names of letters, digits and `_`), in order of appearance.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if after[..end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && end > 0 => {
                if !found.iter().any(|f| f == &after[..end]) {
                    found.push(after[..end].to_string());
                }
                rest = &after[end + 1..];
            }
            _ => rest = after,
        }
    }
    found
}

/// `definition` with every `${Name}` replaced from `substitutions`; an unknown name is an error
/// naming it and `what` (the file), listing the known ones.
pub fn substitute(
    what: &str,
    definition: &str,
    substitutions: &BTreeMap<String, String>,
) -> Result<String, StackError> {
    let unknown: Vec<String> = placeholders(definition)
        .into_iter()
        .filter(|name| !substitutions.contains_key(name))
        .collect();
    if !unknown.is_empty() {
        return Err(StackError(format!(
            "{what}: unknown placeholder(s) {}; known: {}",
            unknown
                .iter()
                .map(|n| format!("${{{n}}}"))
                .collect::<Vec<_>>()
                .join(", "),
            substitutions.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let mut text = definition.to_string();
    for (name, value) in substitutions {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    Ok(text)
}

/// The order to create machines in: a machine after every machine whose placeholder its
/// definition uses (children first). `machines` holds (name, definition); a cycle is an error.
pub fn creation_order(machines: &[(String, String)]) -> Result<Vec<String>, StackError> {
    let mut remaining: Vec<(String, Vec<String>)> = machines
        .iter()
        .map(|(name, definition)| {
            let uses = placeholders(definition);
            let children = machines
                .iter()
                .filter(|(other, _)| other != name && uses.contains(&machine_placeholder(other)))
                .map(|(other, _)| other.clone())
                .collect();
            (name.clone(), children)
        })
        .collect();
    let mut order: Vec<String> = Vec::new();
    while !remaining.is_empty() {
        let ready = remaining
            .iter()
            .position(|(_, children)| children.iter().all(|child| order.contains(child)))
            .ok_or_else(|| {
                StackError(format!(
                    "state machines start each other in a cycle: {}",
                    remaining.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
        order.push(remaining.remove(ready).0);
    }
    Ok(order)
}

/// One line of progress for a history event: its ID, type and what matters in it (state name,
/// error and cause, output).
pub fn describe_event(event: &HistoryEvent) -> String {
    let detail = match event.r#type() {
        HistoryEventType::TaskStateEntered
        | HistoryEventType::ChoiceStateEntered
        | HistoryEventType::PassStateEntered
        | HistoryEventType::WaitStateEntered
        | HistoryEventType::MapStateEntered
        | HistoryEventType::ParallelStateEntered
        | HistoryEventType::SucceedStateEntered
        | HistoryEventType::FailStateEntered => event
            .state_entered_event_details()
            .map(|d| format!("{} input {}", d.name(), abbreviate(d.input().unwrap_or(""))))
            .unwrap_or_default(),
        HistoryEventType::TaskStateExited
        | HistoryEventType::ChoiceStateExited
        | HistoryEventType::PassStateExited
        | HistoryEventType::WaitStateExited
        | HistoryEventType::MapStateExited
        | HistoryEventType::ParallelStateExited
        | HistoryEventType::SucceedStateExited => event
            .state_exited_event_details()
            .map(|d| format!("{} output {}", d.name(), abbreviate(d.output().unwrap_or(""))))
            .unwrap_or_default(),
        HistoryEventType::LambdaFunctionFailed => event
            .lambda_function_failed_event_details()
            .map(|d| format!("{}: {}", d.error().unwrap_or(""), d.cause().unwrap_or("")))
            .unwrap_or_default(),
        HistoryEventType::TaskFailed => event
            .task_failed_event_details()
            .map(|d| format!("{}: {}", d.error().unwrap_or(""), d.cause().unwrap_or("")))
            .unwrap_or_default(),
        HistoryEventType::ExecutionFailed => event
            .execution_failed_event_details()
            .map(|d| format!("{}: {}", d.error().unwrap_or(""), d.cause().unwrap_or("")))
            .unwrap_or_default(),
        HistoryEventType::ExecutionSucceeded => event
            .execution_succeeded_event_details()
            .map(|d| format!("output {}", abbreviate(d.output().unwrap_or(""))))
            .unwrap_or_default(),
        _ => String::new(),
    };
    format!("#{} {} {}", event.id(), event.r#type().as_str(), detail)
        .trim_end()
        .to_string()
}

fn abbreviate(text: &str) -> String {
    const LIMIT: usize = 300;
    if text.len() <= LIMIT {
        return text.to_string();
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_names_follow_the_conventions() {
        assert_eq!(
            function_placeholder("hhvm-get-build-version"),
            "GetBuildVersionFunctionArn"
        );
        assert_eq!(
            function_placeholder("build-source-tarball"),
            "BuildSourceTarballFunctionArn"
        );
        assert_eq!(machine_name("build"), "hhvm-build");
        assert_eq!(machine_name("hhvm-build-and-publish"), "hhvm-build-and-publish");
        assert_eq!(
            machine_placeholder("hhvm-publish-release"),
            "PublishReleaseStateMachineArn"
        );
        assert_eq!(
            function_arn("shift-version"),
            "arn:aws:lambda:us-east-1:123456789012:function:shift-version"
        );
    }

    #[test]
    fn substitution_replaces_known_names_and_rejects_unknown_ones() {
        let map = BTreeMap::from([("AFunctionArn".to_string(), "arn:a".to_string())]);
        let text = r#"{"Resource": "${AFunctionArn}", "Other": "${AFunctionArn}", "Literal": "$.x"}"#;
        assert_eq!(
            substitute("f", text, &map).unwrap(),
            r#"{"Resource": "arn:a", "Other": "arn:a", "Literal": "$.x"}"#
        );
        let error = substitute("build.asl.json", r#"{"R": "${Missing}"}"#, &map).unwrap_err();
        assert!(
            error.0.contains("build.asl.json") && error.0.contains("${Missing}"),
            "{error}"
        );
    }

    #[test]
    fn children_are_created_before_the_machines_that_start_them() {
        let machines = vec![
            (
                "hhvm-build-and-publish".to_string(),
                "${BuildStateMachineArn} ${PublishReleaseStateMachineArn}".to_string(),
            ),
            (
                "hhvm-publish-release".to_string(),
                "${BuildStateMachineArn}".to_string(),
            ),
            ("hhvm-build".to_string(), "${GetBuildVersionFunctionArn}".to_string()),
        ];
        assert_eq!(
            creation_order(&machines).unwrap(),
            ["hhvm-build", "hhvm-publish-release", "hhvm-build-and-publish"]
        );
        let cycle = vec![
            ("hhvm-a".to_string(), "${BStateMachineArn}".to_string()),
            ("hhvm-b".to_string(), "${AStateMachineArn}".to_string()),
        ];
        assert!(creation_order(&cycle).is_err());
    }
}
