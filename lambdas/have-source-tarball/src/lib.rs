//! `hhvm-have-source-tarball`: succeeds, returning its input unchanged, when the source tarball
//! named by `source` (from get-build-version) is there in full: the tarball, its signature
//! (`.sig`), its checksums (`.sha256`) and the source job's success marker, which the job
//! writes last. Anything missing is the typed error `SourceTarballNotFound` naming it, which the
//! build machine catches to create the tarball again — so a job that died between its uploads
//! never leaves a tarball that counts as present. Any other failure (403, network, 5xx) is
//! `AwsServiceError`, so a permissions problem is never mistaken for a missing tarball.

use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::layout::{JobKind, marker_key};
use pipeline_core::s3::Buckets;
use pipeline_core::{BucketName, Payload, PipelineError, S3Location, Version};
use serde_json::Value;

/// `DOWNLOADS_BUCKET` and `SCRATCH_BUCKET`: where the version's tarball belongs, and where the
/// source job's success marker is.
pub type Config = Buckets;

/// Everything that makes up a source tarball: the tarball (what is missing when it was never
/// built), then its signature, its checksums and the marker the job writes last. A `source`
/// whose key leaves no room for `.sha256` cannot have them: an input error.
pub fn source_set(
    source: &S3Location,
    version: &Version,
    scratch: &BucketName,
) -> Result<Vec<S3Location>, PipelineError> {
    let beside = |suffix: &str| -> Result<S3Location, PipelineError> {
        Ok(S3Location {
            bucket: source.bucket.clone(),
            path: format!("{}{suffix}", source.path)
                .parse()
                .map_err(|problem| PipelineError::invalid_input("source.path", format!("with {suffix}: {problem}")))?,
        })
    };
    Ok(vec![
        source.clone(),
        beside(".sig")?,
        beside(".sha256")?,
        S3Location {
            bucket: scratch.clone(),
            path: marker_key(version, JobKind::SourceTarball, None),
        },
    ])
}

pub async fn handle(s3: &aws_sdk_s3::Client, config: &Config, event: Value) -> Result<Value, PipelineError> {
    let payload = Payload::from_value(event)?;
    let version = Version::read(&payload)?;
    let source = config.read_source(&payload, &version)?;
    for part in source_set(&source, &version, &config.scratch)? {
        if !pipeline_aws::s3::object_exists(s3, &part).await? {
            tracing::info!(%source, missing = %part, "source tarball not there in full");
            return Err(PipelineError::SourceTarballNotFound {
                location: source.to_string(),
                missing: part.to_string(),
            });
        }
    }
    tracing::info!(%source, "source tarball, signature, checksums and marker exist");
    Ok(payload.into_value())
}

/// The deployed function: `handle` with its client and configuration.
pub struct HaveSourceTarball {
    s3: aws_sdk_s3::Client,
    config: Config,
}

impl Function for HaveSourceTarball {
    const NAME: &'static str = "hhvm-have-source-tarball";
    type Config = Config;

    fn configuration(source: &impl Source) -> Result<Config, PipelineError> {
        pipeline_aws::config::buckets(source)
    }

    fn new(config: Config, sdk_config: &SdkConfig) -> Self {
        HaveSourceTarball {
            s3: pipeline_aws::s3_client(sdk_config),
            config,
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.s3, &self.config, event).await
    }
}
