//! have-source-tarball against a real S3 API (moto) through the real SDK client.

mod errors;

use aws_sdk_s3::primitives::ByteStream;
use have_source_tarball::Config;
use pipeline_testing::{MotoServer, create_bucket, unreachable_sdk_config};
use serde_json::json;

async fn s3() -> aws_sdk_s3::Client {
    pipeline_aws::s3_client(&MotoServer::shared().sdk_config().await)
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"tar"))
        .send()
        .await
        .unwrap();
}

/// A download bucket (nightly tarballs) and a scratch bucket (release tarballs, markers), and
/// the bucket the tarball of `version` belongs in.
async fn buckets(s3: &aws_sdk_s3::Client, version: &str) -> (String, Config) {
    let config = Config {
        downloads: create_bucket(s3, "downloads").await.parse().unwrap(),
        scratch: create_bucket(s3, "scratch").await.parse().unwrap(),
    };
    let tarballs = config.source_tarball(&version.parse().unwrap()).bucket.to_string();
    (tarballs, config)
}

fn unreachable_config() -> Config {
    Config {
        downloads: "hhvm-downloads".parse().unwrap(),
        scratch: "hhvm-scratch".parse().unwrap(),
    }
}

#[tokio::test]
async fn existing_tarball_passes_the_input_through_unchanged() {
    let s3 = s3().await;
    let (bucket, config) = buckets(&s3, "2026.11.21").await;
    let key = "source/nightlies/hhvm-nightly-2026.11.21.tar.gz";
    for part in ["", ".sig", ".sha256"] {
        put(&s3, &bucket, &format!("{key}{part}")).await;
    }
    put(&s3, config.scratch.as_str(), "markers/2026.11.21/source-tarball.json").await;

    let text = format!(
        r#"{{"version": "2026.11.21", "source": {{"bucket": "{bucket}", "path": "{key}"}},
            "unknown": {{"nested": [1, null, 2.50]}}, "big": 98765432109876543210987, "none": null}}"#
    );
    let input: serde_json::Value = serde_json::from_str(&text).unwrap();
    let output = have_source_tarball::handle(&s3, &config, input.clone()).await.unwrap();
    assert_eq!(
        serde_json::to_string(&output).unwrap(),
        serde_json::to_string(&input).unwrap()
    );
}

#[tokio::test]
async fn missing_tarball_is_source_tarball_not_found() {
    let s3 = s3().await;
    let (bucket, config) = buckets(&s3, "4.168.2").await;
    let input = json!({"version": "4.168.2", "source": {"bucket": bucket, "path": "hhvm-4.168.2.tar.gz"}});
    let error = have_source_tarball::handle(&s3, &config, input).await.unwrap_err();
    assert_eq!(error.error_type(), "SourceTarballNotFound");
    assert_eq!(
        error.to_string(),
        format!("source tarball s3://{bucket}/hhvm-4.168.2.tar.gz is missing (build-source-tarball creates it)")
    );
}

#[tokio::test]
async fn a_tarball_without_its_signature_checksums_or_marker_is_not_there() {
    let s3 = s3().await;
    let (bucket, config) = buckets(&s3, "4.168.2").await;
    let key = "hhvm-4.168.2.tar.gz";
    let input = json!({"version": "4.168.2", "source": {"bucket": bucket, "path": key}});
    let marker = format!("s3://{}/markers/4.168.2/source-tarball.json", config.scratch);
    put(&s3, &bucket, key).await;
    for (missing, then_put) in [
        (
            format!("s3://{bucket}/{key}.sig"),
            (bucket.as_str(), format!("{key}.sig")),
        ),
        (
            format!("s3://{bucket}/{key}.sha256"),
            (bucket.as_str(), format!("{key}.sha256")),
        ),
        (
            marker,
            (
                config.scratch.as_str(),
                "markers/4.168.2/source-tarball.json".to_string(),
            ),
        ),
    ] {
        let error = have_source_tarball::handle(&s3, &config, input.clone())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "SourceTarballNotFound");
        assert!(
            error.to_string().contains(&format!(": {missing} is missing")),
            "{error}"
        );
        put(&s3, then_put.0, &then_put.1).await;
    }
    assert!(have_source_tarball::handle(&s3, &config, input).await.is_ok());
}

#[tokio::test]
async fn unreachable_s3_is_an_aws_service_error_not_a_missing_tarball() {
    let s3 = pipeline_aws::s3_client(&unreachable_sdk_config().await);
    let config = unreachable_config();
    let input = json!({"version": "4.168.2", "source": {"bucket": "hhvm-scratch", "path": "hhvm-4.168.2.tar.gz"}});
    let error = have_source_tarball::handle(&s3, &config, input).await.unwrap_err();
    assert_eq!(error.error_type(), "AwsServiceError");
    assert!(error.to_string().contains("could not reach the service"), "{error}");
}

#[tokio::test]
async fn bad_source_is_invalid_input_and_calls_nothing() {
    // The unreachable client would turn any AWS call into AwsServiceError.
    let s3 = pipeline_aws::s3_client(&unreachable_sdk_config().await);
    let config = unreachable_config();
    let source = json!({"bucket": "hhvm-scratch", "path": "hhvm-4.168.2.tar.gz"});
    let cases = [
        (
            json!({"version": "4.168.2", "source": {"bucket": "someone-elses-bucket", "path": "hhvm-4.168.2.tar.gz"}}),
            "belongs at s3://hhvm-scratch/hhvm-4.168.2.tar.gz",
        ),
        (
            json!({"version": "4.168.2", "source": {"bucket": "hhvm-scratch", "path": "hhvm-4.168.1.tar.gz"}}),
            "belongs at",
        ),
        (
            json!({"version": "4.168.2", "source": "s3://b/k"}),
            "field `source`: expected an object",
        ),
        (
            json!({"version": "4.168.2", "source": {"bucket": "Bad_Bucket", "path": "k"}}),
            "not a valid S3 bucket name",
        ),
        (
            json!({"version": "4.168.2", "source": {"bucket": "hhvm-scratch"}}),
            "missing field `path`",
        ),
        (
            json!({"version": "4.168.2", "source": {"bucket": "hhvm-scratch", "path": "/abs"}}),
            "starts with '/'",
        ),
        (json!({"source": source}), "field `version`: missing"),
        (json!({"version": "4.1", "source": source}), "version"),
        (json!("not an object"), "expected a JSON object"),
    ];
    for (input, expected) in cases {
        let error = have_source_tarball::handle(&s3, &config, input.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(error.error_type(), "InvalidInput" | "InvalidVersion"),
            "{input}: {error}"
        );
        assert!(error.to_string().contains(expected), "{input}: {error}");
    }
}
