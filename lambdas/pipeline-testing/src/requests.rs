//! Counting the requests an SDK client sends, by operation (`ListObjectsV2`, `GetObject`,
//! `PutObject`, …), retries included: what a test asserts of a function's cost, and what the
//! benchmark reports.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The requests sent through the clients it is attached to, by operation name.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    /// Every operation sent so far, with its count.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many `operation` requests were sent.
    pub fn count(&self, operation: &str) -> u64 {
        self.counts().get(operation).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counts().values().sum()
    }

    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// `client` with this counter attached.
    pub fn s3(&self, client: &aws_sdk_s3::Client) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(client.config().to_builder().interceptor(self.clone()).build())
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    // Once per attempt, just before it goes out: a retry is a request too.
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map_or_else(|| "(unknown)".to_string(), |metadata| metadata.name().to_string());
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(operation)
            .or_default() += 1;
        Ok(())
    }
}
