//! `terminate-instances`: terminates an execution's workers and adds `terminatedInstances`
//! (those it asked EC2 to terminate).
//!
//! Workers are found by ownership, not by what the payload lists: every worker of this
//! deployment (its `PipelineStack` tag, `PIPELINE_STACK`) and of the `executionName` (its
//! `Execution` tag), so one whose launcher timed out after starting it is found too.
//! `instances`, when given, adds instances to terminate by ID, and each must be a worker of
//! this deployment (a `JobKind` tag of the pipeline's job kinds and this `PipelineStack`) — of
//! the `executionName` when one is given — or the whole call is refused and nothing is
//! terminated; IAM grants no more either. Safe to repeat: instances that are already
//! terminated or that EC2 no longer knows are skipped.

use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::executions::ExecutionName;
use pipeline_core::instance::{DescribedInstance, read_instance_ids};
use pipeline_core::launch::{EXECUTION_TAG, PipelineStack};
use pipeline_core::{InstanceId, Payload, PipelineError};
use serde_json::Value;

/// What to terminate: the `listed` instances (which must all be workers of `stack`, and of
/// `execution` when there is one; in the order given) and the execution's `owned` workers,
/// each once, leaving out those already gone. `described` is what EC2 said of the listed ones;
/// an ID it does not know is skipped.
pub fn instances_to_terminate(
    stack: &PipelineStack,
    execution: Option<&ExecutionName>,
    listed: &[InstanceId],
    described: &[DescribedInstance],
    owned: &[DescribedInstance],
) -> Result<Vec<InstanceId>, PipelineError> {
    let mut chosen: Vec<&DescribedInstance> = Vec::new();
    for (index, id) in listed.iter().enumerate() {
        let Some(instance) = described.iter().find(|instance| &instance.id == id) else {
            continue;
        };
        if !instance.is_worker_of(stack) {
            return Err(PipelineError::invalid_input(
                format!("instances[{index}]"),
                format!(
                    "{id} is not a pipeline worker of stack {stack} (it lacks a JobKind tag of the pipeline or PipelineStack={stack}); nothing was terminated"
                ),
            ));
        }
        if let Some(execution) = execution
            && instance.tag(EXECUTION_TAG) != Some(execution.as_str())
        {
            return Err(PipelineError::invalid_input(
                format!("instances[{index}]"),
                format!(
                    "{id} is a worker of execution {:?}, not of {execution}; nothing was terminated",
                    instance.tag(EXECUTION_TAG).unwrap_or("(none)")
                ),
            ));
        }
        chosen.push(instance);
    }
    chosen.extend(owned.iter().filter(|instance| instance.is_worker_of(stack)));
    let mut seen = std::collections::HashSet::new();
    Ok(chosen
        .into_iter()
        .filter(|instance| !instance.is_gone())
        .filter(|instance| seen.insert(instance.id.clone()))
        .map(|instance| instance.id.clone())
        .collect())
}

pub async fn handle(ec2: &aws_sdk_ec2::Client, stack: &PipelineStack, event: Value) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let execution = ExecutionName::optional(&payload)?;
    let listed = match payload.get("instances") {
        None | Some(Value::Null) if execution.is_none() => {
            return Err(PipelineError::invalid_input(
                "instances",
                "missing; give the instances to terminate, or the executionName whose workers to terminate",
            ));
        }
        None | Some(Value::Null) => Vec::new(),
        Some(_) => read_instance_ids(&payload, "instances")?,
    };
    let described = if listed.is_empty() {
        Vec::new()
    } else {
        pipeline_aws::ec2::describe_instances_by_id(ec2, &listed).await?
    };
    let owned = match &execution {
        Some(execution) => pipeline_aws::ec2::describe_execution_workers(ec2, stack, execution).await?,
        None => Vec::new(),
    };
    let to_terminate = instances_to_terminate(stack, execution.as_ref(), &listed, &described, &owned)?;
    if !to_terminate.is_empty() {
        pipeline_aws::ec2::terminate_instances(ec2, &to_terminate).await?;
    }
    tracing::info!(
        execution = execution.as_ref().map(ExecutionName::as_str),
        listed = listed.len(),
        owned = owned.len(),
        terminated = to_terminate.len(),
        "terminated instances"
    );
    payload.set("terminatedInstances", &to_terminate);
    Ok(payload.into_value())
}

/// The deployed function: `handle` with its client and deployment.
pub struct TerminateInstances {
    ec2: aws_sdk_ec2::Client,
    stack: PipelineStack,
}

impl Function for TerminateInstances {
    const NAME: &'static str = "terminate-instances";
    type Config = PipelineStack;

    fn configuration(source: &impl Source) -> Result<PipelineStack, PipelineError> {
        pipeline_aws::config::pipeline_stack(source)
    }

    fn new(stack: PipelineStack, sdk_config: &SdkConfig) -> Self {
        TerminateInstances {
            ec2: pipeline_aws::ec2_client(sdk_config),
            stack,
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.ec2, &self.stack, event).await
    }
}

#[cfg(test)]
mod tests {
    use pipeline_core::InstanceState;

    use super::*;

    fn stack() -> PipelineStack {
        "hhvm-pipeline".parse().unwrap()
    }

    fn instance(id: &str, state: &str, job: Option<&str>) -> DescribedInstance {
        instance_of("hhvm-pipeline", id, state, job)
    }

    fn instance_of(stack: &str, id: &str, state: &str, job: Option<&str>) -> DescribedInstance {
        let mut tags = vec![
            ("Execution".to_string(), "run-1".to_string()),
            ("PipelineStack".to_string(), stack.to_string()),
        ];
        tags.extend(job.map(|job| ("JobKind".to_string(), job.to_string())));
        DescribedInstance {
            id: id.parse().unwrap(),
            state: InstanceState::named(state),
            state_reason: None,
            tags,
            launched_at: None,
        }
    }

    fn ids(list: &[&str]) -> Vec<InstanceId> {
        list.iter().map(|id| id.parse().unwrap()).collect()
    }

    #[test]
    fn listed_and_owned_workers_once_each_skipping_the_gone() {
        let described = [
            instance("i-00000001", "running", Some("binary-package")),
            instance("i-00000002", "terminated", Some("binary-package")),
            instance("i-00000004", "stopped", Some("source-tarball")),
        ];
        let owned = [
            instance("i-00000001", "running", Some("binary-package")),
            instance("i-00000005", "shutting-down", Some("update-repositories")),
        ];
        let chosen = instances_to_terminate(
            &stack(),
            Some(&"run-1".parse().unwrap()),
            &ids(&["i-00000001", "i-00000002", "i-00000003", "i-00000004"]),
            &described,
            &owned,
        )
        .unwrap();
        assert_eq!(chosen, ids(&["i-00000001", "i-00000004", "i-00000005"]));
    }

    #[test]
    fn with_an_execution_only_its_own_workers_may_be_listed() {
        let described = [instance("i-00000001", "running", Some("binary-package"))];
        let error = instances_to_terminate(
            &stack(),
            Some(&"run-2".parse().unwrap()),
            &ids(&["i-00000001"]),
            &described,
            &[],
        )
        .unwrap_err();
        assert!(error.to_string().contains("not of run-2"), "{error}");
        let by_hand = instances_to_terminate(&stack(), None, &ids(&["i-00000001"]), &described, &[]).unwrap();
        assert_eq!(by_hand, ids(&["i-00000001"]));
    }

    #[test]
    fn an_instance_the_pipeline_did_not_launch_refuses_the_whole_call() {
        let described = [
            instance("i-00000001", "running", Some("binary-package")),
            instance("i-00000002", "running", None),
            instance("i-00000003", "running", Some("someone-elses-job")),
            // Another deployment's worker of an execution of the same name.
            instance_of("staging-hhvm-pipeline", "i-00000004", "running", Some("binary-package")),
        ];
        for (listed, field) in [
            (&["i-00000001", "i-00000002"][..], "`instances[1]`"),
            (&["i-00000003"][..], "`instances[0]`"),
            (&["i-00000004"][..], "`instances[0]`"),
        ] {
            let error = instances_to_terminate(&stack(), None, &ids(listed), &described, &[]).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput");
            assert!(error.to_string().contains(field), "{error}");
        }
    }

    #[test]
    fn another_deployments_workers_of_the_same_execution_are_not_owned() {
        let owned = [
            instance("i-00000001", "running", Some("binary-package")),
            instance_of("staging-hhvm-pipeline", "i-00000002", "running", Some("binary-package")),
        ];
        let chosen = instances_to_terminate(&stack(), Some(&"run-1".parse().unwrap()), &[], &[], &owned).unwrap();
        assert_eq!(chosen, ids(&["i-00000001"]));
    }
}
