//! `shift-version`: takes the next version off `versions`, for the multi-release machine's
//! publish loop: `{version: versions[0] ?? null, versions: versions[1..]}`. Each element must be
//! a valid version, so a bad one is reported before it is published. No AWS calls.

use pipeline_aws::config::Source;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::payload::string_element;
use pipeline_core::{Payload, PipelineError, Version};
use serde_json::Value;

pub fn handle(event: Value) -> Result<Value, PipelineError> {
    let mut payload = Payload::from_value(event)?;
    let versions = payload.required_array("versions", "version strings", string_element)?;
    for (index, text) in versions.iter().enumerate() {
        text.parse::<Version>()
            .map_err(|e| e.in_field(&format!("versions[{index}]")))?;
    }
    let mut remaining = versions.into_iter();
    let next = remaining.next();
    let rest: Vec<String> = remaining.collect();
    tracing::info!(
        next = next.as_deref().unwrap_or("(none)"),
        remaining = rest.len(),
        "shifted version"
    );

    payload.set("version", next);
    payload.set("versions", rest);
    Ok(payload.into_value())
}

/// The deployed function: it needs nothing but its input.
pub struct ShiftVersion;

impl Function for ShiftVersion {
    const NAME: &'static str = "shift-version";
    type Config = ();

    fn configuration(_: &impl Source) -> Result<(), PipelineError> {
        Ok(())
    }

    fn new(_: (), _: &SdkConfig) -> Self {
        ShiftVersion
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        handle(event)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn takes_the_first_version_off_the_list() {
        let output = handle(json!({"versions": ["4.168.2", "4.167.5", "2026.11.21"]})).unwrap();
        assert_eq!(
            output,
            json!({"versions": ["4.167.5", "2026.11.21"], "version": "4.168.2"})
        );
    }

    #[test]
    fn last_version_leaves_an_empty_list() {
        let output = handle(json!({"versions": ["4.168.2"], "version": "4.100.0"})).unwrap();
        assert_eq!(output, json!({"versions": [], "version": "4.168.2"}));
    }

    #[test]
    fn empty_list_gives_null() {
        let output = handle(json!({"versions": []})).unwrap();
        assert_eq!(output, json!({"versions": [], "version": null}));
    }

    #[test]
    fn unknown_fields_come_back_verbatim() {
        let input: Value = serde_json::from_str(
            r#"{"stepFunctionExecutions": ["arn:x"], "deep": {"k": [null, 1.0]}, "versions": ["4.1.0"], "z": null}"#,
        )
        .unwrap();
        let output = handle(input.clone()).unwrap();
        for field in ["stepFunctionExecutions", "deep", "z"] {
            assert_eq!(output[field], input[field], "{field}");
        }
        assert_eq!(serde_json::to_string(&output["deep"]).unwrap(), r#"{"k":[null,1.0]}"#);
    }

    #[test]
    fn missing_or_non_array_versions_is_invalid_input() {
        for input in [
            json!({}),
            json!({"versions": null}),
            json!({"versions": "4.1.0"}),
            json!({"versions": {"0": "4.1.0"}}),
        ] {
            let error = handle(input.clone()).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput", "{input}");
            assert!(error.to_string().contains("`versions`"), "{input}: {error}");
        }
        let error = handle(json!({"versions": ["4.1.0", 4]})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid input field `versions[1]`: expected a string, got a number"
        );
    }

    #[test]
    fn bad_version_element_is_invalid_version_naming_it() {
        let error = handle(json!({"versions": ["4.1.0", "4.2"]})).unwrap_err();
        assert_eq!(error.error_type(), "InvalidVersion");
        assert!(error.to_string().contains("versions[1]"), "{error}");
    }
}
