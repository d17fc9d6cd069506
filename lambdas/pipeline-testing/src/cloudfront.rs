//! CloudFront in moto: a distribution to invalidate, and the invalidations it received.

use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::types::{
    DefaultCacheBehavior, DistributionConfig, InvalidationSummary, Origin, Origins, S3OriginConfig,
    ViewerProtocolPolicy,
};

use crate::{MotoServer, unique_name};

/// A CloudFront client for the shared moto server.
pub async fn cloudfront_client() -> Client {
    Client::new(&MotoServer::shared().sdk_config().await)
}

/// Creates a distribution in front of a downloads bucket; returns its ID.
pub async fn create_distribution(cloudfront: &Client) -> String {
    let origin = Origin::builder()
        .id("downloads")
        .domain_name("hhvm-downloads.s3.amazonaws.com")
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .build()
        .expect("a complete origin");
    let config = DistributionConfig::builder()
        .caller_reference(unique_name("distribution"))
        .comment("test")
        .enabled(true)
        .origins(
            Origins::builder()
                .quantity(1)
                .items(origin)
                .build()
                .expect("complete origins"),
        )
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("downloads")
                .viewer_protocol_policy(ViewerProtocolPolicy::AllowAll)
                .build()
                .expect("a complete cache behaviour"),
        )
        .build()
        .expect("a complete distribution configuration");
    let output = cloudfront
        .create_distribution()
        .distribution_config(config)
        .send()
        .await
        .expect("create a distribution");
    output
        .distribution()
        .expect("the created distribution")
        .id()
        .to_string()
}

/// How many invalidations the distribution has received.
pub async fn invalidation_count(cloudfront: &Client, distribution: &str) -> usize {
    invalidation_summaries(cloudfront, distribution).await.len()
}

/// Every invalidation of the distribution: its ID and its paths.
pub async fn invalidations(cloudfront: &Client, distribution: &str) -> Vec<(String, Vec<String>)> {
    let mut result = Vec::new();
    for summary in invalidation_summaries(cloudfront, distribution).await {
        let got = cloudfront
            .get_invalidation()
            .distribution_id(distribution)
            .id(summary.id())
            .send()
            .await
            .expect("get an invalidation");
        let batch = got
            .invalidation()
            .and_then(|i| i.invalidation_batch())
            .expect("the invalidation's batch");
        let paths = batch.paths().expect("the batch's paths").items().to_vec();
        result.push((summary.id().to_string(), paths));
    }
    result
}

/// The first page of the distribution's invalidations (tests create only a few).
async fn invalidation_summaries(cloudfront: &Client, distribution: &str) -> Vec<InvalidationSummary> {
    let list = cloudfront
        .list_invalidations()
        .distribution_id(distribution)
        .send()
        .await
        .expect("list invalidations");
    list.invalidation_list().map(|l| l.items().to_vec()).unwrap_or_default()
}
