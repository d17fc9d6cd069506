//! `hhvm-update-repositories`: starts the worker that adds the packages built for `version` to
//! the apt repositories (reprepro, with S3 as the source of truth) and adds `instances` to the
//! pass-through payload. The worker includes only distros whose build left a success marker;
//! `distros` (optional, as build-binary-packages outputs it) limits which it looks at.
//!
//! The worker runs `userdata/update-repos.sh`, embedded here at build time.

use pipeline_aws::config::Source;
use pipeline_aws::launch_config::LaunchConfig;
use pipeline_aws::single_worker::{SingleWorkerConfig, SingleWorkerDeps};
use pipeline_aws::single_worker::{SingleWorkerJob, launch_single_worker};
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::distro::read_distros;
use pipeline_core::launch::{LaunchPlan, WorkerRequest};
use pipeline_core::layout::JobKind;
use pipeline_core::s3::Buckets;
use pipeline_core::userdata::{PreludeValue, base_prelude};
use pipeline_core::{Payload, PipelineError};
use serde_json::Value;

pub const LIBRARY: &str = include_str!("../../../userdata/common.sh");
pub const SCRIPT: &str = include_str!("../../../userdata/update-repos.sh");

const JOB: SingleWorkerJob = SingleWorkerJob {
    kind: JobKind::UpdateRepositories,
    library: LIBRARY,
    script: SCRIPT,
};

/// What the function needs besides its input.
pub type Deps = pipeline_aws::single_worker::SingleWorkerDeps;

/// The launch this payload asks for: pure, so every validation runs before any AWS call.
pub fn plan(payload: &Payload, buckets: &Buckets, config: &LaunchConfig) -> Result<LaunchPlan, PipelineError> {
    let request = WorkerRequest::from_payload(payload)?;
    let distros = read_distros(payload)?.unwrap_or_default();
    let mut prelude = base_prelude(&request.version, buckets, &config.worker_settings)?;
    prelude.set(
        "PACKAGING_BRANCH",
        "packagingBranch",
        PreludeValue::Branch(request.packaging_branch),
    )?;
    if !distros.is_empty() {
        prelude.set("DISTROS", "distros", PreludeValue::Distros(distros))?;
    }
    JOB.plan(request, &prelude, config)
}

pub async fn handle(deps: &Deps, event: Value) -> Result<Value, PipelineError> {
    let payload = Payload::from_value(event)?;
    let plan = plan(&payload, &deps.buckets, &deps.config)?;
    launch_single_worker(&deps.ec2, &plan, payload).await
}

/// The deployed function: `handle` with its launch configuration.
pub struct UpdateRepositories(Deps);

impl Function for UpdateRepositories {
    const NAME: &'static str = "hhvm-update-repositories";
    type Config = SingleWorkerConfig;

    fn configuration(source: &impl Source) -> Result<SingleWorkerConfig, PipelineError> {
        SingleWorkerConfig::load(source, JOB.kind)
    }

    fn new(config: SingleWorkerConfig, sdk_config: &SdkConfig) -> Self {
        UpdateRepositories(SingleWorkerDeps::new(config, sdk_config))
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.0, event).await
    }
}
