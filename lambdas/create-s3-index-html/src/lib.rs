//! `create-s3-index-html`: keeps an `index.html` listing in every directory of a bucket (the
//! public downloads bucket has no other directory view), and invalidates the pages that
//! changed on CloudFront.
//!
//! Unlike the original, it is incremental: the bucket is listed once, page by page, and each
//! directory's page is rendered as soon as the listing has passed it; a page depends on its
//! directory's listing alone, so it is written only when its MD5 is not the ETag the listing
//! gives for the stored page — no page is read back — and the writes go out several at a time,
//! each conditional on the stored page still being the one listed (`write_page`: two index
//! updates at once never leave the older listing's page). Only written pages are invalidated
//! (collapsed into wildcards above a configurable cap).
//!
//! With `version` (the publish machine's call) it lists and re-indexes only what a publish of
//! that version changes (`layout::published_directories`: the pools of its package, the
//! suites, the source tarballs' directory), each with everything under it, and the pages of
//! their ancestors from listings of their level; the rest of the bucket is neither listed nor
//! read. Without `version`, or with `wholeBucket: true`, the whole bucket.
//! Memory holds the directories on the current path, never every page. The pass-through output
//! gets a small `indexPages` summary.

pub mod invalidation;
pub mod listing;
pub mod page;

use futures::StreamExt;
use pipeline_aws::cloudfront::{configured_distribution_id, distribution_for};
use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::distro::read_distros;
use pipeline_core::executions::{ExecutionName, fnv1a};
use pipeline_core::layout::{REPOSITORY_OSES, published_directories};
use pipeline_core::{BucketName, Distro, ObjectKey, Payload, PipelineError, S3Location, Version};
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
    /// Pages another writer (a concurrent index update) changed between this run's listing and
    /// its write: each directory's level was listed again (in `objectsListed`) and its page
    /// rendered from that, and written only if it differs from what the other one wrote.
    pub pages_relisted: u64,
    /// The first few written pages' directories (`/` for the root).
    pub changed_directories: Vec<String>,
    pub invalidation: Option<InvalidationSummary>,
    /// What was brought up to date: `/` (the whole bucket), or each directory re-indexed with
    /// everything under it (and its ancestors' pages).
    pub reindexed: Vec<String>,
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
    scope: Scope,
}

/// What a run brings up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every directory of the bucket (`hhvmctl reindex`, a call without `version`).
    Bucket,
    /// What a publish changed: these directories with everything under them, and the pages of
    /// their ancestors.
    Published(Vec<String>),
}

/// The scope of a call: a publish's (`version`, and the `distros` it published; all the
/// repositories without them) unless `wholeBucket` is true or there is no `version`.
pub fn read_scope(payload: &Payload) -> Result<Scope, PipelineError> {
    let whole_bucket = payload.optional::<bool>("wholeBucket", "a boolean")?.unwrap_or(false);
    let version = Version::read_optional(payload)?;
    let distros = read_distros(payload)?;
    Ok(match version {
        Some(version) if !whole_bucket => {
            let mut oses: Vec<&str> = match &distros {
                Some(distros) => distros.iter().map(Distro::os).collect(),
                None => REPOSITORY_OSES.to_vec(),
            };
            oses.sort_unstable();
            oses.dedup();
            Scope::Published(published_directories(&version, &oses))
        }
        _ => Scope::Bucket,
    })
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
        scope: read_scope(payload)?,
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

/// `handle` at the time given (what makes a call without an execution a new invalidation),
/// for tests.
pub async fn handle_at(
    s3: &aws_sdk_s3::Client,
    cloudfront: &aws_sdk_cloudfront::Client,
    config: &Config,
    event: Value,
    called_at: &str,
) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let request = parse_request(config, &payload)?;
    let (mut summary, changed) = match &request.scope {
        Scope::Bucket => update_index_pages(s3, &request.bucket).await?,
        Scope::Published(subtrees) => update_published_pages(s3, &request.bucket, subtrees).await?,
    };

    if let Some(distribution_id) = &request.distribution_id
        && !changed.is_empty()
    {
        let paths = invalidation::invalidation_paths(&changed, config.invalidation_path_cap);
        // Deterministic per execution and paths: a retried call finds the first attempt's
        // invalidation. A manual call (no execution) is unique by its time.
        let run = request.execution_name.as_deref().unwrap_or(called_at);
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

/// How many pages are written at once.
const WRITE_CONCURRENCY: usize = 16;

/// Lists `bucket` and brings every directory's page up to date; returns the summary and the
/// paths of the directories whose pages were written.
async fn update_index_pages(
    s3: &aws_sdk_s3::Client,
    bucket: &BucketName,
) -> Result<(IndexSummary, Vec<String>), PipelineError> {
    let mut summary = IndexSummary {
        reindexed: vec!["/".to_string()],
        ..IndexSummary::default()
    };
    let mut changed = Vec::new();
    walk_subtree(s3, bucket, "", &mut summary, &mut changed).await?;
    Ok((summary, changed))
}

/// Brings the pages of directory `root` (`""`: the whole bucket) and of everything under it
/// up to date, from a listing of its prefix alone, rendering each directory as soon as the
/// listing has passed it. A sub-tree without keys does not exist and gets no page; the
/// bucket's root always has one.
async fn walk_subtree(
    s3: &aws_sdk_s3::Client,
    bucket: &BucketName,
    root: &str,
    summary: &mut IndexSummary,
    changed: &mut Vec<String>,
) -> Result<(), PipelineError> {
    let mut walker = DirectoryWalker::rooted_at(root);
    let mut finished: Vec<Directory> = Vec::new();
    let prefix = listing::prefix_of(root);
    let whole_bucket = prefix.is_empty();
    let mut listing = pipeline_aws::s3::list_objects(s3, bucket.as_str(), (!whole_bucket).then_some(prefix.as_str()));
    let mut exists = whole_bucket;
    while let Some(objects) = listing.next_page().await? {
        for object in objects {
            exists = true;
            place(&mut walker, listed(object), &mut finished, bucket, summary)?;
        }
        write_changed_pages(s3, bucket, finished.drain(..), summary, changed).await?;
    }
    if exists {
        walker.finish(&mut finished);
        write_changed_pages(s3, bucket, finished.drain(..), summary, changed).await?;
    }
    Ok(())
}

/// Brings up to date what a publish changed: each of `subtrees` (walked as the whole bucket
/// is, from a listing of its prefix alone; one that does not exist gets no page), then each
/// ancestor's page from a listing of its level. The rest of the bucket is not listed.
async fn update_published_pages(
    s3: &aws_sdk_s3::Client,
    bucket: &BucketName,
    subtrees: &[String],
) -> Result<(IndexSummary, Vec<String>), PipelineError> {
    let mut summary = IndexSummary {
        reindexed: subtrees.iter().map(|path| page::directory_url(path)).collect(),
        ..IndexSummary::default()
    };
    let mut changed = Vec::new();
    for subtree in subtrees {
        walk_subtree(s3, bucket, subtree, &mut summary, &mut changed).await?;
    }
    for ancestor in listing::ancestors_outside(subtrees) {
        let Some((directory, objects)) = directory_at(s3, bucket, &ancestor).await? else {
            continue;
        };
        summary.objects_listed += objects;
        write_changed_pages(s3, bucket, std::iter::once(directory), &mut summary, &mut changed).await?;
    }
    Ok((summary, changed))
}

/// Directory `path` (`""`: the root) from a listing of its level alone, with how many objects
/// that listed; `None` when nothing is under it (the root always exists).
pub async fn directory_at(
    s3: &aws_sdk_s3::Client,
    bucket: &BucketName,
    path: &str,
) -> Result<Option<(Directory, u64)>, PipelineError> {
    let level = pipeline_aws::s3::list_directory(s3, bucket.as_str(), &listing::prefix_of(path)).await?;
    if !path.is_empty() && level.objects.is_empty() && level.subdirectories.is_empty() {
        return Ok(None);
    }
    let objects = level.objects.len() as u64;
    let listed_objects = level.objects.into_iter().map(listed).collect();
    Ok(Some((
        listing::directory_from_level(path, listed_objects, level.subdirectories),
        objects,
    )))
}

fn listed(object: pipeline_aws::s3::ObjectSummary) -> ListedObject {
    ListedObject {
        key: object.key,
        size: object.size,
        last_modified: object.last_modified,
        e_tag: object.e_tag,
    }
}

/// Places a listed object in the walker's tree, counting it.
fn place(
    walker: &mut DirectoryWalker,
    object: ListedObject,
    finished: &mut Vec<Directory>,
    bucket: &BucketName,
    summary: &mut IndexSummary,
) -> Result<(), PipelineError> {
    summary.objects_listed += 1;
    let placement = walker
        .push(object, finished)
        .map_err(|error| PipelineError::aws(format!("S3 ListObjectsV2 s3://{bucket}"), error))?;
    if placement == Placement::Skipped {
        summary.keys_skipped += 1;
    }
    Ok(())
}

/// Renders each directory's page and writes those the listing does not show stored (by
/// ETag: no page is read back), `WRITE_CONCURRENCY` at a time.
async fn write_changed_pages(
    s3: &aws_sdk_s3::Client,
    bucket: &BucketName,
    directories: impl Iterator<Item = Directory>,
    summary: &mut IndexSummary,
    changed: &mut Vec<String>,
) -> Result<(), PipelineError> {
    let mut writes = Vec::new();
    for directory in directories {
        summary.directories += 1;
        let rendered = page::render_index_page(&directory);
        if page::is_stored(&directory, &rendered) {
            summary.pages_unchanged += 1;
        } else {
            writes.push((directory, rendered));
        }
    }
    // In order, so the changed directories (and so the invalidation) do not depend on timing.
    let mut written = futures::stream::iter(
        writes
            .into_iter()
            .map(|(directory, rendered)| write_page(s3, bucket, directory, rendered)),
    )
    .buffered(WRITE_CONCURRENCY);
    while let Some(write) = written.next().await {
        let write = write?;
        summary.pages_relisted += u64::from(write.relisted);
        summary.objects_listed += write.objects_relisted;
        if !write.written {
            summary.pages_unchanged += 1;
            continue;
        }
        summary.pages_written += 1;
        if summary.changed_directories.len() < REPORTED_DIRECTORIES {
            summary.changed_directories.push(page::directory_url(&write.path));
        }
        changed.push(write.path);
    }
    Ok(())
}

/// How many times one run writes a page before it gives up on it: every attempt after the
/// first follows another writer's change to the page (`AwsServiceError` after the last, which
/// the machines retry).
pub const PAGE_WRITE_ATTEMPTS: u32 = 3;

/// What became of a page to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageWrite {
    /// The directory's path.
    pub path: String,
    /// This run wrote it; otherwise what it would write is what another writer already wrote
    /// (or its directory is gone).
    pub written: bool,
    /// How many times its level was listed again, each after another writer changed the page
    /// between this run's listing and its write.
    pub relisted: u32,
    /// The objects those listings held.
    pub objects_relisted: u64,
}

/// Writes `rendered`, `directory`'s page, only while the page stored is the one the listing gave
/// (S3's conditional write against that ETag, or against there being none). Two index updates
/// at once (two publishes, a publish and a `reindex`) would otherwise let the one with the older
/// listing write last. When another writer changed the page meanwhile, this run's listing may
/// be the older one: the directory's level is listed again, and the page rendered from that is
/// written (conditionally again) unless it is what is stored now.
pub async fn write_page(
    s3: &aws_sdk_s3::Client,
    bucket: &BucketName,
    directory: Directory,
    rendered: String,
) -> Result<PageWrite, PipelineError> {
    let location = page_location(bucket, &directory)?;
    let mut write = PageWrite {
        path: directory.path.clone(),
        written: false,
        relisted: 0,
        objects_relisted: 0,
    };
    let (mut directory, mut rendered) = (directory, rendered);
    loop {
        let expected = match &directory.stored_page_etag {
            Some(etag) => pipeline_aws::s3::Expected::ETag(etag.clone()),
            None => pipeline_aws::s3::Expected::Absent,
        };
        let body = rendered.into_bytes();
        if pipeline_aws::s3::put_object_if(s3, &location, body, PAGE_CONTENT_TYPE, &expected).await? {
            write.written = true;
            return Ok(write);
        }
        if write.relisted + 1 >= PAGE_WRITE_ATTEMPTS {
            return Err(PipelineError::aws(
                format!("S3 PutObject {location}"),
                format!(
                    "the page changed under this run {PAGE_WRITE_ATTEMPTS} times between its listing and its write: \
                     other index updates are writing it"
                ),
            ));
        }
        tracing::info!(%location, "another writer changed the page since the listing: listing its directory again");
        let fresh = directory_at(s3, bucket, &write.path).await?;
        write.relisted += 1;
        let Some((fresh, objects)) = fresh else {
            return Ok(write);
        };
        write.objects_relisted += objects;
        rendered = page::render_index_page(&fresh);
        if page::is_stored(&fresh, &rendered) {
            return Ok(write);
        }
        directory = fresh;
    }
}

/// The pages' content type.
const PAGE_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Where a directory's page goes.
fn page_location(bucket: &BucketName, directory: &Directory) -> Result<S3Location, PipelineError> {
    let key: ObjectKey = directory.index_key().parse().map_err(|problem| {
        PipelineError::aws(
            format!("S3 ListObjectsV2 s3://{bucket}"),
            format!("no page key for a directory: {problem}"),
        )
    })?;
    Ok(S3Location {
        bucket: bucket.clone(),
        path: key,
    })
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
    use aws_sdk_s3::types::Object;
    use aws_smithy_mocks::mock;
    use pipeline_testing::mocked_client;
    use pipeline_testing::mocks::{http_response, match_any};

    use super::*;

    const PRECONDITION_FAILED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>"#;

    /// What an emulator cannot produce on cue: another writer changing the page before each of
    /// this run's writes, however often it lists the directory again.
    #[tokio::test]
    async fn a_page_that_keeps_changing_under_the_run_fails_it_retryably_after_the_last_attempt() {
        let (puts, lists) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let put = mock!(aws_sdk_s3::Client::put_object).then_http_response({
            let puts = puts.clone();
            move || {
                puts.fetch_add(1, Ordering::SeqCst);
                http_response(412, PRECONDITION_FAILED)
            }
        });
        let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output({
            let lists = lists.clone();
            move |_| {
                let listed = lists.fetch_add(1, Ordering::SeqCst);
                let object = |key: &str, e_tag: String| {
                    Object::builder()
                        .key(key)
                        .size(1)
                        .last_modified(aws_sdk_s3::primitives::DateTime::from_secs(1_796_169_600))
                        .e_tag(e_tag)
                        .build()
                };
                ListObjectsV2Output::builder()
                    .prefix("d/")
                    .contents(object("d/a.txt", "\"a\"".to_string()))
                    .contents(object("d/index.html", format!("\"another writer's page {listed}\"")))
                    .is_truncated(false)
                    .build()
            }
        });
        let s3 = mocked_client!(aws_sdk_s3, match_any(&[&put, &list]));
        let bucket: BucketName = "hhvm-downloads".parse().unwrap();
        let directory = Directory {
            path: "d".to_string(),
            has_index_page: true,
            stored_page_etag: Some("\"what this run listed\"".to_string()),
            ..Directory::default()
        };
        let rendered = page::render_index_page(&directory);

        let error = write_page(&s3, &bucket, directory, rendered).await.unwrap_err();
        assert_eq!(error.error_type(), "AwsServiceError", "{error}");
        assert!(error.to_string().contains("changed under this run 3 times"), "{error}");
        assert_eq!(
            (puts.load(Ordering::SeqCst), lists.load(Ordering::SeqCst)),
            (PAGE_WRITE_ATTEMPTS as usize, PAGE_WRITE_ATTEMPTS as usize - 1),
            "a write per attempt, a listing between two"
        );
    }

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
