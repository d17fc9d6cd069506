//! A CloudFront answer an emulator cannot produce, through the real SDK client with
//! aws-smithy-mocks: the caller reference is taken by an invalidation of other paths.

use aws_smithy_mocks::mock;
use invalidate_repository_metadata_on_cloudfront::{Config, handle};
use pipeline_testing::mocked_client;
use pipeline_testing::mocks::{http_response, match_any};
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
    let list =
        mock!(aws_sdk_cloudfront::Client::list_invalidations).then_http_response(|| http_response(200, EMPTY_LIST));
    let create =
        mock!(aws_sdk_cloudfront::Client::create_invalidation).then_http_response(|| http_response(409, BATCH_EXISTS));
    mocked_client!(aws_sdk_cloudfront, match_any(&[&list, &create]))
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
