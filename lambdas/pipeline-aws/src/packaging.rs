//! Reading the packaging repository: which distros a branch builds (`CURRENT_TARGETS`).
//!
//! The URL is a template from configuration (`CURRENT_TARGETS_URL`, with `{branch}` replaced),
//! e.g. `https://raw.githubusercontent.com/hhvm/packaging/{branch}/CURRENT_TARGETS` in
//! production and a local HTTP server in the local stack.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pipeline_core::distro::parse_current_targets;
use pipeline_core::{Distro, PackagingBranch, PipelineError};

/// The file is a few lines; anything larger is not a CURRENT_TARGETS file.
const MAX_BODY_BYTES: usize = 64 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// `CURRENT_TARGETS_URL`: an http(s) URL template in which `{branch}` stands for the packaging
/// branch.
pub fn configured_current_targets_url(source: &impl crate::config::Source) -> Result<String, PipelineError> {
    let expected = "an http(s) URL template with {branch}";
    let url: String = crate::config::required(source, "CURRENT_TARGETS_URL", expected)?;
    if !(url.starts_with("https://") || url.starts_with("http://")) || !url.contains("{branch}") {
        return Err(PipelineError::configuration(
            "CURRENT_TARGETS_URL",
            format!("{url:?} is not {expected}"),
        ));
    }
    Ok(url)
}

/// The URL of a branch's CURRENT_TARGETS.
pub fn current_targets_url(url_template: &str, branch: &PackagingBranch) -> String {
    url_template.replace("{branch}", &branch.to_string())
}

/// The URL of another file of a branch of the packaging repository (`DEBIAN_REPOSITORIES`):
/// beside its CURRENT_TARGETS, when the configured URL ends with that file's name.
pub fn packaging_file_url(url_template: &str, branch: &PackagingBranch, file: &str) -> Option<String> {
    current_targets_url(url_template, branch)
        .strip_suffix("/CURRENT_TARGETS")
        .map(|base| format!("{base}/{file}"))
}

/// The distros `branch` builds, validated (a bad line is an error, not a silently skipped distro).
pub async fn fetch_current_targets(url_template: &str, branch: &PackagingBranch) -> Result<Vec<Distro>, PipelineError> {
    let url = current_targets_url(url_template, branch);
    let unavailable = |problem: String| PipelineError::CurrentTargetsUnavailable {
        url: url.clone(),
        problem,
    };
    let text = tokio::time::timeout(FETCH_TIMEOUT, fetch_text(&url, MAX_BODY_BYTES))
        .await
        .map_err(|_| unavailable(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())))?
        .map_err(|problem| unavailable(format!("{problem} (does the packaging branch exist?)")))?;
    let distros = parse_current_targets(&text).map_err(unavailable)?;
    if distros.is_empty() {
        return Err(unavailable("the file lists no distros".into()));
    }
    tracing::info!(%url, distros = distros.len(), "read CURRENT_TARGETS");
    Ok(distros)
}

/// The body of a plain GET of `url` (http or https) as text, at most `max_bytes` of it.
pub async fn fetch_text(url: &str, max_bytes: usize) -> Result<String, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a valid URL: {e}"))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| format!("no TLS root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let response = client.get(uri).await.map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let body = Limited::new(response.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| "the file is not UTF-8 text".to_string())
}

#[cfg(test)]
mod tests {
    use pipeline_testing::http::serve_current_targets;

    use super::*;

    #[test]
    fn the_branch_is_substituted() {
        let url = current_targets_url(
            "https://example.test/p/{branch}/CURRENT_TARGETS",
            &"HHVM-4.168".parse().unwrap(),
        );
        assert_eq!(url, "https://example.test/p/HHVM-4.168/CURRENT_TARGETS");
        assert_eq!(
            packaging_file_url(
                "https://example.test/p/{branch}/CURRENT_TARGETS",
                &"HHVM-4.168".parse().unwrap(),
                "DEBIAN_REPOSITORIES"
            )
            .as_deref(),
            Some("https://example.test/p/HHVM-4.168/DEBIAN_REPOSITORIES")
        );
        assert_eq!(
            packaging_file_url(
                "https://example.test/targets?b={branch}",
                &"master".parse().unwrap(),
                "X"
            ),
            None
        );
    }

    #[tokio::test]
    async fn distros_are_read_from_the_branch() {
        let template = serve_current_targets("200 OK", "debian-12-bookworm\nubuntu-24.04-noble\n");
        let distros = fetch_current_targets(&template, &PackagingBranch::Master)
            .await
            .unwrap();
        assert_eq!(
            distros.iter().map(Distro::as_str).collect::<Vec<_>>(),
            ["debian-12-bookworm", "ubuntu-24.04-noble"]
        );
    }

    #[tokio::test]
    async fn a_missing_branch_is_current_targets_unavailable() {
        let template = serve_current_targets("404 Not Found", "404: Not Found");
        let error = fetch_current_targets(&template, &"HHVM-9.9".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "CurrentTargetsUnavailable");
        assert!(error.to_string().contains("HHVM-9.9/CURRENT_TARGETS"), "{error}");
        assert!(error.to_string().contains("404"), "{error}");
    }

    #[tokio::test]
    async fn a_bad_line_is_an_error_not_a_skipped_distro() {
        let template = serve_current_targets("200 OK", "debian-12-bookworm\nrm -rf /\n");
        let error = fetch_current_targets(&template, &PackagingBranch::Master)
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "CurrentTargetsUnavailable");
        assert!(error.to_string().contains("not a distro name"), "{error}");
    }

    #[tokio::test]
    async fn nothing_listening_is_current_targets_unavailable() {
        let error = fetch_current_targets("http://127.0.0.1:1/{branch}", &PackagingBranch::Master)
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "CurrentTargetsUnavailable");
    }
}
