//! EC2 instance IDs and what their states mean to the pipeline.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// An EC2 instance ID: `i-` followed by 8 or 17 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InstanceId {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let hex = value.strip_prefix("i-").unwrap_or("");
        let valid_hex = hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !(hex.len() == 8 || hex.len() == 17) || !valid_hex {
            return Err(format!(
                "{value:?} is not an EC2 instance ID (expected i- and 8 or 17 hex digits)"
            ));
        }
        Ok(InstanceId(value.to_string()))
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The state the pipeline reports for an instance: EC2's state name, or `missing` when EC2 no
/// longer knows the ID (terminated instances disappear from EC2 after about an hour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct InstanceState(String);

impl InstanceState {
    pub const MISSING: &'static str = "missing";

    pub fn named(name: impl Into<String>) -> Self {
        InstanceState(name.into())
    }

    pub fn missing() -> Self {
        InstanceState(Self::MISSING.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Only `pending` and `running` instances are still working; every other state (stopping,
    /// stopped, shutting-down, terminated, missing) means the work on it is over.
    pub fn is_finished(&self) -> bool {
        !matches!(self.0.as_str(), "pending" | "running")
    }
}

/// What the pipeline knows of an instance EC2 describes: its state, tags and launch time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedInstance {
    pub id: InstanceId,
    pub state: InstanceState,
    pub tags: Vec<(String, String)>,
    /// Seconds since the Unix epoch.
    pub launched_at: Option<i64>,
}

impl DescribedInstance {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The job kind of a pipeline worker; `None` for any instance the pipeline did not launch.
    pub fn job_kind(&self) -> Option<crate::layout::JobKind> {
        self.tag(crate::launch::JOB_KIND_TAG)
            .and_then(crate::layout::JobKind::from_tag)
    }

    /// Whether this is a worker of the deployment `stack`: it carries one of the pipeline's job
    /// kinds and that stack's `PipelineStack` tag. Nothing else is ever terminated.
    pub fn is_worker_of(&self, stack: &crate::launch::PipelineStack) -> bool {
        self.job_kind().is_some() && self.tag(crate::launch::STACK_TAG) == Some(stack.as_str())
    }

    /// Whether a terminate call still has something to do.
    pub fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "terminated" | InstanceState::MISSING)
    }
}

/// Reads a payload field holding an array of instance ID strings (`instances`).
pub fn read_instance_ids(payload: &crate::Payload, field: &str) -> Result<Vec<InstanceId>, crate::PipelineError> {
    payload.required_array(field, "EC2 instance IDs (i-…)", |value| {
        crate::payload::string_element(value)?.parse()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_validated() {
        assert!("i-0123abcd".parse::<InstanceId>().is_ok());
        assert!("i-0123456789abcdef0".parse::<InstanceId>().is_ok());
        for bad in [
            "",
            "i-",
            "i-123",
            "i-0123ABCD",
            "x-0123abcd",
            "i-0123abcd ",
            "i-0123abcd;id",
            "i-0123456789abcdef",
        ] {
            assert!(bad.parse::<InstanceId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_pending_and_running_are_unfinished() {
        for unfinished in ["pending", "running"] {
            assert!(!InstanceState::named(unfinished).is_finished());
        }
        for finished in ["stopping", "stopped", "shutting-down", "terminated", "missing"] {
            assert!(InstanceState::named(finished).is_finished(), "{finished}");
        }
        assert!(InstanceState::missing().is_finished());
    }
}
