//! How often and how long the state machines poll their workers and child executions. The
//! settings travel in the payload so that production can poll every minute and tests every
//! second; the first Lambda of each machine fills in what the input leaves out.
//!
//! - `pollIntervalSeconds` (default 60): the wait between two polls.
//! - `pollLimit` (default 200, at most 600): polls of a worker before the machine gives up
//!   and cleans up. At the default interval that is 3 h 20 min, past the longest worker's hard
//!   timeout (3 h), and a machine's loops together fit inside its `TimeoutSeconds`
//!   (`tests/tests/infra_checks.rs` checks both over the definitions). Each poll costs about 11
//!   history events, so the cap keeps `hhvm-build`'s three loop runs (the source tarball's, the
//!   builds', and the builds' again when a spot interruption is rebuilt on demand: 3 × 600 × 11
//!   = 19,800 events) within a Standard execution's 25,000. Loops that wait for a child
//!   execution are bounded by the child's own `TimeoutSeconds` instead.

use crate::{Payload, PipelineError};

pub const DEFAULT_POLL_INTERVAL_SECONDS: u64 = 60;
pub const DEFAULT_POLL_LIMIT: u64 = 200;
pub const MAX_POLL_INTERVAL_SECONDS: u64 = 3600;
pub const MAX_POLL_LIMIT: u64 = 600;

/// Validates the poll settings of the payload and adds the defaults of those not given.
pub fn fill_poll_settings(payload: &mut Payload) -> Result<(), PipelineError> {
    let interval = setting(payload, "pollIntervalSeconds", MAX_POLL_INTERVAL_SECONDS)?;
    let limit = setting(payload, "pollLimit", MAX_POLL_LIMIT)?;
    payload.set("pollIntervalSeconds", interval.unwrap_or(DEFAULT_POLL_INTERVAL_SECONDS));
    payload.set("pollLimit", limit.unwrap_or(DEFAULT_POLL_LIMIT));
    Ok(())
}

fn setting(payload: &Payload, field: &str, max: u64) -> Result<Option<u64>, PipelineError> {
    let expected = format!("a whole number from 1 to {max}");
    match payload.optional::<u64>(field, &expected)? {
        Some(value) if !(1..=max).contains(&value) => Err(PipelineError::invalid_input(
            field,
            format!("is {value}; expected {expected}"),
        )),
        value => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filled(input: serde_json::Value) -> Result<serde_json::Value, PipelineError> {
        let mut payload = Payload::from_value(input)?;
        fill_poll_settings(&mut payload)?;
        Ok(payload.into_value())
    }

    #[test]
    fn defaults_fill_what_is_missing() {
        assert_eq!(
            filled(json!({})).unwrap(),
            json!({"pollIntervalSeconds": 60, "pollLimit": 200})
        );
        assert_eq!(
            filled(json!({"pollIntervalSeconds": 1})).unwrap(),
            json!({"pollIntervalSeconds": 1, "pollLimit": 200})
        );
    }

    #[test]
    fn given_settings_are_kept() {
        let output = filled(json!({"pollIntervalSeconds": 5, "pollLimit": 20})).unwrap();
        assert_eq!(output, json!({"pollIntervalSeconds": 5, "pollLimit": 20}));
    }

    #[test]
    fn bad_settings_are_invalid_input_naming_the_field() {
        let cases = [
            (json!({"pollIntervalSeconds": 0}), "`pollIntervalSeconds`: is 0"),
            (json!({"pollIntervalSeconds": 3601}), "`pollIntervalSeconds`: is 3601"),
            (
                json!({"pollIntervalSeconds": 1.5}),
                "`pollIntervalSeconds`: expected a whole number",
            ),
            (
                json!({"pollLimit": "10"}),
                "`pollLimit`: expected a whole number from 1 to 600, got a string",
            ),
            (json!({"pollLimit": -1}), "`pollLimit`: expected a whole number"),
            (json!({"pollLimit": 601}), "`pollLimit`: is 601"),
        ];
        for (input, expected) in cases {
            let error = filled(input.clone()).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput", "{input}");
            assert!(error.to_string().contains(expected), "{input}: {error}");
        }
    }
}
