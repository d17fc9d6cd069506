//! SDK clients answered by aws-smithy-mocks rules instead of a server, for answers an emulator
//! cannot produce. Built from each SDK's `Config::builder()` with the mock HTTP client, so no
//! SDK crate needs its `test-util` feature.

use aws_credential_types::Credentials;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// A client of the SDK crate `$sdk` (e.g. `aws_sdk_s3`) whose calls are answered by
/// `$interceptor` (a `MockResponseInterceptor`); a call no rule matches fails, nothing is sent.
#[macro_export]
macro_rules! mocked_client {
    ($sdk:ident, $interceptor:expr $(,)?) => {{
        let config = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new("us-east-1"))
            .credentials_provider($crate::mocks::credentials())
            .http_client($crate::mocks::http_client())
            .interceptor($interceptor)
            .build();
        $sdk::Client::from_conf(config)
    }};
}

/// The fixed credentials of mocked clients.
pub fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "mock")
}

/// An HTTP client that never sends anything: the interceptor's rules answer first.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_mocks::create_mock_http_client()
}

/// An interceptor answering each call with the first of `rules` that matches it.
pub fn match_any(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
        |interceptor, rule| interceptor.with_rule(rule),
    )
}

/// A raw HTTP answer, for responses the SDK has to parse itself (error codes it models no type for).
pub fn http_response(status: u16, body: impl Into<SdkBody>) -> HttpResponse {
    HttpResponse::new(StatusCode::try_from(status).expect("an HTTP status code"), body.into())
}
