//! `hhvm-start-multiple-builds`: starts one `hhvm-build` execution per entry of `versions` and
//! adds `stepFunctionExecutions` (ARNs in the order of `versions`). Every version is validated
//! before the first execution starts, so bad input starts nothing; names are derived from the
//! parent's `executionName`, so a retry after a partial failure starts only what is missing.
//! The first step of `hhvm-build-and-publish-multi`: it refuses the fields the pipeline
//! reserves for itself and validates everything later steps read.

use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::approval::approval_required;
use pipeline_core::executions::{ChildRole, ExecutionName, PlannedExecution, plan_child_execution_for};
use pipeline_core::payload::string_element;
use pipeline_core::polling::fill_poll_settings;
use pipeline_core::{Payload, PipelineError, Version};
use serde_json::Value;

pub fn plan(payload: &Payload) -> Result<Vec<PlannedExecution>, PipelineError> {
    payload.refuse_reserved_fields()?;
    payload.optional::<bool>("continueOnFailure", "a boolean")?;
    let parent = ExecutionName::read(payload)?;
    let texts = payload.required_array("versions", "versions (YYYY.MM.DD or x.y.z)", string_element)?;
    let versions = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            text.parse::<Version>()
                .map_err(|e| e.in_field(&format!("versions[{index}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if versions.is_empty() {
        return Err(PipelineError::invalid_input(
            "versions",
            "is empty; name at least one version",
        ));
    }
    if let Some(index) = (1..versions.len()).find(|&i| versions[..i].contains(&versions[i])) {
        return Err(PipelineError::invalid_input(
            format!("versions[{index}]"),
            format!("{} is listed twice", versions[index]),
        ));
    }
    // The release gate's `requireApproval` goes to every publish: a nightly may not ask for it.
    for version in &versions {
        approval_required(payload, version, false)?;
    }
    versions
        .iter()
        .map(|version| plan_child_execution_for(payload, ChildRole::Build, version, &parent))
        .collect()
}

pub async fn handle(
    sfn: &aws_sdk_sfn::Client,
    build_state_machine_arn: &str,
    event: Value,
) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    // The first step of the multi-release machine: the poll settings it and its children use.
    fill_poll_settings(&mut payload)?;
    let planned = plan(&payload)?;
    let mut arns = Vec::with_capacity(planned.len());
    for execution in &planned {
        let arn =
            pipeline_aws::sfn::start_execution_once(sfn, build_state_machine_arn, &execution.name, &execution.input)
                .await?;
        tracing::info!(%arn, "build execution started");
        arns.push(arn);
    }
    payload.set("stepFunctionExecutions", arns);
    Ok(payload.into_value())
}

/// The deployed function: `handle` with its client and the machine it starts.
pub struct StartMultipleBuilds {
    sfn: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl Function for StartMultipleBuilds {
    const NAME: &'static str = "hhvm-start-multiple-builds";
    /// `BUILD_STATE_MACHINE_ARN`.
    type Config = String;

    fn configuration(source: &impl Source) -> Result<String, PipelineError> {
        pipeline_aws::config::state_machine_arn(source, "BUILD_STATE_MACHINE_ARN", "hhvm-build")
    }

    fn new(state_machine_arn: String, sdk_config: &SdkConfig) -> Self {
        StartMultipleBuilds {
            sfn: aws_sdk_sfn::Client::new(sdk_config),
            state_machine_arn,
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.sfn, &self.state_machine_arn, event).await
    }
}
