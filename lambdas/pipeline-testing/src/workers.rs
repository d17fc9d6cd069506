//! Test support for the functions that launch EC2 workers (`build-source-tarball`,
//! `build-binary-packages`, `update-repositories`, `publish-release-source`): their launch
//! configuration against moto, the instances a test's execution launched, and the checks every
//! launched worker must pass (AMI, type, tags, IMDSv2, terminate on shutdown, user data).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use aws_sdk_ec2::operation::describe_instance_attribute::DescribeInstanceAttributeOutput;
use aws_sdk_ec2::types::{Filter, InstanceAttributeName};
use pipeline_aws::launch_config::{LaunchConfig, launch_config, variable_prefix};
use pipeline_aws::single_worker::SingleWorkerDeps;
use pipeline_core::PipelineError;
use pipeline_core::layout::JobKind;
use pipeline_core::s3::Buckets;
use serde_json::{Value, json};

use crate::{MotoServer, unreachable_sdk_config};

/// The AMI the test configurations name; moto launches any AMI ID it is given.
pub const WORKER_AMI: &str = "ami-0abcdef1234567890";

/// Creates an instance profile in moto, once per name and process. moto checks that a launch's
/// instance profile exists; the project has no IAM client, so this uses the AWS CLI that
/// `bin/test` installs next to moto.
pub fn create_instance_profile(name: &str) {
    static CREATED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    // Held while the CLI runs, so concurrent tests wait for the profile instead of racing.
    let mut created = CREATED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if created.get_or_insert_with(HashSet::new).contains(name) {
        return;
    }
    let output = crate::aws_cli::AwsCliServer::shared()
        .aws()
        .args(["iam", "create-instance-profile", "--instance-profile-name", name])
        .args([
            "--endpoint-url",
            MotoServer::shared().endpoint(),
            "--region",
            "us-east-1",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("run the AWS CLI of .venv");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() || stderr.contains("EntityAlreadyExists"),
        "{stderr}"
    );
    created.get_or_insert_with(HashSet::new).insert(name.to_string());
}

/// The environment a test gives a launching function: its job kind, the name of its instance
/// profile, and any further variables (instance type, worker settings, …).
#[derive(Debug, Clone, Copy)]
pub struct WorkerEnvironment {
    pub job: JobKind,
    pub instance_profile: &'static str,
    pub extra: &'static [(&'static str, &'static str)],
}

impl WorkerEnvironment {
    /// The launch configuration read from this environment, for workers in `subnet_id` and
    /// `security_group_id`.
    pub fn launch_config(&self, subnet_id: &str, security_group_id: &str) -> LaunchConfig {
        let profile_variable = format!("{}_INSTANCE_PROFILE", variable_prefix(self.job));
        let mut env: HashMap<&str, &str> = HashMap::from([
            ("PIPELINE_STACK", crate::TEST_STACK),
            ("WORKER_AMI_ID", WORKER_AMI),
            ("WORKER_SUBNET_ID", subnet_id),
            ("WORKER_SECURITY_GROUP_IDS", security_group_id),
            (profile_variable.as_str(), self.instance_profile),
        ]);
        env.extend(self.extra.iter().copied());
        let source = move |name: &str| env.get(name).map(|v| v.to_string());
        launch_config(&source, self.job).expect("the test environment is a valid launch configuration")
    }

    /// The launch configuration for launches in moto: the instance profile exists, and the
    /// workers go to moto's default subnet and security group.
    pub async fn moto_launch_config(&self) -> LaunchConfig {
        create_instance_profile(self.instance_profile);
        let ec2 = pipeline_aws::ec2_client(&MotoServer::shared().sdk_config().await);
        let (subnet, group) = moto_default_network(&ec2).await;
        self.launch_config(&subnet, &group)
    }

    /// A launch configuration for tests that must make no AWS call: well-formed identifiers
    /// that nothing looks up.
    pub fn offline_launch_config(&self) -> LaunchConfig {
        self.launch_config("subnet-12345678", "sg-12345678")
    }

    /// The dependencies of a single-worker function launching in moto.
    pub async fn moto_single_worker_deps(&self) -> SingleWorkerDeps {
        SingleWorkerDeps {
            ec2: pipeline_aws::ec2_client(&MotoServer::shared().sdk_config().await),
            buckets: default_buckets(),
            config: self.moto_launch_config().await,
        }
    }

    /// The dependencies of a single-worker function whose AWS calls cannot succeed: a test that
    /// passes with them made none.
    pub async fn unreachable_single_worker_deps(&self) -> SingleWorkerDeps {
        SingleWorkerDeps {
            ec2: pipeline_aws::ec2_client(&unreachable_sdk_config().await),
            buckets: default_buckets(),
            config: self.offline_launch_config(),
        }
    }
}

/// The production bucket names, for tests that write nothing to them.
pub fn default_buckets() -> Buckets {
    Buckets {
        downloads: "hhvm-downloads".parse().expect("a bucket name"),
        scratch: "hhvm-scratch".parse().expect("a bucket name"),
    }
}

/// A release request for `execution`, with `fields` added, carrying an unknown field `extra`
/// that must pass through verbatim (its `3.0` must stay a float).
pub fn release_request(execution: &str, fields: Value) -> Value {
    let mut request = json!({"version": "4.168.2", "executionName": execution, "extra": {"kept": [3.0, null]}});
    if let Value::Object(fields) = fields {
        for (key, value) in fields {
            request[key] = value;
        }
    }
    request
}

/// Every field of `request` (from `release_request`) is in `output` unchanged.
pub fn assert_request_passes_through(request: &Value, output: &Value) {
    for (key, value) in request.as_object().expect("the request is an object") {
        assert_eq!(&output[key], value, "{key} passes through");
    }
    assert_eq!(
        serde_json::to_string(&output["extra"]).expect("serialize `extra`"),
        r#"{"kept":[3.0,null]}"#
    );
}

/// Sets every field of `overrides` in a copy of `base`.
pub fn with_fields(base: &Value, overrides: &Value) -> Value {
    let mut request = base.clone();
    for (key, value) in overrides.as_object().expect("overrides are an object") {
        request[key] = value.clone();
    }
    request
}

/// Bad values of the fields every launching function reads (`WorkerRequest`): (overrides,
/// expected error type, field the message must name).
pub fn bad_worker_request_fields() -> Vec<(Value, &'static str, &'static str)> {
    vec![
        (json!({"version": "4.168.2;id"}), "InvalidVersion", "version"),
        (json!({"version": null}), "InvalidInput", "version"),
        (json!({"packagingBranch": "$(id)"}), "InvalidInput", "packagingBranch"),
        (json!({"executionName": "a;b"}), "InvalidInput", "executionName"),
        (json!({"nightly": true}), "InvalidInput", "nightly"),
    ]
}

/// For each case, `base` with its overrides makes `handle` fail with the expected error type
/// and a message naming the field; and a payload that is not an object is `InvalidInput`.
pub async fn assert_each_rejected(
    cases: &[(Value, &str, &str)],
    base: &Value,
    handle: impl AsyncFn(Value) -> Result<Value, PipelineError>,
) {
    let rejection = async |request: Value| match handle(request.clone()).await {
        Ok(output) => panic!("{request} was accepted, giving {output}"),
        Err(error) => error,
    };
    for (overrides, error_type, field) in cases {
        let error = rejection(with_fields(base, overrides)).await;
        assert_eq!(error.error_type(), *error_type, "{overrides}: {error}");
        assert!(error.to_string().contains(field), "{overrides}: {error}");
    }
    for not_an_object in [json!("text"), json!(["not", "an", "object"])] {
        assert_eq!(rejection(not_an_object).await.error_type(), "InvalidInput");
    }
}

/// Invoking twice with the same request (`invoke`) gives the same `instances`, and the
/// execution has `launches` instances in all: the retry found what the first call started.
pub async fn assert_retry_launches_nothing_new(
    ec2: &aws_sdk_ec2::Client,
    execution: &str,
    launches: usize,
    invoke: impl AsyncFn() -> Result<Value, PipelineError>,
) {
    let first = invoke().await.expect("the first invocation succeeds");
    let second = invoke().await.expect("the retry succeeds");
    assert_eq!(first["instances"], second["instances"]);
    assert_eq!(instance_ids_of_execution(ec2, execution).await.len(), launches);
}

/// An instance as `instances_of_execution` lists it.
#[derive(Debug, Clone)]
pub struct TaggedInstance {
    pub id: String,
    /// EC2 state name: `pending`, `running`, `shutting-down`, `terminated`, …
    pub state: String,
    pub tags: HashMap<String, String>,
}

/// Every instance tagged `Execution=<execution>`, i.e. launched for that test's execution.
pub async fn instances_of_execution(ec2: &aws_sdk_ec2::Client, execution: &str) -> Vec<TaggedInstance> {
    let filter = Filter::builder().name("tag:Execution").values(execution).build();
    let output = ec2
        .describe_instances()
        .filters(filter)
        .send()
        .await
        .expect("describe the execution's instances");
    output
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| TaggedInstance {
            id: i.instance_id().expect("an instance ID").to_string(),
            state: i.state().and_then(|s| s.name()).expect("a state").as_str().to_string(),
            tags: i
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        })
        .collect()
}

/// The IDs of `instances_of_execution`.
pub async fn instance_ids_of_execution(ec2: &aws_sdk_ec2::Client, execution: &str) -> Vec<String> {
    instances_of_execution(ec2, execution)
        .await
        .into_iter()
        .map(|instance| instance.id)
        .collect()
}

/// The `instances` of a function's output, which must be exactly the instances of
/// `execution`.
pub async fn assert_instances_are_those_of_execution(
    output: &Value,
    ec2: &aws_sdk_ec2::Client,
    execution: &str,
) -> Vec<String> {
    let ids: Vec<String> =
        serde_json::from_value(output["instances"].clone()).expect("`instances` is an array of instance IDs");
    assert_eq!(ids, instance_ids_of_execution(ec2, execution).await);
    ids
}

/// One attribute of an instance, as EC2 describes it.
async fn instance_attribute(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    name: InstanceAttributeName,
) -> DescribeInstanceAttributeOutput {
    ec2.describe_instance_attribute()
        .instance_id(id)
        .attribute(name.clone())
        .send()
        .await
        .unwrap_or_else(|error| panic!("describe {name:?} of {id}: {error}"))
}

/// The user data of an instance, decoded.
pub async fn user_data_of(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    let attribute = instance_attribute(ec2, id, InstanceAttributeName::UserData).await;
    let encoded = attribute.user_data().and_then(|v| v.value()).expect("user data");
    crate::decode_user_data(encoded).unwrap_or_else(|e| panic!("user data of {id}: {e}"))
}

/// What a launched worker must look like besides what every worker has (the configured AMI,
/// a 32-digit `IdempotencyKey` tag, IMDSv2, terminate on shutdown, a bash script).
#[derive(Debug, Clone, Copy)]
pub struct ExpectedWorker<'a> {
    pub instance_type: &'a str,
    /// Tags and their values (`Name`, `Version`, `JobKind`, …).
    pub tags: &'a [(&'a str, &'a str)],
    /// Values the user data must export, as `export NAME='value'` lines.
    pub prelude: &'a [(&'a str, &'a str)],
}

/// Checks instance `id` as EC2 describes it against `expected` and what every worker must be;
/// returns its user data for the job's own checks.
pub async fn assert_worker_configured(ec2: &aws_sdk_ec2::Client, id: &str, expected: &ExpectedWorker<'_>) -> String {
    let described = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("describe the worker");
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(instance.image_id(), Some(WORKER_AMI));
    assert_eq!(
        instance.instance_type().map(|t| t.as_str()),
        Some(expected.instance_type)
    );
    let tags: HashMap<&str, &str> = instance
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect();
    for (key, value) in expected.tags {
        assert_eq!(tags.get(key), Some(value), "tag {key} of {id}");
    }
    assert_eq!(tags["IdempotencyKey"].len(), 32);
    let tokens = instance
        .metadata_options()
        .and_then(|m| m.http_tokens())
        .map(|t| t.as_str().to_string());
    assert_eq!(tokens.as_deref(), Some("required"));
    let shutdown = instance_attribute(ec2, id, InstanceAttributeName::InstanceInitiatedShutdownBehavior).await;
    assert_eq!(
        shutdown.instance_initiated_shutdown_behavior().and_then(|v| v.value()),
        Some("terminate")
    );

    let script = user_data_of(ec2, id).await;
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    for (name, value) in expected.prelude {
        let line = format!("export {name}='{value}'\n");
        assert!(script.contains(&line), "missing {line:?} in\n{script}");
    }
    script
}

/// moto's default subnet and security group (their IDs), where workers launched in it go.
pub async fn moto_default_network(ec2: &aws_sdk_ec2::Client) -> (String, String) {
    let subnets = ec2.describe_subnets().send().await.expect("describe moto's subnets");
    let subnet = subnets.subnets()[0].subnet_id().expect("a subnet ID").to_string();
    let groups = ec2
        .describe_security_groups()
        .send()
        .await
        .expect("describe moto's security groups");
    let group = groups.security_groups()[0].group_id().expect("a group ID").to_string();
    (subnet, group)
}
