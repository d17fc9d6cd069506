//! `hhvm-publish-single-release`: starts one `hhvm-publish-release` execution for `version` and
//! sets `stepFunctionExecutions: [arn]` (replacing the build's list, so the parent then polls the
//! publish). The child input keeps the packaging branch and distros, which the original dropped;
//! its name is derived from the parent's `executionName`, so a retry never publishes twice.

use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::executions::{ChildRole, plan_child_execution};
use pipeline_core::{Payload, PipelineError};
use serde_json::Value;

pub async fn handle(
    sfn: &aws_sdk_sfn::Client,
    publish_state_machine_arn: &str,
    event: Value,
) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let planned = plan_child_execution(&payload, ChildRole::Publish)?;
    let arn =
        pipeline_aws::sfn::start_execution_once(sfn, publish_state_machine_arn, &planned.name, &planned.input).await?;
    tracing::info!(%arn, "publish execution started");
    payload.set("stepFunctionExecutions", [arn]);
    Ok(payload.into_value())
}

/// The deployed function: `handle` with its client and the machine it starts.
pub struct PublishSingleRelease {
    sfn: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl Function for PublishSingleRelease {
    const NAME: &'static str = "hhvm-publish-single-release";
    /// `PUBLISH_STATE_MACHINE_ARN`.
    type Config = String;

    fn configuration(source: &impl Source) -> Result<String, PipelineError> {
        pipeline_aws::config::state_machine_arn(source, "PUBLISH_STATE_MACHINE_ARN", "hhvm-publish-release")
    }

    fn new(state_machine_arn: String, sdk_config: &SdkConfig) -> Self {
        PublishSingleRelease {
            sfn: aws_sdk_sfn::Client::new(sdk_config),
            state_machine_arn,
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.sfn, &self.state_machine_arn, event).await
    }
}
