//! A CloudFront answer an emulator cannot produce, through the real SDK client with
//! aws-smithy-mocks: the caller reference is taken by an invalidation of other paths.

use aws_sdk_cloudfront::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, create_mock_http_client, mock};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use invalidate_repository_metadata_on_cloudfront::{Config, handle};
use serde_json::json;

const EMPTY_LIST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<InvalidationList xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">
  <Marker></Marker><MaxItems>100</MaxItems><IsTruncated>false</IsTruncated><Quantity>0</Quantity>
</InvalidationList>"#;

const BATCH_EXISTS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">
  <Error><Type>Sender</Type><Code>InvalidationBatchAlreadyExists</Code><Message>The caller reference is in use.</Message></Error>
  <RequestId>test</RequestId>
</ErrorResponse>"#;

fn cloudfront_refusing_the_reference() -> aws_sdk_cloudfront::Client {
    let list = mock!(aws_sdk_cloudfront::Client::list_invalidations)
        .then_http_response(|| HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(EMPTY_LIST)));
    let create = mock!(aws_sdk_cloudfront::Client::create_invalidation)
        .then_http_response(|| HttpResponse::new(StatusCode::try_from(409).unwrap(), SdkBody::from(BATCH_EXISTS)));
    let config = aws_sdk_cloudfront::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "mock"))
        .http_client(create_mock_http_client())
        .interceptor(
            MockResponseInterceptor::new()
                .rule_mode(RuleMode::MatchAny)
                .with_rule(&list)
                .with_rule(&create),
        )
        .build();
    aws_sdk_cloudfront::Client::from_conf(config)
}

#[tokio::test]
async fn a_reference_taken_by_other_paths_is_invalidation_already_exists() {
    let config = Config {
        distribution_id: Some("E35YBTV6QCR5BA".into()),
    };
    let error = handle(
        &cloudfront_refusing_the_reference(),
        &config,
        json!({"executionName": "run-1"}),
    )
    .await
    .unwrap_err();
    assert_eq!(error.error_type(), "InvalidationAlreadyExists");
    assert!(
        error.to_string().contains("hhvm-repository-update-no_version-run-1-"),
        "{error}"
    );
}
