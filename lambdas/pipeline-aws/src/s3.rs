//! S3 calls.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use pipeline_core::{PipelineError, S3Location};

/// Whether the object exists. Only a 404 means "no": any other failure (403, network, 5xx)
/// is an `AwsServiceError`, so a caller that treats "missing" specially never mistakes a
/// permissions problem for a missing object.
pub async fn object_exists(s3: &Client, location: &S3Location) -> Result<bool, PipelineError> {
    let result = s3
        .head_object()
        .bucket(location.bucket.as_str())
        .key(location.path.as_str())
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(context)) if context.err().is_not_found() => Ok(false),
        Err(error) => Err(crate::service_error(&format!("S3 HeadObject {location}"), error)),
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub last_modified: i64,
    /// The ETag without its quotes: the hex MD5 of the body for an object uploaded in one
    /// part without KMS, as the download bucket's are (SSE-S3).
    pub e_tag: Option<String>,
}

/// The newest log among `logs` (a listing of one job's logs: one per worker instance), the
/// later key on a tie; never a folder marker.
pub fn newest_log(logs: &[ObjectSummary]) -> Option<&ObjectSummary> {
    logs.iter()
        .filter(|log| !log.key.ends_with('/'))
        .max_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)))
}

/// A listed object's summary; `None` for one without a key (S3 always gives one).
fn summary_of(object: &aws_sdk_s3::types::Object) -> Option<ObjectSummary> {
    Some(ObjectSummary {
        key: object.key()?.to_string(),
        size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
        last_modified: object.last_modified().map(|t| t.secs()).unwrap_or(0),
        e_tag: object.e_tag().map(|tag| tag.trim_matches('"').to_string()),
    })
}

/// A listing of a bucket (or of a prefix), read one page (up to 1,000 keys) at a time so a
/// caller never has to hold the whole bucket. Keys come in S3's order: ascending UTF-8 bytes.
pub struct ObjectListing<'a> {
    s3: &'a Client,
    bucket: String,
    prefix: Option<String>,
    continuation: Option<String>,
    finished: bool,
}

pub fn list_objects<'a>(s3: &'a Client, bucket: &str, prefix: Option<&str>) -> ObjectListing<'a> {
    ObjectListing {
        s3,
        bucket: bucket.to_string(),
        prefix: prefix.map(str::to_string),
        continuation: None,
        finished: false,
    }
}

impl ObjectListing<'_> {
    /// The next page, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ObjectSummary>>, PipelineError> {
        if self.finished {
            return Ok(None);
        }
        let output = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_prefix(self.prefix.clone())
            .set_continuation_token(self.continuation.take())
            .send()
            .await
            .map_err(|error| crate::service_error(&format!("S3 ListObjectsV2 s3://{}", self.bucket), error))?;
        self.continuation = output.next_continuation_token().map(str::to_string);
        self.finished = !output.is_truncated().unwrap_or(false) || self.continuation.is_none();
        Ok(Some(output.contents().iter().filter_map(summary_of).collect()))
    }

    /// Every remaining object: for prefixes known to hold few keys.
    pub async fn collect_all(mut self) -> Result<Vec<ObjectSummary>, PipelineError> {
        let mut objects = Vec::new();
        while let Some(page) = self.next_page().await? {
            objects.extend(page);
        }
        Ok(objects)
    }
}

/// One directory level of a bucket: the objects directly under a prefix, and the names of the
/// sub-directories under it (S3's common prefixes for the delimiter `/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryListing {
    pub objects: Vec<ObjectSummary>,
    /// Each sub-directory's name, without the prefix or the trailing `/`.
    pub subdirectories: Vec<String>,
    /// How many ListObjectsV2 pages it took.
    pub pages: u64,
}

/// `prefix`'s level of `bucket` (`""` for the root, else ending in `/`), read with the
/// delimiter `/`: as many requests as it has entries / 1,000, however deep the bucket is.
pub async fn list_directory(s3: &Client, bucket: &str, prefix: &str) -> Result<DirectoryListing, PipelineError> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    let mut listing = DirectoryListing::default();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|error| crate::service_error(&format!("S3 ListObjectsV2 s3://{bucket}/{prefix}"), error))?;
        listing.pages += 1;
        listing.objects.extend(page.contents().iter().filter_map(summary_of));
        listing
            .subdirectories
            .extend(page.common_prefixes().iter().filter_map(|common| {
                let name = common.prefix()?.strip_prefix(prefix)?.strip_suffix('/')?;
                Some(name.to_string())
            }));
    }
    Ok(listing)
}

/// The object's bytes, or `None` when it does not exist.
pub async fn get_object_bytes(s3: &Client, location: &S3Location) -> Result<Option<Vec<u8>>, PipelineError> {
    Ok(get_object_with_etag(s3, location).await?.map(|(bytes, _)| bytes))
}

/// An object's bytes and ETag, or `None` when there is no such key.
pub async fn get_object_with_etag(
    s3: &Client,
    location: &S3Location,
) -> Result<Option<(Vec<u8>, String)>, PipelineError> {
    let operation = || format!("S3 GetObject {location}");
    let result = s3
        .get_object()
        .bucket(location.bucket.as_str())
        .key(location.path.as_str())
        .send()
        .await;
    let output = match result {
        Ok(output) => output,
        Err(SdkError::ServiceError(context)) if context.err().is_no_such_key() => return Ok(None),
        Err(error) => return Err(crate::service_error(&operation(), error)),
    };
    let etag = output.e_tag().unwrap_or_default().to_string();
    let bytes = output
        .body
        .collect()
        .await
        .map_err(|error| PipelineError::aws(operation(), error))?;
    Ok(Some((bytes.into_bytes().to_vec(), etag)))
}

/// Deletes an object only while it still has `etag` (S3's conditional delete): another
/// writer's newer version stays. An object changed or gone meanwhile is not an error.
pub async fn delete_object_if_match(s3: &Client, location: &S3Location, etag: &str) -> Result<bool, PipelineError> {
    let result = s3
        .delete_object()
        .bucket(location.bucket.as_str())
        .key(location.path.as_str())
        .if_match(etag)
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(context)) if matches!(context.raw().status().as_u16(), 404 | 412) => Ok(false),
        Err(error) => Err(crate::service_error(&format!("S3 DeleteObject {location}"), error)),
    }
}

/// What a conditional write expects of the object it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// No object there yet (`If-None-Match: *`).
    Absent,
    /// The object with this ETag (`If-Match`).
    ETag(String),
}

/// Writes an object only if what is there is still what `expected` says (S3's conditional
/// write): `false` when another writer changed it meanwhile (412 Precondition Failed; 409 when
/// a concurrent conditional write to it was in flight; 404 when the object expected is gone),
/// which is not an error.
pub async fn put_object_if(
    s3: &Client,
    location: &S3Location,
    body: Vec<u8>,
    content_type: &str,
    expected: &Expected,
) -> Result<bool, PipelineError> {
    let request = s3
        .put_object()
        .bucket(location.bucket.as_str())
        .key(location.path.as_str())
        .content_type(content_type)
        .body(aws_sdk_s3::primitives::ByteStream::from(body));
    let request = match expected {
        Expected::Absent => request.if_none_match("*"),
        Expected::ETag(etag) => request.if_match(etag),
    };
    match request.send().await {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(context)) if matches!(context.raw().status().as_u16(), 404 | 409 | 412) => Ok(false),
        Err(error) => Err(crate::service_error(&format!("S3 PutObject {location}"), error)),
    }
}

/// Writes an object.
pub async fn put_object(
    s3: &Client,
    location: &S3Location,
    body: Vec<u8>,
    content_type: &str,
) -> Result<(), PipelineError> {
    s3.put_object()
        .bucket(location.bucket.as_str())
        .key(location.path.as_str())
        .content_type(content_type)
        .body(aws_sdk_s3::primitives::ByteStream::from(body))
        .send()
        .await
        .map_err(|error| crate::service_error(&format!("S3 PutObject {location}"), error))?;
    Ok(())
}
