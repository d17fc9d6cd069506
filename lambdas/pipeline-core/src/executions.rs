//! Executions: the one reader of `executionName`, and the names and inputs of child
//! executions.
//!
//! A child's name is derived from the parent execution's name, the child's role, the version
//! and the attempt, so a retried `StartExecution` names the same execution (Step Functions then
//! answers with the running one, or `ExecutionAlreadyExists`) instead of starting a second
//! child — the original appended random hex. The input is built from the parent's payload with
//! exactly what the child needs, the packaging branch and distros included (the original
//! publish step dropped them).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::{PackagingBranch, Payload, PipelineError, Version};

/// Step Functions' limit on execution names.
pub const MAX_EXECUTION_NAME_LEN: usize = 80;

/// Length of the hash that keeps shortened or rewritten parent names distinct.
const NAME_HASH_LEN: usize = 12;

/// Room kept at the end of a child's name for its attempt (`-r2` … `-r99`).
const ATTEMPT_SUFFIX_ROOM: usize = 4;

/// The prefix of the names derived for hand invocations that carry no `executionName`.
pub const DERIVED_NAME_PREFIX: &str = "manual-";

/// The name of a Step Functions execution (`$$.Execution.Name`), under Step Functions' own rule:
/// 1-80 characters, no whitespace, no control characters and none of ``< > { } [ ] ? * " # % \
/// ^ | ~ ` $ & , ; : /``. Names such as `run+1`, `a=b@c!` or `ñame` are valid. Shell code only
/// ever sees it single-quoted, and child names and idempotency keys are derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExecutionName(String);

impl ExecutionName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The optional `executionName` of a payload (absent or `""` when an operator invokes a
    /// function by hand).
    pub fn optional(payload: &Payload) -> Result<Option<ExecutionName>, PipelineError> {
        payload
            .optional::<String>("executionName", "an execution name (\"$$.Execution.Name\")")?
            .filter(|text| !text.is_empty())
            .map(|text| {
                text.parse()
                    .map_err(|problem| PipelineError::invalid_input("executionName", problem))
            })
            .transpose()
    }

    /// The payload's `executionName`, or for a hand invocation without one a name derived from
    /// the whole payload (`manual-<hash>`): the same input always gives the same name, so a
    /// repeated hand invocation finds the work the first one started, and any other input
    /// starts its own.
    pub fn read(payload: &Payload) -> Result<ExecutionName, PipelineError> {
        match ExecutionName::optional(payload)? {
            Some(name) => Ok(name),
            None => Ok(ExecutionName::derived_from(payload)),
        }
    }

    /// `manual-<16 hex digits>` of the payload's JSON text.
    pub fn derived_from(payload: &Payload) -> ExecutionName {
        let text = serde_json::to_string(&payload.clone().into_value()).expect("a JSON value always serializes");
        ExecutionName(format!("{DERIVED_NAME_PREFIX}{:016x}", fnv1a(text.as_bytes())))
    }
}

impl FromStr for ExecutionName {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let refused = |c: char| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c);
        let length = value.chars().count();
        if length == 0 || length > MAX_EXECUTION_NAME_LEN || value.chars().any(refused) {
            return Err(format!(
                "{value:?} is not an execution name (1-{MAX_EXECUTION_NAME_LEN} characters without whitespace, \
                 control characters or any of < > {{ }} [ ] ? * \" # % \\ ^ | ~ ` $ & , ; : /)"
            ));
        }
        Ok(ExecutionName(value.to_string()))
    }
}

impl fmt::Display for ExecutionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a child execution does for its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildRole {
    Build,
    Publish,
}

impl ChildRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChildRole::Build => "build",
            ChildRole::Publish => "publish",
        }
    }
}

/// `<parent>-<role>-<version>`, e.g. `nightly-2026-11-21-build-2026_11_21`: at most 76
/// characters of `A-Z a-z 0-9 - _` (the set Step Functions accepts everywhere, CloudWatch
/// logging included), leaving room for an attempt suffix (`attempt_name`). A parent name that
/// had to be shortened or rewritten keeps a hash of the original, so two different parents
/// never share a child name.
pub fn child_execution_name(parent: &ExecutionName, role: ChildRole, version: &Version) -> String {
    let parent = parent.as_str();
    let suffix = format!("-{}-{}", role.as_str(), version.to_string().replace('.', "_"));
    let cleaned: String = parent
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let room = MAX_EXECUTION_NAME_LEN - ATTEMPT_SUFFIX_ROOM - suffix.len();
    let parent_part = if cleaned == parent && cleaned.len() <= room {
        cleaned
    } else {
        let hash = format!("{:016x}", fnv1a(parent.as_bytes()));
        let keep = room.saturating_sub(NAME_HASH_LEN + 1).min(cleaned.len());
        // `cleaned` is ASCII, so any byte index is a character boundary.
        format!("{}-{}", &cleaned[..keep], &hash[..NAME_HASH_LEN])
    };
    format!("{parent_part}{suffix}")
}

/// The most attempts a child may need: after that many failed ones, starting another is
/// refused (`ExecutionAlreadyExists`) rather than retried for ever.
pub const MAX_CHILD_ATTEMPTS: u32 = 99;

/// The name of attempt `attempt` (1, 2, …) of the child first named `first`: the first attempt
/// keeps the name, later ones add `-r<attempt>`. A redriven or re-invoked parent whose child
/// failed starts the next attempt; one whose child is running or succeeded finds it again.
pub fn attempt_name(first: &str, attempt: u32) -> String {
    if attempt <= 1 {
        first.to_string()
    } else {
        format!("{first}-r{attempt}")
    }
}

/// The attempt a child execution's name is of (`attempt_name`): 1 for `first` itself, N for
/// `<first>-rN`; `None` for any other name.
pub fn attempt_of(first: &str, name: &str) -> Option<u32> {
    if name == first {
        return Some(1);
    }
    name.strip_prefix(first)?
        .strip_prefix("-r")?
        .parse::<u32>()
        .ok()
        .filter(|attempt| *attempt >= 2)
}

/// `buildExecutionStates` (execution ARN → status): how the child builds of a
/// `hhvm-build-and-publish-multi` run ended, set aside by the machine before its publishes
/// replace `stepFunctionExecutionStates`.
pub fn read_build_execution_states(payload: &Payload) -> Result<Option<BTreeMap<String, String>>, PipelineError> {
    payload.optional("buildExecutionStates", "an object of execution ARNs to statuses")
}

/// A child execution and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildOutcome {
    pub name: String,
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`, `RUNNING`, …
    pub status: String,
}

/// The latest attempt, among `states` (execution ARN → status), of the child `parent` started
/// in `role` for `version`; `None` when `states` holds none of its attempts.
pub fn latest_child_outcome(
    states: &BTreeMap<String, String>,
    parent: &ExecutionName,
    role: ChildRole,
    version: &Version,
) -> Option<ChildOutcome> {
    let first = child_execution_name(parent, role, version);
    states
        .iter()
        .filter_map(|(arn, status)| {
            // `arn:aws:states:<region>:<account>:execution:<machine>:<name>`; names hold no `:`.
            let name = arn.rsplit(':').next()?;
            Some((attempt_of(&first, name)?, name, status))
        })
        .max_by_key(|(attempt, ..)| *attempt)
        .map(|(_, name, status)| ChildOutcome {
            name: name.to_string(),
            status: status.clone(),
        })
}

/// FNV-1a: a hash that is the same in every process and every Rust release (std's hasher
/// promises neither), which a name that must survive a retry needs.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether a payload field is a polling or waiting setting of the child machine
/// (`pollIntervalSeconds`, `initialWaitSeconds`, …): passed to children verbatim. `poll` is
/// the parent's own poll counter, never a setting: a child starts counting from zero, and a
/// retried start must send the same input.
pub fn is_poll_setting(field: &str) -> bool {
    field != "poll" && (field.starts_with("poll") || field.ends_with("Seconds"))
}

/// The field of a child execution's input naming the execution that started it: the
/// end-of-execution cleanup stops the running children of an ended parent by it.
pub const PARENT_EXECUTION_NAME_FIELD: &str = "parentExecutionName";

/// The input of a child execution for `version`: `version`, `packagingBranch` (the payload's, else
/// the version's default), `distros` and `force` when the payload has them, every poll setting,
/// and `parentExecutionName`. Everything is validated here, before any execution is started.
pub fn child_input(payload: &Payload, version: &Version, parent: &ExecutionName) -> Result<Value, PipelineError> {
    let branch = match payload.optional_nonempty_str("packagingBranch")? {
        Some(text) => text.parse::<PackagingBranch>()?,
        None => version.default_packaging_branch(),
    };
    let mut input = Map::new();
    input.insert("version".into(), Value::String(version.to_string()));
    input.insert("packagingBranch".into(), Value::String(branch.to_string()));
    if let Some(distros) = crate::distro::read_distros(payload)? {
        let names = distros.iter().map(|distro| Value::String(distro.to_string())).collect();
        input.insert("distros".into(), Value::Array(names));
    }
    if let Some(force) = payload.optional::<bool>("force", "a boolean")? {
        input.insert("force".into(), Value::Bool(force));
    }
    // The parent's decision on the release gate holds for its publish.
    if let Some(asked) = payload.optional::<bool>(crate::approval::REQUIRE_APPROVAL_FIELD, "a boolean")? {
        input.insert(crate::approval::REQUIRE_APPROVAL_FIELD.into(), Value::Bool(asked));
    }
    if let Value::Object(fields) = payload.clone().into_value() {
        input.extend(fields.into_iter().filter(|(field, _)| is_poll_setting(field)));
    }
    input.insert(PARENT_EXECUTION_NAME_FIELD.into(), Value::String(parent.to_string()));
    Ok(Value::Object(input))
}

/// A child execution to start: its name and input.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedExecution {
    pub name: String,
    pub input: Value,
}

/// The child for the payload's `version`, started by the parent named in `executionName` (or,
/// by hand, by the name derived from the payload).
pub fn plan_child_execution(payload: &Payload, role: ChildRole) -> Result<PlannedExecution, PipelineError> {
    let parent = ExecutionName::read(payload)?;
    let version = Version::read(payload)?;
    plan_child_execution_for(payload, role, &version, &parent)
}

/// The child for `version` (one of several the parent starts).
pub fn plan_child_execution_for(
    payload: &Payload,
    role: ChildRole,
    version: &Version,
    parent: &ExecutionName,
) -> Result<PlannedExecution, PipelineError> {
    Ok(PlannedExecution {
        name: child_execution_name(parent, role, version),
        input: child_input(payload, version, parent)?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn version(text: &str) -> Version {
        text.parse().unwrap()
    }

    fn name(text: &str) -> ExecutionName {
        text.parse().unwrap()
    }

    fn is_valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_EXECUTION_NAME_LEN
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    #[test]
    fn names_are_parent_role_and_version() {
        assert_eq!(
            child_execution_name(&name("nightly-run"), ChildRole::Build, &version("2026.11.21")),
            "nightly-run-build-2026_11_21"
        );
        assert_eq!(
            child_execution_name(&name("r1"), ChildRole::Publish, &version("4.168.2")),
            "r1-publish-4_168_2"
        );
    }

    #[test]
    fn names_are_deterministic_and_distinct_per_role_and_version() {
        let v = version("4.168.2");
        let a = child_execution_name(&name("parent"), ChildRole::Build, &v);
        assert_eq!(a, child_execution_name(&name("parent"), ChildRole::Build, &v));
        assert_ne!(a, child_execution_name(&name("parent"), ChildRole::Publish, &v));
        assert_ne!(
            a,
            child_execution_name(&name("parent"), ChildRole::Build, &version("4.168.3"))
        );
        assert_ne!(a, child_execution_name(&name("parent2"), ChildRole::Build, &v));
    }

    #[test]
    fn long_or_unusual_parent_names_stay_valid_and_distinct() {
        let v = Version::Release {
            major: u32::MAX,
            minor: u32::MAX,
            patch: u32::MAX,
        };
        let long_a = "a".repeat(80);
        let long_b = format!("{}b", "a".repeat(79));
        let names = [
            child_execution_name(&name(&long_a), ChildRole::Publish, &v),
            child_execution_name(&name(&long_b), ChildRole::Publish, &v),
            child_execution_name(&name("run+1"), ChildRole::Publish, &v),
            child_execution_name(&name("run-1"), ChildRole::Publish, &v),
            child_execution_name(&name("rün=1"), ChildRole::Publish, &v),
            child_execution_name(&name("x"), ChildRole::Publish, &v),
        ];
        for name in &names {
            assert!(is_valid_name(name), "{name} ({} chars)", name.len());
        }
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(names[3], format!("run-1-publish-{0}_{0}_{0}", u32::MAX));
    }

    #[test]
    fn fnv_is_the_published_function() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn execution_names_follow_step_functions_rule() {
        for good in ["run-1", "abc-123_x.y", "run+1", "a=b@c!", "ñame", "x", &"x".repeat(80)] {
            assert_eq!(good.parse::<ExecutionName>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            "a b",
            "$(id)",
            "a;b",
            "a/b",
            "a\nb",
            "a\u{7f}",
            "a`b",
            "x{y}",
            &"x".repeat(81),
        ] {
            assert!(bad.parse::<ExecutionName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn execution_name_is_read_or_derived_from_the_input() {
        let given = Payload::from_value(json!({"executionName": "run-1"})).unwrap();
        assert_eq!(ExecutionName::read(&given).unwrap().as_str(), "run-1");
        let by_hand = Payload::from_value(json!({"version": "4.168.2", "distros": ["debian-12-bookworm"]})).unwrap();
        let derived = ExecutionName::read(&by_hand).unwrap();
        assert!(derived.as_str().starts_with(DERIVED_NAME_PREFIX), "{derived}");
        assert_eq!(derived, ExecutionName::read(&by_hand.clone()).unwrap());
        let other = Payload::from_value(json!({"version": "4.168.2"})).unwrap();
        assert_ne!(derived, ExecutionName::read(&other).unwrap());
        let empty = Payload::from_value(json!({"executionName": "", "version": "4.168.2"})).unwrap();
        assert!(
            ExecutionName::read(&empty)
                .unwrap()
                .as_str()
                .starts_with(DERIVED_NAME_PREFIX)
        );
        for bad in [json!(5), json!("x".repeat(81)), json!("a\nb"), json!("a b")] {
            let payload = Payload::from_value(json!({"executionName": bad})).unwrap();
            let error = ExecutionName::read(&payload).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput");
            assert!(error.to_string().contains("`executionName`"), "{error}");
        }
    }

    #[test]
    fn attempts_after_the_first_add_a_suffix_within_the_limit() {
        let long = name(&"a".repeat(80));
        let first = child_execution_name(&long, ChildRole::Publish, &version("2026.11.21"));
        assert_eq!(attempt_name(&first, 1), first);
        let last = attempt_name(&first, MAX_CHILD_ATTEMPTS);
        assert!(is_valid_name(&last), "{last}");
        assert_ne!(attempt_name(&first, 2), first);
    }

    #[test]
    fn the_parents_poll_counter_is_not_a_setting() {
        assert!(!is_poll_setting("poll"));
        assert!(is_poll_setting("pollLimit"));
        assert!(is_poll_setting("initialWaitSeconds"));
    }

    #[test]
    fn child_input_carries_what_the_child_needs() {
        // Parsed from text: numbers come back exactly as the caller wrote them.
        let text = r#"{"version": "ignored-here", "packagingBranch": "HHVM-4.167",
            "distros": ["debian-12-bookworm", "ubuntu-24.04-noble"], "force": true,
            "requireApproval": false, "pollIntervalSeconds": 5, "initialWaitSeconds": 1.50,
            "stepFunctionExecutions": ["arn"], "unrelated": {"x": 1}}"#;
        let payload = Payload::from_value(serde_json::from_str(text).unwrap()).unwrap();
        let input = child_input(&payload, &version("4.168.2"), &name("parent")).unwrap();
        assert_eq!(
            serde_json::to_string(&input).unwrap(),
            r#"{"version":"4.168.2","packagingBranch":"HHVM-4.167","distros":["debian-12-bookworm","ubuntu-24.04-noble"],"force":true,"requireApproval":false,"pollIntervalSeconds":5,"initialWaitSeconds":1.50,"parentExecutionName":"parent"}"#
        );
    }

    #[test]
    fn child_input_defaults_the_branch_from_the_version() {
        let payload = Payload::from_value(json!({"packagingBranch": ""})).unwrap();
        let input = child_input(&payload, &version("4.168.2"), &name("p")).unwrap();
        assert_eq!(
            input,
            json!({"version": "4.168.2", "packagingBranch": "HHVM-4.168", "parentExecutionName": "p"})
        );
        let input = child_input(&payload, &version("2026.11.21"), &name("p")).unwrap();
        assert_eq!(input["packagingBranch"], "master");
    }

    #[test]
    fn planned_child_reads_version_and_parent() {
        let payload = Payload::from_value(json!({"executionName": "run", "version": "4.168.2"})).unwrap();
        let planned = plan_child_execution(&payload, ChildRole::Publish).unwrap();
        assert_eq!(planned.name, "run-publish-4_168_2");
        assert_eq!(planned.input["parentExecutionName"], "run");
        // By hand, without a name: the derived one, the same for the same input.
        let by_hand = Payload::from_value(json!({"version": "4.168.2"})).unwrap();
        let planned = plan_child_execution(&by_hand, ChildRole::Build).unwrap();
        assert!(planned.name.starts_with(DERIVED_NAME_PREFIX), "{}", planned.name);
        assert_eq!(planned, plan_child_execution(&by_hand, ChildRole::Build).unwrap());
        for (input, expected) in [
            (json!({"executionName": "run"}), "InvalidInput"),
            (json!({"executionName": "run", "version": "4.1"}), "InvalidVersion"),
            (json!({"executionName": "a b", "version": "4.1.2"}), "InvalidInput"),
        ] {
            let payload = Payload::from_value(input.clone()).unwrap();
            assert_eq!(
                plan_child_execution(&payload, ChildRole::Build)
                    .unwrap_err()
                    .error_type(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn child_input_refuses_bad_fields_by_name() {
        let cases = [
            (json!({"packagingBranch": "main"}), "packagingBranch"),
            (json!({"distros": "debian-12-bookworm"}), "`distros`"),
            (
                json!({"distros": ["debian-12-bookworm", "fedora-40-x"]}),
                "`distros[1]`",
            ),
            (json!({"force": "yes"}), "`force`"),
        ];
        for (input, field) in cases {
            let payload = Payload::from_value(input.clone()).unwrap();
            let error = child_input(&payload, &version("4.168.2"), &name("p")).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput", "{input}");
            assert!(error.to_string().contains(field), "{input}: {error}");
        }
    }

    #[test]
    fn the_latest_attempt_of_a_versions_child_build_decides() {
        let parent = name("release-2");
        let arn = |child: &str| format!("arn:aws:states:us-east-1:123456789012:execution:hhvm-build:{child}");
        let first = child_execution_name(&parent, ChildRole::Build, &version("4.168.2"));
        let states: BTreeMap<String, String> = [
            (arn(&first), "FAILED"),
            (arn(&attempt_name(&first, 2)), "SUCCEEDED"),
            (arn(&attempt_name(&first, 10)), "ABORTED"),
            // Another version's child, and a name that only starts like this one's.
            (
                arn(&child_execution_name(&parent, ChildRole::Build, &version("4.167.5"))),
                "SUCCEEDED",
            ),
            (arn(&format!("{first}-rerun")), "SUCCEEDED"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        let latest = latest_child_outcome(&states, &parent, ChildRole::Build, &version("4.168.2")).unwrap();
        assert_eq!(
            (latest.name.as_str(), latest.status.as_str()),
            (attempt_name(&first, 10).as_str(), "ABORTED")
        );
        assert_eq!(
            latest_child_outcome(&states, &parent, ChildRole::Build, &version("4.166.0")),
            None
        );
        assert_eq!(
            latest_child_outcome(&states, &name("release-3"), ChildRole::Build, &version("4.168.2")),
            None
        );
        assert_eq!(attempt_of("a-build-4_1_0", "a-build-4_1_0-r1"), None);
        assert_eq!(attempt_of("a-build-4_1_0", "a-build-4_1_0-r3"), Some(3));
    }
}
