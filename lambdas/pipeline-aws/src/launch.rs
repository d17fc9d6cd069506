//! Launching EC2 workers from `LaunchPlan`s: idempotent (a retried invocation finds the
//! instance it already started by its idempotency tag), safe (terminate on shutdown, IMDSv2
//! only, encrypted root volume deleted with the instance) and all-or-nothing for a batch (a
//! launch that finally fails terminates what the same call started).

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceType, ResourceType, ShutdownBehavior, Tag,
    TagSpecification, VolumeType,
};
use pipeline_core::launch::{IDEMPOTENCY_TAG, InstanceProfile, LaunchPlan};
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

/// An instance that stands for a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    pub instance_id: InstanceId,
    /// True when an earlier invocation had already started it.
    pub reused: bool,
}

/// Every instance carrying this idempotency key (EC2 lists terminated ones for about an hour),
/// with its state.
pub async fn find_instances_by_key(
    ec2: &Client,
    idempotency_key: &str,
) -> Result<Vec<(InstanceId, InstanceState)>, PipelineError> {
    let by_key = Filter::builder()
        .name(format!("tag:{IDEMPOTENCY_TAG}"))
        .values(idempotency_key)
        .build();
    crate::ec2::describe_filtered(ec2, vec![by_key]).await
}

/// The live instance carrying this idempotency key, if any. Live is what the pollers count as
/// still working (`pending`, `running`): a stopping, stopped or shutting-down instance has
/// ended its work, and a retry handed it back would only fail.
pub async fn find_launched_instance(ec2: &Client, idempotency_key: &str) -> Result<Option<InstanceId>, PipelineError> {
    Ok(find_instances_by_key(ec2, idempotency_key)
        .await?
        .into_iter()
        .find(|(_, state)| !state.is_finished())
        .map(|(id, _)| id))
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
/// still alive. A dead one (an earlier, finished attempt) is never returned: the launch starts
/// a new instance under the next attempt's token.
pub async fn launch_worker(ec2: &Client, plan: &LaunchPlan) -> Result<Launched, PipelineError> {
    let earlier = find_instances_by_key(ec2, &plan.idempotency_key).await?;
    if let Some((instance_id, _)) = earlier.iter().find(|(_, state)| !state.is_finished()) {
        tracing::info!(target = plan.target(), %instance_id, "worker already launched; reusing it");
        return Ok(Launched {
            instance_id: instance_id.clone(),
            reused: true,
        });
    }
    let first_attempt = earlier.len() + 1;
    for attempt in first_attempt..first_attempt + MAX_LAUNCH_ATTEMPTS {
        let (instance_id, state) = run_instance(ec2, plan, &client_token(&plan.idempotency_key, attempt)).await?;
        // A fresh launch answers `pending`; anything else is the instance of an earlier token.
        if matches!(state.as_str(), "pending" | "running") {
            tracing::info!(target = plan.target(), %instance_id, key = plan.idempotency_key, attempt, "worker launched");
            return Ok(Launched {
                instance_id,
                reused: false,
            });
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

/// One `RunInstances` call for `plan` under `token`: the instance EC2 answered with and its state.
async fn run_instance(
    ec2: &Client,
    plan: &LaunchPlan,
    token: &str,
) -> Result<(InstanceId, InstanceState), PipelineError> {
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
    let output = request
        .send()
        .await
        .map_err(|error| crate::service_error("EC2 RunInstances", error))?;
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
    Ok((instance_id, state))
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
    let keys: Vec<String> = plans.iter().map(|plan| plan.idempotency_key.clone()).collect();
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
        if let Ok(Some(instance_id)) = find_launched_instance(ec2, &keys[index]).await {
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
