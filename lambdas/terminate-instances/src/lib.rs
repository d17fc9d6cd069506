//! `terminate-instances`: terminates the EC2 instances listed in `instances` and adds
//! `terminatedInstances` (those it asked EC2 to terminate). Safe to repeat: an empty list makes
//! no AWS call, and instances that are already terminated or that EC2 no longer knows are
//! skipped instead of failing the call.

use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::instance::read_instance_ids;
use pipeline_core::{InstanceId, InstanceState, Payload, PipelineError};
use serde_json::Value;

/// The instances that still need a terminate call, in the order given, without duplicates.
pub fn instances_to_terminate(states: &[(InstanceId, InstanceState)]) -> Vec<InstanceId> {
    let mut seen = std::collections::HashSet::new();
    states
        .iter()
        .filter(|(_, state)| !matches!(state.as_str(), "terminated" | InstanceState::MISSING))
        .filter(|(id, _)| seen.insert(id.clone()))
        .map(|(id, _)| id.clone())
        .collect()
}

pub async fn handle(ec2: &aws_sdk_ec2::Client, event: Value) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let instances = read_instance_ids(&payload, "instances")?;
    let to_terminate = if instances.is_empty() {
        Vec::new()
    } else {
        instances_to_terminate(&pipeline_aws::ec2::describe_instance_states(ec2, &instances).await?)
    };
    if !to_terminate.is_empty() {
        pipeline_aws::ec2::terminate_instances(ec2, &to_terminate).await?;
    }
    tracing::info!(
        requested = instances.len(),
        terminated = to_terminate.len(),
        skipped = instances.len() - to_terminate.len(),
        "terminated instances"
    );
    payload.set("terminatedInstances", &to_terminate);
    Ok(payload.into_value())
}

/// The deployed function: `handle` with its client.
pub struct TerminateInstances {
    ec2: aws_sdk_ec2::Client,
}

impl Function for TerminateInstances {
    const NAME: &'static str = "terminate-instances";
    type Config = ();

    fn configuration(_: &impl Source) -> Result<(), PipelineError> {
        Ok(())
    }

    fn new(_: (), sdk_config: &SdkConfig) -> Self {
        TerminateInstances {
            ec2: pipeline_aws::ec2_client(sdk_config),
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.ec2, event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, name: &str) -> (InstanceId, InstanceState) {
        (id.parse().unwrap(), InstanceState::named(name))
    }

    #[test]
    fn terminated_and_missing_instances_are_skipped() {
        let states = [
            state("i-00000001", "running"),
            state("i-00000002", "terminated"),
            state("i-00000003", "missing"),
            state("i-00000004", "stopped"),
            state("i-00000005", "shutting-down"),
            state("i-00000001", "running"),
        ];
        let ids: Vec<String> = instances_to_terminate(&states)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ids, ["i-00000001", "i-00000004", "i-00000005"]);
    }
}
