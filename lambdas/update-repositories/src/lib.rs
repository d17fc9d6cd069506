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
    use pipeline_core::userdata::{MAX_USER_DATA_BYTES, compressed_user_data};
    use pipeline_testing::process::stdout_of;
    use pipeline_testing::workers::WorkerEnvironment;

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

    /// Every worker setting this job is given, each as long as it plausibly gets (secrets as
    /// full ARNs, numbers at the most digits their patterns allow).
    const LONGEST_SETTINGS: WorkerEnvironment = WorkerEnvironment {
        job: JobKind::UpdateRepositories,
        instance_profile: "arn:aws:iam::123456789012:instance-profile/hhvm-repo-builders",
        extra: &[
            ("AWS_REGION", "ap-southeast-3"),
            (
                "PACKAGING_REPO_URL",
                "https://git-codecommit.ap-southeast-3.amazonaws.com/v1/repos/hhvm-packaging-mirror",
            ),
            (
                "SIGNING_KEY_SECRET_ID",
                "arn:aws:secretsmanager:ap-southeast-3:123456789012:secret:hhvm/package-signing-key-Xy7Qz2",
            ),
            ("SIGNING_KEY_ID", "0F3A1C9D2E4B6A8C7D1E2F3A4B5C6D7E8F9A0B1C"),
            ("CLOUDFRONT_DISTRIBUTION_ID", "E2QWRUHAPOMQZL"),
            ("REPOSITORY_LEASE_WAIT_MINUTES", "120"),
            ("RELEASE_CACHE_SECONDS", "86400"),
            ("BY_HASH_RETENTION_DAYS", "365"),
        ],
    };

    /// The launch of the longest user data this function plausibly writes: every setting and
    /// input at its plausible longest (bucket names at S3's 63 characters, the execution name
    /// at Step Functions' 80, every distro).
    fn longest_plan() -> LaunchPlan {
        let config = LONGEST_SETTINGS.offline_launch_config();
        let every_setting = pipeline_aws::launch_config::worker_settings(JobKind::UpdateRepositories);
        assert_eq!(config.worker_settings.len(), every_setting.len());
        let bucket = |purpose: &str| {
            format!("hhvm-{purpose}-123456789012-ap-southeast-3-0123456789abcdefghijklmnopqr")[..63]
                .parse()
                .unwrap()
        };
        let buckets = Buckets {
            downloads: bucket("downloads"),
            scratch: bucket("scratch"),
        };
        let payload = Payload::from_value(serde_json::json!({
            "version": "4.172.10",
            "executionName": "release-4-172-10-rebuild-after-mirror-outage-7f3e2a91c4d5-publish-4_172_10-r2",
            "packagingBranch": "HHVM-4.172",
            "distros": [
                "debian-11-bullseye", "debian-12-bookworm", "debian-13-trixie", "ubuntu-20.04-focal",
                "ubuntu-22.04-jammy", "ubuntu-24.04-noble", "ubuntu-24.10-oracular", "ubuntu-25.04-plucky",
            ],
        }))
        .unwrap();
        plan(&payload, &buckets, &config).unwrap()
    }

    #[test]
    fn user_data_with_the_longest_prelude_leaves_an_eighth_of_ec2s_limit() {
        let user_data = longest_plan().user_data;
        let compressed = compressed_user_data(&user_data).len();
        let prelude: String = user_data
            .split_inclusive('\n')
            .take_while(|line| line.starts_with('#') || line.starts_with("export "))
            .collect();
        let whole = format!("{prelude}{LIBRARY}\n{}", SCRIPT.split_once('\n').unwrap().1);
        println!(
            "update-repos.sh: {} bytes, {compressed} compressed (with comment lines: {} bytes, {} compressed)",
            user_data.len(),
            whole.len(),
            compressed_user_data(&whole).len()
        );
        // The other jobs leave three quarters of EC2's limit free; this one, the index generator
        // being a third of it, an eighth (about 13,300 bytes without comment lines, 16,300 with).
        assert!(
            compressed <= MAX_USER_DATA_BYTES * 7 / 8,
            "{compressed} bytes compressed"
        );
    }

    #[test]
    fn the_user_data_is_valid_bash_and_writes_the_generator_python_reads_alike() {
        let user_data = longest_plan().user_data;
        let dir = std::env::temp_dir().join(format!("update-repos-user-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("user-data.sh");
        std::fs::write(&file, &user_data).unwrap();
        stdout_of("bash", &["-n", file.to_str().unwrap()], "");

        let start = user_data.find("cat >").expect("the generator's heredoc");
        let end = user_data.find("\nAPT_REPOSITORY_PY\n").expect("its terminator") + "\nAPT_REPOSITORY_PY\n".len();
        let heredoc = format!("set -eu\nWORKER_TOOLS={}\n{}", dir.display(), &user_data[start..end]);
        stdout_of("bash", &["-c", &heredoc], "");
        let written = std::fs::read_to_string(dir.join("apt_repository.py")).unwrap();
        assert!(
            written.len() < GENERATOR.len(),
            "the generator's comment lines are dropped"
        );
        let syntax_tree = |program: &str| {
            let dump = "import ast, sys; print(ast.dump(ast.parse(sys.stdin.read())))";
            stdout_of("python3", &["-c", dump], program)
        };
        assert_eq!(syntax_tree(&written), syntax_tree(GENERATOR));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
