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

/// An EC2 instance type (`m5.2xlarge`, `c7i.4xlarge`, `u-6tb1.metal`): a family and a size of
/// lowercase letters, digits and `-`, joined by one `.`; at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct InstanceType(String);

impl InstanceType {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InstanceType {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let part = |text: &str| {
            !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let well_formed = value.len() <= 64
            && value
                .split_once('.')
                .is_some_and(|(family, size)| part(family) && part(size));
        if !well_formed {
            return Err(format!(
                "{value:?} is not an EC2 instance type (expected a family and a size such as m5.2xlarge)"
            ));
        }
        Ok(InstanceType(value.to_string()))
    }
}

impl fmt::Display for InstanceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// EC2's state reason code for a spot instance it reclaimed (an interruption): the instance is
/// terminated with it instead of `Client.UserInitiatedShutdown` or
/// `Client.InstanceInitiatedShutdown`.
pub const SPOT_INTERRUPTION: &str = "Server.SpotInstanceTermination";

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

/// What the pipeline knows of an instance EC2 describes: its state, why it is in it, its tags
/// and launch time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedInstance {
    pub id: InstanceId,
    pub state: InstanceState,
    /// EC2's `StateReason` code (`Client.UserInitiatedShutdown`, `SPOT_INTERRUPTION`, …); `None`
    /// while the instance has no reason to report (a running instance).
    pub state_reason: Option<String>,
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

    /// Whether EC2 ended this instance by reclaiming its spot capacity: the work on it was cut
    /// short, not finished or failed.
    pub fn was_interrupted(&self) -> bool {
        self.state.is_finished() && self.state_reason.as_deref() == Some(SPOT_INTERRUPTION)
    }

    /// Whether a terminate call still has something to do.
    pub fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "terminated" | InstanceState::MISSING)
    }
}

/// The state the pipeline reports for an instance it asked EC2 about: the one EC2 described, or
/// `missing` when EC2 described none under that ID.
pub fn reported_state(described: Option<&DescribedInstance>) -> InstanceState {
    described.map_or_else(InstanceState::missing, |instance| instance.state.clone())
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
    fn instance_types_are_validated() {
        for good in [
            "m5.2xlarge",
            "c7i.4xlarge",
            "t3.micro",
            "u-6tb1.metal",
            "mac2-m2pro.metal",
        ] {
            assert_eq!(good.parse::<InstanceType>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            "m5",
            "m5.",
            ".2xlarge",
            "M5.2xlarge",
            "m5.2xlarge.x",
            "m5.2xlarge ",
            "m5.2xlarge;id",
            "m5.$(id)",
            &format!("m5.{}", "x".repeat(62)),
        ] {
            assert!(bad.parse::<InstanceType>().is_err(), "{bad:?}");
        }
    }

    fn described(state: &str, reason: Option<&str>) -> DescribedInstance {
        DescribedInstance {
            id: "i-00000001".parse().unwrap(),
            state: InstanceState::named(state),
            state_reason: reason.map(str::to_string),
            tags: Vec::new(),
            launched_at: None,
        }
    }

    #[test]
    fn only_a_spot_reclaim_is_an_interruption() {
        assert!(described("terminated", Some(SPOT_INTERRUPTION)).was_interrupted());
        assert!(described("shutting-down", Some(SPOT_INTERRUPTION)).was_interrupted());
        for (state, reason) in [
            ("terminated", Some("Client.UserInitiatedShutdown")),
            ("terminated", Some("Client.InstanceInitiatedShutdown")),
            ("terminated", None),
            // A reason on an instance still working is no interruption (yet).
            ("running", Some(SPOT_INTERRUPTION)),
        ] {
            assert!(!described(state, reason).was_interrupted(), "{state} {reason:?}");
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
