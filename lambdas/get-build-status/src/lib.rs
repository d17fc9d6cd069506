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
//! With `require: "built"` or `require: "published"` it is also the state machines' check that
//! the work really happened: it fails with `BuildFailed` / `PublishFailed`, naming every
//! artifact short of that (with its log), instead of returning the report.

use pipeline_aws::config::Source;
use pipeline_aws::s3::ObjectSummary;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::distro::read_distros;
use pipeline_core::layout::{JobKind, log_prefix, marker_key};
use pipeline_core::s3::Buckets;
use pipeline_core::{Distro, ObjectKey, PackagingBranch, Payload, PipelineError, S3Location, Version};
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

/// A success marker, as the workers write it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub distro: Option<String>,
    #[serde(default)]
    pub package_version: Option<String>,
    pub files: Vec<MarkerFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MarkerFile {
    pub name: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// Reads a marker; what is wrong with it becomes the artifact's `problem`.
pub fn parse_marker(bytes: &[u8]) -> Result<Marker, String> {
    serde_json::from_slice(bytes).map_err(|error| format!("the success marker is not valid: {error}"))
}

/// The keys of a distro's `.deb` files in the apt pool of the downloads bucket, from the
/// marker's file names: `<os>/pool/main/<initial>/<source package>/<file>` (Debian's layout, as update-repos.sh publishes).
pub fn pool_keys(version: &Version, distro: &Distro, marker: &Marker) -> Result<Vec<String>, String> {
    let source_package = version.package_name();
    let initial = &source_package[..1];
    marker
        .files
        .iter()
        .filter(|file| file.name.ends_with(".deb"))
        .map(|file| {
            let plain = !file.name.is_empty()
                && !file.name.contains('/')
                && !file.name.starts_with('.')
                && !file.name.chars().any(char::is_control);
            if plain {
                Ok(format!(
                    "{}/pool/main/{initial}/{source_package}/{}",
                    distro.os(),
                    file.name
                ))
            } else {
                Err(format!(
                    "the success marker names a file {:?} that is not a plain file name",
                    file.name
                ))
            }
        })
        .collect()
}

/// A distro's status from what was found: pure.
pub fn classify_distro(
    marker: Option<Result<(Marker, Vec<String>), String>>,
    all_in_pool: bool,
    log: Option<S3Location>,
) -> ArtifactStatus {
    match marker {
        Some(Ok((marker, packages))) => {
            let published = all_in_pool && !packages.is_empty();
            let mut status = ArtifactStatus::new(if published {
                Status::Published
            } else {
                Status::BuiltNotPublished
            });
            if packages.is_empty() {
                status.problem = Some("the success marker lists no .deb files".into());
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

/// Where a version's source tarball is published in the downloads bucket.
pub fn public_source_key(version: &Version) -> String {
    match version {
        Version::Nightly(_) => format!("source/nightlies/hhvm-nightly-{version}.tar.gz"),
        Version::Release { .. } => format!("source/hhvm-{version}.tar.gz"),
    }
}

/// The newest log among `logs`.
pub fn newest_log(logs: &[ObjectSummary]) -> Option<&ObjectSummary> {
    logs.iter()
        .filter(|log| !log.key.ends_with('/'))
        .max_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)))
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
}

pub fn parse_request(payload: &Payload, today: Version) -> Result<Request, PipelineError> {
    let version = match payload.optional_nonempty_str("version")? {
        Some(text) => text.parse::<Version>().map_err(|e| e.in_field("version"))?,
        None => today,
    };
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
    Ok(Request {
        version,
        packaging_branch,
        distros,
        require,
    })
}

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
    Ok(newest_log(&logs).map(|log| location(&buckets.scratch, &log.key)))
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

async fn distro_status(
    s3: &aws_sdk_s3::Client,
    buckets: &Buckets,
    version: &Version,
    distro: &Distro,
) -> Result<ArtifactStatus, PipelineError> {
    let marker_location = S3Location {
        bucket: buckets.scratch.clone(),
        path: marker_key(version, JobKind::BinaryPackage, Some(distro)),
    };
    let marker = pipeline_aws::s3::get_object_bytes(s3, &marker_location)
        .await?
        .map(|bytes| {
            parse_marker(&bytes).and_then(|marker| pool_keys(version, distro, &marker).map(|keys| (marker, keys)))
        });
    let mut all_in_pool = true;
    if let Some(Ok((_, keys))) = &marker {
        for key in keys {
            if !pipeline_aws::s3::object_exists(s3, &location(&buckets.downloads, key)).await? {
                all_in_pool = false;
                break;
            }
        }
    }
    let log = match &marker {
        Some(Ok(_)) => None,
        _ => newest_log_under(s3, buckets, &log_prefix(version, JobKind::BinaryPackage, Some(distro))).await?,
    };
    let has_marker = marker.is_some();
    let mut status = classify_distro(marker, all_in_pool, log);
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
    let distros = match request.distros {
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
    for distro in &distros {
        artifacts.push((
            distro.to_string(),
            distro_status(s3, &config.buckets, &request.version, distro).await?,
        ));
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
            files: files
                .iter()
                .map(|name| MarkerFile {
                    name: name.to_string(),
                    sha256: None,
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
    }

    #[test]
    fn distro_states() {
        let found = || {
            Some(Ok((
                marker(&["a.deb"]),
                vec!["debian/pool/main/h/hhvm/a.deb".to_string()],
            )))
        };
        assert_eq!(classify_distro(found(), true, None).status, Status::Published);
        assert_eq!(classify_distro(found(), false, None).status, Status::BuiltNotPublished);
        let log: S3Location = serde_json::from_value(json!({"bucket": "hhvm-scratch", "path": "logs/x.log"})).unwrap();
        let failed = classify_distro(None, true, Some(log.clone()));
        assert_eq!((failed.status, failed.log), (Status::Failed, Some(log)));
        assert_eq!(classify_distro(None, true, None).status, Status::NotBuilt);
        let broken = classify_distro(Some(Err("bad".into())), true, None);
        assert_eq!(
            (broken.status, broken.problem.as_deref()),
            (Status::Failed, Some("bad"))
        );
        let empty = classify_distro(Some(Ok((marker(&[]), vec![]))), true, None);
        assert_eq!(empty.status, Status::BuiltNotPublished);
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
        let log = |key: &str, at: i64| ObjectSummary {
            key: key.into(),
            size: 1,
            last_modified: at,
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
