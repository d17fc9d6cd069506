//! The deployed pipeline, found through its CloudFormation stack: the template's outputs name
//! every state machine (`…StateMachineArn`) and function (`…FunctionName`) and the buckets, and
//! its `NamePrefix` parameter says what to strip to get the names operators use
//! (`hhvm-build`, `hhvm-get-build-version`). Nothing is assumed of the account or region.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;

use crate::error::{CliError, CliResult};

/// What the commands need of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub stack: String,
    /// The stack's `NamePrefix` ("" in production, "staging-" for a second stack).
    pub name_prefix: String,
    /// Machine name without the prefix → ARN.
    pub machines: BTreeMap<String, String>,
    /// Function name without the prefix → deployed name.
    pub functions: BTreeMap<String, String>,
    /// The private bucket of markers and worker logs (`ScratchBucketName`).
    pub scratch_bucket: Option<String>,
    /// The stack's `CurrentTargetsUrl` parameter (`{branch}` in it): where the packaging
    /// repository's files are read.
    pub current_targets_url: Option<String>,
}

impl Deployment {
    /// The deployment described by a stack's parameters and outputs (key, value).
    pub fn from_stack(stack: &str, parameters: &[(String, String)], outputs: &[(String, String)]) -> Deployment {
        let parameter = |name: &str| {
            parameters
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let name_prefix = parameter("NamePrefix").unwrap_or_default();
        let unprefixed = |name: &str| name.strip_prefix(name_prefix.as_str()).unwrap_or(name).to_string();
        let mut machines = BTreeMap::new();
        let mut functions = BTreeMap::new();
        let mut scratch_bucket = None;
        for (key, value) in outputs {
            if key.ends_with("StateMachineArn") {
                let name = value.rsplit(':').next().unwrap_or(value);
                machines.insert(unprefixed(name), value.clone());
            } else if key.ends_with("FunctionName") {
                functions.insert(unprefixed(value), value.clone());
            } else if key == "ScratchBucketName" {
                scratch_bucket = Some(value.clone());
            }
        }
        Deployment {
            stack: stack.to_string(),
            name_prefix,
            machines,
            functions,
            scratch_bucket,
            current_targets_url: parameter("CurrentTargetsUrl"),
        }
    }

    /// The ARN of machine `name` (`hhvm-build`, …).
    pub fn machine(&self, name: &str) -> CliResult<&str> {
        self.machines.get(name).map(String::as_str).ok_or_else(|| {
            CliError::NotFound(format!(
                "stack {} has no state machine {name} (it has {}); is it a stack of this pipeline?",
                self.stack,
                self.machines.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The deployed name of function `name`, given with or without the stack's prefix.
    pub fn function(&self, name: &str) -> CliResult<&str> {
        let unprefixed = name.strip_prefix(self.name_prefix.as_str()).unwrap_or(name);
        self.functions.get(unprefixed).map(String::as_str).ok_or_else(|| {
            CliError::NotFound(format!(
                "stack {} has no function {name}; its functions: {}",
                self.stack,
                self.functions.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The scratch bucket, which the stack always names.
    pub fn scratch_bucket(&self) -> CliResult<&str> {
        self.scratch_bucket
            .as_deref()
            .ok_or_else(|| CliError::NotFound(format!("stack {} has no ScratchBucketName output", self.stack)))
    }

    /// The machine an execution ARN belongs to (its name without the prefix), when it is one of
    /// this stack's.
    pub fn machine_of_execution(&self, execution_arn: &str) -> Option<&str> {
        self.machines.iter().find_map(|(name, arn)| {
            let machine_prefix = pipeline_aws::sfn::execution_arn(arn, "")?;
            execution_arn.starts_with(&machine_prefix).then_some(name.as_str())
        })
    }
}

/// Reads the stack's parameters and outputs (`DescribeStacks`).
pub async fn discover(cloudformation: &Client, stack: &str) -> CliResult<Deployment> {
    let described = cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|error| {
            let text = aws_smithy_types::error::display::DisplayErrorContext(&error).to_string();
            if text.contains("does not exist") {
                CliError::NotFound(format!(
                    "stack {stack} does not exist here; give the pipeline's stack with --stack or HHVM_PIPELINE_STACK"
                ))
            } else {
                CliError::aws("CloudFormation DescribeStacks", error)
            }
        })?;
    let Some(found) = described.stacks().first() else {
        return Err(CliError::NotFound(format!("stack {stack} does not exist here")));
    };
    let parameters: Vec<(String, String)> = found
        .parameters()
        .iter()
        .filter_map(|p| Some((p.parameter_key()?.to_string(), p.parameter_value()?.to_string())))
        .collect();
    let outputs: Vec<(String, String)> = found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect();
    Ok(Deployment::from_stack(stack, &parameters, &outputs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn staging() -> Deployment {
        Deployment::from_stack(
            "staging-pipeline",
            &pairs(&[
                ("NamePrefix", "staging-"),
                ("WorkerAmiId", "ami-1"),
                ("CurrentTargetsUrl", "https://example.test/{branch}/CURRENT_TARGETS"),
            ]),
            &pairs(&[
                (
                    "BuildStateMachineArn",
                    "arn:aws:states:eu-west-1:210987654321:stateMachine:staging-hhvm-build",
                ),
                ("GetBuildVersionFunctionName", "staging-hhvm-get-build-version"),
                ("ShiftVersionFunctionName", "staging-shift-version"),
                ("ScratchBucketName", "staging-scratch"),
                (
                    "NotificationTopicArn",
                    "arn:aws:sns:eu-west-1:210987654321:staging-hhvm",
                ),
            ]),
        )
    }

    #[test]
    fn names_are_the_templates_without_the_stacks_prefix() {
        let deployment = staging();
        assert_eq!(
            deployment.machine("hhvm-build").unwrap(),
            "arn:aws:states:eu-west-1:210987654321:stateMachine:staging-hhvm-build"
        );
        assert_eq!(
            deployment.function("hhvm-get-build-version").unwrap(),
            "staging-hhvm-get-build-version"
        );
        assert_eq!(
            deployment.function("staging-shift-version").unwrap(),
            "staging-shift-version"
        );
        assert_eq!(deployment.scratch_bucket().unwrap(), "staging-scratch");
        assert_eq!(
            deployment.current_targets_url.as_deref(),
            Some("https://example.test/{branch}/CURRENT_TARGETS")
        );
        assert_eq!(
            deployment.machine_of_execution("arn:aws:states:eu-west-1:210987654321:execution:staging-hhvm-build:x"),
            Some("hhvm-build")
        );
        assert_eq!(
            deployment.machine_of_execution("arn:aws:states:eu-west-1:1:execution:other:x"),
            None
        );
    }

    #[test]
    fn what_the_stack_lacks_is_named_with_what_it_has() {
        let deployment = staging();
        let error = deployment.machine("hhvm-publish-release").unwrap_err();
        assert!(matches!(error, CliError::NotFound(_)));
        assert!(error.to_string().contains("it has hhvm-build"), "{error}");
        let error = deployment.function("hhvm-nope").unwrap_err();
        assert!(
            error.to_string().contains("hhvm-get-build-version, shift-version"),
            "{error}"
        );
    }
}
