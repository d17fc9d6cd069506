//! `hhvm-have-source-tarball`: succeeds, returning its input unchanged, when the source tarball
//! named by `source` (from get-build-version) exists. A missing tarball is the typed error
//! `SourceTarballNotFound`, which the build machine catches to create it; any other failure
//! (403, network, 5xx) is `AwsServiceError`, so a permissions problem is never mistaken for a
//! missing tarball.

use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::{Payload, PipelineError, S3Location};
use serde_json::Value;

pub async fn handle(s3: &aws_sdk_s3::Client, event: Value) -> Result<Value, PipelineError> {
    let payload = Payload::from_value(event)?;
    let source: S3Location = payload.required(
        "source",
        "an object {\"bucket\": ..., \"path\": ...} as get-build-version outputs",
    )?;
    if !pipeline_aws::s3::object_exists(s3, &source).await? {
        tracing::info!(%source, "source tarball not found");
        return Err(PipelineError::SourceTarballNotFound {
            location: source.to_string(),
        });
    }
    tracing::info!(%source, "source tarball exists");
    Ok(payload.into_value())
}

/// The deployed function: `handle` with its client.
pub struct HaveSourceTarball {
    s3: aws_sdk_s3::Client,
}

impl Function for HaveSourceTarball {
    const NAME: &'static str = "hhvm-have-source-tarball";
    type Config = ();

    fn configuration(_: &impl Source) -> Result<(), PipelineError> {
        Ok(())
    }

    fn new(_: (), sdk_config: &SdkConfig) -> Self {
        HaveSourceTarball {
            s3: pipeline_aws::s3_client(sdk_config),
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.s3, event).await
    }
}
