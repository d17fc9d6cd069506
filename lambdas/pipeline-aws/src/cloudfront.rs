//! CloudFront calls.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::error::SdkError;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use pipeline_core::{Payload, PipelineError};

/// How far back an earlier attempt's invalidation is looked for. Retries of a Task happen
/// within minutes; the window bounds how much invalidation history is read.
const RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// An invalidation, as the pipeline reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    pub id: String,
    pub status: String,
    /// False when an earlier attempt had already created it.
    pub created_now: bool,
}

/// Whether `text` looks like a CloudFront distribution ID (upper-case letters and digits).
pub fn is_distribution_id(text: &str) -> bool {
    (1..=32).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// `CLOUDFRONT_DISTRIBUTION_ID`, when set: the distribution used when the payload names none.
pub fn configured_distribution_id(source: &impl crate::config::Source) -> Result<Option<String>, PipelineError> {
    let distribution_id = source
        .get("CLOUDFRONT_DISTRIBUTION_ID")
        .filter(|v| !v.trim().is_empty());
    if let Some(id) = &distribution_id
        && !is_distribution_id(id)
    {
        return Err(PipelineError::configuration(
            "CLOUDFRONT_DISTRIBUTION_ID",
            format!("{id:?} is not a CloudFront distribution ID (upper-case letters and digits)"),
        ));
    }
    Ok(distribution_id)
}

/// The distribution to invalidate: the configured one, which a payload's `cloudfront` (as the
/// original's payloads carry it) may repeat but not replace — an input never points the
/// function at another distribution. Without a configured one, the payload's.
pub fn distribution_for(payload: &Payload, configured: Option<&str>) -> Result<Option<String>, PipelineError> {
    let given = match payload.optional_nonempty_str("cloudfront")? {
        Some(id) if !is_distribution_id(&id) => {
            return Err(PipelineError::invalid_input(
                "cloudfront",
                format!("{id:?} is not a CloudFront distribution ID (upper-case letters and digits)"),
            ));
        }
        given => given,
    };
    match (given, configured) {
        (Some(given), Some(configured)) if given != configured => Err(PipelineError::invalid_input(
            "cloudfront",
            format!("is {given}, but this deployment's distribution is {configured} (CLOUDFRONT_DISTRIBUTION_ID)"),
        )),
        (given, configured) => Ok(configured.map(str::to_string).or(given)),
    }
}

/// Creates an invalidation of `paths` with `caller_reference`, unless one with that reference
/// exists already. CloudFront itself answers a repeated reference with the earlier
/// invalidation, but emulators do not, and looking first also turns "same reference, other
/// paths" into the typed `InvalidationAlreadyExists` before anything is sent.
pub async fn create_invalidation_once(
    cloudfront: &Client,
    distribution_id: &str,
    caller_reference: &str,
    paths: &[String],
) -> Result<Invalidation, PipelineError> {
    if let Some(existing) = find_invalidation(cloudfront, distribution_id, caller_reference, paths).await? {
        return Ok(existing);
    }
    let batch = InvalidationBatch::builder()
        .caller_reference(caller_reference)
        .paths(
            Paths::builder()
                .quantity(paths.len() as i32)
                .set_items(Some(paths.to_vec()))
                .build()
                .map_err(|error| PipelineError::invalid_input("paths", error))?,
        )
        .build()
        .map_err(|error| PipelineError::invalid_input("paths", error))?;
    let result = cloudfront
        .create_invalidation()
        .distribution_id(distribution_id)
        .invalidation_batch(batch)
        .send()
        .await;
    match result {
        Ok(output) => {
            let invalidation = output.invalidation();
            Ok(Invalidation {
                id: invalidation.map(|i| i.id().to_string()).unwrap_or_default(),
                status: invalidation.map(|i| i.status().to_string()).unwrap_or_default(),
                created_now: true,
            })
        }
        // The SDK models no type for this code; CloudFront sends it for a reused reference.
        Err(SdkError::ServiceError(context))
            if context.err().meta().code() == Some("InvalidationBatchAlreadyExists") =>
        {
            Err(PipelineError::InvalidationAlreadyExists {
                caller_reference: caller_reference.to_string(),
                problem: "CloudFront holds an invalidation with this reference for other paths".to_string(),
            })
        }
        Err(error) => Err(crate::service_error(
            &format!("CloudFront CreateInvalidation on {distribution_id}"),
            error,
        )),
    }
}

async fn find_invalidation(
    cloudfront: &Client,
    distribution_id: &str,
    caller_reference: &str,
    paths: &[String],
) -> Result<Option<Invalidation>, PipelineError> {
    let since = SystemTime::now() - RETRY_WINDOW;
    let mut marker: Option<String> = None;
    loop {
        let page = cloudfront
            .list_invalidations()
            .distribution_id(distribution_id)
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|error| {
                crate::service_error(&format!("CloudFront ListInvalidations on {distribution_id}"), error)
            })?;
        let Some(list) = page.invalidation_list() else {
            return Ok(None);
        };
        let recent: Vec<&str> = list
            .items()
            .iter()
            .filter(|summary| SystemTime::try_from(*summary.create_time()).is_ok_and(|created| created >= since))
            .map(|summary| summary.id())
            .collect();
        for id in &recent {
            let output = cloudfront
                .get_invalidation()
                .distribution_id(distribution_id)
                .id(*id)
                .send()
                .await
                .map_err(|error| crate::service_error(&format!("CloudFront GetInvalidation {id}"), error))?;
            let Some(invalidation) = output.invalidation() else {
                continue;
            };
            let Some(batch) = invalidation.invalidation_batch() else {
                continue;
            };
            if batch.caller_reference() != caller_reference {
                continue;
            }
            let existing_paths = batch.paths().map(|p| p.items()).unwrap_or_default();
            if existing_paths != paths {
                return Err(PipelineError::InvalidationAlreadyExists {
                    caller_reference: caller_reference.to_string(),
                    problem: format!("{id} invalidates {existing_paths:?}, not {paths:?}"),
                });
            }
            tracing::info!(id, "invalidation already created by an earlier attempt");
            return Ok(Some(Invalidation {
                id: invalidation.id().to_string(),
                status: invalidation.status().to_string(),
                created_now: false,
            }));
        }
        // CloudFront lists the newest first: a page with nothing recent ends the search.
        if recent.is_empty() || !list.is_truncated() {
            return Ok(None);
        }
        marker = list.next_marker().map(str::to_string);
        if marker.is_none() {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_ids_are_upper_case_alphanumerics() {
        assert!(is_distribution_id("E35YBTV6QCR5BA"));
        for bad in ["", "e35ybtv6qcr5ba", "E35/..", "E35 YB", &"E".repeat(33)] {
            assert!(!is_distribution_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_configured_distribution_is_validated_and_blank_is_unset() {
        let set = |name: &str| (name == "CLOUDFRONT_DISTRIBUTION_ID").then(|| "E35YBTV6QCR5BA".to_string());
        assert_eq!(
            configured_distribution_id(&set).unwrap().as_deref(),
            Some("E35YBTV6QCR5BA")
        );
        let blank = |_: &str| Some("  ".to_string());
        assert_eq!(configured_distribution_id(&blank).unwrap(), None);
        let bad = |name: &str| (name == "CLOUDFRONT_DISTRIBUTION_ID").then(|| "e3".to_string());
        let error = configured_distribution_id(&bad).unwrap_err();
        assert_eq!(error.error_type(), "ConfigurationError");
        assert!(error.to_string().contains("CLOUDFRONT_DISTRIBUTION_ID"), "{error}");
    }

    #[test]
    fn the_payload_distribution_is_validated_and_never_replaces_the_configured_one() {
        let id = |input: serde_json::Value, configured: Option<&str>| {
            distribution_for(&Payload::from_value(input).unwrap(), configured)
        };
        let ours = Some("E35YBTV6QCR5BA");
        assert_eq!(
            id(serde_json::json!({"cloudfront": "E35YBTV6QCR5BA"}), ours)
                .unwrap()
                .as_deref(),
            ours
        );
        assert_eq!(
            id(serde_json::json!({"cloudfront": ""}), ours).unwrap().as_deref(),
            ours
        );
        assert_eq!(id(serde_json::json!({}), None).unwrap(), None);
        assert_eq!(
            id(serde_json::json!({"cloudfront": "EABC"}), None).unwrap().as_deref(),
            Some("EABC")
        );
        for (input, configured) in [
            (serde_json::json!({"cloudfront": "lower-case"}), None),
            (serde_json::json!({"cloudfront": "EOTHER1"}), ours),
        ] {
            let error = id(input, configured).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput");
            assert!(error.to_string().contains("`cloudfront`"), "{error}");
        }
    }
}
