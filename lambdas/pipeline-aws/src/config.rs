//! Configuration from environment variables (set by `infra/template.yaml`, or by the local
//! stack that deploys it), read once at cold start. Each function states what it reads in its
//! `Function::configuration`, through the typed readers here; their errors name the variable
//! and what it should hold, and reach the caller as `ConfigurationError`.

use std::fmt::Display;
use std::str::FromStr;

use pipeline_core::launch::PipelineStack;
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

/// The value of `name`, trimmed; unset and blank are the same (a template's optional value
/// that resolved to "" means "not configured").
pub fn text(source: &impl Source, name: &str) -> Option<String> {
    source
        .get(name)
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

/// A variable that must be set and parse as `T`; `expected` completes "expected …".
pub fn required<T>(source: &impl Source, name: &str, expected: &str) -> Result<T, PipelineError>
where
    T: FromStr,
    T::Err: Display,
{
    optional(source, name, expected)?
        .ok_or_else(|| PipelineError::configuration(name, format!("is not set; expected {expected}")))
}

/// A variable that may be unset; when set it must parse as `T`.
pub fn optional<T>(source: &impl Source, name: &str, expected: &str) -> Result<Option<T>, PipelineError>
where
    T: FromStr,
    T::Err: Display,
{
    text(source, name)
        .map(|value| {
            value.parse::<T>().map_err(|problem| {
                PipelineError::configuration(name, format!("{value:?}: {problem}; expected {expected}"))
            })
        })
        .transpose()
}

/// A whole number within `range`, `default` when unset.
pub fn number_in(
    source: &impl Source,
    name: &str,
    range: std::ops::RangeInclusive<usize>,
    default: usize,
) -> Result<usize, PipelineError> {
    let expected = format!("a number from {} to {}", range.start(), range.end());
    match optional::<usize>(source, name, &expected)? {
        None => Ok(default),
        Some(number) if range.contains(&number) => Ok(number),
        Some(number) => Err(PipelineError::configuration(
            name,
            format!("{number} is not {expected}"),
        )),
    }
}

pub fn bucket(source: &impl Source, name: &str) -> Result<BucketName, PipelineError> {
    required(source, name, "an S3 bucket name")
}

/// `DOWNLOADS_BUCKET` (public, behind the CDN) and `SCRATCH_BUCKET` (private staging).
pub fn buckets(source: &impl Source) -> Result<Buckets, PipelineError> {
    Ok(Buckets {
        downloads: bucket(source, "DOWNLOADS_BUCKET")?,
        scratch: bucket(source, "SCRATCH_BUCKET")?,
    })
}

/// `PIPELINE_STACK`: the deployment the function belongs to (the template sets it from
/// `AWS::StackName`). Its workers carry it as their `PipelineStack` tag, and only those are
/// ever found, reused or terminated.
pub fn pipeline_stack(source: &impl Source) -> Result<PipelineStack, PipelineError> {
    required(
        source,
        "PIPELINE_STACK",
        "the name of the stack that deployed the pipeline",
    )
}

/// The ARN of a state machine the function starts executions of.
pub fn state_machine_arn(source: &impl Source, name: &str, machine: &str) -> Result<String, PipelineError> {
    let arn: String = required(source, name, &format!("the ARN of the {machine} state machine"))?;
    if !arn.starts_with("arn:") || !arn.contains(":states:") || !arn.contains(":stateMachine:") {
        return Err(PipelineError::configuration(
            name,
            format!("{arn:?} is not a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)"),
        ));
    }
    Ok(arn)
}

/// Test support: an environment of fixed pairs.
pub fn fixed_environment(pairs: &[(&str, &str)]) -> impl Source + use<> {
    let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_read_and_validated() {
        let buckets = buckets(&fixed_environment(&[
            ("DOWNLOADS_BUCKET", "dl"),
            ("SCRATCH_BUCKET", "scratch"),
        ]));
        assert!(buckets.is_err(), "'dl' is too short for a bucket name");
        let buckets = super::buckets(&fixed_environment(&[
            ("DOWNLOADS_BUCKET", "hhvm-dl"),
            ("SCRATCH_BUCKET", " hhvm-scratch "),
        ]))
        .unwrap();
        assert_eq!(buckets.downloads.as_str(), "hhvm-dl");
        assert_eq!(buckets.scratch.as_str(), "hhvm-scratch");
    }

    #[test]
    fn missing_variables_are_named() {
        let error = super::buckets(&fixed_environment(&[("DOWNLOADS_BUCKET", "hhvm-dl")])).unwrap_err();
        assert_eq!(error.error_type(), "ConfigurationError");
        assert_eq!(
            error.to_string(),
            "configuration variable SCRATCH_BUCKET: is not set; expected an S3 bucket name"
        );
        let error = super::buckets(&fixed_environment(&[
            ("DOWNLOADS_BUCKET", " "),
            ("SCRATCH_BUCKET", "hhvm-scratch"),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("DOWNLOADS_BUCKET: is not set"), "{error}");
    }

    #[test]
    fn invalid_values_are_named_with_the_value() {
        let error = super::buckets(&fixed_environment(&[
            ("DOWNLOADS_BUCKET", "Not_A_Bucket"),
            ("SCRATCH_BUCKET", "hhvm-scratch"),
        ]))
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("configuration variable DOWNLOADS_BUCKET: \"Not_A_Bucket\": "),
            "{error}"
        );
        assert!(error.to_string().ends_with("expected an S3 bucket name"), "{error}");
    }

    #[test]
    fn numbers_have_defaults_and_bounds() {
        let env = fixed_environment(&[("SMALL", "0"), ("TEXT", "many"), ("GOOD", "8")]);
        assert_eq!(number_in(&env, "UNSET", 1..=32, 4).unwrap(), 4);
        assert_eq!(number_in(&env, "GOOD", 1..=32, 4).unwrap(), 8);
        for name in ["SMALL", "TEXT"] {
            let error = number_in(&env, name, 1..=32, 4).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
            assert!(error.to_string().contains("a number from 1 to 32"), "{error}");
        }
    }

    #[test]
    fn state_machine_arns_are_checked() {
        let env = fixed_environment(&[
            ("GOOD", "arn:aws:states:us-east-1:123456789012:stateMachine:hhvm-build"),
            ("BAD", "hhvm-build"),
        ]);
        assert!(state_machine_arn(&env, "GOOD", "hhvm-build").is_ok());
        let error = state_machine_arn(&env, "BAD", "hhvm-build").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("BAD: \"hhvm-build\" is not a state machine ARN"),
            "{error}"
        );
        let error = state_machine_arn(&env, "UNSET", "hhvm-build").unwrap_err();
        assert!(
            error.to_string().contains("the ARN of the hhvm-build state machine"),
            "{error}"
        );
    }
}
