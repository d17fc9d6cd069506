//! How workers are launched, from the launching function's environment (set by
//! `infra/template.yaml` from its parameters). Nothing here is a constant of the code: AMI,
//! network, profiles and sizes differ per account.
//!
//! Shared by all four launching functions:
//! - `PIPELINE_STACK` (required): the stack's name, every worker's `PipelineStack` tag.
//! - `WORKER_AMI_ID` (required): the Ubuntu AMI the workers boot.
//! - `WORKER_SUBNET_ID` (required): the subnet they run in.
//! - `WORKER_SECURITY_GROUP_IDS` (required): comma-separated security group IDs.
//! - `WORKER_KEY_NAME` (optional): an EC2 key pair, for SSH in an emergency.
//! - `WORKER_ROOT_DEVICE_NAME` (optional, `/dev/sda1`): the AMI's root device.
//!
//! Per job kind, with `<KIND>` one of `SOURCE_TARBALL`, `BINARY_PACKAGE`,
//! `UPDATE_REPOSITORIES`, `PUBLISH_RELEASE_SOURCE`:
//! - `<KIND>_INSTANCE_PROFILE` (required): instance profile ARN or name.
//! - `<KIND>_INSTANCE_TYPE` (optional; defaults below).
//! - `<KIND>_ROOT_VOLUME_GIB` (optional; defaults below).
//!
//! `hhvm-build-binary-packages` only:
//! - `BINARY_PACKAGE_MARKET` (optional, `spot` or `on-demand`; on-demand when unset): the
//!   market its workers launch on. The template sets it from `BinaryPackageMarket` (`spot` by
//!   default); every other worker is on-demand (they are short, and a reclaimed repository
//!   update or source tarball would only have to start over).
//!
//! Worker settings forwarded into the user data when set: only those the job's script reads
//! (`worker_settings`).

use pipeline_core::PipelineError;
use pipeline_core::launch::{InstanceProfile, InstanceSettings, Market};
use pipeline_core::layout::JobKind;
use pipeline_core::userdata::PreludeValue;

use crate::config::{Source, number_in, optional, pipeline_stack, required, text};

/// The variable naming the binary-package workers' market.
pub const BINARY_PACKAGE_MARKET: &str = "BINARY_PACKAGE_MARKET";

/// The variables a launching function passes on to its worker when they are set in its own
/// environment; unset, the script's production default applies. Each is read by the job's
/// script (or by `common.sh` for the jobs that call the function using it) and must match the
/// worker setting pattern (`PreludeValue::Setting`). `AWS_REGION` is Lambda's own variable.
pub fn worker_settings(job: JobKind) -> &'static [&'static str] {
    match job {
        JobKind::SourceTarball => &[
            "AWS_REGION",
            "PACKAGING_REPO_URL",
            "SIGNING_KEY_SECRET_ID",
            "SIGNING_KEY_ID",
            "STAGING_DEPLOY_KEY_SECRET_ID",
            "PUBLIC_DEPLOY_KEY_SECRET_ID",
            "STAGING_REPO_URL",
            "PUBLIC_REPO_URL",
        ],
        JobKind::BinaryPackage => &["AWS_REGION", "PACKAGING_REPO_URL", "NODIST_BUCKET"],
        JobKind::UpdateRepositories => &[
            "AWS_REGION",
            "PACKAGING_REPO_URL",
            "SIGNING_KEY_SECRET_ID",
            "SIGNING_KEY_ID",
            "CLOUDFRONT_DISTRIBUTION_ID",
            "REPOSITORY_LEASE_WAIT_MINUTES",
            "RELEASE_CACHE_SECONDS",
            "BY_HASH_RETENTION_DAYS",
        ],
        JobKind::PublishReleaseSource => &[
            "AWS_REGION",
            "PACKAGING_REPO_URL",
            "STAGING_DEPLOY_KEY_SECRET_ID",
            "PUBLIC_DEPLOY_KEY_SECRET_ID",
            "STAGING_REPO_URL",
            "PUBLIC_REPO_URL",
        ],
    }
}

/// The prefix of a job kind's own variables.
pub fn variable_prefix(job: JobKind) -> &'static str {
    match job {
        JobKind::SourceTarball => "SOURCE_TARBALL",
        JobKind::BinaryPackage => "BINARY_PACKAGE",
        JobKind::UpdateRepositories => "UPDATE_REPOSITORIES",
        JobKind::PublishReleaseSource => "PUBLISH_RELEASE_SOURCE",
    }
}

/// Instance type and root volume size when the configuration does not say: the original
/// pipeline's choices (the small `t2` types replaced by their current generation). The
/// repository job no longer needs the ~2 TB EBS copy of the repositories, only their metadata.
fn defaults(job: JobKind) -> (&'static str, usize) {
    match job {
        JobKind::SourceTarball => ("t3.large", 30),
        JobKind::BinaryPackage => ("m5.2xlarge", 95),
        JobKind::UpdateRepositories => ("t3.medium", 50),
        JobKind::PublishReleaseSource => ("t3.medium", 30),
    }
}

/// Everything a launching function needs from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchConfig {
    pub settings: InstanceSettings,
    /// `(name, value)` of each worker setting that is set, already validated.
    pub worker_settings: Vec<(String, String)>,
}

pub fn launch_config(source: &impl Source, job: JobKind) -> Result<LaunchConfig, PipelineError> {
    let prefix = variable_prefix(job);
    let (default_type, default_gib) = defaults(job);
    let identifier = |name: &str, expected: &str| -> Result<String, PipelineError> {
        let value: String = required(source, name, expected)?;
        check_identifier(name, &value)
    };
    let stack = pipeline_stack(source)?;
    let image_id = identifier("WORKER_AMI_ID", "an AMI ID such as ami-0123456789abcdef0")?;
    let subnet_id = identifier("WORKER_SUBNET_ID", "a subnet ID such as subnet-0123456789abcdef0")?;
    let groups: String = required(
        source,
        "WORKER_SECURITY_GROUP_IDS",
        "comma-separated security group IDs",
    )?;
    let security_group_ids = groups
        .split(',')
        .map(str::trim)
        .filter(|group| !group.is_empty())
        .map(|group| check_identifier("WORKER_SECURITY_GROUP_IDS", group))
        .collect::<Result<Vec<_>, _>>()?;
    let key_name = text(source, "WORKER_KEY_NAME")
        .map(|key| check_identifier("WORKER_KEY_NAME", &key))
        .transpose()?;
    let root_device_name = text(source, "WORKER_ROOT_DEVICE_NAME").unwrap_or_else(|| "/dev/sda1".to_string());
    if !root_device_name.starts_with("/dev/") {
        return Err(PipelineError::configuration(
            "WORKER_ROOT_DEVICE_NAME",
            "expected a device such as /dev/sda1",
        ));
    }

    let profile_variable = format!("{prefix}_INSTANCE_PROFILE");
    let profile: String = required(source, &profile_variable, "an instance profile ARN or name")?;
    let instance_profile = InstanceProfile::parse(&check_identifier(&profile_variable, &profile)?);
    let type_variable = format!("{prefix}_INSTANCE_TYPE");
    let instance_type =
        optional(source, &type_variable, "an EC2 instance type such as m5.2xlarge")?.unwrap_or_else(|| {
            default_type
                .parse()
                .expect("the default instance types are instance types")
        });
    let size_variable = format!("{prefix}_ROOT_VOLUME_GIB");
    let root_volume_gib = number_in(source, &size_variable, 8..=16384, default_gib)? as i32;
    // Read only where it applies: no other launcher is given it (or would use it).
    let market = match job {
        JobKind::BinaryPackage => {
            optional(source, BINARY_PACKAGE_MARKET, "spot or on-demand")?.unwrap_or(Market::OnDemand)
        }
        _ => Market::OnDemand,
    };

    let mut forwarded = Vec::new();
    for name in worker_settings(job) {
        if let Some(value) = text(source, name) {
            // Checked now so a bad setting fails the function's configuration, not a payload.
            pipeline_core::userdata::Prelude::new()
                .set(name, name, PreludeValue::Setting(value.clone()))
                .map_err(|error| PipelineError::configuration(*name, error))?;
            forwarded.push((name.to_string(), value));
        }
    }

    Ok(LaunchConfig {
        settings: InstanceSettings {
            stack,
            image_id,
            instance_type,
            market,
            subnet_id,
            security_group_ids,
            instance_profile,
            key_name,
            root_device_name,
            root_volume_gib,
        },
        worker_settings: forwarded,
    })
}

/// How many launches `build-binary-packages` runs at once: `LAUNCH_PARALLELISM`, 4 by default.
pub fn launch_parallelism(source: &impl Source) -> Result<usize, PipelineError> {
    number_in(source, "LAUNCH_PARALLELISM", 1..=32, 4)
}

/// AWS identifiers and ARNs: letters, digits and `-_.:/+=@`, nothing a request could misread.
fn check_identifier(variable: &str, value: &str) -> Result<String, PipelineError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b);
    if value.is_empty() || value.len() > 256 || !value.bytes().all(allowed) {
        return Err(PipelineError::configuration(
            variable,
            format!("{value:?} is not an AWS identifier"),
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Source + use<> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| map.get(name).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("PIPELINE_STACK", "hhvm-pipeline"),
        ("WORKER_AMI_ID", "ami-0123456789abcdef0"),
        ("WORKER_SUBNET_ID", "subnet-1"),
        ("WORKER_SECURITY_GROUP_IDS", "sg-1, sg-2"),
        (
            "BINARY_PACKAGE_INSTANCE_PROFILE",
            "arn:aws:iam::123456789012:instance-profile/builder",
        ),
    ];

    #[test]
    fn defaults_fill_what_is_not_configured() {
        let config = launch_config(&env(BASE), JobKind::BinaryPackage).unwrap();
        assert_eq!(config.settings.stack.as_str(), "hhvm-pipeline");
        assert_eq!(config.settings.image_id, "ami-0123456789abcdef0");
        assert_eq!(config.settings.security_group_ids, ["sg-1", "sg-2"]);
        assert_eq!(config.settings.instance_type.as_str(), "m5.2xlarge");
        assert_eq!(config.settings.market, Market::OnDemand, "on-demand unless configured");
        assert_eq!(config.settings.root_volume_gib, 95);
        assert_eq!(config.settings.root_device_name, "/dev/sda1");
        assert_eq!(config.settings.key_name, None);
        assert!(matches!(config.settings.instance_profile, InstanceProfile::Arn(_)));
        assert!(config.worker_settings.is_empty());
    }

    #[test]
    fn per_kind_variables_override_defaults() {
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("BINARY_PACKAGE_INSTANCE_TYPE", "c7i.4xlarge"),
            ("BINARY_PACKAGE_ROOT_VOLUME_GIB", "120"),
            ("SOURCE_TARBALL_INSTANCE_TYPE", "t3.nano"),
            ("WORKER_KEY_NAME", "builders"),
            ("NODIST_BUCKET", "hhvm-nodist"),
            // Read by other jobs' scripts only: not handed to a binary-package worker.
            ("SIGNING_KEY_SECRET_ID", "hhvm/signing-key"),
        ]);
        let config = launch_config(&env(&pairs), JobKind::BinaryPackage).unwrap();
        assert_eq!(config.settings.instance_type.as_str(), "c7i.4xlarge");
        assert_eq!(config.settings.root_volume_gib, 120);
        assert_eq!(config.settings.key_name.as_deref(), Some("builders"));
        assert_eq!(
            config.worker_settings,
            [("NODIST_BUCKET".to_string(), "hhvm-nodist".to_string())]
        );
        let config = launch_config(&env(&pairs), JobKind::UpdateRepositories);
        assert!(config.is_err(), "no UPDATE_REPOSITORIES_INSTANCE_PROFILE");
    }

    #[test]
    fn missing_and_bad_variables_are_named() {
        let error = launch_config(&env(BASE), JobKind::SourceTarball).unwrap_err();
        assert_eq!(error.error_type(), "ConfigurationError");
        assert!(error.to_string().contains("SOURCE_TARBALL_INSTANCE_PROFILE"), "{error}");
        for (variable, bad) in [
            ("WORKER_AMI_ID", "ami 1"),
            ("BINARY_PACKAGE_ROOT_VOLUME_GIB", "lots"),
            ("BINARY_PACKAGE_ROOT_VOLUME_GIB", "2"),
            ("WORKER_SECURITY_GROUP_IDS", "sg-1;id"),
            ("PACKAGING_REPO_URL", "https://x/$(id)"),
            ("WORKER_ROOT_DEVICE_NAME", "sda1"),
            ("PIPELINE_STACK", "hhvm_pipeline"),
            ("BINARY_PACKAGE_INSTANCE_TYPE", "m5.2xlarge;id"),
            ("BINARY_PACKAGE_MARKET", "Spot"),
            ("BINARY_PACKAGE_MARKET", "spot,on-demand"),
        ] {
            let mut pairs: Vec<(&str, &str)> = BASE.iter().filter(|(k, _)| *k != variable).copied().collect();
            pairs.push((variable, bad));
            let error = launch_config(&env(&pairs), JobKind::BinaryPackage).unwrap_err();
            assert!(error.to_string().contains(variable), "{variable}: {error}");
        }
        for variable in [
            "PIPELINE_STACK",
            "WORKER_AMI_ID",
            "WORKER_SUBNET_ID",
            "WORKER_SECURITY_GROUP_IDS",
        ] {
            let pairs: Vec<(&str, &str)> = BASE.iter().filter(|(k, _)| *k != variable).copied().collect();
            let error = launch_config(&env(&pairs), JobKind::BinaryPackage).unwrap_err();
            assert!(error.to_string().contains(variable), "{variable}: {error}");
        }
    }

    #[test]
    fn only_binary_package_workers_read_their_market() {
        for (value, market) in [("spot", Market::Spot), ("on-demand", Market::OnDemand)] {
            let mut pairs = BASE.to_vec();
            pairs.push(("BINARY_PACKAGE_MARKET", value));
            let config = launch_config(&env(&pairs), JobKind::BinaryPackage).unwrap();
            assert_eq!(config.settings.market, market, "{value}");
        }
        // The other launchers never read it: even a bad value leaves them on-demand.
        for job in [
            JobKind::SourceTarball,
            JobKind::UpdateRepositories,
            JobKind::PublishReleaseSource,
        ] {
            let profile = format!("{}_INSTANCE_PROFILE", variable_prefix(job));
            let mut pairs = BASE.to_vec();
            pairs.extend([(profile.as_str(), "worker"), ("BINARY_PACKAGE_MARKET", "not a market")]);
            let config = launch_config(&env(&pairs), job).unwrap();
            assert_eq!(config.settings.market, Market::OnDemand, "{job}");
        }
        let mut pairs = BASE.to_vec();
        pairs.push(("BINARY_PACKAGE_MARKET", "reserved"));
        let error = launch_config(&env(&pairs), JobKind::BinaryPackage).unwrap_err();
        assert_eq!(error.error_type(), "ConfigurationError");
        assert!(
            error.to_string().contains("BINARY_PACKAGE_MARKET") && error.to_string().contains("spot or on-demand"),
            "{error}"
        );
    }

    #[test]
    fn each_worker_gets_only_the_settings_its_script_reads() {
        let scripts = [
            (
                JobKind::SourceTarball,
                include_str!("../../../userdata/make-source-tarball.sh"),
            ),
            (
                JobKind::BinaryPackage,
                include_str!("../../../userdata/make-binary-package.sh"),
            ),
            (
                JobKind::UpdateRepositories,
                include_str!("../../../userdata/update-repos.sh"),
            ),
            (
                JobKind::PublishReleaseSource,
                include_str!("../../../userdata/publish-release-source.sh"),
            ),
        ];
        let library = include_str!("../../../userdata/common.sh");
        for (job, script) in scripts {
            for name in worker_settings(job) {
                // AWS_REGION is read by the AWS CLI the scripts run.
                if *name != "AWS_REGION" {
                    assert!(
                        script.contains(name) || library.contains(name),
                        "{job}: {name} is read by neither its script nor common.sh"
                    );
                }
            }
        }
    }

    #[test]
    fn parallelism_is_bounded() {
        assert_eq!(launch_parallelism(&env(&[])).unwrap(), 4);
        assert_eq!(launch_parallelism(&env(&[("LAUNCH_PARALLELISM", "8")])).unwrap(), 8);
        for bad in ["0", "33", "x"] {
            let error = launch_parallelism(&env(&[("LAUNCH_PARALLELISM", bad)])).unwrap_err();
            assert!(error.to_string().contains("LAUNCH_PARALLELISM"), "{error}");
        }
    }
}
