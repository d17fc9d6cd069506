//! The S3 key layout of the scratch bucket that workers and Lambdas share: where artifacts,
//! success markers and worker logs live. This module is the contract; the user-data scripts
//! compute the same keys from the same variables.
//!
//! - binary packages: `<version>/<distro>/<instance-id>/` (the `.deb`s, `.changes`, … and
//!   `SHA256SUMS`), one prefix per build attempt; the success marker names the one it built
//! - success markers: `markers/<version>/<job>.json`, or `markers/<version>/<job>/<distro>.json`
//!   for per-distro jobs. A marker is written last, only when the job succeeded.
//! - worker logs: `logs/<version>/<job>/<instance-id>.log`, or
//!   `logs/<version>/<job>/<distro>/<instance-id>.log`; uploaded on exit, success or failure.
//! - nightly source records: `nightly-sources/<version>.json`, the source commit each
//!   scheduled nightly was started for (written by `hhvm-start-nightly`).
//!
//! And of the download bucket, what clients read: each repository's `<os>/pool/main/…` and
//! `<os>/dists/<suite>/`, and the source tarballs under `source/`.

use std::fmt;

use crate::distro::Distro;
use crate::{ObjectKey, Version};

/// The kinds of EC2 worker job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    SourceTarball,
    BinaryPackage,
    UpdateRepositories,
    PublishReleaseSource,
}

impl JobKind {
    pub const ALL: [JobKind; 4] = [
        JobKind::SourceTarball,
        JobKind::BinaryPackage,
        JobKind::UpdateRepositories,
        JobKind::PublishReleaseSource,
    ];

    /// The job kind a `JobKind` tag names, if it names one.
    pub fn from_tag(value: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    /// How long a worker of this kind may live: its script powers the instance off at this
    /// deadline (`worker_begin <kind> <minutes>` in its script; a test below checks they agree).
    pub fn hard_timeout_minutes(&self) -> u64 {
        match self {
            JobKind::SourceTarball => 60,
            JobKind::BinaryPackage => 180,
            JobKind::UpdateRepositories => 120,
            JobKind::PublishReleaseSource => 30,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            JobKind::SourceTarball => "source-tarball",
            JobKind::BinaryPackage => "binary-package",
            JobKind::UpdateRepositories => "update-repositories",
            JobKind::PublishReleaseSource => "publish-release-source",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn key(text: String) -> ObjectKey {
    text.parse()
        .expect("keys built from versions, job kinds and distros are valid")
}

/// Where the success marker of a job goes (scratch bucket).
pub fn marker_key(version: &Version, job: JobKind, distro: Option<&Distro>) -> ObjectKey {
    match distro {
        Some(distro) => key(format!("markers/{version}/{job}/{distro}.json")),
        None => key(format!("markers/{version}/{job}.json")),
    }
}

/// The prefix under which a job's workers upload their logs, one `<instance-id>.log` each.
pub fn log_prefix(version: &Version, job: JobKind, distro: Option<&Distro>) -> String {
    match distro {
        Some(distro) => format!("logs/{version}/{job}/{distro}/"),
        None => format!("logs/{version}/{job}/"),
    }
}

/// The log one worker uploads (scratch bucket).
pub fn log_key(version: &Version, job: JobKind, distro: Option<&Distro>, instance: &str) -> String {
    format!("{}{instance}.log", log_prefix(version, job, distro))
}

/// Where clients get the repositories' public key (download bucket; the original's
/// `https://dl.hhvm.com/conf/hhvm.gpg.key`): what a publish is verified with.
pub const REPOSITORY_KEYRING_KEY: &str = "conf/hhvm.gpg.key";

/// The repositories' lease (scratch bucket): `{"holder": <instance>, ...}` while a repository
/// update publishes (`userdata/update-repos.sh`).
pub const REPOSITORY_LEASE_KEY: &str = "locks/apt-repositories.json";

/// Where one build attempt (the worker `instance`) stages a distro's packages (scratch bucket):
/// its own prefix, so a publish can never pick up an earlier attempt's files.
pub fn binary_packages_prefix(version: &Version, distro: &Distro, instance: &str) -> String {
    format!("{version}/{distro}/{instance}/")
}

/// The apt repositories of the download bucket, one per distro OS (`Distro::os`).
pub const REPOSITORY_OSES: [&str; 2] = ["debian", "ubuntu"];

/// Where a version's source tarball is published in the download bucket.
pub fn public_source_key(version: &Version) -> String {
    match version {
        Version::Nightly(_) => format!("source/nightlies/hhvm-nightly-{version}.tar.gz"),
        Version::Release { .. } => format!("source/hhvm-{version}.tar.gz"),
    }
}

/// The directory of a version's packages in the apt pool of repository `os`:
/// `<os>/pool/main/<initial>/<source package>` (Debian's layout, as update-repos.sh publishes).
pub fn pool_directory(version: &Version, os: &str) -> String {
    let package = version.package_name();
    format!("{os}/pool/main/{}/{package}", &package[..1])
}

/// Every directory of the download bucket a publish of `version` to the repositories `oses`
/// writes under: each one's pool directory of the version's package and its suites
/// (`<os>/dists`), and the source tarball's directory. Nothing else of the bucket changes.
pub fn published_directories(version: &Version, oses: &[&str]) -> Vec<String> {
    let mut directories: Vec<String> = oses
        .iter()
        .flat_map(|os| [pool_directory(version, os), format!("{os}/dists")])
        .collect();
    let source = public_source_key(version);
    directories.push(
        source
            .rsplit_once('/')
            .map_or(source.as_str(), |(directory, _)| directory)
            .to_string(),
    );
    directories.sort();
    directories.dedup();
    directories
}

/// The prefix of the nightly source records.
pub const NIGHTLY_SOURCES_PREFIX: &str = "nightly-sources/";

/// Where the source commit a scheduled nightly was started for is recorded (scratch bucket).
pub fn nightly_source_record_key(version: &Version) -> ObjectKey {
    key(format!("{NIGHTLY_SOURCES_PREFIX}{version}.json"))
}

/// The version a nightly source record key is for, if it is one.
pub fn nightly_source_record_version(key: &str) -> Option<Version> {
    let version: Version = key
        .strip_prefix(NIGHTLY_SOURCES_PREFIX)?
        .strip_suffix(".json")?
        .parse()
        .ok()?;
    version.is_nightly().then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_writes_under_the_pools_the_suites_and_the_source() {
        let release: Version = "4.168.2".parse().unwrap();
        assert_eq!(
            published_directories(&release, &REPOSITORY_OSES),
            [
                "debian/dists",
                "debian/pool/main/h/hhvm",
                "source",
                "ubuntu/dists",
                "ubuntu/pool/main/h/hhvm"
            ]
        );
        let nightly: Version = "2026.12.02".parse().unwrap();
        assert_eq!(
            published_directories(&nightly, &["ubuntu"]),
            ["source/nightlies", "ubuntu/dists", "ubuntu/pool/main/h/hhvm-nightly"]
        );
        assert_eq!(public_source_key(&release), "source/hhvm-4.168.2.tar.gz");
    }

    #[test]
    fn the_scripts_agree_on_hard_timeouts_and_the_lease() {
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
        for (job, script) in scripts {
            let line = format!("\nworker_begin {job} {}\n", job.hard_timeout_minutes());
            assert!(script.contains(&line), "{job}: no {line:?}");
        }
        assert!(
            scripts[2]
                .1
                .contains(&format!("readonly LEASE_KEY={REPOSITORY_LEASE_KEY}\n"))
        );
        assert_eq!(JobKind::from_tag("binary-package"), Some(JobKind::BinaryPackage));
        assert_eq!(JobKind::from_tag("something-else"), None);
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let version: Version = "4.168.2".parse().unwrap();
        let distro: Distro = "debian-12-bookworm".parse().unwrap();
        assert_eq!(
            marker_key(&version, JobKind::BinaryPackage, Some(&distro)).as_str(),
            "markers/4.168.2/binary-package/debian-12-bookworm.json"
        );
        assert_eq!(
            marker_key(&version, JobKind::SourceTarball, None).as_str(),
            "markers/4.168.2/source-tarball.json"
        );
        assert_eq!(
            log_prefix(&version, JobKind::UpdateRepositories, None),
            "logs/4.168.2/update-repositories/"
        );
        assert_eq!(
            log_prefix(&version, JobKind::BinaryPackage, Some(&distro)),
            "logs/4.168.2/binary-package/debian-12-bookworm/"
        );
        assert_eq!(
            binary_packages_prefix(&version, &distro, "i-0123456789abcdef0"),
            "4.168.2/debian-12-bookworm/i-0123456789abcdef0/"
        );
        let nightly: Version = "2026.12.01".parse().unwrap();
        let record = nightly_source_record_key(&nightly);
        assert_eq!(record.as_str(), "nightly-sources/2026.12.01.json");
        assert_eq!(nightly_source_record_version(record.as_str()), Some(nightly));
        assert_eq!(nightly_source_record_version("nightly-sources/4.168.2.json"), None);
        assert_eq!(nightly_source_record_version("markers/2026.12.01.json"), None);
    }
}
