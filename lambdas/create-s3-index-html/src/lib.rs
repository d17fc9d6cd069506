//! `create-s3-index-html`: keeps an `index.html` listing in every directory of a bucket (the
//! public downloads bucket has no other directory view), and invalidates the pages that
//! changed on CloudFront.
//!
//! Unlike the original, it is incremental: the bucket is listed once, page by page, and each
//! directory's page is rendered as soon as the listing has passed it; the page is written only
//! when it differs from the stored one in more than its generation time, and only written pages
//! are invalidated (collapsed into wildcards above a configurable cap). Memory holds the
//! directories on the current path, never every page. The pass-through output gets a small
//! `indexPages` summary.

pub mod invalidation;
pub mod listing;
pub mod page;

use pipeline_aws::cloudfront::{configured_distribution_id, distribution_for};
use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::executions::{ExecutionName, fnv1a};
use pipeline_core::{BucketName, ObjectKey, Payload, PipelineError, S3Location};
use serde::Serialize;
use serde_json::Value;

use crate::listing::{Directory, DirectoryWalker, ListedObject, Placement};

/// Default of `INDEX_INVALIDATION_PATH_CAP`.
pub const DEFAULT_INVALIDATION_PATH_CAP: usize = 100;

/// How many changed directories the output names (the counts are always complete).
const REPORTED_DIRECTORIES: usize = 10;

/// Configuration read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DOWNLOADS_BUCKET`: the bucket indexed; when set, a payload's `bucket` may only repeat it.
    pub default_bucket: Option<BucketName>,
    /// `CLOUDFRONT_DISTRIBUTION_ID`: the distribution invalidated; when set, a payload's
    /// `cloudfront` may only repeat it.
    pub distribution_id: Option<String>,
    /// `INDEX_INVALIDATION_PATH_CAP`: above this many changed pages, paths become wildcards.
    pub invalidation_path_cap: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_bucket: None,
            distribution_id: None,
            invalidation_path_cap: DEFAULT_INVALIDATION_PATH_CAP,
        }
    }
}

impl Config {
    pub fn from_source(source: &impl pipeline_aws::config::Source) -> Result<Config, PipelineError> {
        let default_bucket = pipeline_aws::config::optional(source, "DOWNLOADS_BUCKET", "an S3 bucket name")?;
        let distribution_id = configured_distribution_id(source)?;
        let invalidation_path_cap = pipeline_aws::config::number_in(
            source,
            "INDEX_INVALIDATION_PATH_CAP",
            1..=invalidation::MAX_PATHS,
            DEFAULT_INVALIDATION_PATH_CAP,
        )?;
        Ok(Config {
            default_bucket,
            distribution_id,
            invalidation_path_cap,
        })
    }
}

/// What a run did: the `indexPages` output field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexSummary {
    pub objects_listed: u64,
    pub directories: u64,
    pub pages_written: u64,
    pub pages_unchanged: u64,
    /// Keys with an empty path segment (`a//b`): they have no URL, so no page lists them.
    pub keys_skipped: u64,
    /// The first few written pages' directories (`/` for the root).
    pub changed_directories: Vec<String>,
    pub invalidation: Option<InvalidationSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidationSummary {
    pub distribution_id: String,
    pub id: String,
    pub status: String,
    pub path_count: usize,
    /// The first few paths.
    pub paths: Vec<String>,
}

/// The validated request.
struct Request {
    bucket: BucketName,
    distribution_id: Option<String>,
    execution_name: Option<String>,
}

fn parse_request(config: &Config, payload: &Payload) -> Result<Request, PipelineError> {
    // The pages are written to the download bucket; a payload may repeat its name (as the
    // original's did) but not point the function at another bucket.
    let bucket = match payload.optional::<BucketName>("bucket", "the name of the bucket to index")? {
        Some(bucket)
            if config
                .default_bucket
                .as_ref()
                .is_some_and(|downloads| downloads != &bucket) =>
        {
            return Err(PipelineError::invalid_input(
                "bucket",
                format!(
                    "is {bucket}, but the pages belong in the download bucket {} (DOWNLOADS_BUCKET)",
                    config.default_bucket.as_ref().map_or("", BucketName::as_str)
                ),
            ));
        }
        Some(bucket) => bucket,
        None => config.default_bucket.clone().ok_or_else(|| {
            PipelineError::invalid_input(
                "bucket",
                "missing; expected the name of the bucket to index (DOWNLOADS_BUCKET, its default, is not set)",
            )
        })?,
    };
    let distribution_id = distribution_for(payload, config.distribution_id.as_deref())?;
    let execution_name = ExecutionName::optional(payload)?.map(|name| name.to_string());
    Ok(Request {
        bucket,
        distribution_id,
        execution_name,
    })
}

pub async fn handle(
    s3: &aws_sdk_s3::Client,
    cloudfront: &aws_sdk_cloudfront::Client,
    config: &Config,
    event: Value,
) -> Result<Value, PipelineError> {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    handle_at(s3, cloudfront, config, event, &now).await
}

/// `handle` with the generation time given, for tests.
pub async fn handle_at(
    s3: &aws_sdk_s3::Client,
    cloudfront: &aws_sdk_cloudfront::Client,
    config: &Config,
    event: Value,
    generated_at: &str,
) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let request = parse_request(config, &payload)?;
    let (mut summary, changed) = update_index_pages(s3, &request.bucket, generated_at).await?;

    if let Some(distribution_id) = &request.distribution_id
        && !changed.is_empty()
    {
        let paths = invalidation::invalidation_paths(&changed, config.invalidation_path_cap);
        // Deterministic per execution and paths: a retried call finds the first attempt's
        // invalidation. A manual call (no execution) is unique by its time.
        let run = request.execution_name.as_deref().unwrap_or(generated_at);
        let caller_reference = format!("s3-index-update-{run}-{:016x}", fnv1a(paths.join("\n").as_bytes()));
        let created =
            pipeline_aws::cloudfront::create_invalidation_once(cloudfront, distribution_id, &caller_reference, &paths)
                .await?;
        summary.invalidation = Some(InvalidationSummary {
            distribution_id: distribution_id.clone(),
            id: created.id,
            status: created.status,
            path_count: paths.len(),
            paths: paths.into_iter().take(REPORTED_DIRECTORIES).collect(),
        });
    }
    tracing::info!(
        bucket = %request.bucket,
        directories = summary.directories,
        written = summary.pages_written,
        unchanged = summary.pages_unchanged,
        "index pages updated"
    );
    payload.set("indexPages", summary);
    Ok(payload.into_value())
}

/// Lists `bucket` and brings every directory's page up to date; returns the summary and the
/// paths of the directories whose pages were written.
async fn update_index_pages(
    s3: &aws_sdk_s3::Client,
    bucket: &BucketName,
    generated_at: &str,
) -> Result<(IndexSummary, Vec<String>), PipelineError> {
    let mut summary = IndexSummary::default();
    let mut changed = Vec::new();
    let mut walker = DirectoryWalker::new();
    let mut finished: Vec<Directory> = Vec::new();
    let mut listing = pipeline_aws::s3::list_objects(s3, bucket.as_str(), None);
    while let Some(objects) = listing.next_page().await? {
        for object in objects {
            summary.objects_listed += 1;
            let listed = ListedObject {
                key: object.key,
                size: object.size,
                last_modified: object.last_modified,
            };
            let placement = walker
                .push(listed, &mut finished)
                .map_err(|error| PipelineError::aws(format!("S3 ListObjectsV2 s3://{bucket}"), error))?;
            if placement == Placement::Skipped {
                summary.keys_skipped += 1;
            }
        }
        for directory in finished.drain(..) {
            update_page(s3, bucket, &directory, generated_at, &mut summary, &mut changed).await?;
        }
    }
    walker.finish(&mut finished);
    for directory in finished.drain(..) {
        update_page(s3, bucket, &directory, generated_at, &mut summary, &mut changed).await?;
    }
    Ok((summary, changed))
}

async fn update_page(
    s3: &aws_sdk_s3::Client,
    bucket: &BucketName,
    directory: &Directory,
    generated_at: &str,
    summary: &mut IndexSummary,
    changed: &mut Vec<String>,
) -> Result<(), PipelineError> {
    summary.directories += 1;
    let rendered = page::render_index_page(directory, generated_at);
    let key: ObjectKey = directory.index_key().parse().map_err(|problem| {
        PipelineError::aws(
            format!("S3 ListObjectsV2 s3://{bucket}"),
            format!("no page key for a directory: {problem}"),
        )
    })?;
    let location = S3Location {
        bucket: bucket.clone(),
        path: key,
    };
    if directory.has_index_page
        && let Some(stored) = pipeline_aws::s3::get_object_bytes(s3, &location).await?
        && !page::pages_differ(&stored, &rendered)
    {
        summary.pages_unchanged += 1;
        return Ok(());
    }
    pipeline_aws::s3::put_object(s3, &location, rendered.into_bytes(), "text/html; charset=utf-8").await?;
    summary.pages_written += 1;
    if summary.changed_directories.len() < REPORTED_DIRECTORIES {
        summary.changed_directories.push(page::directory_url(&directory.path));
    }
    changed.push(directory.path.clone());
    Ok(())
}

/// The deployed function: `handle` with its clients and configuration.
pub struct CreateS3IndexHtml {
    s3: aws_sdk_s3::Client,
    cloudfront: aws_sdk_cloudfront::Client,
    config: Config,
}

impl Function for CreateS3IndexHtml {
    const NAME: &'static str = "create-s3-index-html";
    type Config = Config;

    fn configuration(source: &impl Source) -> Result<Config, PipelineError> {
        Config::from_source(source)
    }

    fn new(config: Config, sdk_config: &SdkConfig) -> Self {
        CreateS3IndexHtml {
            s3: pipeline_aws::s3_client(sdk_config),
            cloudfront: aws_sdk_cloudfront::Client::new(sdk_config),
            config,
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.s3, &self.cloudfront, &self.config, event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_defaults_and_validation() {
        let unset = |_: &str| None;
        let config = Config::from_source(&unset).unwrap();
        assert_eq!(
            (config.distribution_id, config.invalidation_path_cap),
            (None, DEFAULT_INVALIDATION_PATH_CAP)
        );
        let set = |name: &str| match name {
            "CLOUDFRONT_DISTRIBUTION_ID" => Some("E35YBTV6QCR5BA".to_string()),
            "INDEX_INVALIDATION_PATH_CAP" => Some("250".to_string()),
            _ => None,
        };
        let config = Config::from_source(&set).unwrap();
        assert_eq!(
            (config.distribution_id.as_deref(), config.invalidation_path_cap),
            (Some("E35YBTV6QCR5BA"), 250)
        );
        for bad in ["0", "3001", "many"] {
            let source = move |name: &str| (name == "INDEX_INVALIDATION_PATH_CAP").then(|| bad.to_string());
            let error = Config::from_source(&source).unwrap_err();
            assert!(error.to_string().contains("INDEX_INVALIDATION_PATH_CAP"), "{error}");
        }
        let bad_id = |name: &str| (name == "CLOUDFRONT_DISTRIBUTION_ID").then(|| "e3".to_string());
        assert_eq!(
            Config::from_source(&bad_id).unwrap_err().error_type(),
            "ConfigurationError"
        );
    }
}
