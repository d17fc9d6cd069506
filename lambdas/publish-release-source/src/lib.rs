//! `hhvm-publish-release-source`: for a release, starts the worker that pushes the `HHVM-x.y.z`
//! tag and the `HHVM-x.y` branch to the public repository and copies the source tarball and
//! its signature to the download bucket; adds `instances` to the pass-through payload. For a
//! nightly (published when built) it makes no AWS call and adds `instances: []` and a
//! `comment`, as the original did.
//!
//! The worker runs `userdata/publish-release-source.sh`, embedded here at build time.

use pipeline_aws::config::Source;
use pipeline_aws::launch_config::LaunchConfig;
use pipeline_aws::single_worker::{SingleWorkerConfig, SingleWorkerDeps};
use pipeline_aws::single_worker::{SingleWorkerJob, launch_single_worker};
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::launch::{LaunchPlan, WorkerRequest};
use pipeline_core::layout::JobKind;
use pipeline_core::s3::Buckets;
use pipeline_core::userdata::base_prelude;
use pipeline_core::{Payload, PipelineError};
use serde_json::Value;

pub const LIBRARY: &str = include_str!("../../../userdata/common.sh");
pub const SCRIPT: &str = include_str!("../../../userdata/publish-release-source.sh");

const JOB: SingleWorkerJob = SingleWorkerJob {
    kind: JobKind::PublishReleaseSource,
    library: LIBRARY,
    script: SCRIPT,
};

/// What the function needs besides its input.
pub type Deps = pipeline_aws::single_worker::SingleWorkerDeps;

/// The launch this payload asks for, or `None` for a nightly. Pure: every validation runs
/// before any AWS call.
pub fn plan(payload: &Payload, buckets: &Buckets, config: &LaunchConfig) -> Result<Option<LaunchPlan>, PipelineError> {
    let request = WorkerRequest::from_payload(payload)?;
    if request.version.is_nightly() {
        return Ok(None);
    }
    let prelude = base_prelude(&request, buckets, &config.worker_settings)?;
    JOB.plan(request, &prelude, config).map(Some)
}

pub async fn handle(deps: &Deps, event: Value) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let Some(plan) = plan(&payload, &deps.buckets, &deps.config)? else {
        payload.set("instances", Vec::<String>::new());
        payload.set("comment", "Not published sources, nightly build");
        return Ok(payload.into_value());
    };
    launch_single_worker(&deps.ec2, &plan, payload).await
}

/// The deployed function: `handle` with its launch configuration.
pub struct PublishReleaseSource(Deps);

impl Function for PublishReleaseSource {
    const NAME: &'static str = "hhvm-publish-release-source";
    type Config = SingleWorkerConfig;

    fn configuration(source: &impl Source) -> Result<SingleWorkerConfig, PipelineError> {
        SingleWorkerConfig::load(source, JOB.kind)
    }

    fn new(config: SingleWorkerConfig, sdk_config: &SdkConfig) -> Self {
        PublishReleaseSource(SingleWorkerDeps::new(config, sdk_config))
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.0, event).await
    }
}
