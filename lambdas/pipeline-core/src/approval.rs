//! The release gate: whether `hhvm-publish-release` waits for an operator's approval before it
//! publishes anything. An input may ask (`requireApproval`); otherwise releases wait when the
//! stack says so (`ReleasesRequireApproval`) and nightlies never do, since nobody is awake to
//! approve them.

use crate::{Payload, PipelineError, Version};

/// The payload field that asks for (or waives) the gate, and that the first step sets to the
/// decision.
pub const REQUIRE_APPROVAL_FIELD: &str = "requireApproval";

/// Whether a publish of `version` waits for approval: the payload's `requireApproval` when
/// given, else `releases_by_default` for a release. A nightly asking for it is refused.
pub fn approval_required(
    payload: &Payload,
    version: &Version,
    releases_by_default: bool,
) -> Result<bool, PipelineError> {
    let asked = payload.optional::<bool>(REQUIRE_APPROVAL_FIELD, "a boolean")?;
    match asked {
        Some(true) if version.is_nightly() => Err(PipelineError::invalid_input(
            REQUIRE_APPROVAL_FIELD,
            format!("{version} is a nightly, and nightlies never wait for approval"),
        )),
        Some(asked) => Ok(asked),
        None => Ok(releases_by_default && !version.is_nightly()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decide(input: serde_json::Value, version: &str, by_default: bool) -> Result<bool, PipelineError> {
        let payload = Payload::from_value(input).unwrap();
        approval_required(&payload, &version.parse().unwrap(), by_default)
    }

    #[test]
    fn releases_wait_by_the_stacks_default_unless_the_input_says_otherwise() {
        assert!(decide(json!({}), "4.168.2", true).unwrap());
        assert!(!decide(json!({}), "4.168.2", false).unwrap());
        assert!(decide(json!({"requireApproval": true}), "4.168.2", false).unwrap());
        assert!(!decide(json!({"requireApproval": false}), "4.168.2", true).unwrap());
    }

    #[test]
    fn nightlies_never_wait() {
        assert!(!decide(json!({}), "2026.12.02", true).unwrap());
        assert!(!decide(json!({"requireApproval": false}), "2026.12.02", true).unwrap());
        let error = decide(json!({"requireApproval": true}), "2026.12.02", false).unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        assert!(error.to_string().contains("nightlies never wait"), "{error}");
        let error = decide(json!({"requireApproval": "yes"}), "4.168.2", false).unwrap_err();
        assert!(error.to_string().contains("requireApproval"), "{error}");
    }
}
