//! Configuration from environment variables (set by the infra template, or by the local stack),
//! read once at cold start. Errors name the variable and what it should hold.

use pipeline_core::s3::Buckets;
use pipeline_core::{BucketName, PipelineError};

/// Where configuration values come from: the process environment in a Lambda, a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Source for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// A variable that must be set and not empty.
pub fn required(source: &impl Source, name: &str, expected: &str) -> Result<String, PipelineError> {
    match source.get(name) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(PipelineError::configuration(
            name,
            format!("is not set; expected {expected}"),
        )),
    }
}

pub fn bucket(source: &impl Source, name: &str) -> Result<BucketName, PipelineError> {
    required(source, name, "an S3 bucket name")?
        .parse()
        .map_err(|problem| PipelineError::configuration(name, problem))
}

/// `DOWNLOADS_BUCKET` (public, behind the CDN) and `SCRATCH_BUCKET` (private staging).
pub fn buckets(source: &impl Source) -> Result<Buckets, PipelineError> {
    Ok(Buckets {
        downloads: bucket(source, "DOWNLOADS_BUCKET")?,
        scratch: bucket(source, "SCRATCH_BUCKET")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Source {
        move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn buckets_are_read_and_validated() {
        let buckets = buckets(&env(&[("DOWNLOADS_BUCKET", "dl"), ("SCRATCH_BUCKET", "scratch")]));
        assert!(buckets.is_err(), "'dl' is too short for a bucket name");
        let buckets = super::buckets(&env(&[
            ("DOWNLOADS_BUCKET", "hhvm-dl"),
            ("SCRATCH_BUCKET", "hhvm-scratch"),
        ]))
        .unwrap();
        assert_eq!(buckets.downloads.as_str(), "hhvm-dl");
        assert_eq!(buckets.scratch.as_str(), "hhvm-scratch");
    }

    #[test]
    fn missing_variables_are_named() {
        let error = super::buckets(&env(&[("DOWNLOADS_BUCKET", "hhvm-dl")])).unwrap_err();
        assert_eq!(error.error_type(), "ConfigurationError");
        assert_eq!(
            error.to_string(),
            "configuration variable SCRATCH_BUCKET: is not set; expected an S3 bucket name"
        );
        let error = super::buckets(&env(&[("DOWNLOADS_BUCKET", " "), ("SCRATCH_BUCKET", "hhvm-scratch")])).unwrap_err();
        assert!(error.to_string().contains("DOWNLOADS_BUCKET"), "{error}");
    }

    #[test]
    fn invalid_values_are_named() {
        let error = super::buckets(&env(&[
            ("DOWNLOADS_BUCKET", "Not_A_Bucket"),
            ("SCRATCH_BUCKET", "hhvm-scratch"),
        ]))
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("configuration variable DOWNLOADS_BUCKET: \"Not_A_Bucket\" is not a valid S3 bucket name"),
            "{error}"
        );
    }
}
