//! Child executions of the orchestration machines: their names and their inputs.
//!
//! A name is derived from the parent execution's name, the child's role and the version, so a
//! retried `StartExecution` names the same execution (Step Functions then answers with the
//! running one, or `ExecutionAlreadyExists`) instead of starting a second child — the original
//! appended random hex. The input is built from the parent's payload with exactly what the
//! child needs, the packaging branch and distros included (the original publish step dropped
//! them).

use serde_json::{Map, Value};

use crate::{PackagingBranch, Payload, PipelineError, Version};

/// Step Functions' limit on execution names.
pub const MAX_EXECUTION_NAME_LEN: usize = 80;

/// Length of the hash that keeps shortened or rewritten parent names distinct.
const NAME_HASH_LEN: usize = 12;

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

/// The parent execution's name, which the state machine passes as `executionName`
/// (`"executionName.$": "$$.Execution.Name"`).
pub fn parent_execution_name(payload: &Payload) -> Result<String, PipelineError> {
    let name: String = payload.required("executionName", "the parent execution's name (\"$$.Execution.Name\")")?;
    if name.is_empty() || name.chars().count() > MAX_EXECUTION_NAME_LEN || name.chars().any(char::is_control) {
        return Err(PipelineError::invalid_input(
            "executionName",
            format!("{name:?} is not an execution name (1-{MAX_EXECUTION_NAME_LEN} characters, no control characters)"),
        ));
    }
    Ok(name)
}

/// `<parent>-<role>-<version>`, e.g. `nightly-2026-11-21-build-2026_11_21`: at most 80
/// characters of `A-Z a-z 0-9 - _` (the set Step Functions accepts everywhere, CloudWatch
/// logging included). A parent name that had to be shortened or rewritten keeps a hash of the
/// original, so two different parents never share a child name.
pub fn child_execution_name(parent: &str, role: ChildRole, version: &Version) -> String {
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
    let room = MAX_EXECUTION_NAME_LEN - suffix.len();
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

/// FNV-1a: a hash that is the same in every process and every Rust release (std's hasher
/// promises neither), which a name that must survive a retry needs.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether a payload field is a polling or waiting setting of the child machine
/// (`pollIntervalSeconds`, `initialWaitSeconds`, …): passed to children verbatim.
pub fn is_poll_setting(field: &str) -> bool {
    field.starts_with("poll") || field.ends_with("Seconds")
}

/// The input of a child execution for `version`: `version`, `packagingBranch` (the payload's, else
/// the version's default), `distros` and `force` when the payload has them, every poll setting,
/// and `parentExecutionName`. Everything is validated here, before any execution is started.
pub fn child_input(payload: &Payload, version: &Version, parent: &str) -> Result<Value, PipelineError> {
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
    if let Value::Object(fields) = payload.clone().into_value() {
        input.extend(fields.into_iter().filter(|(field, _)| is_poll_setting(field)));
    }
    input.insert("parentExecutionName".into(), Value::String(parent.to_string()));
    Ok(Value::Object(input))
}

/// A child execution to start: its name and input.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedExecution {
    pub name: String,
    pub input: Value,
}

/// The child for the payload's `version`, started by the parent named in `executionName`.
pub fn plan_child_execution(payload: &Payload, role: ChildRole) -> Result<PlannedExecution, PipelineError> {
    let parent = parent_execution_name(payload)?;
    let version: String = payload.required("version", "a version: YYYY.MM.DD or x.y.z")?;
    let version: Version = version.parse().map_err(|e: PipelineError| e.in_field("version"))?;
    plan_child_execution_for(payload, role, &version, &parent)
}

/// The child for `version` (one of several the parent starts).
pub fn plan_child_execution_for(
    payload: &Payload,
    role: ChildRole,
    version: &Version,
    parent: &str,
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

    fn is_valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_EXECUTION_NAME_LEN
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    #[test]
    fn names_are_parent_role_and_version() {
        assert_eq!(
            child_execution_name("nightly-run", ChildRole::Build, &version("2026.11.21")),
            "nightly-run-build-2026_11_21"
        );
        assert_eq!(
            child_execution_name("r1", ChildRole::Publish, &version("4.168.2")),
            "r1-publish-4_168_2"
        );
    }

    #[test]
    fn names_are_deterministic_and_distinct_per_role_and_version() {
        let v = version("4.168.2");
        let a = child_execution_name("parent", ChildRole::Build, &v);
        assert_eq!(a, child_execution_name("parent", ChildRole::Build, &v));
        assert_ne!(a, child_execution_name("parent", ChildRole::Publish, &v));
        assert_ne!(a, child_execution_name("parent", ChildRole::Build, &version("4.168.3")));
        assert_ne!(a, child_execution_name("parent2", ChildRole::Build, &v));
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
            child_execution_name(&long_a, ChildRole::Publish, &v),
            child_execution_name(&long_b, ChildRole::Publish, &v),
            child_execution_name("run 1", ChildRole::Publish, &v),
            child_execution_name("run-1", ChildRole::Publish, &v),
            child_execution_name("rün:1", ChildRole::Publish, &v),
            child_execution_name("x", ChildRole::Publish, &v),
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
    fn parent_name_is_required_and_checked() {
        let missing = parent_execution_name(&Payload::from_value(json!({})).unwrap()).unwrap_err();
        assert_eq!(missing.error_type(), "InvalidInput");
        assert!(missing.to_string().contains("`executionName`"), "{missing}");
        for bad in [json!(""), json!(5), json!("x".repeat(81)), json!("a\nb")] {
            let payload = Payload::from_value(json!({"executionName": bad})).unwrap();
            let error = parent_execution_name(&payload).unwrap_err();
            assert!(error.to_string().contains("`executionName`"), "{error}");
        }
        let ok = Payload::from_value(json!({"executionName": "run-1"})).unwrap();
        assert_eq!(parent_execution_name(&ok).unwrap(), "run-1");
    }

    #[test]
    fn child_input_carries_what_the_child_needs() {
        // Parsed from text: numbers come back exactly as the caller wrote them.
        let text = r#"{"version": "ignored-here", "packagingBranch": "HHVM-4.167",
            "distros": ["debian-12-bookworm", "ubuntu-24.04-noble"], "force": true,
            "pollIntervalSeconds": 5, "initialWaitSeconds": 1.50,
            "stepFunctionExecutions": ["arn"], "unrelated": {"x": 1}}"#;
        let payload = Payload::from_value(serde_json::from_str(text).unwrap()).unwrap();
        let input = child_input(&payload, &version("4.168.2"), "parent").unwrap();
        assert_eq!(
            serde_json::to_string(&input).unwrap(),
            r#"{"version":"4.168.2","packagingBranch":"HHVM-4.167","distros":["debian-12-bookworm","ubuntu-24.04-noble"],"force":true,"pollIntervalSeconds":5,"initialWaitSeconds":1.50,"parentExecutionName":"parent"}"#
        );
    }

    #[test]
    fn child_input_defaults_the_branch_from_the_version() {
        let payload = Payload::from_value(json!({"packagingBranch": ""})).unwrap();
        let input = child_input(&payload, &version("4.168.2"), "p").unwrap();
        assert_eq!(
            input,
            json!({"version": "4.168.2", "packagingBranch": "HHVM-4.168", "parentExecutionName": "p"})
        );
        let input = child_input(&payload, &version("2026.11.21"), "p").unwrap();
        assert_eq!(input["packagingBranch"], "master");
    }

    #[test]
    fn planned_child_reads_version_and_parent() {
        let payload = Payload::from_value(json!({"executionName": "run", "version": "4.168.2"})).unwrap();
        let planned = plan_child_execution(&payload, ChildRole::Publish).unwrap();
        assert_eq!(planned.name, "run-publish-4_168_2");
        assert_eq!(planned.input["parentExecutionName"], "run");
        for (input, expected) in [
            (json!({"executionName": "run"}), "InvalidInput"),
            (json!({"executionName": "run", "version": "4.1"}), "InvalidVersion"),
            (json!({"version": "4.1.2"}), "InvalidInput"),
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
            let error = child_input(&payload, &version("4.168.2"), "p").unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput", "{input}");
            assert!(error.to_string().contains(field), "{input}: {error}");
        }
    }
}
