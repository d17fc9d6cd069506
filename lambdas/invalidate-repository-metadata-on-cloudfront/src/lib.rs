//! `hhvm-invalidate-repository-metadata-on-cloudfront`: after a publish, tells CloudFront to
//! drop its copies of the apt metadata (`dists/` of both repositories, where `InRelease`,
//! `Release*` and the plain indices change; `pool/` and `by-hash/` names never change content). Adds `cloudfrontInvalidation: {id, status}`
//! to the pass-through payload — not the whole SDK response.
//!
//! The distribution is the payload's `cloudfront`, else `CLOUDFRONT_DISTRIBUTION_ID`. The
//! caller reference is derived from `version`, `executionName` and the paths, so a retried call
//! returns the first attempt's invalidation instead of creating a second one; without
//! `executionName` (a manual call) it contains the time, as in the original.

use pipeline_aws::cloudfront::{configured_distribution_id, distribution_for};
use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::executions::{ExecutionName, fnv1a};
use pipeline_core::payload::string_element;
use pipeline_core::{Payload, PipelineError, Version};
use serde_json::{Value, json};

/// The apt metadata that changes on every publish.
pub const REPOSITORY_METADATA_PATHS: [&str; 2] = ["/debian/dists/*", "/ubuntu/dists/*"];

/// CloudFront's limits per invalidation.
pub const MAX_PATHS: usize = 3000;
pub const MAX_WILDCARD_PATHS: usize = 15;

/// Configuration read at cold start.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `CLOUDFRONT_DISTRIBUTION_ID`: used when the payload names no distribution.
    pub distribution_id: Option<String>,
}

impl Config {
    pub fn from_source(source: &impl pipeline_aws::config::Source) -> Result<Config, PipelineError> {
        Ok(Config {
            distribution_id: configured_distribution_id(source)?,
        })
    }
}

/// The invalidation to create: pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedInvalidation {
    pub distribution_id: String,
    pub caller_reference: String,
    pub paths: Vec<String>,
}

/// `now` names manual calls (without `executionName`).
pub fn plan(config: &Config, payload: &Payload, now: &str) -> Result<PlannedInvalidation, PipelineError> {
    let distribution_id = match distribution_for(payload, config.distribution_id.as_deref())? {
        Some(id) => id,
        None => config.distribution_id.clone().ok_or_else(|| {
            PipelineError::configuration(
                "CLOUDFRONT_DISTRIBUTION_ID",
                "is not set and the payload has no `cloudfront` distribution ID",
            )
        })?,
    };
    let version = Version::read_optional(payload)?.map_or_else(|| "no_version".to_string(), |v| v.to_string());
    let paths = match payload.get("paths").filter(|v| !v.is_null()) {
        Some(_) => payload.required_array("paths", "CloudFront paths starting with '/'", invalidation_path)?,
        None => REPOSITORY_METADATA_PATHS.iter().map(|p| p.to_string()).collect(),
    };
    check_path_limits(&paths)?;
    let run = match ExecutionName::optional(payload)? {
        Some(name) => name.to_string(),
        None => now.to_string(),
    };
    let paths_hash = fnv1a(paths.join("\n").as_bytes());
    Ok(PlannedInvalidation {
        distribution_id,
        caller_reference: format!("hhvm-repository-update-{version}-{run}-{:08x}", paths_hash as u32),
        paths,
    })
}

/// A path of the repositories to invalidate: `/` then letters, digits and `/ . _ - + ~ *`,
/// without `.` or `..` segments or percent-encoding, so the path names what it looks like.
fn invalidation_path(value: &Value) -> Result<String, String> {
    let path = string_element(value)?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"/._-+~*".contains(&b);
    let dot_segment = path.split('/').any(|segment| segment == "." || segment == "..");
    if !path.starts_with('/') || path.len() > 4096 || !path.bytes().all(allowed) || dot_segment {
        return Err(format!(
            "{path:?} is not a repository path to invalidate ('/' then letters, digits and / . _ - + ~ *, \
             no '.' or '..' segments)"
        ));
    }
    Ok(path)
}

fn check_path_limits(paths: &[String]) -> Result<(), PipelineError> {
    if paths.is_empty() {
        return Err(PipelineError::invalid_input(
            "paths",
            "is empty; expected at least one path",
        ));
    }
    let wildcards = paths.iter().filter(|p| p.contains('*')).count();
    if paths.len() > MAX_PATHS || wildcards > MAX_WILDCARD_PATHS {
        return Err(PipelineError::invalid_input(
            "paths",
            format!(
                "{} paths ({wildcards} with wildcards); CloudFront accepts at most {MAX_PATHS} ({MAX_WILDCARD_PATHS})",
                paths.len()
            ),
        ));
    }
    Ok(())
}

pub async fn handle(
    cloudfront: &aws_sdk_cloudfront::Client,
    config: &Config,
    event: Value,
) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%S%.3fZ").to_string();
    let planned = plan(config, &payload, &now)?;
    let invalidation = pipeline_aws::cloudfront::create_invalidation_once(
        cloudfront,
        &planned.distribution_id,
        &planned.caller_reference,
        &planned.paths,
    )
    .await?;
    tracing::info!(
        id = invalidation.id,
        created_now = invalidation.created_now,
        "repository metadata invalidated"
    );
    payload.set(
        "cloudfrontInvalidation",
        json!({"id": invalidation.id, "status": invalidation.status}),
    );
    Ok(payload.into_value())
}

/// The deployed function: `handle` with its client and configuration.
pub struct InvalidateRepositoryMetadataOnCloudfront {
    cloudfront: aws_sdk_cloudfront::Client,
    config: Config,
}

impl Function for InvalidateRepositoryMetadataOnCloudfront {
    const NAME: &'static str = "hhvm-invalidate-repository-metadata-on-cloudfront";
    type Config = Config;

    fn configuration(source: &impl Source) -> Result<Config, PipelineError> {
        Config::from_source(source)
    }

    fn new(config: Config, sdk_config: &SdkConfig) -> Self {
        InvalidateRepositoryMetadataOnCloudfront {
            cloudfront: aws_sdk_cloudfront::Client::new(sdk_config),
            config,
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.cloudfront, &self.config, event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            distribution_id: Some("E35YBTV6QCR5BA".into()),
        }
    }

    fn plan_for(input: Value) -> Result<PlannedInvalidation, PipelineError> {
        plan(
            &config(),
            &Payload::from_value(input).unwrap(),
            "2026-11-21T10-00-00.000Z",
        )
    }

    #[test]
    fn defaults_are_the_six_metadata_paths_and_the_configured_distribution() {
        let planned = plan_for(json!({"version": "4.168.2", "executionName": "run-1"})).unwrap();
        assert_eq!(planned.distribution_id, "E35YBTV6QCR5BA");
        assert_eq!(planned.paths, REPOSITORY_METADATA_PATHS.map(String::from));
        assert!(
            planned
                .caller_reference
                .starts_with("hhvm-repository-update-4.168.2-run-1-"),
            "{}",
            planned.caller_reference
        );
    }

    #[test]
    fn caller_reference_is_the_same_for_a_retry_and_differs_otherwise() {
        let a = plan_for(json!({"executionName": "run-1"})).unwrap().caller_reference;
        assert_eq!(
            a,
            plan_for(json!({"executionName": "run-1", "other": 1}))
                .unwrap()
                .caller_reference
        );
        assert_ne!(a, plan_for(json!({"executionName": "run-2"})).unwrap().caller_reference);
        assert_ne!(
            a,
            plan_for(json!({"executionName": "run-1", "paths": ["/x"]}))
                .unwrap()
                .caller_reference
        );
        let manual = plan_for(json!({})).unwrap().caller_reference;
        assert_eq!(
            manual,
            "hhvm-repository-update-no_version-2026-11-21T10-00-00.000Z-".to_string() + &manual[manual.len() - 8..]
        );
    }

    #[test]
    fn the_payload_may_repeat_the_distribution_and_name_paths() {
        let planned = plan_for(json!({"cloudfront": "E35YBTV6QCR5BA", "paths": ["/a/*", "/b"]})).unwrap();
        assert_eq!(planned.distribution_id, "E35YBTV6QCR5BA");
        assert_eq!(planned.paths, ["/a/*", "/b"]);
        // Without a configured distribution, the payload's is used.
        let payload = Payload::from_value(json!({"cloudfront": "EABC123"})).unwrap();
        assert_eq!(
            plan(&Config::default(), &payload, "now").unwrap().distribution_id,
            "EABC123"
        );
    }

    #[test]
    fn the_payload_never_replaces_the_configured_distribution_or_leaves_the_repositories() {
        let cases = [
            (json!({"cloudfront": "EOTHER1"}), "`cloudfront`"),
            (json!({"paths": ["/debian/../../etc/passwd"]}), "`paths[0]`"),
            (json!({"paths": ["/%2e%2e/x"]}), "`paths[0]`"),
            (json!({"paths": ["/a b"]}), "`paths[0]`"),
            (json!({"paths": ["/ünïcode"]}), "`paths[0]`"),
            (json!({"executionName": "$(id)"}), "`executionName`"),
        ];
        for (input, field) in cases {
            let error = plan_for(input.clone()).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput", "{input}");
            assert!(error.to_string().contains(field), "{input}: {error}");
        }
    }

    #[test]
    fn without_any_distribution_it_is_a_configuration_error() {
        let error = plan(&Config::default(), &Payload::from_value(json!({})).unwrap(), "now").unwrap_err();
        assert_eq!(error.error_type(), "ConfigurationError");
        assert!(error.to_string().contains("CLOUDFRONT_DISTRIBUTION_ID"), "{error}");
    }

    #[test]
    fn bad_fields_are_named() {
        let many: Vec<String> = (0..3001).map(|i| format!("/{i}")).collect();
        let wild: Vec<String> = (0..16).map(|i| format!("/{i}/*")).collect();
        let cases = [
            (json!({"cloudfront": "e35y"}), "InvalidInput", "`cloudfront`"),
            (json!({"version": "4.1"}), "InvalidVersion", "field `version`"),
            (json!({"paths": "/x"}), "InvalidInput", "`paths`"),
            (json!({"paths": ["x"]}), "InvalidInput", "`paths[0]`"),
            (json!({"paths": []}), "InvalidInput", "`paths`"),
            (json!({"paths": many}), "InvalidInput", "at most 3000"),
            (json!({"paths": wild}), "InvalidInput", "16 with wildcards"),
            (json!({"executionName": 5}), "InvalidInput", "`executionName`"),
        ];
        for (input, error_type, text) in cases {
            let error = plan_for(input.clone()).unwrap_err();
            assert_eq!(error.error_type(), error_type, "{input}");
            assert!(error.to_string().contains(text), "{input}: {error}");
        }
    }

    #[test]
    fn configuration_is_validated() {
        let bad = |name: &str| (name == "CLOUDFRONT_DISTRIBUTION_ID").then(|| "bad id".to_string());
        assert_eq!(
            Config::from_source(&bad).unwrap_err().error_type(),
            "ConfigurationError"
        );
        let unset = |_: &str| None;
        assert_eq!(Config::from_source(&unset).unwrap().distribution_id, None);
    }
}
