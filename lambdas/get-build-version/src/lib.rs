//! `hhvm-get-build-version`: decides what a run builds. Reads the optional `version` (default:
//! today's nightly, by UTC) and `packagingBranch` (default: `master` for nightlies, `HHVM-x.y`
//! for releases), validates both, and adds `version`, `nightly`, `source` and `packagingBranch`
//! to the pass-through payload, with the poll settings (`pollIntervalSeconds`, `pollLimit`)
//! filled in where the input leaves them out, and `requireApproval` when the publish must wait
//! for an operator (`pipeline_core::approval`; releases by default when
//! `RELEASES_REQUIRE_APPROVAL` is `true`). No AWS calls.
//!
//! The first step of `hhvm-build`, `hhvm-publish-release` and `hhvm-build-and-publish`, so it
//! validates every field a later step reads (`distros`, `force`, `executionName`,
//! `parentExecutionName` too) and refuses the fields the pipeline reserves for its own steps:
//! bad input fails here, before anything has started.

use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::approval::{REQUIRE_APPROVAL_FIELD, approval_required};
use pipeline_core::distro::read_distros;
use pipeline_core::executions::{ExecutionName, PARENT_EXECUTION_NAME_FIELD};
use pipeline_core::polling::fill_poll_settings;
use pipeline_core::s3::Buckets;
use pipeline_core::{PackagingBranch, Payload, PipelineError, S3Location, Version};
use serde_json::Value;

/// What a run builds, as the rest of the pipeline reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildVersion {
    pub version: Version,
    pub packaging_branch: PackagingBranch,
    pub source: S3Location,
}

/// The decision itself: pure, so it is tested without a clock or AWS.
pub fn resolve_build_version(
    requested_version: Option<&str>,
    requested_branch: Option<&str>,
    today: Version,
    buckets: &Buckets,
) -> Result<BuildVersion, PipelineError> {
    let version = match requested_version {
        Some(text) => text.parse::<Version>().map_err(|e| e.in_field("version"))?,
        None => today,
    };
    let packaging_branch = match requested_branch {
        Some(text) => text.parse()?,
        None => version.default_packaging_branch(),
    };
    Ok(BuildVersion {
        version,
        packaging_branch,
        source: buckets.source_tarball(&version),
    })
}

/// What the function reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DOWNLOADS_BUCKET` and `SCRATCH_BUCKET`.
    pub buckets: Buckets,
    /// `RELEASES_REQUIRE_APPROVAL` (`true`/`false`, default `false`): whether a release's
    /// publish waits for approval when its input does not say.
    pub releases_require_approval: bool,
}

impl Config {
    pub fn from_source(source: &impl Source) -> Result<Config, PipelineError> {
        Ok(Config {
            buckets: pipeline_aws::config::buckets(source)?,
            releases_require_approval: pipeline_aws::config::optional(
                source,
                "RELEASES_REQUIRE_APPROVAL",
                "true or false",
            )?
            .unwrap_or(false),
        })
    }
}

pub fn handle(config: &Config, event: Value) -> Result<Value, PipelineError> {
    handle_on(config, event, Version::nightly_today())
}

/// `handle` with "today" given, for tests.
pub fn handle_on(config: &Config, event: Value, today: Version) -> Result<Value, PipelineError> {
    let buckets = &config.buckets;
    let mut payload = Payload::from_value(event)?;
    payload.refuse_reserved_fields()?;
    // An empty string means "not given", as in the original (the nightly schedule relies on it).
    let version = payload.optional_nonempty_str("version")?;
    let branch = payload.optional_nonempty_str("packagingBranch")?;
    let build = resolve_build_version(version.as_deref(), branch.as_deref(), today, buckets)?;
    validate_later_fields(&payload)?;
    let require_approval = approval_required(&payload, &build.version, config.releases_require_approval)?;
    fill_poll_settings(&mut payload)?;
    tracing::info!(version = %build.version, branch = %build.packaging_branch, source = %build.source, "resolved build version");

    payload.set("version", build.version.to_string());
    payload.set("nightly", build.version.is_nightly());
    payload.set("source", &build.source);
    payload.set("packagingBranch", build.packaging_branch.to_string());
    // Set only when it says something: a run that never waits keeps its payload as it was.
    if require_approval || payload.get(REQUIRE_APPROVAL_FIELD).is_some() {
        payload.set(REQUIRE_APPROVAL_FIELD, require_approval);
    }
    Ok(payload.into_value())
}

/// The fields later steps read that this step does not set: read once here with the readers
/// those steps use, so an error surfaces before any worker starts.
fn validate_later_fields(payload: &Payload) -> Result<(), PipelineError> {
    read_distros(payload)?;
    payload.optional::<bool>("force", "a boolean")?;
    ExecutionName::optional(payload)?;
    if let Some(parent) = payload.optional_nonempty_str(PARENT_EXECUTION_NAME_FIELD)? {
        parent
            .parse::<ExecutionName>()
            .map_err(|problem| PipelineError::invalid_input(PARENT_EXECUTION_NAME_FIELD, problem))?;
    }
    Ok(())
}

/// The deployed function: `handle` with its configuration.
pub struct GetBuildVersion {
    config: Config,
}

impl Function for GetBuildVersion {
    const NAME: &'static str = "hhvm-get-build-version";
    type Config = Config;

    fn configuration(source: &impl Source) -> Result<Config, PipelineError> {
        Config::from_source(source)
    }

    fn new(config: Config, _: &SdkConfig) -> Self {
        GetBuildVersion { config }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(&self.config, event)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn buckets() -> Buckets {
        Buckets {
            downloads: "hhvm-downloads".parse().unwrap(),
            scratch: "hhvm-scratch".parse().unwrap(),
        }
    }

    fn config() -> Config {
        Config {
            buckets: buckets(),
            releases_require_approval: false,
        }
    }

    #[test]
    fn a_release_waits_for_approval_when_the_stack_says_so_and_a_nightly_never() {
        let gated = Config {
            releases_require_approval: true,
            ..config()
        };
        let release = handle_on(&gated, json!({"version": "4.168.2"}), today()).unwrap();
        assert_eq!(release["requireApproval"], true);
        let waived = handle_on(&gated, json!({"version": "4.168.2", "requireApproval": false}), today()).unwrap();
        assert_eq!(waived["requireApproval"], false);
        let nightly = handle_on(&gated, json!({}), today()).unwrap();
        assert!(nightly.get("requireApproval").is_none(), "{nightly}");
        let ungated = handle_on(&config(), json!({"version": "4.168.2"}), today()).unwrap();
        assert!(ungated.get("requireApproval").is_none(), "{ungated}");
        let error = handle_on(&config(), json!({"requireApproval": true}), today()).unwrap_err();
        assert!(error.to_string().contains("nightlies never wait"), "{error}");
    }

    fn today() -> Version {
        "2026.11.21".parse().unwrap()
    }

    #[test]
    fn no_version_means_todays_nightly_from_master() {
        let output = handle_on(&config(), json!({}), today()).unwrap();
        assert_eq!(
            output,
            json!({
                "version": "2026.11.21",
                "nightly": true,
                "source": {"bucket": "hhvm-downloads", "path": "source/nightlies/hhvm-nightly-2026.11.21.tar.gz"},
                "packagingBranch": "master",
                "pollIntervalSeconds": 60,
                "pollLimit": 200
            })
        );
    }

    #[test]
    fn poll_settings_given_are_kept_and_bad_ones_refused() {
        let output = handle_on(&config(), json!({"pollIntervalSeconds": 1, "pollLimit": 30}), today()).unwrap();
        assert_eq!(
            (output["pollIntervalSeconds"].clone(), output["pollLimit"].clone()),
            (json!(1), json!(30))
        );
        let error = handle_on(&config(), json!({"pollIntervalSeconds": 0}), today()).unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        assert!(error.to_string().contains("pollIntervalSeconds"), "{error}");
    }

    #[test]
    fn empty_or_null_version_is_also_today() {
        for input in [json!({"version": ""}), json!({"version": null, "packagingBranch": ""})] {
            let output = handle_on(&config(), input, today()).unwrap();
            assert_eq!(output["version"], "2026.11.21");
            assert_eq!(output["packagingBranch"], "master");
        }
    }

    #[test]
    fn release_builds_from_its_branch_with_a_scratch_tarball() {
        let output = handle_on(&config(), json!({"version": "4.168.2"}), today()).unwrap();
        assert_eq!(output["nightly"], false);
        assert_eq!(output["packagingBranch"], "HHVM-4.168");
        assert_eq!(
            output["source"],
            json!({"bucket": "hhvm-scratch", "path": "hhvm-4.168.2.tar.gz"})
        );
    }

    #[test]
    fn explicit_branch_is_kept_and_source_is_always_recomputed() {
        let input =
            json!({"version": "4.168.2", "packagingBranch": "HHVM-4.167", "source": {"bucket": "evil", "path": "x"}});
        let output = handle_on(&config(), input, today()).unwrap();
        assert_eq!(output["packagingBranch"], "HHVM-4.167");
        assert_eq!(output["source"]["bucket"], "hhvm-scratch");
    }

    #[test]
    fn unknown_fields_come_back_verbatim() {
        let input: Value = serde_json::from_str(
            r#"{"distros": ["debian-12-bookworm"], "nested": {"a": [1, null, {"b": 2.50}]}, "n": null, "big": 123456789012345678901234567890}"#,
        )
        .unwrap();
        let output = handle_on(&config(), input.clone(), today()).unwrap();
        for field in ["distros", "nested", "n", "big"] {
            assert_eq!(output[field], input[field], "{field}");
        }
        assert_eq!(
            serde_json::to_string(&output["nested"]).unwrap(),
            r#"{"a":[1,null,{"b":2.50}]}"#
        );
    }

    #[test]
    fn bad_version_is_invalid_version_naming_the_field() {
        let error = handle_on(&config(), json!({"version": "4.1; rm -rf /"}), today()).unwrap_err();
        assert_eq!(error.error_type(), "InvalidVersion");
        assert!(error.to_string().contains("field `version`"), "{error}");
        let error = handle_on(&config(), json!({"version": "2026.02.30"}), today()).unwrap_err();
        assert_eq!(error.error_type(), "InvalidVersion");
    }

    #[test]
    fn bad_input_shapes_are_invalid_input_naming_the_field() {
        let cases = [
            (json!({"version": 4.1}), "`version`"),
            (json!({"packagingBranch": "feature/x"}), "`packagingBranch`"),
            (json!({"packagingBranch": ["master"]}), "`packagingBranch`"),
            (json!(["2026.11.21"]), "(payload)"),
            // What later steps read is refused here, before anything starts.
            (json!({"distros": []}), "`distros`"),
            (json!({"distros": ["debian-12-bookworm; id"]}), "`distros[0]`"),
            (
                json!({"distros": ["debian-12-bookworm", "debian-12-bookworm"]}),
                "`distros[1]`",
            ),
            (json!({"force": "yes"}), "`force`"),
            (json!({"executionName": "a b"}), "`executionName`"),
            (json!({"parentExecutionName": "$(id)"}), "`parentExecutionName`"),
            // Fields only the pipeline's own steps write.
            (json!({"instances": ["i-0123456789abcdef0"]}), "`instances`"),
            (json!({"stepFunctionExecutions": []}), "`stepFunctionExecutions`"),
            (json!({"poll": {"count": 599}}), "`poll`"),
            (json!({"error": {"Error": "x"}}), "`error`"),
            (json!({"builds": []}), "`builds`"),
        ];
        for (input, field) in cases {
            let error = handle_on(&config(), input.clone(), today()).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput", "{input}");
            assert!(error.to_string().contains(field), "{input}: {error}");
        }
    }
}
