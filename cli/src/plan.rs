//! `plan`: what a build and publish of a version would do, decided from the answers of the
//! machines' own read-only steps — `hhvm-get-build-version` (the version, branch, source and
//! release gate, validated as the machines' first step validates them), `hhvm-have-source-tarball`
//! (whether "Create Source Tarball" runs) and `hhvm-get-build-status` (each distro's success
//! marker, which `hhvm-build-binary-packages` skips a distro for) — and the packaging branch's
//! `DEBIAN_REPOSITORIES` (the suites update-repos.sh updates, whose release files it
//! invalidates). Pure: the commands fetch the answers.

use pipeline_core::Distro;
use serde::Serialize;
use serde_json::Value;

/// What a build and publish of one version would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionPlan {
    pub version: String,
    pub packaging_branch: String,
    pub nightly: bool,
    /// Whether the publish waits for `hhvmctl approve` (the release gate).
    pub waits_for_approval: bool,
    pub source_tarball: Step,
    pub distros: Vec<DistroStep>,
    pub publish: Publish,
    /// The CDN paths the repository update invalidates: each suite's release files.
    pub invalidations: Vec<String>,
}

/// Whether a step runs, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub action: Action,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Build,
    Rebuild,
    Skip,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Build => "build",
            Action::Rebuild => "rebuild",
            Action::Skip => "skip",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DistroStep {
    pub distro: String,
    #[serde(flatten)]
    pub step: Step,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Publish {
    /// A release's source: where its tarball is copied, and the tag and branch pushed to the
    /// public repository. `None` for a nightly (its tarball is published when built).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_source: Option<ReleaseSource>,
    /// Each distro's suites, `<os>/<dist>`.
    pub suites: Vec<DistroSuites>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSource {
    pub tarball: String,
    pub tag: String,
    pub branch: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DistroSuites {
    pub distro: String,
    pub suites: Vec<String>,
}

/// What the read-only steps answered for one version.
#[derive(Debug, Clone)]
pub struct Answers<'a> {
    /// `hhvm-get-build-version`'s output.
    pub build: &'a Value,
    /// `hhvm-have-source-tarball`: `Ok` when the tarball is there, else its error message.
    pub source_tarball: Result<(), String>,
    /// `hhvm-get-build-status`'s report.
    pub status: &'a Value,
    /// The packaging branch's `DEBIAN_REPOSITORIES` templates.
    pub suite_templates: &'a [String],
    pub force: bool,
}

/// The plan from the answers; an answer that lacks what every answer has is an error.
pub fn plan(answers: &Answers<'_>) -> Result<VersionPlan, String> {
    let text = |value: &Value, field: &str| -> Result<String, String> {
        value[field]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("the answer has no {field}"))
    };
    let version = text(answers.build, "version")?;
    let packaging_branch = text(answers.build, "packagingBranch")?;
    let nightly = answers.build["nightly"].as_bool().unwrap_or(false);
    let source_tarball = match &answers.source_tarball {
        Ok(()) => Step {
            action: Action::Skip,
            reason: format!("present at {}", location(&answers.build["source"])),
        },
        Err(missing) => Step {
            action: Action::Build,
            reason: missing.clone(),
        },
    };
    let artifacts = answers.status["artifacts"]
        .as_object()
        .ok_or("the status has no artifacts")?;
    let mut distros = Vec::new();
    let mut suites = Vec::new();
    let mut invalidations = Vec::new();
    for (name, artifact) in artifacts.iter().filter(|(name, _)| name.as_str() != "source") {
        let distro: Distro = name.parse()?;
        distros.push(DistroStep {
            distro: name.clone(),
            step: distro_step(artifact, answers.force),
        });
        let distro_suites = distro.suites(answers.suite_templates)?;
        for suite in &distro_suites {
            for file in ["InRelease", "Release", "Release.gpg"] {
                invalidations.push(format!("/{}/dists/{}/{file}", distro.os(), suite_dist(suite)));
            }
        }
        suites.push(DistroSuites {
            distro: name.clone(),
            suites: distro_suites,
        });
    }
    invalidations.sort();
    invalidations.dedup();
    let release_source = (!nightly).then(|| ReleaseSource {
        tarball: location(&answers.status["artifacts"]["source"]["location"]),
        tag: format!("HHVM-{version}"),
        branch: packaging_branch.clone(),
    });
    Ok(VersionPlan {
        version,
        packaging_branch,
        nightly,
        waits_for_approval: answers.build[pipeline_core::approval::REQUIRE_APPROVAL_FIELD]
            .as_bool()
            .unwrap_or(false),
        source_tarball,
        distros,
        publish: Publish { release_source, suites },
        invalidations,
    })
}

/// `hhvm-build-binary-packages` skips a distro whose success marker exists, unless `force`.
fn distro_step(artifact: &Value, force: bool) -> Step {
    let marker = artifact["marker"].as_object().map(|_| location(&artifact["marker"]));
    let problem = artifact["problem"].as_str();
    match (marker, force) {
        (Some(marker), true) => Step {
            action: Action::Rebuild,
            reason: format!("--force: the marker {marker} is replaced"),
        },
        (Some(marker), false) => Step {
            action: Action::Skip,
            reason: match problem.filter(|_| artifact["status"] == "failed") {
                Some(problem) => format!(
                    "a marker is there ({marker}) but the build's check will refuse it: {problem}; --force rebuilds it"
                ),
                None => format!("built: {marker}"),
            },
        },
        (None, _) => Step {
            action: if force { Action::Rebuild } else { Action::Build },
            reason: match artifact["status"].as_str() {
                Some("failed") => format!(
                    "no success marker; the last attempt failed (log {})",
                    location(&artifact["log"])
                ),
                _ => "no success marker".to_string(),
            },
        },
    }
}

/// `s3://bucket/path` of an S3 location as the functions write it.
fn location(value: &Value) -> String {
    crate::status::s3_url(value).unwrap_or_else(|| "(unknown)".to_string())
}

/// Paths grouped by their directory, in order: `/debian/dists/bookworm` → its release files.
fn by_directory(paths: &[String]) -> Vec<(&str, Vec<&str>)> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for path in paths {
        let (directory, file) = path.rsplit_once('/').unwrap_or(("", path));
        match groups.last_mut() {
            Some((last, files)) if *last == directory => files.push(file),
            _ => groups.push((directory, vec![file])),
        }
    }
    groups
}

fn suite_dist(suite: &str) -> &str {
    suite.split_once('/').map_or(suite, |(_, dist)| dist)
}

/// The plans as text: per version, its steps, what it publishes and what it invalidates.
pub fn render(plans: &[VersionPlan]) -> String {
    let mut out = String::new();
    for plan in plans {
        let kind = if plan.nightly { "a nightly" } else { "a release" };
        let gate = if plan.waits_for_approval {
            "; the publish waits for approval"
        } else {
            ""
        };
        out.push_str(&format!(
            "{} ({kind}, packaging branch {}{gate})\n",
            plan.version, plan.packaging_branch
        ));
        let width = plan
            .distros
            .iter()
            .map(|step| step.distro.len())
            .chain(["source tarball".len()])
            .max()
            .unwrap_or(0);
        let steps = std::iter::once(("source tarball", &plan.source_tarball))
            .chain(plan.distros.iter().map(|s| (s.distro.as_str(), &s.step)));
        for (name, step) in steps {
            out.push_str(&format!(
                "  {name:width$}  {:7}  {}\n",
                step.action.as_str(),
                step.reason
            ));
        }
        out.push_str("  publishes\n");
        if let Some(source) = &plan.publish.release_source {
            out.push_str(&format!(
                "    the release source: {}, tag {} and branch {} to the public repository\n",
                source.tarball, source.tag, source.branch
            ));
        }
        for distro in &plan.publish.suites {
            out.push_str(&format!("    {} to {}\n", distro.distro, distro.suites.join(", ")));
        }
        out.push_str("  invalidates\n");
        for (directory, files) in by_directory(&plan.invalidations) {
            out.push_str(&format!("    {directory}/ {}\n", files.join(", ")));
        }
        out.push_str("    and the index pages that change (create-s3-index-html compares each)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn build() -> Value {
        json!({
            "version": "4.168.2",
            "packagingBranch": "HHVM-4.168",
            "nightly": false,
            "requireApproval": true,
            "source": {"bucket": "hhvm-scratch", "path": "hhvm-4.168.2.tar.gz"},
        })
    }

    fn status() -> Value {
        json!({"artifacts": {
            "source": {"status": "not_built", "location": {"bucket": "hhvm-downloads", "path": "source/hhvm-4.168.2.tar.gz"}},
            "debian-12-bookworm": {"status": "failed", "log": {"bucket": "hhvm-scratch", "path": "logs/b.log"}},
            "ubuntu-24.04-noble": {"status": "built_not_published", "marker": {"bucket": "hhvm-scratch", "path": "markers/n.json"}},
        }})
    }

    fn templates() -> Vec<String> {
        vec!["DISTRO".to_string(), "DISTRO-4.168".to_string()]
    }

    #[test]
    fn distros_with_a_marker_are_skipped_and_the_rest_built() {
        let (build, status, templates) = (build(), status(), templates());
        let answers = Answers {
            build: &build,
            source_tarball: Err("s3://hhvm-scratch/hhvm-4.168.2.tar.gz is missing".into()),
            status: &status,
            suite_templates: &templates,
            force: false,
        };
        let plan = plan(&answers).unwrap();
        assert_eq!(plan.source_tarball.action, Action::Build);
        let actions: Vec<(&str, Action)> = plan
            .distros
            .iter()
            .map(|d| (d.distro.as_str(), d.step.action))
            .collect();
        assert_eq!(
            actions,
            [
                ("debian-12-bookworm", Action::Build),
                ("ubuntu-24.04-noble", Action::Skip)
            ]
        );
        assert!(plan.distros[0].step.reason.contains("logs/b.log"));
        assert_eq!(plan.distros[1].step.reason, "built: s3://hhvm-scratch/markers/n.json");
        assert!(plan.waits_for_approval);
        assert_eq!(
            plan.publish.release_source,
            Some(ReleaseSource {
                tarball: "s3://hhvm-downloads/source/hhvm-4.168.2.tar.gz".into(),
                tag: "HHVM-4.168.2".into(),
                branch: "HHVM-4.168".into(),
            })
        );
        assert_eq!(plan.publish.suites[1].suites, ["ubuntu/noble", "ubuntu/noble-4.168"]);
        assert_eq!(plan.invalidations.len(), 12);
        assert!(
            plan.invalidations
                .contains(&"/ubuntu/dists/noble-4.168/InRelease".to_string())
        );
        let text = render(&[plan]);
        assert!(
            text.starts_with("4.168.2 (a release, packaging branch HHVM-4.168; the publish waits for approval)\n"),
            "{text}"
        );
        assert!(
            text.contains("  ubuntu-24.04-noble  skip     built: s3://hhvm-scratch/markers/n.json\n"),
            "{text}"
        );
    }

    #[test]
    fn force_rebuilds_and_a_bad_marker_is_called_out() {
        let (build, templates) = (build(), templates());
        let status = json!({"artifacts": {
            "ubuntu-24.04-noble": {"status": "failed", "problem": "the success marker is not valid: EOF", "marker": {"bucket": "s", "path": "m.json"}},
        }});
        let mut answers = Answers {
            build: &build,
            source_tarball: Ok(()),
            status: &status,
            suite_templates: &templates,
            force: false,
        };
        let kept = plan(&answers).unwrap();
        assert_eq!(kept.source_tarball.action, Action::Skip);
        assert_eq!(
            kept.source_tarball.reason,
            "present at s3://hhvm-scratch/hhvm-4.168.2.tar.gz"
        );
        assert_eq!(kept.distros[0].step.action, Action::Skip);
        assert!(
            kept.distros[0]
                .step
                .reason
                .contains("will refuse it: the success marker is not valid")
        );
        answers.force = true;
        assert_eq!(plan(&answers).unwrap().distros[0].step.action, Action::Rebuild);
    }

    #[test]
    fn a_nightly_publishes_no_release_source() {
        let build = json!({"version": "2026.12.02", "packagingBranch": "master", "nightly": true, "source": {}});
        let status = json!({"artifacts": {}});
        let plan = plan(&Answers {
            build: &build,
            source_tarball: Ok(()),
            status: &status,
            suite_templates: &[],
            force: false,
        })
        .unwrap();
        assert_eq!(plan.publish.release_source, None);
        assert!(!plan.waits_for_approval);
        let missing = json!({"packagingBranch": "master"});
        assert!(
            super::plan(&Answers {
                build: &missing,
                source_tarball: Ok(()),
                status: &status,
                suite_templates: &[],
                force: false
            })
            .unwrap_err()
            .contains("no version")
        );
    }
}
