//! What each starting command asks of the pipeline: the machine, its input and a readable
//! execution name. Versions and distros are parsed here, so a typo is refused before anything
//! starts (the machines' first step refuses it too, but only after an execution exists).

use chrono::{DateTime, Utc};
use pipeline_core::executions::PARENT_EXECUTION_NAME_FIELD;
use pipeline_core::layout::{JobKind, log_prefix};
use pipeline_core::{Distro, PipelineError, Version};
use serde_json::{Value, json};

/// An execution to start.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    /// The machine, by its name without the stack's prefix.
    pub machine: String,
    pub name: String,
    pub input: Value,
}

/// The input's poll settings, when given (the machines validate their range).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Polling {
    pub interval_seconds: Option<u32>,
    pub limit: Option<u32>,
}

impl Polling {
    fn add_to(self, input: &mut Value) {
        if let Some(seconds) = self.interval_seconds {
            input["pollIntervalSeconds"] = json!(seconds);
        }
        if let Some(limit) = self.limit {
            input["pollLimit"] = json!(limit);
        }
    }
}

/// `requireApproval`, when the command line says.
fn add_approval(input: &mut Value, require_approval: Option<bool>) {
    if let Some(asked) = require_approval {
        input[pipeline_core::approval::REQUIRE_APPROVAL_FIELD] = json!(asked);
    }
}

/// Step Functions' limit on execution names.
const NAME_LIMIT: usize = 80;

/// `<what>-<UTC time to the millisecond>`: sorts by start, says what ran, and is new on every
/// start — two starts within one second (a script, a retry by hand) are two executions — so
/// that a second build of the same version is a new execution (its launches and children are
/// keyed by the name; finished work is still skipped by the success markers).
fn execution_name(what: &str, now: DateTime<Utc>) -> String {
    let stamp = now.format("%Y%m%d-%H%M%S-%3f").to_string();
    let room = NAME_LIMIT - stamp.len() - 1;
    let what: String = what.chars().take(room).collect();
    format!("{what}-{stamp}")
}

fn versions(texts: &[String]) -> Result<Vec<Version>, PipelineError> {
    texts.iter().map(|text| text.parse()).collect()
}

fn distros(texts: &[String]) -> Result<Vec<Distro>, PipelineError> {
    let mut parsed: Vec<Distro> = Vec::new();
    for text in texts {
        let distro: Distro = text
            .parse()
            .map_err(|error: String| PipelineError::invalid_input("distros", error))?;
        if !parsed.contains(&distro) {
            parsed.push(distro);
        }
    }
    Ok(parsed)
}

/// `hhvm-build` for `version`: every distro of its branch, or `distros`; `force` rebuilds those
/// that already have a success marker.
pub fn build(
    version: &str,
    distro_names: &[String],
    force: bool,
    polling: Polling,
    now: DateTime<Utc>,
) -> Result<StartRequest, PipelineError> {
    let version: Version = version.parse()?;
    let distros = distros(distro_names)?;
    let mut input = json!({"version": version.to_string()});
    let mut what = format!("build-{version}");
    if !distros.is_empty() {
        input["distros"] = json!(distros.iter().map(Distro::as_str).collect::<Vec<_>>());
        if let [only] = distros.as_slice() {
            what.push_str(&format!("-{only}"));
        }
    }
    if force {
        input["force"] = json!(true);
    }
    polling.add_to(&mut input);
    Ok(StartRequest {
        machine: "hhvm-build".to_string(),
        name: execution_name(&what, now),
        input,
    })
}

/// `hhvm-build-and-publish-multi` for several versions.
pub fn release(
    version_texts: &[String],
    require_approval: Option<bool>,
    polling: Polling,
    now: DateTime<Utc>,
) -> Result<StartRequest, PipelineError> {
    let versions = versions(version_texts)?;
    let what = match versions.as_slice() {
        [only] => format!("release-{only}"),
        [first, rest @ ..] => format!("release-{first}-and-{}-more", rest.len()),
        [] => return Err(PipelineError::invalid_input("versions", "give at least one version")),
    };
    let mut input = json!({"versions": versions.iter().map(ToString::to_string).collect::<Vec<_>>()});
    add_approval(&mut input, require_approval);
    polling.add_to(&mut input);
    Ok(StartRequest {
        machine: "hhvm-build-and-publish-multi".to_string(),
        name: execution_name(&what, now),
        input,
    })
}

/// `hhvm-publish-release` for a built version.
pub fn publish(
    version: &str,
    distro_names: &[String],
    require_approval: Option<bool>,
    polling: Polling,
    now: DateTime<Utc>,
) -> Result<StartRequest, PipelineError> {
    let version: Version = version.parse()?;
    let distros = distros(distro_names)?;
    let mut input = json!({"version": version.to_string()});
    if !distros.is_empty() {
        input["distros"] = json!(distros.iter().map(Distro::as_str).collect::<Vec<_>>());
    }
    add_approval(&mut input, require_approval);
    polling.add_to(&mut input);
    Ok(StartRequest {
        machine: "hhvm-publish-release".to_string(),
        name: execution_name(&format!("publish-{version}"), now),
        input,
    })
}

/// The event `hhvm-start-nightly` is invoked with: the schedule's, as a hand invocation may
/// give it (no `time`: today, UTC).
pub fn nightly_event(force: bool, polling: Polling) -> Value {
    let mut detail = json!({"force": force});
    polling.add_to(&mut detail);
    json!({"detail-type": "Scheduled Event", "source": "hhvmctl", "detail": detail})
}

/// A rerun of an execution of `machine`: the same input under a new name,
/// `<name>-rerun-<time>`, cut to fit (an earlier rerun's suffix is replaced, not stacked). A
/// rerun child is the operator's own run, not its old parent's: without `parentExecutionName`
/// the end of that parent does not stop it.
pub fn rerun(machine: &str, execution_name: &str, mut input: Value, now: DateTime<Utc>) -> StartRequest {
    if let Some(fields) = input.as_object_mut() {
        fields.remove(PARENT_EXECUTION_NAME_FIELD);
    }
    StartRequest {
        machine: machine.to_string(),
        name: rerun_name(execution_name, now),
        input,
    }
}

fn rerun_name(execution_name: &str, now: DateTime<Utc>) -> String {
    let base = execution_name.split("-rerun-").next().unwrap_or(execution_name);
    self::execution_name(&format!("{base}-rerun"), now)
}

/// What `plan` was asked: versions, and the distros, `force` and release gate a build and
/// publish would be given.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    pub versions: Vec<Version>,
    pub distros: Vec<Distro>,
    pub force: bool,
    pub require_approval: Option<bool>,
}

impl PlanRequest {
    /// The input the machines' first step (`hhvm-get-build-version`) would get for `version`.
    pub fn build_input(&self, version: &Version) -> Value {
        let mut input = json!({"version": version.to_string()});
        if !self.distros.is_empty() {
            input["distros"] = json!(self.distros.iter().map(Distro::as_str).collect::<Vec<_>>());
        }
        if self.force {
            input["force"] = json!(true);
        }
        add_approval(&mut input, self.require_approval);
        input
    }
}

pub fn plan(
    version_texts: &[String],
    distro_names: &[String],
    force: bool,
    require_approval: Option<bool>,
) -> Result<PlanRequest, PipelineError> {
    let versions = versions(version_texts)?;
    if versions.is_empty() {
        return Err(PipelineError::invalid_input("versions", "give at least one version"));
    }
    Ok(PlanRequest {
        versions,
        distros: distros(distro_names)?,
        force,
        require_approval,
    })
}

/// Whose log `logs` reads: a distro's build, the repository update, or the source tarball's.
#[derive(Debug, Clone, PartialEq)]
pub struct LogJob {
    pub version: Version,
    pub kind: JobKind,
    pub distro: Option<Distro>,
}

impl LogJob {
    /// Where its workers' logs are, one per worker instance.
    pub fn prefix(&self) -> String {
        log_prefix(&self.version, self.kind, self.distro.as_ref())
    }
}

pub fn log_job(version: &str, distro: Option<&str>, update: bool) -> Result<LogJob, PipelineError> {
    let version: Version = version.parse()?;
    let distro: Option<Distro> = distro
        .map(str::parse)
        .transpose()
        .map_err(|error: String| PipelineError::invalid_input("--distro", error))?;
    let kind = match (&distro, update) {
        (Some(_), _) => JobKind::BinaryPackage,
        (None, true) => JobKind::UpdateRepositories,
        (None, false) => JobKind::SourceTarball,
    };
    Ok(LogJob { version, kind, distro })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 1, 30, 5).unwrap() + chrono::Duration::milliseconds(42)
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_build_names_its_version_and_single_distro() {
        let request = build(
            "4.168.2",
            &strings(&["ubuntu-24.04-noble"]),
            true,
            Polling::default(),
            now(),
        )
        .unwrap();
        assert_eq!(request.machine, "hhvm-build");
        assert_eq!(request.name, "build-4.168.2-ubuntu-24.04-noble-20261202-013005-042");
        assert_eq!(
            request.input,
            json!({"version": "4.168.2", "distros": ["ubuntu-24.04-noble"], "force": true})
        );
        let all = build("2026.12.02", &[], false, Polling::default(), now()).unwrap();
        assert_eq!(all.input, json!({"version": "2026.12.02"}));
        assert_eq!(all.name, "build-2026.12.02-20261202-013005-042");
    }

    #[test]
    fn repeated_distros_count_once_and_bad_ones_are_refused_before_anything_starts() {
        let request = build(
            "4.168.2",
            &strings(&["debian-12-bookworm", "debian-12-bookworm"]),
            false,
            Polling::default(),
            now(),
        )
        .unwrap();
        assert_eq!(request.input["distros"], json!(["debian-12-bookworm"]));
        for (version, distros) in [
            ("4.168", vec![]),
            ("4.168.2; id", vec![]),
            ("4.168.2", strings(&["../x"])),
        ] {
            let error = build(version, &distros, false, Polling::default(), now()).unwrap_err();
            assert!(
                matches!(error.error_type(), "InvalidVersion" | "InvalidInput"),
                "{version}: {error}"
            );
        }
    }

    #[test]
    fn a_release_of_several_versions_is_named_by_the_first() {
        let polling = Polling {
            interval_seconds: Some(5),
            limit: None,
        };
        let request = release(&strings(&["4.168.2", "4.167.5", "4.166.9"]), None, polling, now()).unwrap();
        assert_eq!(request.machine, "hhvm-build-and-publish-multi");
        assert_eq!(request.name, "release-4.168.2-and-2-more-20261202-013005-042");
        assert_eq!(
            request.input,
            json!({"versions": ["4.168.2", "4.167.5", "4.166.9"], "pollIntervalSeconds": 5})
        );
        assert!(release(&[], None, Polling::default(), now()).is_err());
    }

    #[test]
    fn names_fit_step_functions_and_reruns_do_not_stack_suffixes() {
        let long = "x".repeat(100);
        let name = rerun_name(&long, now());
        assert_eq!(name.len(), 80);
        assert!(name.ends_with("-20261202-013005-042"));
        let first = rerun_name("release-4.168.2-20261201-000000", now());
        assert_eq!(first, "release-4.168.2-20261201-000000-rerun-20261202-013005-042");
        assert_eq!(
            rerun_name(&first, now()),
            "release-4.168.2-20261201-000000-rerun-20261202-013005-042"
        );
        for name in [first, name] {
            assert!(
                name.parse::<pipeline_core::executions::ExecutionName>().is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn starts_within_one_second_are_two_executions() {
        let first = publish("4.168.2", &[], None, Polling::default(), now()).unwrap();
        let next = now() + chrono::Duration::milliseconds(1);
        let second = publish("4.168.2", &[], None, Polling::default(), next).unwrap();
        assert_eq!(first.name, "publish-4.168.2-20261202-013005-042");
        assert_ne!(first.name, second.name);
    }

    #[test]
    fn a_rerun_keeps_the_input_but_not_the_parent() {
        let input = json!({"version": "4.168.2", "distros": ["debian-12-bookworm"], "parentExecutionName": "release-4.168.2-20261201-000000-000"});
        let request = rerun("hhvm-build", "build-4.168.2-20261201-000001-000", input, now());
        assert_eq!(request.machine, "hhvm-build");
        assert_eq!(
            request.name,
            "build-4.168.2-20261201-000001-000-rerun-20261202-013005-042"
        );
        assert_eq!(
            request.input,
            json!({"version": "4.168.2", "distros": ["debian-12-bookworm"]})
        );
    }

    #[test]
    fn a_plan_asks_what_a_build_would_be_given() {
        let asked = plan(
            &strings(&["4.168.2"]),
            &strings(&["ubuntu-24.04-noble"]),
            true,
            Some(true),
        )
        .unwrap();
        assert_eq!(
            asked.build_input(&asked.versions[0]),
            json!({"version": "4.168.2", "distros": ["ubuntu-24.04-noble"], "force": true, "requireApproval": true})
        );
        assert!(plan(&[], &[], false, None).is_err());
        assert!(plan(&strings(&["4.168"]), &[], false, None).is_err());
    }

    #[test]
    fn logs_are_found_by_job() {
        let distro = log_job("4.168.2", Some("debian-12-bookworm"), false).unwrap();
        assert_eq!(distro.prefix(), "logs/4.168.2/binary-package/debian-12-bookworm/");
        assert_eq!(
            log_job("4.168.2", None, true).unwrap().kind,
            JobKind::UpdateRepositories
        );
        assert_eq!(log_job("4.168.2", None, false).unwrap().kind, JobKind::SourceTarball);
        let error = log_job("4.168.2", Some("fedora"), false).unwrap_err();
        assert!(error.to_string().contains("--distro"), "{error}");
    }

    #[test]
    fn a_publish_and_a_nightly_say_what_they_ask() {
        let request = publish("4.168.2", &[], None, Polling::default(), now()).unwrap();
        assert_eq!(request.machine, "hhvm-publish-release");
        assert_eq!(request.input, json!({"version": "4.168.2"}));
        let gated = publish("4.168.2", &[], Some(true), Polling::default(), now()).unwrap();
        assert_eq!(gated.input, json!({"version": "4.168.2", "requireApproval": true}));
        assert_eq!(
            nightly_event(true, Polling::default())["detail"],
            json!({"force": true})
        );
        let quick = Polling {
            interval_seconds: Some(2),
            limit: Some(500),
        };
        assert_eq!(
            nightly_event(false, quick)["detail"],
            json!({"force": false, "pollIntervalSeconds": 2, "pollLimit": 500})
        );
    }
}
