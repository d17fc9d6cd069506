//! What a run published in the downloads bucket, and proof that it is usable: the source
//! tarball, the packages in the apt pools, every dist's `InRelease` checked with `gpgv` against
//! the run's public key only, the index pages, the CloudFront invalidations — and `apt-get`
//! itself fetching a package from the bucket over HTTP with signature checking on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Context, LocalStack, StackError};

/// One signed dist of an apt repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDist {
    /// `debian` or `ubuntu`.
    pub repository: String,
    /// `bookworm`, `bookworm-4.168`, …
    pub suite: String,
    /// What `gpgv` said about the signature (`Good signature from …`).
    pub signature: String,
}

/// A CloudFront invalidation of the run's distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    pub id: String,
    pub status: String,
    pub paths: Vec<String>,
}

/// What the downloads bucket and the distribution hold after a publish of `version`.
#[derive(Debug, Clone)]
pub struct Publication {
    pub version: String,
    /// Keys under `source/` of this version's tarball, signature and checksum.
    pub source_files: Vec<String>,
    /// Keys of this version's `.deb` files in the pools (`debian/pool/…`, `ubuntu/pool/…`).
    pub pool_packages: Vec<String>,
    /// Every dist of both repositories, each with a verified `InRelease`.
    pub dists: Vec<SignedDist>,
    /// Keys of the `index.html` pages.
    pub index_pages: Vec<String>,
    pub invalidations: Vec<Invalidation>,
}

impl Publication {
    /// The key of the source tarball itself (`source/…-<version>.tar.gz`).
    pub fn source_tarball(&self) -> Option<&str> {
        self.source_files
            .iter()
            .map(String::as_str)
            .find(|key| key.ends_with(".tar.gz"))
    }
}

impl fmt::Display for Publication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "published {}:", self.version)?;
        writeln!(f, "  source tarball: {}", self.source_tarball().unwrap_or("(none)"))?;
        writeln!(f, "  packages in the pool ({}):", self.pool_packages.len())?;
        for key in &self.pool_packages {
            writeln!(f, "    {key}")?;
        }
        writeln!(
            f,
            "  apt repositories ({} dists, InRelease verified with gpgv):",
            self.dists.len()
        )?;
        for dist in &self.dists {
            writeln!(f, "    {}/dists/{}: {}", dist.repository, dist.suite, dist.signature)?;
        }
        let examples: Vec<&str> = self.index_pages.iter().take(3).map(String::as_str).collect();
        writeln!(
            f,
            "  index pages: {} (e.g. {})",
            self.index_pages.len(),
            examples.join(", ")
        )?;
        writeln!(f, "  CloudFront invalidations ({}):", self.invalidations.len())?;
        for invalidation in &self.invalidations {
            let shown: Vec<&str> = invalidation.paths.iter().take(6).map(String::as_str).collect();
            let more = invalidation.paths.len() - shown.len();
            writeln!(
                f,
                "    {} {} ({} paths): {}{}",
                invalidation.id,
                invalidation.status,
                invalidation.paths.len(),
                shown.join(" "),
                if more > 0 {
                    format!(" … and {more} more")
                } else {
                    String::new()
                }
            )?;
        }
        Ok(())
    }
}

/// `debian-12-bookworm` → (`debian`, `bookworm`): the repository and the suite a nightly of that
/// distro is published to.
pub fn repository_and_suite(distro: &str) -> Option<(&str, &str)> {
    let repository = distro.split('-').next()?;
    let suite = distro.rsplit('-').next()?;
    (repository != suite).then_some((repository, suite))
}

/// A directory for one check's files, new in the run directory.
fn check_dir(stack: &LocalStack, name: &str) -> Result<PathBuf, StackError> {
    let dir = stack.run_dir().join("checks").join(name);
    std::fs::create_dir_all(&dir).context(format!("create {}", dir.display()))?;
    Ok(dir)
}

/// Runs a command, failing with its output unless it succeeds; returns stdout and stderr.
fn run_checked(command: &mut Command, what: &str) -> Result<String, StackError> {
    let output = command.output().context(format!("run {what}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        return Err(StackError(format!("{what} failed ({}):\n{text}", output.status)));
    }
    Ok(text)
}

/// Checks `InRelease` of `repository`/`suite` in the downloads bucket with `gpgv` against the
/// run's public keyring only; returns gpgv's `Good signature` line.
pub async fn verify_in_release(stack: &LocalStack, repository: &str, suite: &str) -> Result<String, StackError> {
    let key = format!("{repository}/dists/{suite}/InRelease");
    let bytes = stack.get_object(&stack.settings().downloads_bucket, &key).await?;
    let dir = check_dir(stack, &format!("inrelease-{repository}-{suite}"))?;
    let file = dir.join("InRelease");
    std::fs::write(&file, bytes).context(format!("write {}", file.display()))?;
    let output = run_checked(
        Command::new("gpgv")
            .arg("--keyring")
            .arg(&stack.settings().public_keyring)
            .arg(&file),
        &format!("gpgv of {key}"),
    )?;
    output
        .lines()
        .find(|line| line.contains("Good signature"))
        .map(|line| line.trim_start_matches("gpgv: ").to_string())
        .ok_or_else(|| StackError(format!("gpgv of {key} printed no good signature:\n{output}")))
}

/// Reads what the downloads bucket and the distribution hold for `version`, verifying every
/// dist's `InRelease`.
pub async fn inspect_publication(stack: &LocalStack, version: &str) -> Result<Publication, StackError> {
    let bucket = stack.settings().downloads_bucket.clone();
    let keys = stack.list_keys(&bucket, "").await?;
    let tarball_suffix = format!("-{version}.tar.gz");
    let source_files = keys
        .iter()
        .filter(|key| key.starts_with("source/"))
        .filter(|key| {
            [".sig", ".sha256", ""]
                .iter()
                .any(|extension| key.ends_with(&format!("{tarball_suffix}{extension}")))
        })
        .cloned()
        .collect();
    let package_version = format!("_{version}-");
    let pool_packages = keys
        .iter()
        .filter(|key| key.contains("/pool/") && key.ends_with(".deb") && key.contains(&package_version))
        .cloned()
        .collect();
    let mut dists = Vec::new();
    for key in &keys {
        let parts: Vec<&str> = key.split('/').collect();
        if let [repository, "dists", suite, "InRelease"] = parts.as_slice() {
            let signature = verify_in_release(stack, repository, suite).await?;
            dists.push(SignedDist {
                repository: repository.to_string(),
                suite: suite.to_string(),
                signature,
            });
        }
    }
    let index_pages = keys.iter().filter(|key| key.ends_with("index.html")).cloned().collect();
    Ok(Publication {
        version: version.to_string(),
        source_files,
        pool_packages,
        dists,
        index_pages,
        invalidations: invalidations(stack).await?,
    })
}

/// Every invalidation of the run's distribution, with its paths.
pub async fn invalidations(stack: &LocalStack) -> Result<Vec<Invalidation>, StackError> {
    let cloudfront = aws_sdk_cloudfront::Client::new(stack.sdk_config());
    let distribution = &stack.settings().cloudfront_distribution_id;
    let listed = cloudfront
        .list_invalidations()
        .distribution_id(distribution)
        .send()
        .await
        .context(format!("CloudFront ListInvalidations {distribution}"))?;
    let mut found = Vec::new();
    for summary in listed.invalidation_list().map(|l| l.items()).unwrap_or_default() {
        let described = cloudfront
            .get_invalidation()
            .distribution_id(distribution)
            .id(summary.id())
            .send()
            .await
            .context(format!("CloudFront GetInvalidation {}", summary.id()))?;
        let paths = described
            .invalidation()
            .and_then(|i| i.invalidation_batch())
            .and_then(|b| b.paths())
            .map(|p| p.items().to_vec())
            .unwrap_or_default();
        found.push(Invalidation {
            id: summary.id().to_string(),
            status: summary.status().to_string(),
            paths,
        });
    }
    Ok(found)
}

/// A package that `apt-get download` fetched.
#[derive(Debug, Clone)]
pub struct AptDownload {
    pub deb: PathBuf,
    /// `Package`, `Version` and `Architecture` of the downloaded file (`dpkg-deb --field`).
    pub fields: String,
    /// What `apt-get update` and `apt-get download` printed.
    pub log: String,
}

/// apt's options that keep it to `dir`: its own sources list, keyring-less trust, lists, cache
/// and an empty dpkg status, so nothing of the machine's apt is read or touched.
fn apt_options(dir: &Path) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    [
        ("Dir::Etc::SourceList", path("sources.list")),
        ("Dir::Etc::SourceParts", "/dev/null".to_string()),
        ("Dir::Etc::Preferences", "/dev/null".to_string()),
        ("Dir::Etc::PreferencesParts", "/dev/null".to_string()),
        ("Dir::Etc::Trusted", path("no-trusted.gpg")),
        ("Dir::Etc::TrustedParts", path("no-trusted.d")),
        ("Dir::State", path("state")),
        ("Dir::State::Lists", path("state/lists")),
        ("Dir::State::status", path("state/status")),
        ("Dir::Cache", path("cache")),
        ("Dir::Log", path("log")),
        // As root, apt downloads as the `_apt` user, which may not enter the run directory.
        ("APT::Sandbox::User", "root".to_string()),
        ("APT::Architecture", "amd64".to_string()),
        ("APT::Architectures", "amd64".to_string()),
        ("Acquire::Languages", "none".to_string()),
        ("Acquire::Retries", "0".to_string()),
    ]
    .into_iter()
    .flat_map(|(name, value)| ["-o".to_string(), format!("{name}={value}")])
    .collect()
}

/// Points `apt-get` at the emulated downloads bucket over HTTP
/// (`deb [signed-by=<the run's public key>] http://127.0.0.1:PORT/<bucket>/<repository> <suite> main`),
/// runs `apt-get update` and `apt-get download <package>` with signature checking on, and
/// returns the fetched file. Fails when apt reports any problem (a bad or missing signature is
/// one: apt refuses such a repository).
pub async fn apt_download(
    stack: &LocalStack,
    repository: &str,
    suite: &str,
    package: &str,
) -> Result<AptDownload, StackError> {
    let keyring = stack.settings().public_keyring.clone();
    apt_download_trusting(stack, &keyring, repository, suite, package).await
}

/// `apt_download` with `keyring` as the only trusted key (a wrong one must make it fail).
pub async fn apt_download_trusting(
    stack: &LocalStack,
    keyring: &Path,
    repository: &str,
    suite: &str,
    package: &str,
) -> Result<AptDownload, StackError> {
    let keyring_name = keyring
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = check_dir(stack, &format!("apt-{repository}-{suite}-{package}-{keyring_name}"))?;
    // A repeated check starts from nothing: no lists or packages of an earlier one.
    for sub in ["state", "cache", "download"] {
        let stale = dir.join(sub);
        if stale.exists() {
            std::fs::remove_dir_all(&stale).context(format!("remove {}", stale.display()))?;
        }
    }
    for sub in [
        "no-trusted.d",
        "state/lists/partial",
        "cache/archives/partial",
        "log",
        "download",
    ] {
        std::fs::create_dir_all(dir.join(sub)).context(format!("create {}", dir.join(sub).display()))?;
    }
    std::fs::write(dir.join("state/status"), "").context("write an empty dpkg status")?;
    let keyring = keyring.display().to_string();
    let line = format!(
        "deb [signed-by={keyring}] {}/{}/{repository} {suite} main\n",
        stack.endpoint(),
        stack.settings().downloads_bucket
    );
    std::fs::write(dir.join("sources.list"), &line).context("write sources.list")?;
    let options = apt_options(&dir);
    let package = package.to_string();
    tokio::task::spawn_blocking(move || {
        let mut log = format!("sources.list: {line}");
        let update = run_checked(Command::new("apt-get").args(&options).arg("update"), "apt-get update")?;
        log.push_str(&update);
        // apt-get update only warns about some repository problems; any warning fails the check.
        if update
            .lines()
            .any(|l| l.starts_with("W:") || l.starts_with("E:") || l.starts_with("Err:"))
        {
            return Err(StackError(format!("apt-get update reported problems:\n{update}")));
        }
        let download_dir = dir.join("download");
        let download = run_checked(
            Command::new("apt-get")
                .args(&options)
                .args(["download", &package])
                .current_dir(&download_dir),
            &format!("apt-get download {package}"),
        )?;
        log.push_str(&download);
        let deb = std::fs::read_dir(&download_dir)
            .context(format!("read {}", download_dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .find(|path| path.extension().is_some_and(|e| e == "deb"))
            .ok_or_else(|| StackError(format!("apt-get download {package} left no .deb:\n{log}")))?;
        let fields = run_checked(
            Command::new("dpkg-deb")
                .arg("--field")
                .arg(&deb)
                .args(["Package", "Version", "Architecture"]),
            "dpkg-deb --field",
        )?;
        Ok(AptDownload { deb, fields, log })
    })
    .await
    .map_err(|error| StackError(format!("apt check: {error}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_distro_names_its_repository_and_suite() {
        assert_eq!(repository_and_suite("debian-12-bookworm"), Some(("debian", "bookworm")));
        assert_eq!(repository_and_suite("ubuntu-24.04-noble"), Some(("ubuntu", "noble")));
        assert_eq!(repository_and_suite("noble"), None);
    }

    #[test]
    fn apt_is_kept_to_its_directory() {
        let options = apt_options(Path::new("/tmp/x"));
        for expected in [
            "Dir::Etc::SourceList=/tmp/x/sources.list",
            "Dir::Etc::SourceParts=/dev/null",
            "Dir::State::Lists=/tmp/x/state/lists",
            "Dir::Cache=/tmp/x/cache",
        ] {
            assert!(options.iter().any(|o| o == expected), "{expected} missing: {options:?}");
        }
        assert!(
            !options
                .iter()
                .any(|o| o.contains("allow-unauthenticated") || o.contains("trusted=yes"))
        );
    }
}
