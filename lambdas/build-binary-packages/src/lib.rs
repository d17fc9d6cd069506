//! `hhvm-build-binary-packages`: starts one worker per distro to build the binary packages of
//! `version` from the source tarball at `source`, and adds `distros` (every distro of this
//! build), `skippedDistros` (those already built), `instances` (one per started or re-found
//! worker, in distro order) and `builds` (`{distro, instance, market, instanceType}` of each of
//! those workers: Verify Builds accepts only the success markers they write) to the
//! pass-through payload.
//!
//! - The distros are the input's `distros` (validated) or `CURRENT_TARGETS` on the packaging
//!   branch.
//! - A distro whose success marker for this version exists is skipped unless `force` is true.
//! - Workers run on the configured market (`BINARY_PACKAGE_MARKET`); a spot launch that EC2 has
//!   no spot capacity for is made on on-demand capacity instead (`market` says which).
//! - Launches run concurrently with bounded parallelism, retried by the SDK when throttled; if
//!   one finally fails, the instances this call started are terminated and the error
//!   (`WorkerLaunchFailed`) names the distro.
//! - A retried invocation with the same input finds its instances instead of starting more.
//!
//! Rebuild mode, when the payload has a non-empty `interruptedInstances` (what
//! `get-instances-state` reports once the builds have finished): each interrupted build is
//! launched again on on-demand capacity (`plan_rebuilds`, `rebuild_interrupted`), unless its
//! worker wrote its success marker before EC2 reclaimed it (that build stands: its entry in
//! `builds` stays, and its ended worker leaves `instances`, so the next poll does not report it
//! again). A rebuilt build's entry in `builds` becomes the new worker's, with `replaces` naming
//! the interrupted one, the new ID takes the old one's place in `instances`, and
//! `interruptedInstances` is cleared; the machine then waits for the builds again. A distro is
//! rebuilt once: a rebuild that is itself interrupted fails the build (`BuildFailed`) instead
//! of going round again.
//!
//! The workers run `userdata/make-binary-package.sh`, embedded here at build time.

use std::future::Future;

use pipeline_aws::config::Source;
use pipeline_aws::launch_config::LaunchConfig;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::distro::read_distros;
use pipeline_core::instance::read_instance_ids;
use pipeline_core::launch::{DistroBuild, LaunchPlan, WorkerRequest, read_builds};
use pipeline_core::layout::{JobKind, marker_key};
use pipeline_core::marker::parse_marker;
use pipeline_core::s3::Buckets;
use pipeline_core::userdata::{Prelude, PreludeValue, base_prelude, worker_user_data};
use pipeline_core::{Distro, InstanceId, PackagingBranch, Payload, PipelineError, S3Location, Version};
use serde_json::Value;

pub const LIBRARY: &str = include_str!("../../../userdata/common.sh");
pub const SCRIPT: &str = include_str!("../../../userdata/make-binary-package.sh");

/// What the function needs besides its input.
pub struct Deps {
    pub ec2: aws_sdk_ec2::Client,
    pub s3: aws_sdk_s3::Client,
    pub buckets: Buckets,
    pub config: LaunchConfig,
    pub parallelism: usize,
}

/// The validated input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    pub worker: WorkerRequest,
    pub source: S3Location,
    /// `None`: read `CURRENT_TARGETS` of the packaging branch.
    pub distros: Option<Vec<Distro>>,
    pub force: bool,
}

impl BuildRequest {
    pub fn from_payload(payload: &Payload, buckets: &Buckets) -> Result<BuildRequest, PipelineError> {
        let worker = WorkerRequest::from_payload(payload)?;
        let source = buckets.read_source(payload, &worker.version)?;
        let distros = read_distros(payload)?;
        let force = payload.optional::<bool>("force", "a boolean")?.unwrap_or(false);
        Ok(BuildRequest {
            worker,
            source,
            distros,
            force,
        })
    }
}

/// The assignments every distro's worker shares; building it checks every input value, so it
/// runs before any remote call.
pub fn shared_prelude(
    request: &BuildRequest,
    buckets: &Buckets,
    config: &LaunchConfig,
) -> Result<Prelude, PipelineError> {
    let worker = &request.worker;
    let mut prelude = base_prelude(worker, buckets, &config.worker_settings)?;
    prelude
        .set(
            "PACKAGING_BRANCH",
            "packagingBranch",
            PreludeValue::Branch(worker.packaging_branch),
        )?
        .set(
            "SOURCE_BUCKET",
            "source.bucket",
            PreludeValue::Bucket(request.source.bucket.clone()),
        )?
        .set(
            "SOURCE_KEY",
            "source.path",
            PreludeValue::Key(request.source.path.clone()),
        )?;
    Ok(prelude)
}

/// The launch of one distro's worker.
pub fn plan_distro(
    request: &BuildRequest,
    shared: &Prelude,
    distro: &Distro,
    config: &LaunchConfig,
) -> Result<LaunchPlan, PipelineError> {
    let mut prelude = shared.clone();
    prelude.set("DISTRO", "distros", PreludeValue::Distro(distro.clone()))?;
    let user_data = worker_user_data(&prelude, LIBRARY, SCRIPT)?;
    Ok(LaunchPlan::new(
        JobKind::BinaryPackage,
        request.worker.version,
        Some(distro.clone()),
        request.worker.execution.clone(),
        user_data,
        config.settings.clone(),
    ))
}

/// Each distro once, in first-seen order.
fn unique(distros: Vec<Distro>) -> Vec<Distro> {
    let mut seen = std::collections::HashSet::new();
    distros
        .into_iter()
        .filter(|distro| seen.insert(distro.clone()))
        .collect()
}

/// The build entry of a launched worker.
fn build_of(distro: Distro, launched: pipeline_aws::launch::Launched, replaces: Option<InstanceId>) -> DistroBuild {
    DistroBuild {
        distro,
        instance: launched.instance_id,
        market: Some(launched.market),
        instance_type: Some(launched.instance_type),
        replaces,
    }
}

/// The builds of `builds` whose worker is among `interrupted`, each once, in the order of
/// `builds`. Every interrupted instance must be one of the builds' (`InvalidInput` otherwise).
pub fn interrupted_builds(
    builds: &[DistroBuild],
    interrupted: &[InstanceId],
) -> Result<Vec<DistroBuild>, PipelineError> {
    for (index, id) in interrupted.iter().enumerate() {
        if !builds.iter().any(|build| &build.instance == id) {
            return Err(PipelineError::invalid_input(
                format!("interruptedInstances[{index}]"),
                format!("{id} is the worker of none of `builds`"),
            ));
        }
    }
    Ok(builds
        .iter()
        .filter(|build| interrupted.contains(&build.instance))
        .cloned()
        .collect())
}

/// The interrupted builds to launch again on on-demand capacity: all of `interrupted` but
/// those whose worker wrote its success marker before EC2 reclaimed it (`marked`: that build is
/// done and stands). A build that is itself a rebuild is not rebuilt again: a distro gets one
/// retry, so the machine's wait for the builds runs at most twice (`BuildFailed` names the
/// distro).
pub fn plan_rebuilds(
    version: &Version,
    interrupted: Vec<DistroBuild>,
    marked: &[InstanceId],
) -> Result<Vec<DistroBuild>, PipelineError> {
    let rebuilds: Vec<DistroBuild> = interrupted
        .into_iter()
        .filter(|build| !marked.contains(&build.instance))
        .collect();
    let again: Vec<String> = rebuilds
        .iter()
        .filter_map(|build| {
            let replaced = build.replaces.as_ref()?;
            Some(format!(
                "{} (interrupted again: its rebuild {} of {replaced} was reclaimed too; a distro is rebuilt once)",
                build.distro, build.instance
            ))
        })
        .collect();
    if !again.is_empty() {
        return Err(PipelineError::BuildFailed {
            version: version.to_string(),
            details: again.join(", "),
        });
    }
    Ok(rebuilds)
}

/// Whether `build`'s worker wrote its distro's success marker: the marker is the last thing a
/// build does, so EC2 may have reclaimed the instance just after it. A marker that does not
/// parse does not count (Verify Builds would refuse it too).
async fn wrote_its_marker(deps: &Deps, version: &Version, build: &DistroBuild) -> Result<bool, PipelineError> {
    let marker = S3Location {
        bucket: deps.buckets.scratch.clone(),
        path: marker_key(version, JobKind::BinaryPackage, Some(&build.distro)),
    };
    let Some(bytes) = pipeline_aws::s3::get_object_bytes(&deps.s3, &marker).await? else {
        return Ok(false);
    };
    Ok(parse_marker(&bytes).is_ok_and(|marker| marker.written_by(&build.instance)))
}

/// Rebuild mode: launches each interrupted build of `payload` whose worker wrote no success
/// marker again on on-demand capacity and puts the new workers in place of the interrupted
/// ones (`builds`, `instances`); the workers of the builds that stand leave `instances`.
async fn rebuild_interrupted(
    deps: &Deps,
    mut payload: Payload,
    request: &BuildRequest,
    shared: &Prelude,
    interrupted: &[InstanceId],
) -> Result<Value, PipelineError> {
    let version = request.worker.version;
    let Some(mut builds) = read_builds(&payload)? else {
        return Err(PipelineError::invalid_input(
            "builds",
            "missing; rebuilding interrupted workers needs the builds they belong to",
        ));
    };
    let mut instances = read_instance_ids(&payload, "instances")?;
    let reclaimed = interrupted_builds(&builds, interrupted)?;
    let mut marked = Vec::new();
    for build in &reclaimed {
        if wrote_its_marker(deps, &version, build).await? {
            tracing::warn!(%version, distro = %build.distro, interrupted = %build.instance, "spot interruption after the build's success marker: the build stands, not rebuilt");
            marked.push(build.instance.clone());
        }
    }
    let rebuilds = plan_rebuilds(&version, reclaimed, &marked)?;
    // A build that stands has nothing left to wait for: EC2 ended its worker (a one-time spot
    // request terminates on interruption), and were it still in `instances` the next poll would
    // report it interrupted again and send the machine round to this step without end.
    instances.retain(|id| !marked.contains(id));
    let mut plans = Vec::with_capacity(rebuilds.len());
    for build in &rebuilds {
        tracing::warn!(%version, distro = %build.distro, interrupted = %build.instance, "spot interruption: rebuilding the distro on on-demand capacity");
        plans.push(plan_distro(request, shared, &build.distro, &deps.config)?.on_demand());
    }
    let launched = pipeline_aws::launch::launch_workers(&deps.ec2, plans, deps.parallelism).await?;
    for (old, launched) in rebuilds.into_iter().zip(launched) {
        match instances.iter_mut().find(|id| **id == old.instance) {
            Some(slot) => *slot = launched.instance_id.clone(),
            None => instances.push(launched.instance_id.clone()),
        }
        let entry = builds
            .iter_mut()
            .find(|build| build.instance == old.instance)
            .expect("plan_rebuilds picks builds of `builds`");
        *entry = build_of(old.distro, launched, Some(old.instance));
    }
    payload.set("instances", &instances);
    payload.set("builds", &builds);
    payload.set("interruptedInstances", Vec::<InstanceId>::new());
    Ok(payload.into_value())
}

/// `fetch_current_targets` reads `CURRENT_TARGETS` of a branch (`pipeline_aws::packaging` in
/// the function; a fixture in tests, which must not reach GitHub).
pub async fn handle<F, Fut>(deps: &Deps, fetch_current_targets: F, event: Value) -> Result<Value, PipelineError>
where
    F: FnOnce(PackagingBranch) -> Fut,
    Fut: Future<Output = Result<Vec<Distro>, PipelineError>>,
{
    let mut payload = Payload::from_value(event)?;
    let request = BuildRequest::from_payload(&payload, &deps.buckets)?;
    let shared = shared_prelude(&request, &deps.buckets, &deps.config)?;
    let interrupted = match payload.get("interruptedInstances") {
        None | Some(Value::Null) => Vec::new(),
        Some(_) => read_instance_ids(&payload, "interruptedInstances")?,
    };
    if !interrupted.is_empty() {
        return rebuild_interrupted(deps, payload, &request, &shared, &interrupted).await;
    }

    let distros = unique(match &request.distros {
        Some(distros) => distros.clone(),
        None => fetch_current_targets(request.worker.packaging_branch).await?,
    });
    let version = request.worker.version;
    let mut to_build = Vec::new();
    let mut building = Vec::new();
    let mut skipped = Vec::new();
    for distro in &distros {
        let marker = S3Location {
            bucket: deps.buckets.scratch.clone(),
            path: marker_key(&version, JobKind::BinaryPackage, Some(distro)),
        };
        if !request.force && pipeline_aws::s3::object_exists(&deps.s3, &marker).await? {
            tracing::info!(%distro, %marker, "already built; skipping");
            skipped.push(distro.clone());
        } else {
            to_build.push(plan_distro(&request, &shared, distro, &deps.config)?);
            building.push(distro.clone());
        }
    }
    let launched = pipeline_aws::launch::launch_workers(&deps.ec2, to_build, deps.parallelism).await?;
    tracing::info!(%version, launched = launched.len(), skipped = skipped.len(), "binary package workers");

    payload.set("distros", &distros);
    payload.set("skippedDistros", &skipped);
    payload.set("instances", launched.iter().map(|l| &l.instance_id).collect::<Vec<_>>());
    // `launch_workers` answers in plan order.
    let builds: Vec<DistroBuild> = building
        .into_iter()
        .zip(launched)
        .map(|(distro, launched)| build_of(distro, launched, None))
        .collect();
    payload.set("builds", &builds);
    Ok(payload.into_value())
}

/// Everything the function reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub buckets: Buckets,
    pub launch: LaunchConfig,
    /// `LAUNCH_PARALLELISM`.
    pub parallelism: usize,
    /// `CURRENT_TARGETS_URL`.
    pub current_targets_url: String,
}

/// The deployed function: `handle` with its clients, configuration and the packaging
/// repository's `CURRENT_TARGETS` over HTTP.
pub struct BuildBinaryPackages {
    deps: Deps,
    current_targets_url: String,
}

impl Function for BuildBinaryPackages {
    const NAME: &'static str = "hhvm-build-binary-packages";
    type Config = Config;

    fn configuration(source: &impl Source) -> Result<Config, PipelineError> {
        Ok(Config {
            buckets: pipeline_aws::config::buckets(source)?,
            launch: pipeline_aws::launch_config::launch_config(source, JobKind::BinaryPackage)?,
            parallelism: pipeline_aws::launch_config::launch_parallelism(source)?,
            current_targets_url: pipeline_aws::packaging::configured_current_targets_url(source)?,
        })
    }

    fn new(config: Config, sdk_config: &SdkConfig) -> Self {
        BuildBinaryPackages {
            deps: Deps {
                ec2: pipeline_aws::launch::launch_ec2_client(sdk_config),
                s3: pipeline_aws::s3_client(sdk_config),
                buckets: config.buckets,
                config: config.launch,
                parallelism: config.parallelism,
            },
            current_targets_url: config.current_targets_url,
        }
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        let url = self.current_targets_url.as_str();
        let fetch = |branch| async move { pipeline_aws::packaging::fetch_current_targets(url, &branch).await };
        handle(&self.deps, fetch, event).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(input: Value) -> Result<BuildRequest, PipelineError> {
        let buckets = Buckets {
            downloads: "hhvm-downloads".parse().unwrap(),
            scratch: "hhvm-scratch".parse().unwrap(),
        };
        BuildRequest::from_payload(&Payload::from_value(input).unwrap(), &buckets)
    }

    fn base() -> Value {
        json!({"version": "4.168.2", "source": {"bucket": "hhvm-scratch", "path": "hhvm-4.168.2.tar.gz"}})
    }

    #[test]
    fn distros_and_force_are_optional() {
        let parsed = request(base()).unwrap();
        assert_eq!(parsed.distros, None);
        assert!(!parsed.force);
        let mut input = base();
        input["distros"] = json!(["debian-12-bookworm"]);
        input["force"] = json!(true);
        let parsed = request(input).unwrap();
        assert_eq!(parsed.distros.unwrap()[0].as_str(), "debian-12-bookworm");
        assert!(parsed.force);
    }

    #[test]
    fn bad_distros_and_force_name_their_field() {
        for (distros, field) in [
            (json!(["debian-12-bookworm", "x; id"]), "`distros[1]`"),
            (json!([]), "`distros`"),
            (json!("debian-12-bookworm"), "`distros`"),
            (json!(["debian-12-bookworm", "debian-12-bookworm"]), "`distros[1]`"),
        ] {
            let mut input = base();
            input["distros"] = distros;
            let error = request(input).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput");
            assert!(error.to_string().contains(field), "{error}");
        }
        let mut input = base();
        input["force"] = json!("yes");
        assert!(request(input).unwrap_err().to_string().contains("`force`"));
    }

    #[test]
    fn source_must_be_the_versions_tarball() {
        let mut input = base();
        input["source"] = json!({"bucket": "someone-elses-bucket", "path": "hhvm-4.168.2.tar.gz"});
        let error = request(input).unwrap_err();
        assert!(error.to_string().contains("`source`"), "{error}");
    }

    fn build(distro: &str, instance: &str, replaces: Option<&str>) -> DistroBuild {
        DistroBuild {
            distro: distro.parse().unwrap(),
            instance: instance.parse().unwrap(),
            market: Some(pipeline_core::launch::Market::Spot),
            instance_type: Some("m5.2xlarge".parse().unwrap()),
            replaces: replaces.map(|id| id.parse().unwrap()),
        }
    }

    fn ids(list: &[&str]) -> Vec<InstanceId> {
        list.iter().map(|id| id.parse().unwrap()).collect()
    }

    /// `plan_rebuilds` of the builds of `builds` whose worker is among `interrupted`.
    fn rebuilds_of(
        builds: &[DistroBuild],
        interrupted: &[&str],
        marked: &[&str],
    ) -> Result<Vec<DistroBuild>, PipelineError> {
        let version: Version = "4.168.2".parse().unwrap();
        plan_rebuilds(&version, interrupted_builds(builds, &ids(interrupted))?, &ids(marked))
    }

    #[test]
    fn each_interrupted_build_is_rebuilt_in_the_order_of_builds() {
        let builds = [
            build("debian-12-bookworm", "i-00000001", None),
            build("ubuntu-24.04-noble", "i-00000002", None),
            build("debian-11-bullseye", "i-00000003", None),
        ];
        let rebuilds = rebuilds_of(&builds, &["i-00000003", "i-00000001", "i-00000003"], &[]).unwrap();
        let distros: Vec<&str> = rebuilds.iter().map(|build| build.distro.as_str()).collect();
        assert_eq!(distros, ["debian-12-bookworm", "debian-11-bullseye"], "each once");
        assert!(rebuilds_of(&builds, &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn an_interrupted_build_whose_worker_wrote_its_marker_is_not_rebuilt() {
        let builds = [
            build("debian-12-bookworm", "i-00000001", None),
            build("ubuntu-24.04-noble", "i-00000002", None),
        ];
        let rebuilds = rebuilds_of(&builds, &["i-00000001", "i-00000002"], &["i-00000001"]).unwrap();
        let distros: Vec<&str> = rebuilds.iter().map(|build| build.distro.as_str()).collect();
        assert_eq!(distros, ["ubuntu-24.04-noble"]);
        // A rebuild reclaimed after its marker is done too, not a second interruption.
        let builds = [build("ubuntu-24.04-noble", "i-00000004", Some("i-00000002"))];
        assert!(
            rebuilds_of(&builds, &["i-00000004"], &["i-00000004"])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_rebuild_is_not_rebuilt_again() {
        let builds = [
            build("debian-12-bookworm", "i-00000001", None),
            build("ubuntu-24.04-noble", "i-00000004", Some("i-00000002")),
        ];
        let error = rebuilds_of(&builds, &["i-00000001", "i-00000004"], &[]).unwrap_err();
        assert_eq!(error.error_type(), "BuildFailed");
        let message = error.to_string();
        assert!(
            message.starts_with("4.168.2 did not build: ubuntu-24.04-noble ("),
            "{message}"
        );
        assert!(
            message.contains("i-00000004 of i-00000002") && message.contains("rebuilt once"),
            "{message}"
        );
        assert!(!message.contains("debian-12-bookworm"), "{message}");
    }

    #[test]
    fn an_interrupted_instance_of_no_build_is_invalid_input() {
        let builds = [build("debian-12-bookworm", "i-00000001", None)];
        let error = rebuilds_of(&builds, &["i-00000001", "i-0000000f"], &[]).unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        assert!(error.to_string().contains("`interruptedInstances[1]`"), "{error}");
        // The replaced worker is no longer one of the builds' either.
        let builds = [build("debian-12-bookworm", "i-00000004", Some("i-00000001"))];
        let error = rebuilds_of(&builds, &["i-00000001"], &[]).unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
    }

    #[test]
    fn duplicates_are_built_once() {
        let distros: Vec<Distro> = ["debian-12-bookworm", "ubuntu-24.04-noble", "debian-12-bookworm"]
            .iter()
            .map(|d| d.parse().unwrap())
            .collect();
        assert_eq!(unique(distros).len(), 2);
    }
}
