//! have-source-tarball against a real S3 API (moto) through the real SDK client.

use aws_sdk_s3::primitives::ByteStream;
use pipeline_testing::{MotoServer, create_bucket, unreachable_sdk_config};
use serde_json::json;

async fn s3() -> aws_sdk_s3::Client {
    pipeline_aws::s3_client(&MotoServer::shared().sdk_config().await)
}

#[tokio::test]
async fn existing_tarball_passes_the_input_through_unchanged() {
    let s3 = s3().await;
    let bucket = create_bucket(&s3, "tarballs").await;
    let key = "source/nightlies/hhvm-nightly-2026.11.21.tar.gz";
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from_static(b"tar"))
        .send()
        .await
        .unwrap();

    let text = format!(
        r#"{{"version": "2026.11.21", "source": {{"bucket": "{bucket}", "path": "{key}"}},
            "unknown": {{"nested": [1, null, 2.50]}}, "big": 98765432109876543210987, "none": null}}"#
    );
    let input: serde_json::Value = serde_json::from_str(&text).unwrap();
    let output = have_source_tarball::handle(&s3, input.clone()).await.unwrap();
    assert_eq!(
        serde_json::to_string(&output).unwrap(),
        serde_json::to_string(&input).unwrap()
    );
}

#[tokio::test]
async fn missing_tarball_is_source_tarball_not_found() {
    let s3 = s3().await;
    let bucket = create_bucket(&s3, "tarballs").await;
    let input = json!({"source": {"bucket": bucket, "path": "hhvm-4.168.2.tar.gz"}});
    let error = have_source_tarball::handle(&s3, input).await.unwrap_err();
    assert_eq!(error.error_type(), "SourceTarballNotFound");
    assert!(
        error
            .to_string()
            .contains(&format!("s3://{bucket}/hhvm-4.168.2.tar.gz")),
        "{error}"
    );
}

#[tokio::test]
async fn unreachable_s3_is_an_aws_service_error_not_a_missing_tarball() {
    let s3 = pipeline_aws::s3_client(&unreachable_sdk_config().await);
    let input = json!({"source": {"bucket": "hhvm-scratch", "path": "hhvm-4.168.2.tar.gz"}});
    let error = have_source_tarball::handle(&s3, input).await.unwrap_err();
    assert_eq!(error.error_type(), "AwsServiceError");
    assert!(error.to_string().contains("could not reach the service"), "{error}");
}

#[tokio::test]
async fn bad_source_is_invalid_input_and_calls_nothing() {
    // The unreachable client would turn any AWS call into AwsServiceError.
    let s3 = pipeline_aws::s3_client(&unreachable_sdk_config().await);
    let cases = [
        (json!({}), "field `source`: missing"),
        (json!({"source": "s3://b/k"}), "field `source`: expected an object"),
        (
            json!({"source": {"bucket": "Bad_Bucket", "path": "k"}}),
            "not a valid S3 bucket name",
        ),
        (json!({"source": {"bucket": "hhvm-scratch"}}), "missing field `path`"),
        (
            json!({"source": {"bucket": "hhvm-scratch", "path": "/abs"}}),
            "starts with '/'",
        ),
        (json!("not an object"), "expected a JSON object"),
    ];
    for (input, expected) in cases {
        let error = have_source_tarball::handle(&s3, input.clone()).await.unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput", "{input}");
        assert!(error.to_string().contains(expected), "{input}: {error}");
    }
}
