//! `hhvm-clean-up-after-execution`: ends what an execution left running when it ended outside
//! any `Catch` — a timeout (`TimeoutSeconds`), a `StopExecution`, a `States.Runtime` failure —
//! and sweeps up whatever outlived its hard timeout.
//!
//! - **An execution ended** ("Step Functions Execution Status Change" with FAILED, TIMED_OUT or
//!   ABORTED, the template's rule; read by `pipeline_aws::events`): it terminates every worker
//!   of this deployment (`PIPELINE_STACK`) tagged with the execution's name, stops every
//!   running child execution whose input names it as `parentExecutionName` (their own end then
//!   cleans up their workers), and releases the repositories' lease when its holder is gone. Safe to repeat: what is already over is
//!   skipped.
//! - **A sweep** (a "Scheduled Event"): it terminates every worker of this deployment past its
//!   job's hard timeout plus `WORKER_SWEEP_MARGIN_MINUTES` (default 30) — its own timer should
//!   have powered it off — and releases an orphaned lease, and reports what it did.
//!
//! Not pass-through: the event is EventBridge's; the answer says what was done.

use aws_sdk_sfn::types::ExecutionStatus;
use pipeline_aws::config::Source;
use pipeline_aws::events::{ExecutionStatusChange, read_execution_end};
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::executions::ExecutionName;
use pipeline_core::instance::DescribedInstance;
use pipeline_core::launch::PipelineStack;
use pipeline_core::layout::REPOSITORY_LEASE_KEY;
use pipeline_core::{BucketName, InstanceId, ObjectKey, PipelineError, S3Location};
use serde_json::{Value, json};

/// What the function is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanUp {
    /// An execution ended without success: clean up after it.
    ExecutionEnded(ExecutionStatusChange),
    /// The schedule: sweep up overdue workers.
    Sweep,
}

/// Reads the event: a "Scheduled Event" is a sweep; anything else must be an execution's end.
pub fn read_event(event: Value) -> Result<CleanUp, PipelineError> {
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        return match event.get("source").and_then(Value::as_str) {
            Some("aws.scheduler" | "aws.events") => Ok(CleanUp::Sweep),
            other => Err(PipelineError::invalid_input(
                "source",
                format!("is {other:?}; a scheduled sweep comes from \"aws.scheduler\" or \"aws.events\""),
            )),
        };
    }
    read_execution_end(event).map(CleanUp::ExecutionEnded)
}

/// The workers a sweep terminates: pipeline workers still alive past their job's hard timeout
/// plus `margin_minutes`, as of `now` (seconds since the epoch). A worker without a launch time
/// or job kind is left alone: nothing says it is overdue.
pub fn overdue_workers(workers: &[DescribedInstance], now: i64, margin_minutes: u64) -> Vec<InstanceId> {
    workers
        .iter()
        .filter(|worker| !worker.is_gone() && worker.state.as_str() != "shutting-down")
        .filter_map(|worker| {
            let job = worker.job_kind()?;
            let launched = worker.launched_at?;
            let limit = i64::try_from((job.hard_timeout_minutes() + margin_minutes) * 60).ok()?;
            (now - launched > limit).then(|| worker.id.clone())
        })
        .collect()
}

/// The instance that holds the repositories' lease, from the lease object's JSON.
pub fn lease_holder(lease: &[u8]) -> Option<InstanceId> {
    let lease: Value = serde_json::from_slice(lease).ok()?;
    lease.get("holder")?.as_str()?.parse().ok()
}

/// Whether an execution's input names `parent` as its `parentExecutionName`.
pub fn is_child_of(input: Option<&str>, parent: &ExecutionName) -> bool {
    input
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|input| {
            input
                .get(pipeline_core::executions::PARENT_EXECUTION_NAME_FIELD)
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .is_some_and(|name| name == parent.as_str())
}

/// Everything the function reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PIPELINE_STACK`: the deployment whose workers it cleans up (their `PipelineStack` tag);
    /// another deployment's workers of an execution of the same name are left alone.
    pub stack: PipelineStack,
    /// `SCRATCH_BUCKET`: where the repositories' lease is.
    pub scratch: BucketName,
    /// `BUILD_STATE_MACHINE_ARN` and `PUBLISH_STATE_MACHINE_ARN`: the machines children run on.
    pub child_machines: Vec<String>,
    /// `WORKER_SWEEP_MARGIN_MINUTES` (default 30): how long past its hard timeout a worker may
    /// still be seen before the sweep terminates it.
    pub sweep_margin_minutes: u64,
}

impl Config {
    pub fn from_source(source: &impl Source) -> Result<Config, PipelineError> {
        Ok(Config {
            stack: pipeline_aws::config::pipeline_stack(source)?,
            scratch: pipeline_aws::config::bucket(source, "SCRATCH_BUCKET")?,
            child_machines: vec![
                pipeline_aws::config::state_machine_arn(source, "BUILD_STATE_MACHINE_ARN", "hhvm-build")?,
                pipeline_aws::config::state_machine_arn(source, "PUBLISH_STATE_MACHINE_ARN", "hhvm-publish-release")?,
            ],
            sweep_margin_minutes: pipeline_aws::config::number_in(source, "WORKER_SWEEP_MARGIN_MINUTES", 0..=1440, 30)?
                as u64,
        })
    }
}

/// The clients and configuration.
pub struct Deps {
    pub ec2: aws_sdk_ec2::Client,
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub config: Config,
}

pub async fn handle(deps: &Deps, event: Value) -> Result<Value, PipelineError> {
    handle_at(deps, event, chrono::Utc::now().timestamp()).await
}

/// `handle` at `now` (seconds since the epoch), for tests.
pub async fn handle_at(deps: &Deps, event: Value, now: i64) -> Result<Value, PipelineError> {
    match read_event(event)? {
        CleanUp::ExecutionEnded(change) => clean_up_execution(deps, &change).await,
        CleanUp::Sweep => sweep(deps, now).await,
    }
}

async fn clean_up_execution(deps: &Deps, change: &ExecutionStatusChange) -> Result<Value, PipelineError> {
    let execution = change.execution_name();
    let workers = pipeline_aws::ec2::describe_execution_workers(&deps.ec2, &deps.config.stack, &execution).await?;
    let to_terminate: Vec<InstanceId> = workers
        .iter()
        .filter(|worker| !worker.is_gone())
        .map(|worker| worker.id.clone())
        .collect();
    if !to_terminate.is_empty() {
        pipeline_aws::ec2::terminate_instances(&deps.ec2, &to_terminate).await?;
    }
    let children = running_children(&deps.sfn, &deps.config.child_machines, &execution).await?;
    let cause = format!("its parent execution {execution} ended {}", change.status);
    for child in &children {
        stop_execution(&deps.sfn, child, &cause).await?;
    }
    let released = release_orphaned_lease(deps).await?;
    tracing::info!(
        %execution,
        status = change.status,
        terminated = to_terminate.len(),
        stopped = children.len(),
        released_lease = released.as_ref().map(ToString::to_string),
        "cleaned up after the execution"
    );
    Ok(json!({
        "execution": execution.as_str(),
        "status": change.status,
        "terminatedInstances": to_terminate,
        "stoppedExecutions": children,
        "releasedLeaseOf": released,
    }))
}

async fn sweep(deps: &Deps, now: i64) -> Result<Value, PipelineError> {
    let workers = pipeline_aws::ec2::describe_live_workers(&deps.ec2, &deps.config.stack).await?;
    let overdue = overdue_workers(&workers, now, deps.config.sweep_margin_minutes);
    if !overdue.is_empty() {
        tracing::warn!(?overdue, "workers outlived their hard timeout; terminating them");
        pipeline_aws::ec2::terminate_instances(&deps.ec2, &overdue).await?;
    }
    let released = release_orphaned_lease(deps).await?;
    tracing::info!(
        workers = workers.len(),
        terminated = overdue.len(),
        released_lease = released.as_ref().map(ToString::to_string),
        "swept"
    );
    Ok(json!({
        "liveWorkers": workers.len(),
        "terminatedInstances": overdue,
        "releasedLeaseOf": released,
    }))
}

/// Running executions of `machines` whose input names `parent`.
async fn running_children(
    sfn: &aws_sdk_sfn::Client,
    machines: &[String],
    parent: &ExecutionName,
) -> Result<Vec<String>, PipelineError> {
    let mut children = Vec::new();
    for machine in machines {
        let mut pages = sfn
            .list_executions()
            .state_machine_arn(machine)
            .status_filter(ExecutionStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| pipeline_aws::service_error("Step Functions ListExecutions", error))?;
            for execution in page.executions() {
                let described = sfn
                    .describe_execution()
                    .execution_arn(execution.execution_arn())
                    .send()
                    .await
                    .map_err(|error| pipeline_aws::service_error("Step Functions DescribeExecution", error))?;
                if described.status() == &ExecutionStatus::Running && is_child_of(described.input(), parent) {
                    children.push(execution.execution_arn().to_string());
                }
            }
        }
    }
    Ok(children)
}

/// Stops a running execution; one that ended meanwhile is left as it is.
async fn stop_execution(sfn: &aws_sdk_sfn::Client, arn: &str, cause: &str) -> Result<(), PipelineError> {
    match sfn
        .stop_execution()
        .execution_arn(arn)
        .error("ParentEnded")
        .cause(cause)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(aws_sdk_sfn::error::SdkError::ServiceError(context)) if context.err().is_execution_does_not_exist() => {
            Ok(())
        }
        Err(error) => Err(pipeline_aws::service_error(
            &format!("Step Functions StopExecution {arn}"),
            error,
        )),
    }
}

/// Deletes the repositories' lease when the instance holding it is gone (terminated, or unknown
/// to EC2): nobody will release it otherwise until it expires. A lease whose holder still runs
/// — even one shutting down, whose exit handler releases it — is left alone. Returns the
/// holder whose lease was released.
async fn release_orphaned_lease(deps: &Deps) -> Result<Option<InstanceId>, PipelineError> {
    let location = S3Location {
        bucket: deps.config.scratch.clone(),
        path: REPOSITORY_LEASE_KEY
            .parse::<ObjectKey>()
            .expect("the lease key is a valid key"),
    };
    let Some((lease, etag)) = pipeline_aws::s3::get_object_with_etag(&deps.s3, &location).await? else {
        return Ok(None);
    };
    let Some(holder) = lease_holder(&lease) else {
        tracing::warn!(%location, "the repository lease names no instance; left alone");
        return Ok(None);
    };
    let states = pipeline_aws::ec2::describe_instance_states(&deps.ec2, std::slice::from_ref(&holder)).await?;
    if states
        .iter()
        .any(|(_, state)| !matches!(state.as_str(), "terminated" | "missing"))
    {
        return Ok(None);
    }
    // Only the lease read above: a new holder's lease has another ETag and stays.
    if !pipeline_aws::s3::delete_object_if_match(&deps.s3, &location, &etag).await? {
        return Ok(None);
    }
    tracing::info!(%holder, "released the repository lease of a gone worker");
    Ok(Some(holder))
}

/// The deployed function.
pub struct CleanUpAfterExecution(Deps);

impl Function for CleanUpAfterExecution {
    const NAME: &'static str = "hhvm-clean-up-after-execution";
    type Config = Config;

    fn configuration(source: &impl Source) -> Result<Config, PipelineError> {
        Config::from_source(source)
    }

    fn new(config: Config, sdk_config: &SdkConfig) -> Self {
        CleanUpAfterExecution(Deps {
            ec2: pipeline_aws::ec2_client(sdk_config),
            s3: pipeline_aws::s3_client(sdk_config),
            sfn: aws_sdk_sfn::Client::new(sdk_config),
            config,
        })
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.0, event).await
    }
}

#[cfg(test)]
mod tests {
    use pipeline_core::InstanceState;

    use super::*;

    fn worker(id: &str, state: &str, job: &str, launched_at: i64) -> DescribedInstance {
        DescribedInstance {
            id: id.parse().unwrap(),
            state: InstanceState::named(state),
            state_reason: None,
            tags: vec![("JobKind".to_string(), job.to_string())],
            launched_at: Some(launched_at),
        }
    }

    #[test]
    fn only_workers_past_their_hard_timeout_and_margin_are_overdue() {
        let now = 1_000_000;
        let minutes = |m: i64| now - m * 60;
        let workers = [
            worker("i-00000001", "running", "binary-package", minutes(180 + 31)),
            worker("i-00000002", "running", "binary-package", minutes(180 + 29)),
            worker("i-00000003", "running", "publish-release-source", minutes(61)),
            worker("i-00000004", "terminated", "binary-package", minutes(999)),
            worker("i-00000005", "running", "not-a-job", minutes(999)),
            worker("i-00000006", "stopped", "source-tarball", minutes(91)),
        ];
        let overdue: Vec<String> = overdue_workers(&workers, now, 30)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(overdue, ["i-00000001", "i-00000003", "i-00000006"]);
    }

    #[test]
    fn the_lease_names_its_holder() {
        assert_eq!(
            lease_holder(br#"{"holder": "i-0123456789abcdef0", "version": "4.168.2"}"#).map(|id| id.to_string()),
            Some("i-0123456789abcdef0".to_string())
        );
        assert_eq!(lease_holder(b"{\"holder\": \"unknown-host\"}"), None);
        assert_eq!(lease_holder(b"not json"), None);
    }

    #[test]
    fn children_are_found_by_their_parent_execution_name() {
        let parent: ExecutionName = "nightly-2026-12-01".parse().unwrap();
        assert!(is_child_of(
            Some(r#"{"parentExecutionName": "nightly-2026-12-01"}"#),
            &parent
        ));
        assert!(!is_child_of(
            Some(r#"{"parentExecutionName": "nightly-2026-11-30"}"#),
            &parent
        ));
        assert!(!is_child_of(Some("{}"), &parent));
        assert!(!is_child_of(None, &parent));
    }

    #[test]
    fn scheduled_events_are_sweeps_and_other_events_must_be_execution_ends() {
        let scheduled = json!({"detail-type": "Scheduled Event", "source": "aws.scheduler", "detail": {}});
        assert_eq!(read_event(scheduled).unwrap(), CleanUp::Sweep);
        let foreign = json!({"detail-type": "Scheduled Event", "source": "aws.ec2", "detail": {}});
        assert_eq!(read_event(foreign).unwrap_err().error_type(), "InvalidInput");
        assert_eq!(read_event(json!({"x": 1})).unwrap_err().error_type(), "InvalidInput");
    }
}
