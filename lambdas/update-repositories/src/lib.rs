//! `hhvm-update-repositories`: starts the worker that adds the packages built for `version` to
//! the apt repositories (under a lease, from and to what is published, switched atomically for
//! clients: docs/workers.md) and adds `instances` to the pass-through payload. The worker includes only distros whose build left a success marker;
//! `distros` (optional, as build-binary-packages outputs it) limits which it looks at.
//!
//! The worker runs `userdata/update-repos.sh` and its index generator `userdata/apt_repository.py`,
//! embedded here at build time.

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

/// `common.sh`, then `apt_repository.py` written to where update-repos.sh runs it from
/// (`WORKER_TOOLS`); the quoted heredoc keeps it byte for byte.
pub const LIBRARY: &str = concat!(
    include_str!("../../../userdata/common.sh"),
    "\n# userdata/apt_repository.py, run by update-repos.sh.\n",
    "WORKER_TOOLS=$(mktemp -d)\n",
    "cat >\"$WORKER_TOOLS/apt_repository.py\" <<'",
    "APT_REPOSITORY_PY",
    "'\n",
    include_str!("../../../userdata/apt_repository.py"),
    "APT_REPOSITORY_PY\n",
);
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
    let mut prelude = base_prelude(&request, buckets, &config.worker_settings)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const GENERATOR: &str = include_str!("../../../userdata/apt_repository.py");

    #[test]
    fn the_index_generator_is_embedded_whole_inside_its_heredoc() {
        // The heredoc ends at the first line equal to its delimiter: the program must hold none,
        // and must end with a newline so that the delimiter starts a line.
        assert!(!GENERATOR.lines().any(|line| line == "APT_REPOSITORY_PY"));
        assert!(GENERATOR.ends_with('\n'));
        let start = LIBRARY.find("<<'APT_REPOSITORY_PY'\n").expect("the heredoc") + "<<'APT_REPOSITORY_PY'\n".len();
        assert_eq!(&LIBRARY[start..], format!("{GENERATOR}APT_REPOSITORY_PY\n"));
    }

    #[test]
    fn bash_writes_the_embedded_generator_byte_for_byte() {
        let dir = std::env::temp_dir().join(format!("apt-repository-embed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let heredoc = &LIBRARY[LIBRARY.find("cat >").unwrap()..];
        let output = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("set -eu\nWORKER_TOOLS={}\n{heredoc}", dir.display()))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(
            std::fs::read_to_string(dir.join("apt_repository.py")).unwrap(),
            GENERATOR
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
