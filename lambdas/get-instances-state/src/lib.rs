//! `get-instances-state`: reports the EC2 state of each of `instances` in `instanceStates`
//! (ID → state name, `missing` for IDs EC2 no longer knows) and whether all of them are done in
//! `allInstancesFinished` (only `pending` and `running` are unfinished). An empty list
//! describes nothing and is finished.

use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::instance::read_instance_ids;
use pipeline_core::{InstanceId, InstanceState, Payload, PipelineError};
use serde_json::{Map, Value};

/// The output fields for these states: the ID → state map and whether all are finished.
pub fn summarize(states: &[(InstanceId, InstanceState)]) -> (Map<String, Value>, bool) {
    let map = states
        .iter()
        .map(|(id, state)| (id.to_string(), Value::String(state.as_str().to_string())))
        .collect();
    (map, states.iter().all(|(_, state)| state.is_finished()))
}

pub async fn handle(ec2: &aws_sdk_ec2::Client, event: Value) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let instances = read_instance_ids(&payload, "instances")?;
    let states = if instances.is_empty() {
        Vec::new()
    } else {
        pipeline_aws::ec2::describe_instance_states(ec2, &instances).await?
    };
    let (instance_states, all_finished) = summarize(&states);
    let unfinished = states.iter().filter(|(_, state)| !state.is_finished()).count();
    tracing::info!(
        instances = states.len(),
        unfinished,
        all_finished,
        "described instances"
    );

    payload.set("instanceStates", instance_states);
    payload.set("allInstancesFinished", all_finished);
    Ok(payload.into_value())
}

/// The deployed function: `handle` with its client.
pub struct GetInstancesState {
    ec2: aws_sdk_ec2::Client,
}

impl Function for GetInstancesState {
    const NAME: &'static str = "get-instances-state";
    type Config = ();

    fn configuration(_: &impl Source) -> Result<(), PipelineError> {
        Ok(())
    }

    fn new(_: (), sdk_config: &SdkConfig) -> Self {
        GetInstancesState {
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
    fn any_pending_or_running_instance_is_unfinished() {
        let (map, finished) = summarize(&[state("i-00000001", "terminated"), state("i-00000002", "running")]);
        assert!(!finished);
        assert_eq!(map["i-00000002"], "running");
        let (_, finished) = summarize(&[state("i-00000001", "stopped"), state("i-00000002", "missing")]);
        assert!(finished);
    }

    #[test]
    fn nothing_to_wait_for_is_finished() {
        let (map, finished) = summarize(&[]);
        assert!(map.is_empty());
        assert!(finished);
    }
}
