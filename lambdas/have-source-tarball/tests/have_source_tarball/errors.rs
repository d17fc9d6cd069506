//! Failures an emulator cannot produce, through the real SDK client with aws-smithy-mocks.

use aws_smithy_mocks::{MockResponseInterceptor, mock};
use aws_smithy_types::body::SdkBody;
use pipeline_testing::mocked_client;
use pipeline_testing::mocks::http_response;
use serde_json::json;

fn config() -> have_source_tarball::Config {
    have_source_tarball::Config {
        downloads: "hhvm-downloads".parse().unwrap(),
        scratch: "hhvm-scratch".parse().unwrap(),
    }
}

fn s3_answering(status: u16) -> aws_sdk_s3::Client {
    let rule =
        mock!(aws_sdk_s3::Client::head_object).then_http_response(move || http_response(status, SdkBody::empty()));
    mocked_client!(aws_sdk_s3, MockResponseInterceptor::new().with_rule(&rule))
}

#[tokio::test]
async fn forbidden_is_a_refused_request_not_a_missing_tarball() {
    let input = json!({"version": "4.168.2", "source": {"bucket": "hhvm-scratch", "path": "hhvm-4.168.2.tar.gz"}});
    let error = have_source_tarball::handle(&s3_answering(403), &config(), input)
        .await
        .unwrap_err();
    // A 403 is not retried like throttling.
    assert_eq!(error.error_type(), "AwsRequestRefused");
    assert!(error.to_string().contains("HTTP 403"), "{error}");
    assert!(
        error.to_string().contains("s3://hhvm-scratch/hhvm-4.168.2.tar.gz"),
        "{error}"
    );
}

#[tokio::test]
async fn server_errors_and_throttling_are_aws_service_errors_which_are_retried() {
    let input = json!({"version": "4.168.2", "source": {"bucket": "hhvm-scratch", "path": "hhvm-4.168.2.tar.gz"}});
    for status in [500, 503] {
        let error = have_source_tarball::handle(&s3_answering(status), &config(), input.clone())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "AwsServiceError", "HTTP {status}: {error}");
    }
}

#[tokio::test]
async fn not_found_status_is_source_tarball_not_found() {
    let input = json!({"version": "4.168.2", "source": {"bucket": "hhvm-scratch", "path": "hhvm-4.168.2.tar.gz"}});
    let error = have_source_tarball::handle(&s3_answering(404), &config(), input)
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "SourceTarballNotFound");
}
