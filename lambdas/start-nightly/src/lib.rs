//! `hhvm-start-nightly`: the nightly schedule's target. Starts `hhvm-build-and-publish` for the
//! nightly of the scheduled UTC day — once per day, however often the scheduler retries — and
//! only when the source has moved since the last published nightly (Launchpad's "build daily
//! if the source changed"); `force` in the event's `detail` builds regardless.
//!
//! - The day comes from the event's `time` (the scheduled time, the same on every retry), or
//!   the current time for a hand invocation without one.
//! - The execution is named `nightly-YYYY-MM-DD` with input `{"version": "YYYY.MM.DD"}` (and
//!   the `detail`'s `pollIntervalSeconds` and `pollLimit` when an operator gives them): a
//!   retried start finds the execution of the first attempt (`start_execution_once`).
//! - The source's head commit is read from `NIGHTLY_SOURCE_REFS_URL` (git's `info/refs`, the
//!   same thing `git ls-remote` reads) for `NIGHTLY_SOURCE_BRANCH`, and recorded under
//!   `nightly-sources/<version>.json` in the scratch bucket before the start. The last
//!   published nightly is the newest earlier record whose version has the update-repositories
//!   success marker.
//!
//! Not pass-through: the event is EventBridge's, and the answer says what was decided.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{NaiveDate, Utc};
use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::layout::{JobKind, marker_key, nightly_source_record_key, nightly_source_record_version};
use pipeline_core::{BucketName, Payload, PipelineError, S3Location, Version};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod refs;

/// The `detail` of the scheduled event.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NightlyRequest {
    /// Build even when the source has not moved.
    #[serde(default)]
    pub force: bool,
    /// The run's poll settings (`pollIntervalSeconds`, `pollLimit`), when an operator gives
    /// them; the machine's defaults otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_limit: Option<u64>,
}

impl NightlyRequest {
    /// The input of the nightly's execution: its version, and the poll settings given
    /// (validated as the machine's first step validates them, so a bad one starts nothing).
    pub fn execution_input(&self, version: &Version) -> Result<Value, PipelineError> {
        let mut input = json!({"version": version.to_string()});
        if let Some(seconds) = self.poll_interval_seconds {
            input["pollIntervalSeconds"] = json!(seconds);
        }
        if let Some(limit) = self.poll_limit {
            input["pollLimit"] = json!(limit);
        }
        let mut checked = Payload::from_value(input.clone())?;
        pipeline_core::polling::fill_poll_settings(&mut checked).map_err(|error| error.in_field("detail"))?;
        Ok(input)
    }
}

/// What a source record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRecord {
    pub commit: String,
    pub branch: String,
}

/// The last published nightly and the commit it was started for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedNightly {
    pub version: Version,
    pub commit: String,
}

/// What to do today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Start,
    Skip { reason: String },
}

/// The decision itself: pure.
pub fn decide(head_commit: &str, last_published: Option<&PublishedNightly>, force: bool) -> Decision {
    match last_published {
        Some(published) if published.commit == head_commit && !force => Decision::Skip {
            reason: format!(
                "the source has not moved since nightly {} was published (commit {head_commit}); \
                 set detail.force to build anyway",
                published.version
            ),
        },
        _ => Decision::Start,
    }
}

/// The nightly of the scheduled day: the event's `time` in UTC, or today.
pub fn nightly_of(event_time: Option<chrono::DateTime<Utc>>) -> (NaiveDate, Version) {
    let day = event_time.unwrap_or_else(Utc::now).date_naive();
    (day, Version::Nightly(day))
}

/// `nightly-2026-12-01`: an execution name without `:` or `.`, one per UTC day.
pub fn execution_name(day: NaiveDate) -> String {
    format!("nightly-{}", day.format("%Y-%m-%d"))
}

/// Newest first: the versions of earlier nightlies that have a source record.
pub fn earlier_recorded_nightlies(keys: &[String], day: NaiveDate) -> Vec<Version> {
    let mut versions: Vec<(NaiveDate, Version)> = keys
        .iter()
        .filter_map(|key| nightly_source_record_version(key))
        .filter_map(|version| match version {
            Version::Nightly(date) if date < day => Some((date, version)),
            _ => None,
        })
        .collect();
    versions.sort_by_key(|(date, _)| std::cmp::Reverse(*date));
    versions.into_iter().map(|(_, version)| version).collect()
}

/// Everything the function reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `BUILD_AND_PUBLISH_STATE_MACHINE_ARN`.
    pub state_machine_arn: String,
    /// `SCRATCH_BUCKET`: source records and success markers.
    pub scratch: BucketName,
    /// `NIGHTLY_SOURCE_REFS_URL`.
    pub refs_url: String,
    /// `NIGHTLY_SOURCE_BRANCH` (default `master`).
    pub branch: String,
}

impl Config {
    pub fn from_source(source: &impl Source) -> Result<Config, PipelineError> {
        let refs_url: String = pipeline_aws::config::required(
            source,
            "NIGHTLY_SOURCE_REFS_URL",
            "the http(s) URL of the source's git info/refs",
        )?;
        if !(refs_url.starts_with("https://") || refs_url.starts_with("http://")) {
            return Err(PipelineError::configuration(
                "NIGHTLY_SOURCE_REFS_URL",
                format!("{refs_url:?} is not an http(s) URL"),
            ));
        }
        let branch = pipeline_aws::config::text(source, "NIGHTLY_SOURCE_BRANCH").unwrap_or_else(|| "master".into());
        if !refs::is_branch_name(&branch) {
            return Err(PipelineError::configuration(
                "NIGHTLY_SOURCE_BRANCH",
                format!("{branch:?} is not a branch name"),
            ));
        }
        Ok(Config {
            state_machine_arn: pipeline_aws::config::state_machine_arn(
                source,
                "BUILD_AND_PUBLISH_STATE_MACHINE_ARN",
                "hhvm-build-and-publish",
            )?,
            scratch: pipeline_aws::config::bucket(source, "SCRATCH_BUCKET")?,
            refs_url,
            branch,
        })
    }
}

/// The deployed function.
pub struct StartNightly {
    s3: aws_sdk_s3::Client,
    sfn: aws_sdk_sfn::Client,
    config: Config,
}

impl StartNightly {
    pub fn with_clients(s3: aws_sdk_s3::Client, sfn: aws_sdk_sfn::Client, config: Config) -> StartNightly {
        StartNightly { s3, sfn, config }
    }
}

impl Function for StartNightly {
    const NAME: &'static str = "hhvm-start-nightly";
    type Config = Config;

    fn configuration(source: &impl Source) -> Result<Config, PipelineError> {
        Config::from_source(source)
    }

    fn new(config: Config, sdk_config: &SdkConfig) -> Self {
        StartNightly::with_clients(
            pipeline_aws::s3_client(sdk_config),
            aws_sdk_sfn::Client::new(sdk_config),
            config,
        )
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        // A bad event is refused before anything is fetched or written.
        parse_event(event.clone())?;
        let head = refs::fetch_head_commit(&self.config.refs_url, &self.config.branch).await?;
        handle(&self.s3, &self.sfn, &self.config, event, &head).await
    }
}

/// Reads the scheduled event (or a hand-made one with only some of its fields).
pub fn parse_event(event: Value) -> Result<EventBridgeEvent<NightlyRequest>, PipelineError> {
    let mut event = event;
    if let Some(detail) = event.get("detail").filter(|detail| !detail.is_object()) {
        return Err(PipelineError::invalid_input(
            "detail",
            format!(
                "expected an object {{\"force\": bool}}, got {}",
                pipeline_core::payload::json_type(detail)
            ),
        ));
    }
    for fields in [Some(&event), event.get("detail")].into_iter().flatten() {
        if fields.is_object() {
            Payload::from_value(fields.clone())?.refuse_reserved_fields()?;
        }
    }
    if let Some(object) = event.as_object_mut() {
        // A hand invocation may leave out what only EventBridge fills in.
        object.entry("detail-type").or_insert_with(|| json!("Scheduled Event"));
        object.entry("source").or_insert_with(|| json!("aws.scheduler"));
        object.entry("detail").or_insert_with(|| json!({}));
    }
    serde_json::from_value(event).map_err(|error| {
        PipelineError::invalid_input(
            "(event)",
            format!("not a scheduled event {{\"time\": RFC 3339, \"detail\": {{\"force\": bool}}}}: {error}"),
        )
    })
}

/// `handle` with the source's head commit already read.
pub async fn handle(
    s3: &aws_sdk_s3::Client,
    sfn: &aws_sdk_sfn::Client,
    config: &Config,
    event: Value,
    head_commit: &str,
) -> Result<Value, PipelineError> {
    let event = parse_event(event)?;
    let (day, version) = nightly_of(event.time);
    let input = event.detail.execution_input(&version)?;
    let name = execution_name(day);
    let last_published = last_published_nightly(s3, &config.scratch, day).await?;
    let decision = decide(head_commit, last_published.as_ref(), event.detail.force);
    let mut answer = json!({
        "version": version.to_string(),
        "executionName": name,
        "sourceCommit": head_commit,
        "lastPublishedNightly": last_published.as_ref().map(|p| p.version.to_string()),
    });
    match decision {
        Decision::Skip { reason } => {
            tracing::info!(%version, %reason, "nightly skipped");
            answer["started"] = json!(false);
            answer["skipped"] = json!(reason);
        }
        Decision::Start => {
            record_source(s3, &config.scratch, &version, head_commit, &config.branch).await?;
            let arn = pipeline_aws::sfn::start_execution_once(sfn, &config.state_machine_arn, &name, &input).await?;
            tracing::info!(%version, %arn, commit = head_commit, "nightly started");
            answer["started"] = json!(true);
            answer["executionArn"] = json!(arn);
        }
    }
    Ok(answer)
}

/// The newest earlier nightly that was published, with the commit it was started for.
async fn last_published_nightly(
    s3: &aws_sdk_s3::Client,
    scratch: &BucketName,
    day: NaiveDate,
) -> Result<Option<PublishedNightly>, PipelineError> {
    let keys: Vec<String> = pipeline_aws::s3::list_objects(
        s3,
        scratch.as_str(),
        Some(pipeline_core::layout::NIGHTLY_SOURCES_PREFIX),
    )
    .collect_all()
    .await?
    .into_iter()
    .map(|object| object.key)
    .collect();
    for version in earlier_recorded_nightlies(&keys, day) {
        let published = location(
            scratch,
            marker_key(&version, JobKind::UpdateRepositories, None).as_str(),
        );
        if !pipeline_aws::s3::object_exists(s3, &published).await? {
            continue;
        }
        let record = location(scratch, nightly_source_record_key(&version).as_str());
        let Some(bytes) = pipeline_aws::s3::get_object_bytes(s3, &record).await? else {
            continue;
        };
        match serde_json::from_slice::<SourceRecord>(&bytes) {
            Ok(record) => {
                return Ok(Some(PublishedNightly {
                    version,
                    commit: record.commit,
                }));
            }
            // An unreadable record proves nothing about the source: build.
            Err(error) => {
                tracing::warn!(%version, "unreadable source record {record}: {error}");
                return Ok(None);
            }
        }
    }
    Ok(None)
}

/// Records the commit today's nightly is started for, unless a retry already did: the first
/// attempt's record is the one that matches the execution.
async fn record_source(
    s3: &aws_sdk_s3::Client,
    scratch: &BucketName,
    version: &Version,
    commit: &str,
    branch: &str,
) -> Result<(), PipelineError> {
    let record = location(scratch, nightly_source_record_key(version).as_str());
    if pipeline_aws::s3::object_exists(s3, &record).await? {
        return Ok(());
    }
    let body = serde_json::to_vec(&SourceRecord {
        commit: commit.to_string(),
        branch: branch.to_string(),
    })
    .expect("a record always serializes");
    pipeline_aws::s3::put_object(s3, &record, body, "application/json").await
}

fn location(bucket: &BucketName, key: &str) -> S3Location {
    S3Location {
        bucket: bucket.clone(),
        path: key.parse().expect("keys from the layout are valid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(version: &str, commit: &str) -> PublishedNightly {
        PublishedNightly {
            version: version.parse().unwrap(),
            commit: commit.into(),
        }
    }

    #[test]
    fn an_unmoved_source_is_skipped_unless_forced() {
        let last = published("2026.11.30", "abc");
        assert!(
            matches!(decide("abc", Some(&last), false), Decision::Skip { reason } if reason.contains("2026.11.30"))
        );
        assert_eq!(decide("abc", Some(&last), true), Decision::Start);
        assert_eq!(decide("def", Some(&last), false), Decision::Start);
        assert_eq!(decide("abc", None, false), Decision::Start);
    }

    #[test]
    fn the_scheduled_time_names_the_day() {
        let time = "2026-12-01T03:00:00Z".parse().unwrap();
        let (day, version) = nightly_of(Some(time));
        assert_eq!(version.to_string(), "2026.12.01");
        assert_eq!(execution_name(day), "nightly-2026-12-01");
    }

    #[test]
    fn earlier_records_come_newest_first() {
        let keys: Vec<String> = [
            "nightly-sources/2026.11.29.json",
            "nightly-sources/2026.12.01.json",
            "nightly-sources/2026.11.30.json",
            "nightly-sources/notes.txt",
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let versions: Vec<String> = earlier_recorded_nightlies(&keys, day)
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(versions, ["2026.11.30", "2026.11.29"]);
    }

    #[test]
    fn an_operators_poll_settings_go_into_the_runs_input_and_bad_ones_are_refused() {
        let version: Version = "2026.12.01".parse().unwrap();
        let plain = parse_event(json!({"detail": {}})).unwrap();
        assert_eq!(
            plain.detail.execution_input(&version).unwrap(),
            json!({"version": "2026.12.01"})
        );
        let quick = parse_event(json!({"detail": {"pollIntervalSeconds": 2, "pollLimit": 500}})).unwrap();
        assert_eq!(
            quick.detail.execution_input(&version).unwrap(),
            json!({"version": "2026.12.01", "pollIntervalSeconds": 2, "pollLimit": 500})
        );
        let bad = parse_event(json!({"detail": {"pollIntervalSeconds": 0}})).unwrap();
        let error = bad.detail.execution_input(&version).unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        assert!(error.to_string().contains("detail.pollIntervalSeconds"), "{error}");
    }

    #[test]
    fn hand_made_events_and_bad_events() {
        let event = parse_event(json!({"time": "2026-12-01T03:00:00Z", "detail": {"force": true}})).unwrap();
        assert!(event.detail.force);
        assert!(parse_event(json!({})).unwrap().time.is_none());
        let error = parse_event(json!({"time": "yesterday"})).unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        let error = parse_event(json!({"detail": {"force": "yes"}})).unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
    }

    #[test]
    fn configuration_names_its_variables() {
        let env = pipeline_aws::config::fixed_environment(&[
            (
                "BUILD_AND_PUBLISH_STATE_MACHINE_ARN",
                "arn:aws:states:us-east-1:1:stateMachine:hhvm-build-and-publish",
            ),
            ("SCRATCH_BUCKET", "hhvm-scratch"),
            (
                "NIGHTLY_SOURCE_REFS_URL",
                "https://github.com/facebook/hhvm.git/info/refs?service=git-upload-pack",
            ),
        ]);
        let config = Config::from_source(&env).unwrap();
        assert_eq!(config.branch, "master");
        let env = pipeline_aws::config::fixed_environment(&[("NIGHTLY_SOURCE_REFS_URL", "file:///x")]);
        let error = Config::from_source(&env).unwrap_err();
        assert!(error.to_string().contains("NIGHTLY_SOURCE_REFS_URL"), "{error}");
    }
}
