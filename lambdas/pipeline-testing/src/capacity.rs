//! EC2 without spot capacity, which moto always has: an SDK configuration whose HTTP client
//! answers every RunInstances request asking for spot capacity as EC2 does when it has none (its
//! XML error, with the status EC2 sends), and passes every other request on to the emulator.
//! The refused request never reaches moto, so nothing is launched for it, as on EC2; and the
//! real SDK parses the answer and applies its retry policy to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::SdkConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// How many spot requests were refused.
#[derive(Debug, Clone, Default)]
pub struct SpotRefusals(Arc<AtomicUsize>);

impl SpotRefusals {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// `sdk_config` with every spot RunInstances answered by EC2's error `code` and HTTP `status`
/// (500 for `InsufficientInstanceCapacity`, a server error; 400 for `SpotMaxPriceTooLow`), and
/// the count of those answers.
pub fn without_spot_capacity(sdk_config: &SdkConfig, code: &'static str, status: u16) -> (SdkConfig, SpotRefusals) {
    let inner = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_https();
    let refusals = SpotRefusals::default();
    let counted = refusals.clone();
    let client = http_client_fn(move |settings, components| {
        SharedHttpConnector::new(RefusingSpot {
            inner: inner.http_connector(settings, components),
            code,
            status,
            refusals: counted.clone(),
        })
    });
    (sdk_config.to_builder().http_client(client).build(), refusals)
}

#[derive(Debug)]
struct RefusingSpot {
    inner: SharedHttpConnector,
    code: &'static str,
    status: u16,
    refusals: SpotRefusals,
}

/// Whether a request is a RunInstances asking for spot capacity (EC2's query protocol: a form).
fn asks_for_spot(request: &HttpRequest) -> bool {
    let Some(body) = request.body().bytes() else {
        return false;
    };
    let form = String::from_utf8_lossy(body);
    let fields: Vec<&str> = form.split('&').collect();
    fields.contains(&"Action=RunInstances") && fields.contains(&"InstanceMarketOptions.MarketType=spot")
}

impl HttpConnector for RefusingSpot {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if !asks_for_spot(&request) {
            return self.inner.call(request);
        }
        self.refusals.0.fetch_add(1, Ordering::SeqCst);
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code>\
             <Message>There is no Spot capacity available that matches your request.</Message></Error></Errors>\
             <RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>",
            self.code
        );
        let status = StatusCode::try_from(self.status).expect("an HTTP status code");
        HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::from(body))))
    }
}
