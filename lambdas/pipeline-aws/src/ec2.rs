//! EC2 calls.

use std::collections::HashMap;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Filter;
use pipeline_core::{InstanceId, InstanceState, PipelineError};

/// EC2 accepts at most 200 values in one filter.
const FILTER_VALUES_PER_CALL: usize = 200;

/// The state of each instance, in the order asked, with `missing` for IDs EC2 does not know.
///
/// It filters on `instance-id` instead of passing `InstanceIds`: with `InstanceIds`, one unknown
/// ID fails the whole call (`InvalidInstanceID.NotFound`), and an empty list would describe
/// every instance in the account. Results are paginated.
pub async fn describe_instance_states(
    ec2: &Client,
    instances: &[InstanceId],
) -> Result<Vec<(InstanceId, InstanceState)>, PipelineError> {
    let mut known: HashMap<String, InstanceState> = HashMap::new();
    for chunk in instances.chunks(FILTER_VALUES_PER_CALL) {
        let filter = Filter::builder()
            .name("instance-id")
            .set_values(Some(chunk.iter().map(|id| id.to_string()).collect()))
            .build();
        let mut pages = ec2.describe_instances().filters(filter).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| crate::service_error("EC2 DescribeInstances", error))?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                if let (Some(id), Some(state)) = (instance.instance_id(), instance.state().and_then(|s| s.name())) {
                    known.insert(id.to_string(), InstanceState::named(state.as_str()));
                }
            }
        }
    }
    Ok(instances
        .iter()
        .map(|id| {
            (
                id.clone(),
                known.get(id.as_str()).cloned().unwrap_or_else(InstanceState::missing),
            )
        })
        .collect())
}

/// Asks EC2 to terminate these instances (which must exist). Returns each one's new state.
pub async fn terminate_instances(
    ec2: &Client,
    instances: &[InstanceId],
) -> Result<Vec<(InstanceId, InstanceState)>, PipelineError> {
    let mut states = Vec::with_capacity(instances.len());
    // TerminateInstances takes up to 1000 IDs; stay well below with the describe chunk size.
    for chunk in instances.chunks(FILTER_VALUES_PER_CALL) {
        let output = ec2
            .terminate_instances()
            .set_instance_ids(Some(chunk.iter().map(|id| id.to_string()).collect()))
            .send()
            .await
            .map_err(|error| crate::service_error("EC2 TerminateInstances", error))?;
        for change in output.terminating_instances() {
            let id = change.instance_id().and_then(|id| id.parse().ok());
            if let (Some(id), Some(state)) = (id, change.current_state().and_then(|s| s.name())) {
                states.push((id, InstanceState::named(state.as_str())));
            }
        }
    }
    Ok(states)
}
