//! AWS clients, built once per cold start and reused across invocations.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Bounds of every AWS call, so a hung connection fails the invocation with a retryable
/// `AwsServiceError` (which the machines retry) before Lambda's own time-out kills it (30 s for
/// most functions, `infra/template.yaml`): 3 s to connect, 10 s per attempt, 25 s for the call
/// with the SDK's retries.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(25))
        .build()
}

/// The SDK configuration from the standard sources: region, credentials and `AWS_ENDPOINT_URL`
/// (or `AWS_ENDPOINT_URL_<SERVICE>`) from the environment, as in Lambda or a local run, with
/// the call bounds of `timeouts`.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .load()
        .await
}

/// An S3 client. With an explicit endpoint (an emulator) it uses path-style addressing, since
/// `bucket.127.0.0.1` does not resolve; against AWS it keeps virtual-hosted style.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let builder = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(builder.build())
}

pub fn ec2_client(config: &SdkConfig) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_the_functions_make_is_bounded() {
        let config = load_sdk_config().await;
        let timeouts = config
            .timeout_config()
            .expect("the functions' SDK configuration has time-outs");
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(Duration::from_secs(10)));
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(25)));
    }
}
