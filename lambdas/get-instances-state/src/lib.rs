//! `get-instances-state`: reports the EC2 state of each of `instances` in `instanceStates`
//! (ID → state name, `missing` for IDs EC2 no longer knows), whether all of them are done in
//! `allInstancesFinished` (only `pending` and `running` are unfinished), and in
//! `interruptedInstances` those that finished because EC2 reclaimed their spot capacity (state
//! reason `Server.SpotInstanceTermination`; an empty array when none was): their work was cut
//! short, and `hhvm-build` rebuilds those distros on on-demand capacity. An empty list
//! describes nothing and is finished.
//!
//! EC2 is eventually consistent: right after a launch, DescribeInstances may not list the
//! instance yet. So in a machine's poll loop (the payload's `poll.count`), a `missing` instance
//! counts as unfinished for the loop's first `MISSING_GRACE_POLLS` polls; after that it is gone
//! (EC2 lists a terminated instance for about an hour). A hand invocation has no `poll`.

use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::instance::{DescribedInstance, read_instance_ids, reported_state};
use pipeline_core::{InstanceId, InstanceState, Payload, PipelineError};
use serde_json::{Map, Value};

/// Polls of a loop during which an instance EC2 does not list yet is taken to be starting.
pub const MISSING_GRACE_POLLS: u64 = 3;

/// The output fields for these states at poll `poll_count` of a loop (`None` by hand): the
/// ID → state map and whether all are finished.
pub fn summarize(states: &[(InstanceId, InstanceState)], poll_count: Option<u64>) -> (Map<String, Value>, bool) {
    let map = states
        .iter()
        .map(|(id, state)| (id.to_string(), Value::String(state.as_str().to_string())))
        .collect();
    let within_grace = poll_count.is_some_and(|count| count < MISSING_GRACE_POLLS);
    let finished =
        |state: &InstanceState| state.is_finished() && !(within_grace && state.as_str() == InstanceState::MISSING);
    (map, states.iter().all(|(_, state)| finished(state)))
}

/// The instances among `described` that finished with a spot interruption, in the order asked
/// (each once).
pub fn interrupted_instances(described: &[(InstanceId, Option<DescribedInstance>)]) -> Vec<InstanceId> {
    let mut interrupted: Vec<InstanceId> = Vec::new();
    for (id, instance) in described {
        if instance.as_ref().is_some_and(DescribedInstance::was_interrupted) && !interrupted.contains(id) {
            interrupted.push(id.clone());
        }
    }
    interrupted
}

/// The loop's poll counter, `poll.count`, when the payload has one.
fn poll_count(payload: &Payload) -> Result<Option<u64>, PipelineError> {
    match payload.get("poll") {
        None | Some(Value::Null) => Ok(None),
        Some(poll) => poll
            .get("count")
            .and_then(Value::as_u64)
            .map(Some)
            .ok_or_else(|| PipelineError::invalid_input("poll", "expected {\"count\": a whole number}")),
    }
}

pub async fn handle(ec2: &aws_sdk_ec2::Client, event: Value) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let instances = read_instance_ids(&payload, "instances")?;
    let poll_count = poll_count(&payload)?;
    let described = if instances.is_empty() {
        Vec::new()
    } else {
        pipeline_aws::ec2::describe_instances_as_asked(ec2, &instances).await?
    };
    let states: Vec<(InstanceId, InstanceState)> = described
        .iter()
        .map(|(id, instance)| (id.clone(), reported_state(instance.as_ref())))
        .collect();
    let (instance_states, all_finished) = summarize(&states, poll_count);
    let interrupted = interrupted_instances(&described);
    let unfinished = states.iter().filter(|(_, state)| !state.is_finished()).count();
    tracing::info!(
        instances = states.len(),
        unfinished,
        all_finished,
        interrupted = interrupted.len(),
        "described instances"
    );
    for id in &interrupted {
        tracing::warn!(%id, "the instance was interrupted: EC2 reclaimed its spot capacity");
    }

    payload.set("instanceStates", instance_states);
    payload.set("allInstancesFinished", all_finished);
    payload.set("interruptedInstances", interrupted);
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
        let (map, finished) = summarize(
            &[state("i-00000001", "terminated"), state("i-00000002", "running")],
            None,
        );
        assert!(!finished);
        assert_eq!(map["i-00000002"], "running");
        let (_, finished) = summarize(&[state("i-00000001", "stopped"), state("i-00000002", "missing")], None);
        assert!(finished);
    }

    fn described(id: &str, state: &str, reason: Option<&str>) -> (InstanceId, Option<DescribedInstance>) {
        let instance = DescribedInstance {
            id: id.parse().unwrap(),
            state: InstanceState::named(state),
            state_reason: reason.map(str::to_string),
            tags: Vec::new(),
            launched_at: None,
        };
        (instance.id.clone(), Some(instance))
    }

    #[test]
    fn only_instances_ended_by_a_spot_reclaim_are_interrupted() {
        let spot = Some(pipeline_core::instance::SPOT_INTERRUPTION);
        let described = [
            described("i-00000001", "terminated", Some("Client.UserInitiatedShutdown")),
            described("i-00000002", "terminated", spot),
            (("i-00000003").parse().unwrap(), None),
            described("i-00000004", "running", None),
            described("i-00000005", "shutting-down", spot),
            described("i-00000002", "terminated", spot),
        ];
        let ids: Vec<String> = interrupted_instances(&described)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ids, ["i-00000002", "i-00000005"], "in the order asked, each once");
        assert!(interrupted_instances(&[]).is_empty());
    }

    #[test]
    fn nothing_to_wait_for_is_finished() {
        let (map, finished) = summarize(&[], Some(0));
        assert!(map.is_empty());
        assert!(finished);
    }

    #[test]
    fn an_instance_ec2_does_not_list_yet_is_starting_for_the_first_polls() {
        let states = [state("i-00000001", "missing")];
        for count in 0..MISSING_GRACE_POLLS {
            assert!(!summarize(&states, Some(count)).1, "poll {count}");
        }
        assert!(summarize(&states, Some(MISSING_GRACE_POLLS)).1);
        // A terminated one is finished from the first poll.
        assert!(summarize(&[state("i-00000001", "terminated")], Some(0)).1);
    }
}
