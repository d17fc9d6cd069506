//! `hhvm-build-source-tarball`: starts the worker that makes, signs and uploads the source
//! tarball of `version` to `source` (as get-build-version computed it), and adds `instances`
//! to the pass-through payload. A retried invocation with the same input finds the instance it
//! already started instead of starting another.
//!
//! The worker runs `userdata/make-source-tarball.sh`, embedded here at build time.

use pipeline_aws::config::Source;
use pipeline_aws::launch_config::LaunchConfig;
use pipeline_aws::single_worker::{SingleWorkerConfig, SingleWorkerDeps};
use pipeline_aws::single_worker::{SingleWorkerJob, launch_single_worker};
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::launch::{LaunchPlan, WorkerRequest};
use pipeline_core::layout::JobKind;
use pipeline_core::s3::Buckets;
use pipeline_core::userdata::{PreludeValue, base_prelude};
use pipeline_core::{Payload, PipelineError};
use serde_json::Value;

pub const LIBRARY: &str = include_str!("../../../userdata/common.sh");
pub const SCRIPT: &str = include_str!("../../../userdata/make-source-tarball.sh");

const JOB: SingleWorkerJob = SingleWorkerJob {
    kind: JobKind::SourceTarball,
    library: LIBRARY,
    script: SCRIPT,
};

/// What the function needs besides its input.
pub type Deps = pipeline_aws::single_worker::SingleWorkerDeps;

/// The launch this payload asks for: pure, so every validation runs before any AWS call.
pub fn plan(payload: &Payload, buckets: &Buckets, config: &LaunchConfig) -> Result<LaunchPlan, PipelineError> {
    let request = WorkerRequest::from_payload(payload)?;
    let source = buckets.read_source(payload, &request.version)?;
    let mut prelude = base_prelude(&request, buckets, &config.worker_settings)?;
    prelude
        .set(
            "PACKAGING_BRANCH",
            "packagingBranch",
            PreludeValue::Branch(request.packaging_branch),
        )?
        .set(
            "SOURCE_BUCKET",
            "source.bucket",
            PreludeValue::Bucket(source.bucket.clone()),
        )?
        .set("SOURCE_KEY", "source.path", PreludeValue::Key(source.path.clone()))?;
    JOB.plan(request, &prelude, config)
}

pub async fn handle(deps: &Deps, event: Value) -> Result<Value, PipelineError> {
    let payload = Payload::from_value(event)?;
    let plan = plan(&payload, &deps.buckets, &deps.config)?;
    launch_single_worker(&deps.ec2, &plan, payload).await
}

/// The deployed function: `handle` with its launch configuration.
pub struct BuildSourceTarball(Deps);

impl Function for BuildSourceTarball {
    const NAME: &'static str = "hhvm-build-source-tarball";
    type Config = SingleWorkerConfig;

    fn configuration(source: &impl Source) -> Result<SingleWorkerConfig, PipelineError> {
        SingleWorkerConfig::load(source, JOB.kind)
    }

    fn new(config: SingleWorkerConfig, sdk_config: &SdkConfig) -> Self {
        BuildSourceTarball(SingleWorkerDeps::new(config, sdk_config))
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.0, event).await
    }
}
