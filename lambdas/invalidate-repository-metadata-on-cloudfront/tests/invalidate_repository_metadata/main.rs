//! invalidate-repository-metadata-on-cloudfront against moto's CloudFront through the real SDK.

mod conflicts;

use aws_sdk_cloudfront::Client;
use invalidate_repository_metadata_on_cloudfront::{Config, REPOSITORY_METADATA_PATHS, handle};
use pipeline_testing::cloudfront::{cloudfront_client, create_distribution, invalidations};
use pipeline_testing::unreachable_sdk_config;
use serde_json::json;

fn config(distribution: &str) -> Config {
    Config {
        distribution_id: Some(distribution.to_string()),
    }
}

#[tokio::test]
async fn invalidates_the_six_metadata_paths_and_reports_only_id_and_status() {
    let cloudfront = cloudfront_client().await;
    let distribution = create_distribution(&cloudfront).await;
    let input = json!({"version": "4.168.2", "executionName": "run-1", "unknown": {"a": [1, null]}});

    let output = handle(&cloudfront, &config(&distribution), input.clone())
        .await
        .unwrap();

    let created = invalidations(&cloudfront, &distribution).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].1, REPOSITORY_METADATA_PATHS.map(String::from));
    assert_eq!(output["cloudfrontInvalidation"]["id"], created[0].0);
    assert!(
        output["cloudfrontInvalidation"]["status"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{output}"
    );
    assert_eq!(
        output["cloudfrontInvalidation"].as_object().unwrap().len(),
        2,
        "{output}"
    );
    for field in ["version", "executionName", "unknown"] {
        assert_eq!(output[field], input[field], "{field}");
    }
}

#[tokio::test]
async fn a_retry_of_the_same_execution_creates_no_second_invalidation() {
    let cloudfront = cloudfront_client().await;
    let distribution = create_distribution(&cloudfront).await;
    let input = json!({"version": "2026.11.21", "executionName": "nightly-2026-11-21"});
    let first = handle(&cloudfront, &config(&distribution), input.clone())
        .await
        .unwrap();
    let second = handle(&cloudfront, &config(&distribution), input).await.unwrap();
    assert_eq!(
        first["cloudfrontInvalidation"]["id"],
        second["cloudfrontInvalidation"]["id"]
    );
    assert_eq!(invalidations(&cloudfront, &distribution).await.len(), 1);

    // Another execution is another invalidation.
    let other = json!({"version": "2026.11.21", "executionName": "nightly-2026-11-21-again"});
    let third = handle(&cloudfront, &config(&distribution), other).await.unwrap();
    assert_ne!(
        third["cloudfrontInvalidation"]["id"],
        first["cloudfrontInvalidation"]["id"]
    );
    assert_eq!(invalidations(&cloudfront, &distribution).await.len(), 2);
}

#[tokio::test]
async fn the_payload_names_the_distribution_and_paths() {
    let cloudfront = cloudfront_client().await;
    let distribution = create_distribution(&cloudfront).await;
    let input = json!({"cloudfront": distribution, "paths": ["/debian/dists/*"], "executionName": "run-2"});
    handle(&cloudfront, &Config::default(), input).await.unwrap();
    assert_eq!(
        invalidations(&cloudfront, &distribution).await[0].1,
        ["/debian/dists/*"]
    );
}

#[tokio::test]
async fn an_unknown_distribution_is_a_refused_request() {
    let cloudfront = cloudfront_client().await;
    let error = handle(&cloudfront, &config("ENOSUCHDIST1"), json!({"executionName": "r"}))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "AwsRequestRefused");
    assert!(error.to_string().contains("ENOSUCHDIST1"), "{error}");
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_calls_nothing() {
    let cloudfront = Client::new(&unreachable_sdk_config().await);
    let cases = [
        (
            Config::default(),
            json!({}),
            "ConfigurationError",
            "CLOUDFRONT_DISTRIBUTION_ID",
        ),
        (
            config("E35YBTV6QCR5BA"),
            json!({"cloudfront": "not-an-id"}),
            "InvalidInput",
            "`cloudfront`",
        ),
        (
            config("E35YBTV6QCR5BA"),
            json!({"version": "4"}),
            "InvalidVersion",
            "field `version`",
        ),
        (
            config("E35YBTV6QCR5BA"),
            json!({"paths": ["no-slash"]}),
            "InvalidInput",
            "`paths[0]`",
        ),
        (
            config("E35YBTV6QCR5BA"),
            json!({"executionName": ["x"]}),
            "InvalidInput",
            "`executionName`",
        ),
        (
            config("E35YBTV6QCR5BA"),
            json!("text"),
            "InvalidInput",
            "expected a JSON object",
        ),
    ];
    for (config, input, error_type, text) in cases {
        let error = handle(&cloudfront, &config, input.clone()).await.unwrap_err();
        assert_eq!(error.error_type(), error_type, "{input}: {error}");
        assert!(error.to_string().contains(text), "{input}: {error}");
    }
}
