//! The one test harness of the workspace: a real moto server (the AWS API emulator from PyPI)
//! on 127.0.0.1 and SDK configuration pointed at it, so integration tests exercise the real
//! `aws-sdk-*` clients over HTTP; the processes tests start, owned by the test process; raw
//! HTTP for what has no SDK client. The Lambda crates' tests use it directly, the local stack
//! (`pipeline-tests`) builds on it. `bin/test` installs moto into the workspace's `.venv`;
//! `MOTO_SERVER` may name another `moto_server` executable.
//!
//! In a Lambda crate's tests one server serves a whole test binary; tests stay apart by using
//! unique resource names (`unique_name`) and only the instances they launched themselves.

pub mod aws_cli;
pub mod capacity;
pub mod cloudfront;
pub mod http;
pub mod mocks;
mod moto;
pub mod process;
pub mod requests;
pub mod sfn;
pub mod workers;

use std::fmt;
use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

pub use moto::MotoServer;

/// What went wrong in the harness itself (a server that did not start, a process that could
/// not be spawned): a sentence naming what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarnessError(pub String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

/// SDK configuration for an emulator at `endpoint`.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "pipeline-testing"))
        .load()
        .await
}

/// A name no other test of this run uses: lowercase, digits and dashes (valid for buckets).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// A port of 127.0.0.1 nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("find a free port on 127.0.0.1")
}

/// Creates a bucket and returns its (unique) name.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, prefix: &str) -> String {
    let bucket = unique_name(prefix);
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create a test bucket");
    bucket
}

/// Launches `count` instances in the emulator and returns their IDs.
pub async fn launch_instances(ec2: &aws_sdk_ec2::Client, count: i32) -> Vec<String> {
    launch_tagged_instances(ec2, count, &[]).await
}

/// The stack name the tests give functions (`PIPELINE_STACK`), as the local stack is named.
pub const TEST_STACK: &str = "hhvm-pipeline";

/// `TEST_STACK`, parsed.
pub fn test_stack() -> pipeline_core::launch::PipelineStack {
    TEST_STACK.parse().expect("a stack name")
}

/// `count` instances tagged like workers of `execution` in the tests' deployment (`JobKind`,
/// `PipelineStack` and `Execution`, as the launchers tag them).
pub async fn launch_workers_of(ec2: &aws_sdk_ec2::Client, count: i32, execution: &str, job: &str) -> Vec<String> {
    launch_workers_in(ec2, TEST_STACK, count, execution, job).await
}

/// `count` instances tagged like workers of `execution` in the deployment `stack`.
pub async fn launch_workers_in(
    ec2: &aws_sdk_ec2::Client,
    stack: &str,
    count: i32,
    execution: &str,
    job: &str,
) -> Vec<String> {
    let tags = [("JobKind", job), ("PipelineStack", stack), ("Execution", execution)];
    launch_tagged_instances(ec2, count, &tags).await
}

/// `count` instances with these tags.
pub async fn launch_tagged_instances(ec2: &aws_sdk_ec2::Client, count: i32, tags: &[(&str, &str)]) -> Vec<String> {
    let mut request = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(count)
        .max_count(count);
    if !tags.is_empty() {
        let tags = tags
            .iter()
            .map(|(key, value)| aws_sdk_ec2::types::Tag::builder().key(*key).value(*value).build())
            .collect();
        request = request.tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .set_tags(Some(tags))
                .build(),
        );
    }
    let output = request.send().await.expect("launch test instances");
    output
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect()
}

/// Current EC2 state name of one instance (`running`, `terminated`, …).
pub async fn instance_state(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    try_instance_state(ec2, id).await.unwrap_or_else(|e| panic!("{e}"))
}

/// `instance_state`, with an error for a failed call or an instance moto does not know.
pub async fn try_instance_state(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<String, HarnessError> {
    let output = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|error| {
            HarnessError(format!(
                "EC2 DescribeInstances {id}: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&error)
            ))
        })?;
    output
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()))
        .ok_or_else(|| HarnessError(format!("moto does not know instance {id}")))
}

/// User data as EC2 returns it (base64) to the script cloud-init runs: gunzipped when it is
/// gzip, as cloud-init does.
pub fn decode_user_data(encoded: &str) -> Result<String, HarnessError> {
    let bytes =
        aws_smithy_types::base64::decode(encoded).map_err(|e| HarnessError(format!("user data is not base64: {e}")))?;
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut unpacked)
            .map_err(|e| HarnessError(format!("user data is not valid gzip: {e}")))?;
        unpacked
    } else {
        bytes
    };
    String::from_utf8(text).map_err(|e| HarnessError(format!("user data is not UTF-8: {e}")))
}

/// SDK configuration for an endpoint where nothing listens, with retries off: a handler that
/// succeeds or fails with a validation error against it provably made no AWS call.
pub async fn unreachable_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:1")
        .credentials_provider(Credentials::new("testing", "testing", None, None, "pipeline-testing"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}
