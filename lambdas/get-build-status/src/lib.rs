//! `hhvm-get-build-status`: where each artifact of a version stands — the API behind a build
//! status page, called directly as well as from state machines (so its output is structured
//! JSON, not pass-through).
//!
//! For the source tarball and each distro it reports one of `published`, `built_not_published`,
//! `failed` (with the worker's log) or `not_built`. It reads what the workers write — success
//! markers (JSON, written last) and logs (uploaded on exit), at the keys of
//! `pipeline_core::layout` — and derives pool keys from the file names in the marker, where the
//! original guessed `<pkg>_<v>-1~<codename>_amd64.deb` and broke whenever PKGVER changed.
//!
//! A distro is `published` only when a client would install this build: the repository
//! update's marker says it published the build whose marker this is (same worker instance), and
//! in each suite it went to, the `InRelease` verifies with the public key clients use
//! (`conf/hhvm.gpg.key` of the download bucket), the indices it lists are there with the
//! stated sizes and SHA-256, and a `Packages` index lists every `.deb` of the marker with the
//! marker's SHA-256 (`repository`).
//!
//! With `require: "built"` or `require: "published"` it is also the state machines' check that
//! the work really happened: it fails with `BuildFailed` / `PublishFailed`, naming every
//! artifact short of that (with its log), instead of returning the report. With `builds` (what
//! `hhvm-build-binary-packages` started), a distro counts as built only by the marker its
//! worker wrote: an older marker never stands in for a rebuild that failed. With
//! `buildExecutionStates` and `executionName` (`hhvm-build-and-publish-multi`'s check), a version
//! whose child build's latest attempt did not succeed fails the check before any marker is
//! read, for the same reason.

pub mod repository;

use std::collections::{BTreeMap, HashMap};

use pipeline_aws::config::Source;
use pipeline_aws::s3::newest_log;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::distro::read_distros;
use pipeline_core::executions::{
    ChildOutcome, ChildRole, ExecutionName, latest_child_outcome, read_build_execution_states,
};
use pipeline_core::launch::{DistroBuild, read_builds};
use pipeline_core::layout::{
    JobKind, REPOSITORY_KEYRING_KEY, log_key, log_prefix, marker_key, pool_directory, public_source_key,
};
use pipeline_core::marker::{Marker, parse_marker};
use pipeline_core::s3::Buckets;
use pipeline_core::{Distro, InstanceId, ObjectKey, PackagingBranch, Payload, PipelineError, S3Location, Version};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Configuration read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub buckets: Buckets,
    /// `CURRENT_TARGETS_URL`: read when a request names no distros.
    pub current_targets_url: String,
}

impl Config {
    pub fn from_source(source: &impl pipeline_aws::config::Source) -> Result<Config, PipelineError> {
        Ok(Config {
            buckets: pipeline_aws::config::buckets(source)?,
            current_targets_url: pipeline_aws::packaging::configured_current_targets_url(source)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Published,
    BuiltNotPublished,
    Failed,
    NotBuilt,
}

/// The status of one artifact and what it was decided from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactStatus {
    pub status: Status,
    /// Where the published artifact is (source tarball) or would be (nothing for distros).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<S3Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<S3Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_version: Option<String>,
    /// The `.deb` files' keys in the downloads bucket's apt pool.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// The worker's log of a failed job (the newest, when it ran more than once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<S3Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl ArtifactStatus {
    fn new(status: Status) -> ArtifactStatus {
        ArtifactStatus {
            status,
            location: None,
            marker: None,
            package_version: None,
            packages: Vec::new(),
            log: None,
            problem: None,
        }
    }
}

/// The repository update's success marker: for each distro, the build it published and the
/// suites (`debian/bookworm`, …) it went to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct UpdateMarker {
    #[serde(default)]
    pub published: BTreeMap<String, PublishedBuild>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublishedBuild {
    pub instance: String,
    pub suites: Vec<String>,
}

/// The keys of a distro's `.deb` files in the apt pool of the downloads bucket, from the
/// marker's file names: `<os>/pool/main/<initial>/<source package>/<file>` (Debian's layout, as update-repos.sh publishes).
pub fn pool_keys(version: &Version, distro: &Distro, marker: &Marker) -> Result<Vec<String>, String> {
    let pool = pool_directory(version, distro.os());
    marker
        .files
        .iter()
        .filter(|file| file.name.ends_with(".deb"))
        .map(|file| {
            let plain = !file.name.is_empty()
                && !file.name.contains('/')
                && !file.name.starts_with('.')
                && !file.name.chars().any(char::is_control);
            let key = format!("{pool}/{}", file.name);
            if plain && key.parse::<ObjectKey>().is_ok() {
                Ok(key)
            } else {
                Err(format!(
                    "the success marker names a file {:?} that is not a plain file name",
                    file.name
                ))
            }
        })
        .collect()
}

/// Whether the marker is the one this build's worker wrote (`expected`, from `builds`); any
/// marker counts when no worker was started for the distro.
pub fn check_build_identity(marker: &Marker, expected: Option<&InstanceId>) -> Result<(), String> {
    match expected {
        Some(expected) if !marker.written_by(expected) => Err(format!(
            "its worker {expected} wrote no success marker; the one there is from the earlier build by {}",
            marker.writer()
        )),
        _ => Ok(()),
    }
}

/// Whether a suite's `Packages` indices (`listed`: `Filename`, `SHA256`) list every `.deb` of
/// the marker (at `pool_keys`, `<os>/pool/...`) with the marker's SHA-256.
pub fn check_listed(
    suite: &str,
    listed: &[(String, String)],
    marker: &Marker,
    pool_keys: &[String],
) -> Result<(), String> {
    let debs = marker.files.iter().filter(|file| file.name.ends_with(".deb"));
    for (file, key) in debs.zip(pool_keys) {
        let filename = key.split_once('/').map_or(key.as_str(), |(_, rest)| rest);
        let Some(sha256) = file.sha256.as_deref() else {
            return Err(format!("the success marker states no sha256 for {}", file.name));
        };
        if !listed.iter().any(|(name, sha)| name == filename && sha == sha256) {
            return Err(match listed.iter().find(|(name, _)| name == filename) {
                Some((_, other)) => format!("{suite} lists {filename} with sha256 {other}, not this build's {sha256}"),
                None => format!("{suite} does not list {filename}"),
            });
        }
    }
    Ok(())
}

/// A distro's status from what was found: pure. `publication` is whether the repositories
/// list this build (and why not).
pub fn classify_distro(
    marker: Option<Result<(Marker, Vec<String>), String>>,
    publication: Result<(), String>,
    log: Option<S3Location>,
) -> ArtifactStatus {
    match marker {
        Some(Ok((marker, packages))) => {
            let mut status = ArtifactStatus::new(Status::BuiltNotPublished);
            if packages.is_empty() {
                status.problem = Some("the success marker lists no .deb files".into());
            } else {
                match publication {
                    Ok(()) => status.status = Status::Published,
                    Err(problem) => {
                        status.problem = Some(problem);
                        status.log = log;
                    }
                }
            }
            status.package_version = marker.package_version;
            status.packages = packages;
            status
        }
        Some(Err(problem)) => {
            let mut status = ArtifactStatus::new(Status::Failed);
            status.problem = Some(problem);
            status.log = log;
            status
        }
        None => match log {
            Some(log) => {
                let mut status = ArtifactStatus::new(Status::Failed);
                status.log = Some(log);
                status
            }
            None => ArtifactStatus::new(Status::NotBuilt),
        },
    }
}

/// The source tarball's status from what was found: pure.
pub fn classify_source(public: bool, marker: bool, log: Option<S3Location>) -> ArtifactStatus {
    if public {
        ArtifactStatus::new(Status::Published)
    } else if marker {
        ArtifactStatus::new(Status::BuiltNotPublished)
    } else if let Some(log) = log {
        let mut status = ArtifactStatus::new(Status::Failed);
        status.log = Some(log);
        status
    } else {
        ArtifactStatus::new(Status::NotBuilt)
    }
}

/// The whole answer, summarised the way the status page reads it.
pub fn build_output(version: &Version, branch: &PackagingBranch, artifacts: Vec<(String, ArtifactStatus)>) -> Value {
    let mut lists: [(Status, Vec<String>); 4] = [
        (Status::Published, Vec::new()),
        (Status::BuiltNotPublished, Vec::new()),
        (Status::Failed, Vec::new()),
        (Status::NotBuilt, Vec::new()),
    ];
    let mut by_name = Map::new();
    for (name, artifact) in artifacts {
        if let Some((_, list)) = lists.iter_mut().find(|(status, _)| *status == artifact.status) {
            list.push(name.clone());
        }
        by_name.insert(name, serde_json::to_value(&artifact).expect("statuses are plain data"));
    }
    let success = lists[1].1.is_empty() && lists[2].1.is_empty() && lists[3].1.is_empty();
    let [published, built_not_published, failed, not_built] = lists.map(|(_, list)| list);
    serde_json::json!({
        "version": version.to_string(),
        "packagingBranch": branch.to_string(),
        "success": success,
        "artifacts": by_name,
        "published": published,
        "built_not_published": built_not_published,
        "failed": failed,
        "not_built": not_built,
    })
}

/// What a state machine requires of the artifacts (`require`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Every artifact built (published counts as built).
    Built,
    /// Every artifact in the download bucket.
    Published,
}

impl Requirement {
    fn is_met_by(self, status: Status) -> bool {
        match self {
            Requirement::Built => matches!(status, Status::Published | Status::BuiltNotPublished),
            Requirement::Published => status == Status::Published,
        }
    }
}

/// The error for the artifacts short of `requirement`, if any: each named with its status and,
/// for a failed job, its log.
pub fn unmet_requirement(
    requirement: Requirement,
    version: &Version,
    artifacts: &[(String, ArtifactStatus)],
) -> Option<PipelineError> {
    let short: Vec<String> = artifacts
        .iter()
        .filter(|(_, artifact)| !requirement.is_met_by(artifact.status))
        .map(|(name, artifact)| {
            let status = serde_json::to_value(artifact.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string));
            let mut text = format!("{name} ({})", status.unwrap_or_default().replace('_', " "));
            if let Some(log) = &artifact.log {
                text.push_str(&format!(", log {log}"));
            }
            if let Some(problem) = &artifact.problem {
                text.push_str(&format!(", {problem}"));
            }
            text
        })
        .collect();
    if short.is_empty() {
        return None;
    }
    let (version, details) = (version.to_string(), short.join("; "));
    Some(match requirement {
        Requirement::Built => PipelineError::BuildFailed { version, details },
        Requirement::Published => PipelineError::PublishFailed { version, details },
    })
}

/// The validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub version: Version,
    pub packaging_branch: PackagingBranch,
    /// `None`: read CURRENT_TARGETS of the branch.
    pub distros: Option<Vec<Distro>>,
    pub require: Option<Requirement>,
    /// The workers this build started (`builds` of hhvm-build-binary-packages).
    pub builds: Vec<DistroBuild>,
    /// How this version's child build ended, when the run that started it says
    /// (`buildExecutionStates`).
    pub build_execution: Option<ChildOutcome>,
}

impl Request {
    fn worker_of(&self, distro: &Distro) -> Option<&InstanceId> {
        self.builds
            .iter()
            .find(|build| &build.distro == distro)
            .map(|build| &build.instance)
    }
}

pub fn parse_request(payload: &Payload, today: Version) -> Result<Request, PipelineError> {
    let version = Version::read_optional(payload)?.unwrap_or(today);
    let packaging_branch = match payload.optional_nonempty_str("packagingBranch")? {
        Some(text) => text.parse()?,
        None => version.default_packaging_branch(),
    };
    let distros = read_distros(payload)?;
    let require = match payload.optional_nonempty_str("require")?.as_deref() {
        None => None,
        Some("built") => Some(Requirement::Built),
        Some("published") => Some(Requirement::Published),
        Some(other) => {
            return Err(PipelineError::invalid_input(
                "require",
                format!("{other:?} is not a requirement; expected \"built\" or \"published\""),
            ));
        }
    };
    let builds = read_builds(payload)?.unwrap_or_default();
    let build_execution = match (read_build_execution_states(payload)?, ExecutionName::optional(payload)?) {
        (Some(states), Some(parent)) => latest_child_outcome(&states, &parent, ChildRole::Build, &version),
        _ => None,
    };
    Ok(Request {
        version,
        packaging_branch,
        distros,
        require,
        builds,
        build_execution,
    })
}

/// The error for a required version whose child build did not succeed: markers of an earlier
/// build must not stand in for it.
pub fn unsuccessful_build(request: &Request) -> Option<PipelineError> {
    request.require?;
    let build = request.build_execution.as_ref()?;
    (build.status != "SUCCEEDED").then(|| PipelineError::BuildFailed {
        version: request.version.to_string(),
        details: format!(
            "its build execution {} ended {}; packages of an earlier build do not stand in for it",
            build.name, build.status
        ),
    })
}

/// `key` in `bucket`, for the keys this function builds itself from validated parts (the
/// layout's, and pool keys `pool_keys` checked).
fn location(bucket: &pipeline_core::BucketName, key: &str) -> S3Location {
    S3Location {
        bucket: bucket.clone(),
        path: key
            .parse::<ObjectKey>()
            .expect("keys built from versions and distros are valid"),
    }
}

async fn newest_log_under(
    s3: &aws_sdk_s3::Client,
    buckets: &Buckets,
    prefix: &str,
) -> Result<Option<S3Location>, PipelineError> {
    let logs = pipeline_aws::s3::list_objects(s3, buckets.scratch.as_str(), Some(prefix))
        .collect_all()
        .await?;
    // A listed key is S3's data, not ours: one the layout could not have written is no log.
    Ok(newest_log(&logs).and_then(|log| {
        Some(S3Location {
            bucket: buckets.scratch.clone(),
            path: log.key.parse().ok()?,
        })
    }))
}

async fn source_status(
    s3: &aws_sdk_s3::Client,
    buckets: &Buckets,
    version: &Version,
) -> Result<ArtifactStatus, PipelineError> {
    let public = location(&buckets.downloads, &public_source_key(version));
    let marker = S3Location {
        bucket: buckets.scratch.clone(),
        path: marker_key(version, JobKind::SourceTarball, None),
    };
    let published = pipeline_aws::s3::object_exists(s3, &public).await?;
    let built = !published && pipeline_aws::s3::object_exists(s3, &marker).await?;
    let log = if published || built {
        None
    } else {
        newest_log_under(s3, buckets, &log_prefix(version, JobKind::SourceTarball, None)).await?
    };
    let mut status = classify_source(published, built, log);
    status.location = Some(public);
    if built {
        status.marker = Some(marker);
    }
    Ok(status)
}

/// The published repositories, read as a client reads them, each suite once per request.
struct Repositories<'a> {
    s3: &'a aws_sdk_s3::Client,
    downloads: &'a pipeline_core::BucketName,
    keyring: Option<Result<String, String>>,
    suites: HashMap<String, Result<Vec<(String, String)>, String>>,
}

impl<'a> Repositories<'a> {
    fn new(s3: &'a aws_sdk_s3::Client, downloads: &'a pipeline_core::BucketName) -> Self {
        Repositories {
            s3,
            downloads,
            keyring: None,
            suites: HashMap::new(),
        }
    }

    /// The object at `key`; `None` when it is missing or `key` (from a Release) is no valid key.
    async fn text(&self, key: &str) -> Result<Option<Vec<u8>>, PipelineError> {
        let Ok(path) = key.parse() else {
            return Ok(None);
        };
        let location = S3Location {
            bucket: self.downloads.clone(),
            path,
        };
        pipeline_aws::s3::get_object_bytes(self.s3, &location).await
    }

    async fn keyring(&mut self) -> Result<Result<String, String>, PipelineError> {
        if self.keyring.is_none() {
            let found = match self.text(REPOSITORY_KEYRING_KEY).await? {
                Some(bytes) => String::from_utf8(bytes).map_err(|_| "it is not text".to_string()),
                None => Err("it is missing".to_string()),
            };
            self.keyring = Some(found.map_err(|problem| {
                format!(
                    "the public key s3://{}/{REPOSITORY_KEYRING_KEY} cannot be read ({problem}): clients cannot verify anything",
                    self.downloads
                )
            }));
        }
        Ok(self.keyring.clone().expect("just read"))
    }

    /// `(Filename, SHA256)` of every package the suite's verified indices list, or why a
    /// client would not get that far.
    async fn listed(&mut self, suite: &str) -> Result<Result<Vec<(String, String)>, String>, PipelineError> {
        if let Some(listed) = self.suites.get(suite) {
            return Ok(listed.clone());
        }
        let listed = self.read_suite(suite).await?;
        self.suites.insert(suite.to_string(), listed.clone());
        Ok(listed)
    }

    async fn read_suite(&mut self, suite: &str) -> Result<Result<Vec<(String, String)>, String>, PipelineError> {
        let Some((os, dist)) = suite.split_once('/').filter(|(os, dist)| {
            matches!(*os, "debian" | "ubuntu")
                && !dist.is_empty()
                && dist
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        }) else {
            return Ok(Err(format!(
                "the repository update names a suite {suite:?} that is not <os>/<dist>"
            )));
        };
        let keyring = match self.keyring().await? {
            Ok(keyring) => keyring,
            Err(problem) => return Ok(Err(problem)),
        };
        let directory = format!("{os}/dists/{dist}");
        let Some(in_release) = self.text(&format!("{directory}/InRelease")).await? else {
            return Ok(Err(format!("{directory}/InRelease is not published")));
        };
        let release = String::from_utf8(in_release)
            .map_err(|_| "InRelease is not text".to_string())
            .and_then(|text| repository::verified_release(&text, &keyring))
            .and_then(|text| repository::parse_release(&text));
        let release = match release {
            Ok(release) => release,
            Err(problem) => return Ok(Err(format!("{directory}: {problem}"))),
        };
        let mut listed = Vec::new();
        for file in &release.files {
            let path = if release.acquire_by_hash {
                file.by_hash_path()
            } else {
                file.path.clone()
            };
            let Some(bytes) = self.text(&format!("{directory}/{path}")).await? else {
                return Ok(Err(format!(
                    "{directory}/InRelease lists {}, but {path} is not published",
                    file.path
                )));
            };
            if let Err(problem) = file.check(&bytes) {
                return Ok(Err(format!("{directory}/{path}: {problem}")));
            }
            if file.is_packages_index() {
                match repository::packages_text(file, &bytes) {
                    Ok(text) => listed.extend(repository::listed_packages(&text)),
                    Err(problem) => return Ok(Err(format!("{directory}: {problem}"))),
                }
            }
        }
        Ok(Ok(listed))
    }
}

/// The repository update's marker, and the log of its newest worker (for messages).
struct UpdateRecord {
    marker: Option<Result<UpdateMarker, String>>,
    log: Option<S3Location>,
}

async fn update_record(
    s3: &aws_sdk_s3::Client,
    buckets: &Buckets,
    version: &Version,
) -> Result<UpdateRecord, PipelineError> {
    let marker = S3Location {
        bucket: buckets.scratch.clone(),
        path: marker_key(version, JobKind::UpdateRepositories, None),
    };
    let marker = pipeline_aws::s3::get_object_bytes(s3, &marker).await?.map(|bytes| {
        serde_json::from_slice(&bytes)
            .map_err(|error| format!("the repository update's success marker is not valid: {error}"))
    });
    let log = newest_log_under(s3, buckets, &log_prefix(version, JobKind::UpdateRepositories, None)).await?;
    Ok(UpdateRecord { marker, log })
}

/// Whether the repositories list this build of the distro, and why not.
async fn publication(
    repositories: &mut Repositories<'_>,
    update: &UpdateRecord,
    distro: &Distro,
    marker: &Marker,
    pool_keys: &[String],
) -> Result<Result<(), String>, PipelineError> {
    for key in pool_keys {
        if !pipeline_aws::s3::object_exists(repositories.s3, &location(repositories.downloads, key)).await? {
            return Ok(Err(format!("{key} is not in the pool")));
        }
    }
    let published = match &update.marker {
        None => {
            return Ok(Err(
                "the repository update wrote no success marker for this version".into()
            ));
        }
        Some(Err(problem)) => return Ok(Err(problem.clone())),
        Some(Ok(update)) => update.published.get(distro.as_str()),
    };
    let Some(published) = published else {
        return Ok(Err("the repository update did not publish this distro".into()));
    };
    if marker.instance.as_deref() != Some(published.instance.as_str()) {
        return Ok(Err(format!(
            "the repositories have the build by {}, not this build by {}",
            published.instance,
            marker.writer()
        )));
    }
    for suite in &published.suites {
        let listed = match repositories.listed(suite).await? {
            Ok(listed) => listed,
            Err(problem) => return Ok(Err(problem)),
        };
        if let Err(problem) = check_listed(suite, &listed, marker, pool_keys) {
            return Ok(Err(problem));
        }
    }
    Ok(Ok(()))
}

async fn distro_status(
    s3: &aws_sdk_s3::Client,
    buckets: &Buckets,
    repositories: &mut Repositories<'_>,
    update: &UpdateRecord,
    request: &Request,
    distro: &Distro,
) -> Result<ArtifactStatus, PipelineError> {
    let version = &request.version;
    let marker_location = S3Location {
        bucket: buckets.scratch.clone(),
        path: marker_key(version, JobKind::BinaryPackage, Some(distro)),
    };
    let worker = request.worker_of(distro);
    let marker = pipeline_aws::s3::get_object_bytes(s3, &marker_location)
        .await?
        .map(|bytes| {
            parse_marker(&bytes).and_then(|marker| {
                check_build_identity(&marker, worker)?;
                pool_keys(version, distro, &marker).map(|keys| (marker, keys))
            })
        });
    let mut publication_log = None;
    let published = match &marker {
        Some(Ok((marker, keys))) => {
            let published = publication(repositories, update, distro, marker, keys).await?;
            if published.is_err() {
                publication_log = update.log.clone();
            }
            published
        }
        _ => Ok(()),
    };
    let log = match (&marker, worker) {
        (Some(Ok(_)), _) => publication_log,
        (_, Some(worker)) => Some(location(
            &buckets.scratch,
            &log_key(version, JobKind::BinaryPackage, Some(distro), worker.as_str()),
        )),
        _ => newest_log_under(s3, buckets, &log_prefix(version, JobKind::BinaryPackage, Some(distro))).await?,
    };
    let has_marker = marker.is_some();
    let mut status = classify_distro(marker, published, log);
    if has_marker {
        status.marker = Some(marker_location);
    }
    Ok(status)
}

pub async fn handle(s3: &aws_sdk_s3::Client, config: &Config, event: Value) -> Result<Value, PipelineError> {
    handle_on(s3, config, event, Version::nightly_today()).await
}

/// `handle` with "today" given, for tests.
pub async fn handle_on(
    s3: &aws_sdk_s3::Client,
    config: &Config,
    event: Value,
    today: Version,
) -> Result<Value, PipelineError> {
    let payload = Payload::from_value(event)?;
    let request = parse_request(&payload, today)?;
    if let Some(error) = unsuccessful_build(&request) {
        tracing::warn!(version = %request.version, "{error}");
        return Err(error);
    }
    let distros = match request.distros.clone() {
        Some(distros) => distros,
        None => {
            pipeline_aws::packaging::fetch_current_targets(&config.current_targets_url, &request.packaging_branch)
                .await?
        }
    };
    let mut artifacts = vec![(
        "source".to_string(),
        source_status(s3, &config.buckets, &request.version).await?,
    )];
    let update = update_record(s3, &config.buckets, &request.version).await?;
    let mut repositories = Repositories::new(s3, &config.buckets.downloads);
    for distro in &distros {
        let status = distro_status(s3, &config.buckets, &mut repositories, &update, &request, distro).await?;
        artifacts.push((distro.to_string(), status));
    }
    if let Some(error) = request
        .require
        .and_then(|r| unmet_requirement(r, &request.version, &artifacts))
    {
        tracing::warn!(version = %request.version, "{error}");
        return Err(error);
    }
    let output = build_output(&request.version, &request.packaging_branch, artifacts);
    tracing::info!(version = %request.version, success = %output["success"], "build status read");
    Ok(output)
}

/// The deployed function: `handle` with its client and configuration.
pub struct GetBuildStatus {
    s3: aws_sdk_s3::Client,
    config: Config,
}

impl Function for GetBuildStatus {
    const NAME: &'static str = "hhvm-get-build-status";
    type Config = Config;

    fn configuration(source: &impl Source) -> Result<Config, PipelineError> {
        Config::from_source(source)
    }

    fn new(config: Config, sdk_config: &SdkConfig) -> Self {
        GetBuildStatus {
            s3: pipeline_aws::s3_client(sdk_config),
            config,
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.s3, &self.config, event).await
    }
}

#[cfg(test)]
mod tests {
    use pipeline_core::marker::MarkerFile;
    use serde_json::json;

    use super::*;

    fn version(text: &str) -> Version {
        text.parse().unwrap()
    }

    fn marker(files: &[&str]) -> Marker {
        Marker {
            version: None,
            distro: None,
            package_version: Some("4.168.2-2~bookworm".into()),
            instance: Some("i-0123456789abcdef0".into()),
            execution_name: Some("nightly-2026-11-21".into()),
            files: files
                .iter()
                .map(|name| MarkerFile {
                    name: name.to_string(),
                    sha256: Some(format!("{:0>64}", name.len())),
                })
                .collect(),
        }
    }

    fn artifact(status: Status, log: Option<&str>) -> ArtifactStatus {
        let mut artifact = ArtifactStatus::new(status);
        artifact.log = log.map(|key| S3Location {
            bucket: "hhvm-scratch".parse().unwrap(),
            path: key.parse().unwrap(),
        });
        artifact
    }

    #[test]
    fn requirements_name_every_artifact_short_of_them() {
        let artifacts = vec![
            ("source".to_string(), artifact(Status::Published, None)),
            (
                "debian-12-bookworm".to_string(),
                artifact(Status::BuiltNotPublished, None),
            ),
            (
                "ubuntu-24.04-noble".to_string(),
                artifact(
                    Status::Failed,
                    Some("logs/4.168.2/binary-package/ubuntu-24.04-noble/i-1.log"),
                ),
            ),
            ("debian-13-trixie".to_string(), artifact(Status::NotBuilt, None)),
        ];
        let built = unmet_requirement(Requirement::Built, &version("4.168.2"), &artifacts).unwrap();
        assert_eq!(built.error_type(), "BuildFailed");
        assert_eq!(
            built.to_string(),
            "4.168.2 did not build: ubuntu-24.04-noble (failed), log \
             s3://hhvm-scratch/logs/4.168.2/binary-package/ubuntu-24.04-noble/i-1.log; debian-13-trixie (not built)"
        );
        let published = unmet_requirement(Requirement::Published, &version("4.168.2"), &artifacts).unwrap();
        assert_eq!(published.error_type(), "PublishFailed");
        assert!(
            published
                .to_string()
                .starts_with("4.168.2 is not published: debian-12-bookworm (built not published); ubuntu"),
            "{published}"
        );
    }

    #[test]
    fn met_requirements_are_no_error() {
        let artifacts = vec![
            ("source".to_string(), artifact(Status::Published, None)),
            (
                "debian-12-bookworm".to_string(),
                artifact(Status::BuiltNotPublished, None),
            ),
        ];
        assert_eq!(
            unmet_requirement(Requirement::Built, &version("4.168.2"), &artifacts),
            None
        );
        let all_published = vec![("source".to_string(), artifact(Status::Published, None))];
        assert_eq!(
            unmet_requirement(Requirement::Published, &version("4.168.2"), &all_published),
            None
        );
    }

    #[test]
    fn require_must_be_built_or_published() {
        let payload = Payload::from_value(json!({"version": "4.168.2", "require": "done"})).unwrap();
        let error = parse_request(&payload, version("2026.11.21")).unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        assert!(error.to_string().contains("`require`"), "{error}");
        let payload = Payload::from_value(json!({"version": "4.168.2", "require": "published"})).unwrap();
        assert_eq!(
            parse_request(&payload, version("2026.11.21")).unwrap().require,
            Some(Requirement::Published)
        );
    }

    #[test]
    fn pool_keys_come_from_the_marker_not_from_a_guess() {
        let distro: Distro = "debian-12-bookworm".parse().unwrap();
        let files = [
            "hhvm_4.168.2-2~bookworm_amd64.deb",
            "hhvm-dev_4.168.2-2~bookworm_amd64.deb",
            "hhvm.changes",
            "SHA256SUMS",
        ];
        let keys = pool_keys(&version("4.168.2"), &distro, &marker(&files)).unwrap();
        assert_eq!(
            keys,
            [
                "debian/pool/main/h/hhvm/hhvm_4.168.2-2~bookworm_amd64.deb",
                "debian/pool/main/h/hhvm/hhvm-dev_4.168.2-2~bookworm_amd64.deb"
            ]
        );
        let ubuntu: Distro = "ubuntu-24.04-noble".parse().unwrap();
        let keys = pool_keys(
            &version("2026.11.21"),
            &ubuntu,
            &marker(&["hhvm-nightly_2026.11.21-1~noble_amd64.deb"]),
        )
        .unwrap();
        assert_eq!(
            keys,
            ["ubuntu/pool/main/h/hhvm-nightly/hhvm-nightly_2026.11.21-1~noble_amd64.deb"]
        );
        assert!(pool_keys(&version("4.168.2"), &distro, &marker(&["../evil.deb"])).is_err());
        let too_long = format!("{}.deb", "a".repeat(1020));
        assert!(pool_keys(&version("4.168.2"), &distro, &marker(&[too_long.as_str()])).is_err());
    }

    #[test]
    fn distro_states() {
        let found = || {
            Some(Ok((
                marker(&["a.deb"]),
                vec!["debian/pool/main/h/hhvm/a.deb".to_string()],
            )))
        };
        let log: S3Location = serde_json::from_value(json!({"bucket": "hhvm-scratch", "path": "logs/x.log"})).unwrap();
        assert_eq!(classify_distro(found(), Ok(()), None).status, Status::Published);
        let unlisted = classify_distro(found(), Err("not listed".into()), Some(log.clone()));
        assert_eq!(
            (unlisted.status, unlisted.problem.as_deref(), unlisted.log.as_ref()),
            (Status::BuiltNotPublished, Some("not listed"), Some(&log))
        );
        let failed = classify_distro(None, Ok(()), Some(log.clone()));
        assert_eq!((failed.status, failed.log), (Status::Failed, Some(log)));
        assert_eq!(classify_distro(None, Ok(()), None).status, Status::NotBuilt);
        let broken = classify_distro(Some(Err("bad".into())), Ok(()), None);
        assert_eq!(
            (broken.status, broken.problem.as_deref()),
            (Status::Failed, Some("bad"))
        );
        let empty = classify_distro(Some(Ok((marker(&[]), vec![]))), Ok(()), None);
        assert_eq!(empty.status, Status::BuiltNotPublished);
    }

    #[test]
    fn a_required_version_whose_build_execution_did_not_succeed_fails_whatever_the_markers() {
        let arn = |name: &str| format!("arn:aws:states:us-east-1:123456789012:execution:hhvm-build:{name}");
        let request = |require: Option<&str>, status: &str| {
            let mut payload = json!({
                "version": "4.168.2",
                "executionName": "multi-1",
                "buildExecutionStates": {
                    arn("multi-1-build-4_168_2"): "FAILED",
                    arn("multi-1-build-4_168_2-r2"): status,
                    arn("multi-1-build-4_167_5"): "SUCCEEDED",
                },
            });
            if let Some(require) = require {
                payload["require"] = json!(require);
            }
            parse_request(&Payload::from_value(payload).unwrap(), version("2026.11.21")).unwrap()
        };
        let error = unsuccessful_build(&request(Some("built"), "TIMED_OUT")).unwrap();
        assert_eq!(error.error_type(), "BuildFailed");
        assert!(
            error.to_string().contains("multi-1-build-4_168_2-r2 ended TIMED_OUT"),
            "{error}"
        );
        // The latest attempt succeeded: the markers decide, as without the states.
        assert!(unsuccessful_build(&request(Some("built"), "SUCCEEDED")).is_none());
        // A status report (no requirement) reports; it does not fail.
        assert!(unsuccessful_build(&request(None, "FAILED")).is_none());
        let bad = json!({"version": "4.168.2", "buildExecutionStates": ["FAILED"]});
        let error = parse_request(&Payload::from_value(bad).unwrap(), version("2026.11.21")).unwrap_err();
        assert!(error.to_string().contains("buildExecutionStates"), "{error}");
    }

    #[test]
    fn only_the_marker_of_this_builds_worker_counts() {
        let marker = marker(&["a.deb"]);
        assert_eq!(check_build_identity(&marker, None), Ok(()));
        let own: InstanceId = "i-0123456789abcdef0".parse().unwrap();
        assert_eq!(check_build_identity(&marker, Some(&own)), Ok(()));
        let rebuild: InstanceId = "i-0fedcba9876543210".parse().unwrap();
        assert_eq!(
            check_build_identity(&marker, Some(&rebuild)),
            Err(
                "its worker i-0fedcba9876543210 wrote no success marker; the one there is from the \
                 earlier build by i-0123456789abcdef0 (execution nightly-2026-11-21)"
                    .into()
            )
        );
    }

    #[test]
    fn a_suite_lists_this_build_only_with_its_checksums() {
        let marker = marker(&["a.deb", "a.changes", "bb.deb"]);
        let keys = [
            "debian/pool/main/h/hhvm/a.deb".to_string(),
            "debian/pool/main/h/hhvm/bb.deb".to_string(),
        ];
        let listed = |second: &str| {
            vec![
                ("pool/main/h/hhvm/a.deb".to_string(), format!("{:0>64}", 5)),
                ("pool/main/h/hhvm/bb.deb".to_string(), second.to_string()),
            ]
        };
        let this_build = format!("{:0>64}", 6);
        assert_eq!(
            check_listed("debian/bookworm", &listed(&this_build), &marker, &keys),
            Ok(())
        );
        let other = check_listed("debian/bookworm", &listed("ff"), &marker, &keys).unwrap_err();
        assert_eq!(
            other,
            format!("debian/bookworm lists pool/main/h/hhvm/bb.deb with sha256 ff, not this build's {this_build}")
        );
        let missing = check_listed("debian/bookworm", &listed(&this_build)[..1], &marker, &keys).unwrap_err();
        assert_eq!(missing, "debian/bookworm does not list pool/main/h/hhvm/bb.deb");
    }

    #[test]
    fn source_states() {
        assert_eq!(classify_source(true, false, None).status, Status::Published);
        assert_eq!(classify_source(false, true, None).status, Status::BuiltNotPublished);
        let log: S3Location = serde_json::from_value(json!({"bucket": "hhvm-scratch", "path": "logs/x.log"})).unwrap();
        assert_eq!(classify_source(false, false, Some(log)).status, Status::Failed);
        assert_eq!(classify_source(false, false, None).status, Status::NotBuilt);
        assert_eq!(public_source_key(&version("4.168.2")), "source/hhvm-4.168.2.tar.gz");
        assert_eq!(
            public_source_key(&version("2026.11.21")),
            "source/nightlies/hhvm-nightly-2026.11.21.tar.gz"
        );
    }

    #[test]
    fn the_newest_log_is_reported() {
        let log = |key: &str, at: i64| pipeline_aws::s3::ObjectSummary {
            key: key.into(),
            size: 1,
            last_modified: at,
            e_tag: None,
        };
        let logs = [log("logs/a.log", 5), log("logs/b.log", 9), log("logs/c.log", 7)];
        assert_eq!(newest_log(&logs).unwrap().key, "logs/b.log");
        assert!(newest_log(&[]).is_none());
    }

    #[test]
    fn output_lists_artifacts_by_status() {
        let output = build_output(
            &version("4.168.2"),
            &"HHVM-4.168".parse().unwrap(),
            vec![
                ("source".into(), ArtifactStatus::new(Status::Published)),
                ("debian-12-bookworm".into(), ArtifactStatus::new(Status::NotBuilt)),
            ],
        );
        assert_eq!(output["success"], false);
        assert_eq!(output["published"], json!(["source"]));
        assert_eq!(output["not_built"], json!(["debian-12-bookworm"]));
        assert_eq!(output["artifacts"]["source"], json!({"status": "published"}));
    }

    #[test]
    fn requests_are_validated_by_field() {
        let today = version("2026.11.21");
        let request = parse_request(&Payload::from_value(json!({})).unwrap(), today).unwrap();
        assert_eq!((request.version, request.distros), (today, None));
        let cases = [
            (json!({"version": "4.1"}), "InvalidVersion", "version"),
            (json!({"packagingBranch": "main"}), "InvalidInput", "packagingBranch"),
            (json!({"distros": "debian-12-bookworm"}), "InvalidInput", "`distros`"),
            (json!({"distros": ["macos-sonoma"]}), "InvalidInput", "`distros[0]`"),
        ];
        for (input, error_type, field) in cases {
            let error = parse_request(&Payload::from_value(input.clone()).unwrap(), today).unwrap_err();
            assert_eq!(error.error_type(), error_type, "{input}");
            assert!(error.to_string().contains(field), "{input}: {error}");
        }
    }
}
