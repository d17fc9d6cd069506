//! What to launch, as plain data: which worker job, for which version and distro, with which
//! user data, instance settings and tags, under which idempotency key. The EC2 calls that act
//! on a plan live in `pipeline-aws`.

use sha2::{Digest, Sha256};

pub use crate::executions::ExecutionName;
use crate::instance::InstanceType;
use crate::layout::JobKind;
use crate::{Distro, InstanceId, PackagingBranch, Payload, PipelineError, Version};

/// Tag carrying a launch's idempotency key; a retried invocation finds its instance by it.
pub const IDEMPOTENCY_TAG: &str = "IdempotencyKey";

/// Tag naming the execution a worker works for: cleanup finds an execution's workers by it,
/// never by a list in the payload.
pub const EXECUTION_TAG: &str = "Execution";

/// Tag naming the worker's job kind. Only instances carrying it with one of the job kinds, and
/// this deployment's `PipelineStack`, are the pipeline's: nothing else is ever terminated (and
/// IAM grants no more).
pub const JOB_KIND_TAG: &str = "JobKind";

/// Tag naming the market a worker runs on (`spot` or `on-demand`): what it was launched on, so
/// an operator (and the cost of a run) can tell the two apart.
pub const MARKET_TAG: &str = "Market";

/// Tag naming the deployment a worker belongs to (the CloudFormation stack's name): two
/// deployments in one account, with executions of the same name (both nightlies, say), never
/// find, reuse or terminate each other's workers.
pub const STACK_TAG: &str = "PipelineStack";

/// The name of the stack that deployed the functions (`PIPELINE_STACK`, which the template sets
/// from `AWS::StackName`): CloudFormation's own rule, a letter, then letters, digits and
/// hyphens, at most 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PipelineStack(String);

impl PipelineStack {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for PipelineStack {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let well_formed = name.len() <= 128
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !well_formed {
            return Err(format!(
                "{name:?} is not a CloudFormation stack name (a letter, then letters, digits and hyphens; at most 128)"
            ));
        }
        Ok(PipelineStack(name.to_string()))
    }
}

impl std::fmt::Display for PipelineStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a worker's capacity comes from. Spot capacity costs a fraction of on-demand but EC2
/// may reclaim it (an interruption); on-demand is never reclaimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Market {
    Spot,
    OnDemand,
}

impl Market {
    pub const ALL: [Market; 2] = [Market::Spot, Market::OnDemand];

    /// `spot` or `on-demand`: the `Market` tag, the configuration value and the payload's.
    pub fn as_str(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::OnDemand => "on-demand",
        }
    }
}

impl std::fmt::Display for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Market {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Market::ALL
            .into_iter()
            .find(|market| market.as_str() == value)
            .ok_or_else(|| format!("{value:?} is not a market (expected \"spot\" or \"on-demand\")"))
    }
}

/// One distro's build worker, as `hhvm-build-binary-packages` reports it in `builds`: the
/// success marker that counts for this build of the distro is the one this instance wrote, so
/// an older marker never stands in for a rebuild that failed. `market` and `instanceType` say
/// what it ran on (the cost of the run); `replaces` names the interrupted spot worker an
/// on-demand rebuild took over from. Entries written before these fields existed have none.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DistroBuild {
    pub distro: Distro,
    pub instance: InstanceId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub market: Option<Market>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<InstanceType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<InstanceId>,
}

/// The optional `builds` field: `[{"distro", "instance", "market"?, "instanceType"?,
/// "replaces"?}, ...]`.
pub fn read_builds(payload: &Payload) -> Result<Option<Vec<DistroBuild>>, PipelineError> {
    match payload.get("builds") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(_) => payload
            .required_array(
                "builds",
                "{\"distro\": ..., \"instance\": ...} as hhvm-build-binary-packages outputs",
                read_build,
            )
            .map(Some),
    }
}

fn read_build(value: &serde_json::Value) -> Result<DistroBuild, String> {
    if !value.is_object() {
        return Err(format!(
            "expected an object {{\"distro\", \"instance\"}}, got {}",
            crate::payload::json_type(value)
        ));
    }
    let text = |name: &str| -> Result<Option<&str>, String> {
        match value.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(format!(
                "{name}: expected a string, got {}",
                crate::payload::json_type(other)
            )),
        }
    };
    let required = |name: &str| text(name)?.ok_or_else(|| format!("expected an object with a string {name:?}"));
    let optional = |name: &str| text(name).map(|value| value.map(str::to_string));
    let in_field = |name: &'static str| move |problem: String| format!("{name}: {problem}");
    let build = DistroBuild {
        distro: required("distro")?.parse()?,
        instance: required("instance")?.parse()?,
        market: optional("market")?
            .map(|market| market.parse())
            .transpose()
            .map_err(in_field("market"))?,
        instance_type: optional("instanceType")?
            .map(|name| name.parse())
            .transpose()
            .map_err(in_field("instanceType"))?,
        replaces: optional("replaces")?
            .map(|id| id.parse())
            .transpose()
            .map_err(in_field("replaces"))?,
    };
    if build.replaces.as_ref() == Some(&build.instance) {
        return Err(format!("replaces: {} cannot replace itself", build.instance));
    }
    Ok(build)
}

/// What every launching function reads from its payload: the version (required), the
/// packaging branch (`packagingBranch`, default from the version), and the execution that asks
/// (`executionName`, or for a hand invocation the name derived from the payload, so that a
/// worker is reused only for the same request). An optional `nightly` must agree with the
/// version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRequest {
    pub version: Version,
    pub packaging_branch: PackagingBranch,
    pub execution: ExecutionName,
}

impl WorkerRequest {
    pub fn from_payload(payload: &Payload) -> Result<WorkerRequest, PipelineError> {
        let version = Version::read(payload)?;
        let nightly = payload.optional::<bool>("nightly", "a boolean")?;
        if nightly.is_some_and(|nightly| nightly != version.is_nightly()) {
            let kind = if version.is_nightly() { "a nightly" } else { "a release" };
            return Err(PipelineError::invalid_input(
                "nightly",
                format!("is {} but version {version} is {kind}", !version.is_nightly()),
            ));
        }
        let packaging_branch = match payload.optional_nonempty_str("packagingBranch")? {
            Some(text) => text.parse()?,
            None => version.default_packaging_branch(),
        };
        Ok(WorkerRequest {
            version,
            packaging_branch,
            execution: ExecutionName::read(payload)?,
        })
    }
}

/// The key that makes a launch idempotent: the same request — deployment, execution, job,
/// version, distro, market and user data, which holds everything else the worker was asked
/// (distros, branch, buckets) — always gives the same key, and any difference gives another. So
/// a retry finds its worker, and a worker is never handed to a request it was not launched for
/// (another `distros`, say, under the same execution). The market is part of it because a spot
/// worker and its on-demand stand-in (the fallback when spot has no capacity, the rebuild after
/// an interruption) are two launches: a retry of the rebuild must find the rebuild, never the
/// interrupted spot worker. A hand invocation's execution is the name derived from its payload.
///
/// 32 hex digits of SHA-256: within EC2's 64-character `ClientToken` limit and a tag value.
pub fn idempotency_key(
    stack: &PipelineStack,
    execution: &ExecutionName,
    job: JobKind,
    version: &Version,
    distro: Option<&Distro>,
    market: Market,
    user_data: &str,
) -> String {
    let mut hasher = Sha256::new();
    // Fields are separated by a byte none of them can contain, so ("a","bc") ≠ ("ab","c"); the
    // user data comes last, so whatever it holds cannot shift the others.
    for part in [
        stack.as_str(),
        execution.as_str(),
        job.as_str(),
        &version.to_string(),
        distro.map_or("", Distro::as_str),
        market.as_str(),
        user_data,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The `Name` tag of a worker, as the original pipeline named them (operators search for these).
pub fn instance_name(job: JobKind, version: &Version, distro: Option<&Distro>) -> String {
    match (job, distro) {
        (JobKind::BinaryPackage, Some(distro)) => format!("hhvm-build-{version}-{distro}"),
        (JobKind::BinaryPackage, None) => format!("hhvm-build-{version}-binary-package"),
        (JobKind::SourceTarball, _) => format!("hhvm-build-{version}-source-tarball"),
        (JobKind::UpdateRepositories, _) => format!("hhvm-{version}-update-repos"),
        (JobKind::PublishReleaseSource, _) => format!("hhvm-{version}-publish-source"),
    }
}

/// An instance profile, given by ARN or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceProfile {
    Arn(String),
    Name(String),
}

impl InstanceProfile {
    pub fn parse(value: &str) -> InstanceProfile {
        if value.starts_with("arn:") {
            InstanceProfile::Arn(value.to_string())
        } else {
            InstanceProfile::Name(value.to_string())
        }
    }
}

/// How a worker's instance is configured (from the launching function's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSettings {
    /// The deployment the worker belongs to (its `PipelineStack` tag).
    pub stack: PipelineStack,
    pub image_id: String,
    pub instance_type: InstanceType,
    /// Spot or on-demand (`BINARY_PACKAGE_MARKET` for the binary-package workers; every other
    /// worker is on-demand).
    pub market: Market,
    pub subnet_id: String,
    pub security_group_ids: Vec<String>,
    pub instance_profile: InstanceProfile,
    pub key_name: Option<String>,
    pub root_device_name: String,
    pub root_volume_gib: i32,
}

/// One worker to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    pub job: JobKind,
    pub version: Version,
    pub distro: Option<Distro>,
    pub execution: ExecutionName,
    pub idempotency_key: String,
    pub user_data: String,
    pub settings: InstanceSettings,
}

impl LaunchPlan {
    pub fn new(
        job: JobKind,
        version: Version,
        distro: Option<Distro>,
        execution: ExecutionName,
        user_data: String,
        settings: InstanceSettings,
    ) -> LaunchPlan {
        let idempotency_key = idempotency_key(
            &settings.stack,
            &execution,
            job,
            &version,
            distro.as_ref(),
            settings.market,
            &user_data,
        );
        LaunchPlan {
            job,
            version,
            distro,
            execution,
            idempotency_key,
            user_data,
            settings,
        }
    }

    pub fn market(&self) -> Market {
        self.settings.market
    }

    /// The same worker on on-demand capacity, under its own key: what a spot launch falls back
    /// to when spot has no capacity, and what rebuilds a distro whose spot worker was
    /// interrupted.
    pub fn on_demand(&self) -> LaunchPlan {
        let mut settings = self.settings.clone();
        settings.market = Market::OnDemand;
        LaunchPlan::new(
            self.job,
            self.version,
            self.distro.clone(),
            self.execution.clone(),
            self.user_data.clone(),
            settings,
        )
    }

    /// The plans whose workers stand for this one when a retry looks for them: itself, and for a
    /// spot plan its on-demand fallback (an earlier attempt may have fallen back).
    pub fn stand_ins(&self) -> Vec<LaunchPlan> {
        match self.market() {
            Market::Spot => vec![self.clone(), self.on_demand()],
            Market::OnDemand => vec![self.clone()],
        }
    }

    /// What the launch is for, in errors and logs: the distro, or the job kind.
    pub fn target(&self) -> String {
        match &self.distro {
            Some(distro) => distro.to_string(),
            None => self.job.to_string(),
        }
    }

    /// Tags for the instance and its volume. Every value has passed a strict pattern.
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut tags = vec![
            (
                "Name".to_string(),
                instance_name(self.job, &self.version, self.distro.as_ref()),
            ),
            ("Version".to_string(), self.version.to_string()),
            (JOB_KIND_TAG.to_string(), self.job.to_string()),
        ];
        if let Some(distro) = &self.distro {
            tags.push(("Distro".to_string(), distro.to_string()));
        }
        tags.push((MARKET_TAG.to_string(), self.market().to_string()));
        tags.push((STACK_TAG.to_string(), self.settings.stack.to_string()));
        tags.push((EXECUTION_TAG.to_string(), self.execution.to_string()));
        tags.push((IDEMPOTENCY_TAG.to_string(), self.idempotency_key.clone()));
        tags
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn version() -> Version {
        "4.168.2".parse().unwrap()
    }

    fn distro(name: &str) -> Distro {
        name.parse().unwrap()
    }

    fn execution(name: &str) -> ExecutionName {
        name.parse().unwrap()
    }

    fn stack(name: &str) -> PipelineStack {
        name.parse().unwrap()
    }

    fn settings() -> InstanceSettings {
        InstanceSettings {
            stack: stack("hhvm-pipeline"),
            image_id: "ami-0123".into(),
            instance_type: "m5.2xlarge".parse().unwrap(),
            market: Market::Spot,
            subnet_id: "subnet-1".into(),
            security_group_ids: vec!["sg-1".into()],
            instance_profile: InstanceProfile::parse("hhvm-binary-package-builder"),
            key_name: None,
            root_device_name: "/dev/sda1".into(),
            root_volume_gib: 95,
        }
    }

    #[test]
    fn idempotency_key_is_stable_and_differs_by_every_part() {
        let bookworm = distro("debian-12-bookworm");
        let key_on = |stack_name: &str,
                      execution_name: &str,
                      job,
                      version: &Version,
                      distro: Option<&Distro>,
                      market: Market,
                      user_data: &str| {
            idempotency_key(
                &stack(stack_name),
                &execution(execution_name),
                job,
                version,
                distro,
                market,
                user_data,
            )
        };
        let key_in = |stack_name: &str,
                      execution_name: &str,
                      job,
                      version: &Version,
                      distro: Option<&Distro>,
                      user_data: &str| {
            key_on(
                stack_name,
                execution_name,
                job,
                version,
                distro,
                Market::Spot,
                user_data,
            )
        };
        let key = |execution_name: &str, job, version: &Version, distro: Option<&Distro>, user_data: &str| {
            key_in("hhvm-pipeline", execution_name, job, version, distro, user_data)
        };
        let user_data = "#!/bin/bash\nexport DISTROS='debian-12-bookworm'\n";
        let first = key("run-1", JobKind::BinaryPackage, &version(), Some(&bookworm), user_data);
        assert_eq!(first.len(), 32);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            first,
            key("run-1", JobKind::BinaryPackage, &version(), Some(&bookworm), user_data)
        );
        let others = [
            // The same request to another deployment.
            key_in(
                "staging-hhvm-pipeline",
                "run-1",
                JobKind::BinaryPackage,
                &version(),
                Some(&bookworm),
                user_data,
            ),
            key("run-2", JobKind::BinaryPackage, &version(), Some(&bookworm), user_data),
            key(
                "manual-1",
                JobKind::BinaryPackage,
                &version(),
                Some(&bookworm),
                user_data,
            ),
            key("run-1", JobKind::SourceTarball, &version(), Some(&bookworm), user_data),
            key(
                "run-1",
                JobKind::BinaryPackage,
                &"4.168.3".parse().unwrap(),
                Some(&bookworm),
                user_data,
            ),
            key(
                "run-1",
                JobKind::BinaryPackage,
                &version(),
                Some(&distro("ubuntu-24.04-noble")),
                user_data,
            ),
            key("run-1", JobKind::BinaryPackage, &version(), None, user_data),
            // The same worker on on-demand capacity: the fallback or rebuild of a spot worker.
            key_on(
                "hhvm-pipeline",
                "run-1",
                JobKind::BinaryPackage,
                &version(),
                Some(&bookworm),
                Market::OnDemand,
                user_data,
            ),
            // Another request under the same execution: another distro limit.
            key(
                "run-1",
                JobKind::BinaryPackage,
                &version(),
                Some(&bookworm),
                "#!/bin/bash\nexport DISTROS='debian-12-bookworm ubuntu-24.04-noble'\n",
            ),
        ];
        for other in &others {
            assert_ne!(&first, other);
        }
    }

    #[test]
    fn plans_carry_reference_names_and_all_tags() {
        let plan = LaunchPlan::new(
            JobKind::BinaryPackage,
            version(),
            Some(distro("debian-12-bookworm")),
            execution("nightly-2026"),
            "#!/bin/bash\n".into(),
            settings(),
        );
        let tags = plan.tags();
        let tag = |name: &str| tags.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(tag("Name"), Some("hhvm-build-4.168.2-debian-12-bookworm"));
        assert_eq!(tag("Version"), Some("4.168.2"));
        assert_eq!(tag("Distro"), Some("debian-12-bookworm"));
        assert_eq!(tag("JobKind"), Some("binary-package"));
        assert_eq!(tag("Execution"), Some("nightly-2026"));
        assert_eq!(tag("PipelineStack"), Some("hhvm-pipeline"));
        assert_eq!(tag(IDEMPOTENCY_TAG), Some(plan.idempotency_key.as_str()));
        assert_eq!(tag(MARKET_TAG), Some("spot"));
        assert_eq!(plan.target(), "debian-12-bookworm");
    }

    #[test]
    fn the_on_demand_plan_is_the_same_worker_under_its_own_key() {
        let spot = LaunchPlan::new(
            JobKind::BinaryPackage,
            version(),
            Some(distro("debian-12-bookworm")),
            execution("nightly-2026"),
            "#!/bin/bash\n".into(),
            settings(),
        );
        let on_demand = spot.on_demand();
        assert_eq!(spot.market(), Market::Spot);
        assert_eq!(on_demand.market(), Market::OnDemand);
        assert_ne!(on_demand.idempotency_key, spot.idempotency_key);
        assert_eq!(
            on_demand.idempotency_key,
            idempotency_key(
                &spot.settings.stack,
                &spot.execution,
                spot.job,
                &spot.version,
                spot.distro.as_ref(),
                Market::OnDemand,
                &spot.user_data,
            ),
            "the key is recomputed, not copied"
        );
        let tags = on_demand.tags();
        assert!(tags.contains(&(MARKET_TAG.to_string(), "on-demand".to_string())));
        assert!(tags.contains(&(IDEMPOTENCY_TAG.to_string(), on_demand.idempotency_key.clone())));
        // Everything else is the spot plan's.
        let mut same = on_demand.clone();
        same.settings.market = Market::Spot;
        same.idempotency_key = spot.idempotency_key.clone();
        assert_eq!(same, spot);
        assert_eq!(on_demand.on_demand(), on_demand);
        // A retry of a spot launch also finds an on-demand fallback; an on-demand one only itself.
        let keys =
            |plan: &LaunchPlan| -> Vec<String> { plan.stand_ins().into_iter().map(|p| p.idempotency_key).collect() };
        assert_eq!(
            keys(&spot),
            [spot.idempotency_key.clone(), on_demand.idempotency_key.clone()]
        );
        assert_eq!(keys(&on_demand), std::slice::from_ref(&on_demand.idempotency_key));
    }

    #[test]
    fn markets_read_and_print_as_spot_and_on_demand() {
        for market in Market::ALL {
            assert_eq!(market.as_str().parse::<Market>(), Ok(market));
            assert_eq!(serde_json::to_value(market).unwrap(), json!(market.as_str()));
            assert_eq!(
                serde_json::from_value::<Market>(json!(market.to_string())).unwrap(),
                market
            );
        }
        for bad in ["", "Spot", "ondemand", "on_demand", "spot ", "reserved"] {
            let error = bad.parse::<Market>().unwrap_err();
            assert!(error.contains("\"spot\" or \"on-demand\""), "{bad:?}: {error}");
        }
    }

    fn builds_of(builds: serde_json::Value) -> Result<Option<Vec<DistroBuild>>, PipelineError> {
        read_builds(&Payload::from_value(json!({ "builds": builds })).unwrap())
    }

    #[test]
    fn builds_carry_their_market_instance_type_and_what_they_replace() {
        let builds = builds_of(json!([
            {"distro": "debian-12-bookworm", "instance": "i-00000001"},
            {"distro": "ubuntu-24.04-noble", "instance": "i-00000003", "market": "on-demand",
             "instanceType": "m5.2xlarge", "replaces": "i-00000002"},
            {"distro": "debian-11-bullseye", "instance": "i-00000004", "market": "spot",
             "instanceType": "c7i.4xlarge", "replaces": null},
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(builds[0].market, None, "an entry written before markets is still valid");
        assert_eq!(builds[0].instance_type, None);
        assert_eq!(builds[1].market, Some(Market::OnDemand));
        assert_eq!(
            builds[1].instance_type.as_ref().map(InstanceType::as_str),
            Some("m5.2xlarge")
        );
        assert_eq!(builds[1].replaces.as_ref().map(InstanceId::as_str), Some("i-00000002"));
        assert_eq!(builds[2].market, Some(Market::Spot));
        assert_eq!(builds[2].replaces, None);
        // Written back as read, with the optional fields only when known.
        assert_eq!(
            serde_json::to_value(&builds).unwrap(),
            json!([
                {"distro": "debian-12-bookworm", "instance": "i-00000001"},
                {"distro": "ubuntu-24.04-noble", "instance": "i-00000003", "market": "on-demand",
                 "instanceType": "m5.2xlarge", "replaces": "i-00000002"},
                {"distro": "debian-11-bullseye", "instance": "i-00000004", "market": "spot",
                 "instanceType": "c7i.4xlarge"},
            ])
        );
        assert_eq!(builds_of(json!(null)).unwrap(), None);
    }

    #[test]
    fn bad_builds_are_invalid_input_naming_the_entry_and_field() {
        let entry = |extra: serde_json::Value| {
            let mut build = json!({"distro": "debian-12-bookworm", "instance": "i-00000001"});
            for (key, value) in extra.as_object().unwrap() {
                build[key] = value.clone();
            }
            json!([build])
        };
        let cases = [
            (json!("x"), "`builds`: expected an array"),
            (json!([5]), "`builds[0]`: expected an object"),
            (json!([{"distro": "debian-12-bookworm"}]), "\"instance\""),
            (
                json!([{"distro": ["debian-12-bookworm"], "instance": "i-00000001"}]),
                "distro: expected a string",
            ),
            (entry(json!({"market": "Spot"})), "market: \"Spot\" is not a market"),
            (entry(json!({"market": "spot; id"})), "market:"),
            (entry(json!({"market": 1})), "market: expected a string, got a number"),
            (entry(json!({"instanceType": "m5.2xlarge; reboot"})), "instanceType:"),
            (entry(json!({"instanceType": ""})), "instanceType:"),
            (entry(json!({"replaces": "$(id)"})), "replaces:"),
            (
                entry(json!({"replaces": ["i-00000002"]})),
                "replaces: expected a string",
            ),
            (entry(json!({"replaces": "i-00000001"})), "cannot replace itself"),
        ];
        for (builds, expected) in cases {
            let error = builds_of(builds.clone()).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput", "{builds}");
            assert!(error.to_string().contains(expected), "{builds}: {error}");
        }
        let error = builds_of(entry(json!({"market": "reserved"}))).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid input field `builds[0]`"),
            "{error}"
        );
    }

    #[test]
    fn names_follow_the_original_pipeline() {
        let v = version();
        assert_eq!(
            instance_name(JobKind::SourceTarball, &v, None),
            "hhvm-build-4.168.2-source-tarball"
        );
        assert_eq!(
            instance_name(JobKind::UpdateRepositories, &v, None),
            "hhvm-4.168.2-update-repos"
        );
        assert_eq!(
            instance_name(JobKind::PublishReleaseSource, &v, None),
            "hhvm-4.168.2-publish-source"
        );
    }

    #[test]
    fn hand_invocations_are_tagged_with_the_derived_name() {
        let payload = Payload::from_value(json!({"version": "4.168.2"})).unwrap();
        let request = WorkerRequest::from_payload(&payload).unwrap();
        assert!(
            request.execution.as_str().starts_with("manual-"),
            "{}",
            request.execution
        );
        let plan = LaunchPlan::new(
            JobKind::SourceTarball,
            version(),
            None,
            request.execution.clone(),
            String::new(),
            settings(),
        );
        let tags = plan.tags();
        assert!(tags.contains(&(EXECUTION_TAG.to_string(), request.execution.to_string())));
        assert!(tags.iter().all(|(k, _)| k != "Distro"));
        assert_eq!(plan.target(), "source-tarball");
    }

    #[test]
    fn worker_requests_read_version_branch_and_execution() {
        let payload =
            Payload::from_value(json!({"version": "4.168.2", "nightly": false, "executionName": "e1"})).unwrap();
        let request = WorkerRequest::from_payload(&payload).unwrap();
        assert_eq!(request.packaging_branch.to_string(), "HHVM-4.168");
        assert_eq!(request.execution, execution("e1"));
        let payload = Payload::from_value(json!({"version": "2026.11.21", "packagingBranch": "HHVM-4.168"})).unwrap();
        assert_eq!(
            WorkerRequest::from_payload(&payload)
                .unwrap()
                .packaging_branch
                .to_string(),
            "HHVM-4.168"
        );

        let cases = [
            (json!({}), "InvalidInput", "`version`"),
            (json!({"version": "4.1;id"}), "InvalidVersion", "field `version`"),
            (
                json!({"version": "4.168.2", "nightly": true}),
                "InvalidInput",
                "`nightly`",
            ),
            (
                json!({"version": "4.168.2", "nightly": "no"}),
                "InvalidInput",
                "`nightly`",
            ),
            (
                json!({"version": "4.168.2", "packagingBranch": "main;id"}),
                "InvalidInput",
                "packagingBranch",
            ),
        ];
        for (input, error_type, names) in cases {
            let error = WorkerRequest::from_payload(&Payload::from_value(input.clone()).unwrap()).unwrap_err();
            assert_eq!(error.error_type(), error_type, "{input}");
            assert!(error.to_string().contains(names), "{input}: {error}");
        }
    }

    #[test]
    fn stack_names_follow_cloudformation() {
        for good in ["hhvm-pipeline", "S", "staging-2"] {
            assert_eq!(stack(good).as_str(), good);
        }
        let longest = format!("a{}", "b".repeat(127));
        assert!(longest.parse::<PipelineStack>().is_ok());
        for bad in [
            "",
            "2-pipeline",
            "-x",
            "hhvm_pipeline",
            "hhvm pipeline",
            "a;b",
            "ünïcode",
            &format!("{longest}c"),
        ] {
            assert!(bad.parse::<PipelineStack>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn instance_profiles_are_arns_or_names() {
        assert_eq!(
            InstanceProfile::parse("arn:aws:iam::1:instance-profile/x"),
            InstanceProfile::Arn("arn:aws:iam::1:instance-profile/x".into())
        );
        assert_eq!(InstanceProfile::parse("x"), InstanceProfile::Name("x".into()));
    }
}
