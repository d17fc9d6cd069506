//! What the functions that start one worker per invocation share (`build-source-tarball`,
//! `update-repositories`, `publish-release-source`): their dependencies, the step from a
//! validated request and its prelude to a launch plan, and the launch that adds `instances` to
//! the pass-through payload. Each function keeps its own fields and prelude values.

use aws_config::SdkConfig;
use pipeline_core::launch::{LaunchPlan, WorkerRequest};
use pipeline_core::layout::JobKind;
use pipeline_core::s3::Buckets;
use pipeline_core::userdata::{Prelude, worker_user_data};
use pipeline_core::{Payload, PipelineError};
use serde_json::Value;

use crate::config::Source;
use crate::launch::launch_ec2_client;
use crate::launch_config::{LaunchConfig, launch_config};

/// The configuration of a function that starts one worker of kind `job`.
#[derive(Debug, Clone)]
pub struct SingleWorkerConfig {
    pub buckets: Buckets,
    pub launch: LaunchConfig,
}

impl SingleWorkerConfig {
    pub fn load(source: &impl Source, job: JobKind) -> Result<SingleWorkerConfig, PipelineError> {
        Ok(SingleWorkerConfig {
            buckets: crate::config::buckets(source)?,
            launch: launch_config(source, job)?,
        })
    }
}

/// What a function that starts one worker needs besides its input.
pub struct SingleWorkerDeps {
    pub ec2: aws_sdk_ec2::Client,
    pub buckets: Buckets,
    pub config: LaunchConfig,
}

impl SingleWorkerDeps {
    pub fn new(config: SingleWorkerConfig, sdk_config: &SdkConfig) -> SingleWorkerDeps {
        SingleWorkerDeps {
            ec2: launch_ec2_client(sdk_config),
            buckets: config.buckets,
            config: config.launch,
        }
    }
}

/// A job that runs on one worker: its kind and the scripts its user data embeds
/// (`userdata/common.sh` and the job's own, included by the function at build time).
#[derive(Debug, Clone, Copy)]
pub struct SingleWorkerJob {
    pub kind: JobKind,
    pub library: &'static str,
    pub script: &'static str,
}

impl SingleWorkerJob {
    /// The launch of this job's worker for `request`, its user data being `prelude` followed by
    /// the scripts. Pure: a value too large for EC2 fails here, before any AWS call.
    pub fn plan(
        &self,
        request: WorkerRequest,
        prelude: &Prelude,
        config: &LaunchConfig,
    ) -> Result<LaunchPlan, PipelineError> {
        let user_data = worker_user_data(prelude, self.library, self.script)?;
        Ok(LaunchPlan::new(
            self.kind,
            request.version,
            None,
            request.execution,
            user_data,
            config.settings.clone(),
        ))
    }
}

/// Starts the worker of `plan` (or re-finds the one a retried invocation started) and returns
/// `payload` with `instances` set to it.
pub async fn launch_single_worker(
    ec2: &aws_sdk_ec2::Client,
    plan: &LaunchPlan,
    mut payload: Payload,
) -> Result<Value, PipelineError> {
    let launched = crate::launch::launch_worker(ec2, plan).await?;
    tracing::info!(job = %plan.job, version = %plan.version, instance = %launched.instance_id, reused = launched.reused, "worker");
    payload.set("instances", [&launched.instance_id]);
    Ok(payload.into_value())
}
