//! `hhvm-start-single-build`: starts one `hhvm-build` execution for `version` and adds
//! `stepFunctionExecutions: [arn]` to the pass-through payload. The child's name is derived
//! from the parent's `executionName`, so a retried call finds the execution the first attempt
//! started instead of starting a second build.

use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::executions::{ChildRole, plan_child_execution};
use pipeline_core::{Payload, PipelineError};
use serde_json::Value;

pub async fn handle(
    sfn: &aws_sdk_sfn::Client,
    build_state_machine_arn: &str,
    event: Value,
) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let planned = plan_child_execution(&payload, ChildRole::Build)?;
    let arn =
        pipeline_aws::sfn::start_execution_once(sfn, build_state_machine_arn, &planned.name, &planned.input).await?;
    tracing::info!(%arn, "build execution started");
    payload.set("stepFunctionExecutions", [arn]);
    Ok(payload.into_value())
}

/// The deployed function: `handle` with its client and the machine it starts.
pub struct StartSingleBuild {
    sfn: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl Function for StartSingleBuild {
    const NAME: &'static str = "hhvm-start-single-build";
    /// `BUILD_STATE_MACHINE_ARN`.
    type Config = String;

    fn configuration(source: &impl Source) -> Result<String, PipelineError> {
        pipeline_aws::config::state_machine_arn(source, "BUILD_STATE_MACHINE_ARN", "hhvm-build")
    }

    fn new(state_machine_arn: String, sdk_config: &SdkConfig) -> Self {
        StartSingleBuild {
            sfn: aws_sdk_sfn::Client::new(sdk_config),
            state_machine_arn,
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.sfn, &self.state_machine_arn, event).await
    }
}
