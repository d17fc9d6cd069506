//! Launching EC2 workers from `LaunchPlan`s: idempotent (a retried invocation finds the
//! instance it already started by its idempotency tag), safe (terminate on shutdown, IMDSv2
//! only, encrypted root volume deleted with the instance), all-or-nothing for a batch (a
//! launch that finally fails terminates what the same call started), and on spot capacity when
//! the plan says so, falling back to on-demand when EC2 has no spot capacity for it.

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::operation::run_instances::RunInstancesError;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceType, MarketType, ResourceType, ShutdownBehavior, SpotInstanceType,
    SpotMarketOptions, Tag, TagSpecification, VolumeType,
};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction, RetryClassifierPriority};
use pipeline_core::instance::DescribedInstance;
use pipeline_core::launch::{IDEMPOTENCY_TAG, InstanceProfile, LaunchPlan, Market};
use pipeline_core::userdata::compressed_user_data;
use pipeline_core::{InstanceId, InstanceState, PipelineError};
use tokio::task::JoinSet;

/// An EC2 client for launching: the SDK's adaptive retry mode paces requests when EC2
/// throttles (the original slept a random 0-60 s before every batch instead), with more
/// attempts than the default three because a batch of builds launches at once.
pub fn launch_ec2_client(config: &SdkConfig) -> Client {
    let retry = RetryConfig::adaptive().with_max_attempts(8);
    Client::from_conf(aws_sdk_ec2::config::Builder::from(config).retry_config(retry).build())
}

/// RunInstances error codes that mean "no spot capacity for this request now": a spot launch
/// that gets one falls back to on-demand instead of failing. Capacity of the instance type in
/// the subnet's zone, the spot price above the on-demand price (no maximum price is set, so the
/// on-demand price is the cap), and the account's spot instance quota.
pub const NO_SPOT_CAPACITY: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "UnfulfillableCapacity",
];

/// EC2 answers "no capacity" as a server error (HTTP 500), which the SDK retries like any other:
/// eight attempts with backoff, a minute or more per distro before the fallback. For a spot
/// request the answer is final (the fallback is the retry), so this classifier forbids
/// retrying it; an on-demand launch keeps the SDK's retries.
#[derive(Debug)]
struct NoSpotCapacityIsFinal;

impl ClassifyRetry for NoSpotCapacityIsFinal {
    fn classify_retry(&self, context: &InterceptorContext) -> RetryAction {
        let code = match context.output_or_error() {
            Some(Err(error)) => error
                .as_operation_error()
                .and_then(|error| error.downcast_ref::<RunInstancesError>())
                .and_then(|error| error.code()),
            _ => None,
        };
        if code.is_some_and(|code| NO_SPOT_CAPACITY.contains(&code)) {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "NoSpotCapacityIsFinal"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// An instance that stands for a plan, and what it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    pub instance_id: InstanceId,
    /// True when an earlier invocation had already started it.
    pub reused: bool,
    /// The market it actually runs on: a spot plan's worker is on-demand when spot had no
    /// capacity.
    pub market: Market,
    pub instance_type: pipeline_core::instance::InstanceType,
}

/// Every instance carrying one of these idempotency keys (EC2 lists terminated ones for about
/// an hour), with its state and tags.
pub async fn find_instances_by_keys(ec2: &Client, keys: &[&str]) -> Result<Vec<DescribedInstance>, PipelineError> {
    let by_key = Filter::builder()
        .name(format!("tag:{IDEMPOTENCY_TAG}"))
        .set_values(Some(keys.iter().map(|key| key.to_string()).collect()))
        .build();
    crate::ec2::describe_workers(ec2, vec![by_key]).await
}

/// The live instance that stands for `plan` (its own key, or for a spot plan its on-demand
/// fallback's), if any. Live is what the pollers count as still working (`pending`,
/// `running`): a stopping, stopped or shutting-down instance has ended its work, and a retry
/// handed it back would only fail.
pub async fn find_launched_instance(ec2: &Client, plan: &LaunchPlan) -> Result<Option<InstanceId>, PipelineError> {
    let stand_ins = plan.stand_ins();
    let keys: Vec<&str> = stand_ins.iter().map(|plan| plan.idempotency_key.as_str()).collect();
    Ok(find_instances_by_keys(ec2, &keys)
        .await?
        .into_iter()
        .find(|instance| !instance.state.is_finished())
        .map(|instance| instance.id))
}

/// The `ClientToken` of a launch attempt: the key, and the attempt's number. An earlier
/// attempt whose instance is gone (terminated by cleanup, or powered off by its timer) keeps
/// its token for a day, and EC2 answers a repeated token with that dead instance; the next
/// number starts a new one.
pub fn client_token(idempotency_key: &str, attempt: usize) -> String {
    format!("{idempotency_key}-{attempt}")
}

/// How many token numbers a launch tries before it gives up: each skips one dead earlier
/// attempt that EC2 no longer lists.
const MAX_LAUNCH_ATTEMPTS: usize = 8;

/// Starts the worker of `plan`, or returns the one an earlier invocation started and that is
/// still alive (for a spot plan, also one that fell back to on-demand). A dead one (an
/// earlier, finished attempt) is never returned: the launch starts a new instance under the
/// next attempt's token. A spot launch that EC2 answers with a `NO_SPOT_CAPACITY` code is
/// made again on on-demand capacity (`plan.on_demand()`, under its own key), so a distro's
/// build is never held up by the spot market.
pub async fn launch_worker(ec2: &Client, plan: &LaunchPlan) -> Result<Launched, PipelineError> {
    let stand_ins = plan.stand_ins();
    let keys: Vec<&str> = stand_ins.iter().map(|plan| plan.idempotency_key.as_str()).collect();
    let earlier = find_instances_by_keys(ec2, &keys).await?;
    let earlier_of = |plan: &LaunchPlan| -> Vec<&DescribedInstance> {
        earlier
            .iter()
            .filter(|instance| instance.tag(IDEMPOTENCY_TAG) == Some(plan.idempotency_key.as_str()))
            .collect()
    };
    for stand_in in &stand_ins {
        if let Some(instance) = earlier_of(stand_in).into_iter().find(|i| !i.state.is_finished()) {
            tracing::info!(target = plan.target(), instance_id = %instance.id, market = %stand_in.market(), "worker already launched; reusing it");
            return Ok(Launched {
                instance_id: instance.id.clone(),
                reused: true,
                market: stand_in.market(),
                instance_type: stand_in.settings.instance_type.clone(),
            });
        }
    }
    match start_worker(ec2, plan, earlier_of(plan).len()).await? {
        Ok(launched) => Ok(launched),
        Err(NoSpotCapacity { code }) => {
            let fallback = plan.on_demand();
            tracing::warn!(target = plan.target(), code, instance_type = %plan.settings.instance_type, "no spot capacity; launching on on-demand capacity instead");
            start_worker(ec2, &fallback, earlier_of(&fallback).len())
                .await?
                .map_err(|NoSpotCapacity { code }| {
                    PipelineError::aws(
                        "EC2 RunInstances",
                        format!("an on-demand launch was answered as a spot one ({code})"),
                    )
                })
        }
    }
}

/// A spot launch EC2 had no spot capacity for, with its error code (one of `NO_SPOT_CAPACITY`).
struct NoSpotCapacity {
    code: String,
}

/// Launches `plan`'s worker, `earlier` attempts of it having ended before.
async fn start_worker(
    ec2: &Client,
    plan: &LaunchPlan,
    earlier: usize,
) -> Result<Result<Launched, NoSpotCapacity>, PipelineError> {
    let first_attempt = earlier + 1;
    for attempt in first_attempt..first_attempt + MAX_LAUNCH_ATTEMPTS {
        let (instance_id, state) = match run_instance(ec2, plan, &client_token(&plan.idempotency_key, attempt)).await? {
            Ok(started) => started,
            Err(no_capacity) => return Ok(Err(no_capacity)),
        };
        // A fresh launch answers `pending`; anything else is the instance of an earlier token.
        if matches!(state.as_str(), "pending" | "running") {
            tracing::info!(target = plan.target(), %instance_id, key = plan.idempotency_key, attempt, market = %plan.market(), "worker launched");
            return Ok(Ok(Launched {
                instance_id,
                reused: false,
                market: plan.market(),
                instance_type: plan.settings.instance_type.clone(),
            }));
        }
        tracing::info!(target = plan.target(), %instance_id, state = state.as_str(), attempt, "the token names a finished earlier attempt; trying the next");
    }
    Err(PipelineError::aws(
        "EC2 RunInstances",
        format!(
            "every client token from attempt {first_attempt} on names a finished instance; wait a day or use another execution name"
        ),
    ))
}

/// The market options of a spot launch: a one-time request (nothing relaunches it behind the
/// pipeline's back) whose instance is terminated when EC2 reclaims it, like any ended worker,
/// and no maximum price (the on-demand price caps it).
fn spot_market_options() -> InstanceMarketOptionsRequest {
    InstanceMarketOptionsRequest::builder()
        .market_type(MarketType::Spot)
        .spot_options(
            SpotMarketOptions::builder()
                .spot_instance_type(SpotInstanceType::OneTime)
                .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                .build(),
        )
        .build()
}

/// One `RunInstances` call for `plan` under `token`: the instance EC2 answered with and its
/// state, or, for a spot plan, EC2's "no spot capacity".
async fn run_instance(
    ec2: &Client,
    plan: &LaunchPlan,
    token: &str,
) -> Result<Result<(InstanceId, InstanceState), NoSpotCapacity>, PipelineError> {
    let settings = &plan.settings;
    let profile = match &settings.instance_profile {
        InstanceProfile::Arn(arn) => IamInstanceProfileSpecification::builder().arn(arn).build(),
        InstanceProfile::Name(name) => IamInstanceProfileSpecification::builder().name(name).build(),
    };
    let metadata = InstanceMetadataOptionsRequest::builder()
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .http_tokens(HttpTokensState::Required)
        // One hop: the host reaches IMDS, the build containers on it do not.
        .http_put_response_hop_limit(1)
        .build();
    let root_volume = BlockDeviceMapping::builder()
        .device_name(&settings.root_device_name)
        .ebs(
            EbsBlockDevice::builder()
                .volume_size(settings.root_volume_gib)
                .volume_type(VolumeType::Gp3)
                .encrypted(true)
                .delete_on_termination(true)
                .build(),
        )
        .build();
    let tags: Vec<Tag> = plan
        .tags()
        .into_iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect();
    let tagged = |resource: ResourceType| {
        TagSpecification::builder()
            .resource_type(resource)
            .set_tags(Some(tags.clone()))
            .build()
    };

    let mut request = ec2
        .run_instances()
        .image_id(&settings.image_id)
        .instance_type(InstanceType::from(settings.instance_type.as_str()))
        .set_instance_market_options((plan.market() == Market::Spot).then(spot_market_options))
        .min_count(1)
        .max_count(1)
        .client_token(token)
        .subnet_id(&settings.subnet_id)
        .set_security_group_ids(Some(settings.security_group_ids.clone()))
        .iam_instance_profile(profile)
        // A worker powers itself off when done or when its timer fires; that must delete it
        // (the original *stopped* build instances, which then leaked with their disks).
        .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
        .metadata_options(metadata)
        .block_device_mappings(root_volume)
        .tag_specifications(tagged(ResourceType::Instance))
        .tag_specifications(tagged(ResourceType::Volume))
        .user_data(aws_smithy_types::base64::encode(compressed_user_data(&plan.user_data)));
    if let Some(key_name) = &settings.key_name {
        request = request.key_name(key_name);
    }
    let sent = if plan.market() == Market::Spot {
        request
            .customize()
            .config_override(aws_sdk_ec2::config::Builder::default().retry_classifier(NoSpotCapacityIsFinal))
            .send()
            .await
    } else {
        request.send().await
    };
    let output = match sent {
        Ok(output) => output,
        Err(error) => {
            if plan.market() == Market::Spot
                && let Some(code) = error.code().filter(|code| NO_SPOT_CAPACITY.contains(code))
            {
                return Ok(Err(NoSpotCapacity { code: code.to_string() }));
            }
            return Err(crate::service_error("EC2 RunInstances", error));
        }
    };
    let instance = output
        .instances()
        .first()
        .ok_or_else(|| PipelineError::aws("EC2 RunInstances", "the response named no instance"))?;
    let instance_id = instance
        .instance_id()
        .ok_or_else(|| PipelineError::aws("EC2 RunInstances", "the response named no instance"))?
        .parse()
        .map_err(|problem| PipelineError::aws("EC2 RunInstances", problem))?;
    let state = instance.state().and_then(|state| state.name()).map_or_else(
        || InstanceState::named("pending"),
        |name| InstanceState::named(name.as_str()),
    );
    Ok(Ok((instance_id, state)))
}

/// Launches every plan, at most `parallelism` at a time, and returns the instances in plan
/// order. If a launch finally fails, the launches under way are awaited and every instance
/// this call started is terminated — including one the failed launch may have started before
/// its answer was lost (found by its idempotency tag) — and the error names the failed plan's
/// target. Instances that earlier invocations started and this one re-found are left alone:
/// they belong to those invocations' retries.
pub async fn launch_workers(
    ec2: &Client,
    plans: Vec<LaunchPlan>,
    parallelism: usize,
) -> Result<Vec<Launched>, PipelineError> {
    let total = plans.len();
    let all_plans = plans.clone();
    let mut pending = plans.into_iter().enumerate();
    let mut running = JoinSet::new();
    let mut launched: Vec<Option<Launched>> = vec![None; total];
    let mut failed: Vec<usize> = Vec::new();
    let mut failure: Option<(String, PipelineError)> = None;

    let spawn_next = |running: &mut JoinSet<_>, pending: &mut std::iter::Enumerate<std::vec::IntoIter<LaunchPlan>>| {
        if let Some((index, plan)) = pending.next() {
            let ec2 = ec2.clone();
            running.spawn(async move { (index, plan.target(), launch_worker(&ec2, &plan).await) });
        }
    };
    for _ in 0..parallelism.max(1) {
        spawn_next(&mut running, &mut pending);
    }
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok((index, _, Ok(instance))) => launched[index] = Some(instance),
            Ok((index, target, Err(error))) => {
                failed.push(index);
                failure.get_or_insert((target, error));
            }
            Err(panic) => {
                failure.get_or_insert((
                    "(a launch task)".to_string(),
                    PipelineError::aws("EC2 RunInstances", panic),
                ));
            }
        }
        if failure.is_none() {
            spawn_next(&mut running, &mut pending);
        }
    }

    let Some((target, error)) = failure else {
        return Ok(launched.into_iter().flatten().collect());
    };
    let mut started: Vec<InstanceId> = launched
        .into_iter()
        .flatten()
        .filter(|l| !l.reused)
        .map(|l| l.instance_id)
        .collect();
    for index in failed {
        // A launch whose answer was lost (a timeout, a dropped connection) may still have
        // started its instance; only its tag can tell.
        if let Ok(Some(instance_id)) = find_launched_instance(ec2, &all_plans[index]).await {
            started.push(instance_id);
        }
    }
    let mut detail = error.to_string();
    if !started.is_empty() {
        tracing::warn!(?started, "a launch failed; terminating the instances this call started");
        match crate::ec2::terminate_instances(ec2, &started).await {
            Ok(_) => detail.push_str(&format!(" (terminated the {} instance(s) this call had started)", started.len())),
            Err(cleanup) => detail.push_str(&format!(
                " (terminating the instances this call started failed too, {cleanup}; they are tagged {IDEMPOTENCY_TAG})"
            )),
        }
    }
    Err(PipelineError::WorkerLaunchFailed { target, detail })
}

#[cfg(test)]
mod tests {
    //! The fallback's decisions at the SDK boundary, with aws-smithy-mocks answering: no emulator
    //! says "no spot capacity". (build-binary-packages' tests run it against moto, with EC2's
    //! real HTTP 500 answer.)

    use aws_sdk_ec2::error::ErrorMetadata;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::operation::run_instances::RunInstancesOutput;
    use aws_sdk_ec2::types::{Instance, InstanceStateName, Reservation};
    use aws_smithy_mocks::{Rule, mock};
    use pipeline_core::layout::JobKind;
    use pipeline_testing::mocked_client;
    use pipeline_testing::mocks::match_any;

    use super::*;

    fn plan(market: Market) -> LaunchPlan {
        let settings = pipeline_core::launch::InstanceSettings {
            stack: "hhvm-pipeline".parse().unwrap(),
            image_id: "ami-0123456789abcdef0".into(),
            instance_type: "m5.2xlarge".parse().unwrap(),
            market,
            subnet_id: "subnet-1".into(),
            security_group_ids: vec!["sg-1".into()],
            instance_profile: InstanceProfile::parse("builder"),
            key_name: None,
            root_device_name: "/dev/sda1".into(),
            root_volume_gib: 95,
        };
        LaunchPlan::new(
            JobKind::BinaryPackage,
            "4.168.2".parse().unwrap(),
            Some("debian-12-bookworm".parse().unwrap()),
            "run-1".parse().unwrap(),
            "#!/bin/bash\n".into(),
            settings,
        )
    }

    fn instance(id: &str, state: InstanceStateName, key: &str) -> Instance {
        Instance::builder()
            .instance_id(id)
            .state(aws_sdk_ec2::types::InstanceState::builder().name(state).build())
            .tags(Tag::builder().key(IDEMPOTENCY_TAG).value(key).build())
            .build()
    }

    /// DescribeInstances answering `instances`.
    fn described(instances: Vec<Instance>) -> Rule {
        mock!(aws_sdk_ec2::Client::describe_instances).then_output(move || {
            DescribeInstancesOutput::builder()
                .reservations(Reservation::builder().set_instances(Some(instances.clone())).build())
                .build()
        })
    }

    /// RunInstances asking for spot capacity, answered with EC2's `code`.
    fn spot_refused(code: &'static str) -> Rule {
        mock!(aws_sdk_ec2::Client::run_instances)
            .match_requests(|request| request.instance_market_options().is_some())
            .then_error(move || {
                RunInstancesError::generic(ErrorMetadata::builder().code(code).message("no capacity").build())
            })
    }

    /// RunInstances on demand (no market options) under `key`'s first token, starting `id`.
    fn on_demand_started(id: &'static str, key: String) -> Rule {
        mock!(aws_sdk_ec2::Client::run_instances)
            .match_requests(move |request| {
                request.instance_market_options().is_none() && request.client_token() == Some(&client_token(&key, 1))
            })
            .then_output(move || {
                RunInstancesOutput::builder()
                    .instances(instance(id, InstanceStateName::Pending, "ignored"))
                    .build()
            })
    }

    #[tokio::test]
    async fn a_spot_launch_without_capacity_is_made_on_demand_under_its_own_key() {
        let spot = plan(Market::Spot);
        let nothing_yet = described(Vec::new());
        let refused = spot_refused("InsufficientInstanceCapacity");
        let started = on_demand_started("i-0000000a", spot.on_demand().idempotency_key);
        let ec2 = mocked_client!(aws_sdk_ec2, match_any(&[&nothing_yet, &refused, &started]));

        let launched = launch_worker(&ec2, &spot).await.unwrap();
        assert_eq!(launched.instance_id.as_str(), "i-0000000a");
        assert_eq!(launched.market, Market::OnDemand, "what actually runs");
        assert_eq!(launched.instance_type.as_str(), "m5.2xlarge");
        assert!(!launched.reused);
        assert_eq!((refused.num_calls(), started.num_calls()), (1, 1));
        assert_eq!(nothing_yet.num_calls(), 1, "one lookup for both keys");
    }

    #[tokio::test]
    async fn only_a_spot_launch_falls_back_and_only_for_want_of_capacity() {
        // On demand, no capacity is an error: there is nothing to fall back to.
        let on_demand = plan(Market::OnDemand);
        let nothing_yet = described(Vec::new());
        let refused = mock!(aws_sdk_ec2::Client::run_instances).then_error(|| {
            RunInstancesError::generic(ErrorMetadata::builder().code("InsufficientInstanceCapacity").build())
        });
        let ec2 = mocked_client!(aws_sdk_ec2, match_any(&[&nothing_yet, &refused]));
        let error = launch_worker(&ec2, &on_demand).await.unwrap_err();
        assert!(error.to_string().contains("InsufficientInstanceCapacity"), "{error}");
        assert_eq!(refused.num_calls(), 1);

        // On spot, another refusal is an error too.
        let spot = plan(Market::Spot);
        let nothing_yet = described(Vec::new());
        let unauthorized = spot_refused("UnauthorizedOperation");
        let started = on_demand_started("i-0000000a", spot.on_demand().idempotency_key);
        let ec2 = mocked_client!(aws_sdk_ec2, match_any(&[&nothing_yet, &unauthorized, &started]));
        let error = launch_worker(&ec2, &spot).await.unwrap_err();
        assert!(error.to_string().contains("UnauthorizedOperation"), "{error}");
        assert_eq!(started.num_calls(), 0, "no on-demand instance");
    }

    #[tokio::test]
    async fn a_retry_finds_the_live_worker_under_either_key() {
        let spot = plan(Market::Spot);
        for (key, market) in [
            (spot.idempotency_key.clone(), Market::Spot),
            (spot.on_demand().idempotency_key, Market::OnDemand),
        ] {
            let earlier = described(vec![
                // An ended earlier attempt is never handed back.
                instance("i-0000000e", InstanceStateName::Terminated, &spot.idempotency_key),
                instance("i-0000000f", InstanceStateName::Running, &key),
            ]);
            let launches = mock!(aws_sdk_ec2::Client::run_instances)
                .then_error(|| RunInstancesError::generic(ErrorMetadata::builder().code("NotExpected").build()));
            let ec2 = mocked_client!(aws_sdk_ec2, match_any(&[&earlier, &launches]));
            let launched = launch_worker(&ec2, &spot).await.unwrap();
            assert_eq!(launched.instance_id.as_str(), "i-0000000f");
            assert!(launched.reused);
            assert_eq!(launched.market, market);
            assert_eq!(launches.num_calls(), 0, "nothing launched again");
        }
        // An on-demand plan (a rebuild) never takes a spot worker for its own.
        let rebuild = spot.on_demand();
        let earlier = described(vec![instance(
            "i-0000000f",
            InstanceStateName::Running,
            &spot.idempotency_key,
        )]);
        let started = on_demand_started("i-0000000a", rebuild.idempotency_key.clone());
        let ec2 = mocked_client!(aws_sdk_ec2, match_any(&[&earlier, &started]));
        let launched = launch_worker(&ec2, &rebuild).await.unwrap();
        assert_eq!(launched.instance_id.as_str(), "i-0000000a");
        assert_eq!(started.num_calls(), 1);
    }
}
