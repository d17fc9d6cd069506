//! EC2 calls.

use std::collections::HashMap;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Filter;
use pipeline_core::executions::ExecutionName;
use pipeline_core::instance::{DescribedInstance, reported_state};
use pipeline_core::launch::{EXECUTION_TAG, JOB_KIND_TAG, PipelineStack, STACK_TAG};
use pipeline_core::layout::JobKind;
use pipeline_core::{InstanceId, InstanceState, PipelineError};

/// EC2 accepts at most 200 values in one filter.
const FILTER_VALUES_PER_CALL: usize = 200;

/// The state of each instance, in the order asked, with `missing` for IDs EC2 does not know.
pub async fn describe_instance_states(
    ec2: &Client,
    instances: &[InstanceId],
) -> Result<Vec<(InstanceId, InstanceState)>, PipelineError> {
    Ok(describe_instances_as_asked(ec2, instances)
        .await?
        .into_iter()
        .map(|(id, described)| {
            let state = reported_state(described.as_ref());
            (id, state)
        })
        .collect())
}

/// Each of `instances` as EC2 describes it, in the order asked; `None` for an ID EC2 does not
/// know (any more).
pub async fn describe_instances_as_asked(
    ec2: &Client,
    instances: &[InstanceId],
) -> Result<Vec<(InstanceId, Option<DescribedInstance>)>, PipelineError> {
    let known: HashMap<InstanceId, DescribedInstance> = describe_instances_by_id(ec2, instances)
        .await?
        .into_iter()
        .map(|instance| (instance.id.clone(), instance))
        .collect();
    Ok(instances
        .iter()
        .map(|id| {
            // An ID asked twice is described twice.
            let described = known.get(id).cloned();
            (id.clone(), described)
        })
        .collect())
}

/// The instances EC2 knows among `instances` (unknown IDs are left out).
///
/// It filters on `instance-id` instead of passing `InstanceIds`: with `InstanceIds`, one unknown
/// ID fails the whole call (`InvalidInstanceID.NotFound`), and an empty list would describe
/// every instance in the account.
pub async fn describe_instances_by_id(
    ec2: &Client,
    instances: &[InstanceId],
) -> Result<Vec<DescribedInstance>, PipelineError> {
    let mut found = Vec::new();
    for chunk in instances.chunks(FILTER_VALUES_PER_CALL) {
        let filter = Filter::builder()
            .name("instance-id")
            .set_values(Some(chunk.iter().map(|id| id.to_string()).collect()))
            .build();
        found.extend(describe_workers(ec2, vec![filter]).await?);
    }
    Ok(found)
}

/// The workers of `stack` of one execution (by their `Execution` tag), in any state.
pub async fn describe_execution_workers(
    ec2: &Client,
    stack: &PipelineStack,
    execution: &ExecutionName,
) -> Result<Vec<DescribedInstance>, PipelineError> {
    let by_execution = Filter::builder()
        .name(format!("tag:{EXECUTION_TAG}"))
        .values(execution.as_str())
        .build();
    let mut filters = workers_of(stack);
    filters.push(by_execution);
    describe_workers(ec2, filters).await
}

/// Instances tagged with one of the pipeline's job kinds and with `stack`: the workers of this
/// deployment and nothing else (`DescribedInstance::is_worker_of`).
fn workers_of(stack: &PipelineStack) -> Vec<Filter> {
    vec![
        Filter::builder()
            .name(format!("tag:{JOB_KIND_TAG}"))
            .set_values(Some(JobKind::ALL.iter().map(ToString::to_string).collect()))
            .build(),
        Filter::builder()
            .name(format!("tag:{STACK_TAG}"))
            .values(stack.as_str())
            .build(),
    ]
}

/// Every worker of `stack` that is not terminated yet (for the sweep).
pub async fn describe_live_workers(
    ec2: &Client,
    stack: &PipelineStack,
) -> Result<Vec<DescribedInstance>, PipelineError> {
    let live = Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            ["pending", "running", "stopping", "stopped"]
                .iter()
                .map(ToString::to_string)
                .collect(),
        ))
        .build();
    let mut filters = workers_of(stack);
    filters.push(live);
    describe_workers(ec2, filters).await
}

/// Every instance matching all `filters`, with state, state reason, tags and launch time
/// (paginated).
pub async fn describe_workers(ec2: &Client, filters: Vec<Filter>) -> Result<Vec<DescribedInstance>, PipelineError> {
    let mut pages = ec2
        .describe_instances()
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|error| crate::service_error("EC2 DescribeInstances", error))?;
        for instance in page.reservations().iter().flat_map(|r| r.instances()) {
            let (Some(id), Some(state)) = (instance.instance_id(), instance.state().and_then(|s| s.name())) else {
                continue;
            };
            // An ID EC2 itself answered with is well formed; skip rather than fail on one that
            // is not, since no action on it could succeed.
            let Ok(id) = id.parse::<InstanceId>() else {
                tracing::warn!(id, "EC2 answered with an instance ID of an unknown form; skipped");
                continue;
            };
            let tags = instance
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_string(), tag.value()?.to_string())))
                .collect();
            found.push(DescribedInstance {
                id,
                state: InstanceState::named(state.as_str()),
                // EC2 answers an empty code for an instance with nothing to report.
                state_reason: instance
                    .state_reason()
                    .and_then(|reason| reason.code())
                    .filter(|code| !code.is_empty())
                    .map(str::to_string),
                tags,
                launched_at: instance.launch_time().map(|time| time.secs()),
            });
        }
    }
    Ok(found)
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
