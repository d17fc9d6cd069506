//! `status VERSION` as an operator reads it: one line per artifact of `hhvm-get-build-status`'s
//! report (the source tarball, then each distro) with its status and what it was decided from —
//! where it is, the package version, the problem, the failed worker's log. Pure: the command
//! fetches the report (`--json` prints it as it is).

use serde_json::Value;

use crate::status::s3_url;

/// The report's groups, in the order the headline counts them, with their names on screen.
const GROUPS: [(&str, &str); 4] = [
    ("published", "published"),
    ("built_not_published", "built, not published"),
    ("failed", "failed"),
    ("not_built", "not built"),
];

fn label(status: &str) -> &str {
    GROUPS
        .iter()
        .find(|(name, _)| *name == status)
        .map_or(status, |(_, label)| label)
}

/// What an artifact's status was decided from, as one line's tail. The source tarball's
/// location is where it is published, or where the publish will put it.
fn details(artifact: &Value) -> String {
    let text = |field: &str| artifact.get(field).and_then(Value::as_str);
    let published = text("status") == Some("published");
    [
        artifact.get("location").and_then(s3_url).map(|at| {
            if published {
                at
            } else {
                format!("to be published at {at}")
            }
        }),
        text("packageVersion").map(str::to_string),
        text("problem").map(str::to_string),
        artifact.get("log").and_then(s3_url).map(|log| format!("log {log}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ")
}

/// The headline's summary: `published`, or how many artifacts are in each group.
fn summary(report: &Value) -> String {
    if report.get("success").and_then(Value::as_bool) == Some(true) {
        return "published".to_string();
    }
    GROUPS
        .iter()
        .filter_map(|(group, label)| {
            let count = report.get(*group).and_then(Value::as_array).map_or(0, Vec::len);
            (count > 0).then(|| format!("{count} {label}"))
        })
        .collect::<Vec<_>>()
        // `;` between the groups: a label holds a comma.
        .join("; ")
}

pub fn render(report: &Value) -> String {
    let version = report.get("version").and_then(Value::as_str).unwrap_or("?");
    let branch = report
        .get("packagingBranch")
        .and_then(Value::as_str)
        .map(|branch| format!(" (packaging branch {branch})"))
        .unwrap_or_default();
    let mut out = format!("{version}{branch}: {}\n", summary(report));
    let artifacts: Vec<(&String, &Value)> = report
        .get("artifacts")
        .and_then(Value::as_object)
        .map(|artifacts| artifacts.iter().collect())
        .unwrap_or_default();
    let status_of = |artifact: &Value| label(artifact.get("status").and_then(Value::as_str).unwrap_or("?")).to_string();
    let name_width = artifacts.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let status_width = artifacts
        .iter()
        .map(|(_, artifact)| status_of(artifact).len())
        .max()
        .unwrap_or(0);
    for (name, artifact) in artifacts {
        let status = status_of(artifact);
        let line = format!("  {name:name_width$}  {status:status_width$}  {}", details(artifact));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_artifact_shows_its_status_and_what_it_was_decided_from() {
        let report = json!({
            "version": "4.168.2",
            "packagingBranch": "HHVM-4.168",
            "success": false,
            "artifacts": {
                "source": {"status": "published", "location": {"bucket": "hhvm-downloads", "path": "source/hhvm-4.168.2.tar.gz"},
                    "marker": {"bucket": "hhvm-scratch", "path": "markers/4.168.2/source-tarball.json"}},
                "debian-12-bookworm": {"status": "built_not_published", "packageVersion": "4.168.2-1~bookworm",
                    "packages": ["debian/pool/main/h/hhvm/hhvm_4.168.2-1~bookworm_amd64.deb"],
                    "problem": "debian/pool/main/h/hhvm/hhvm_4.168.2-1~bookworm_amd64.deb is not in the pool"},
                "ubuntu-24.04-noble": {"status": "failed", "log": {"bucket": "hhvm-scratch", "path": "logs/n.log"}},
                "ubuntu-22.04-jammy": {"status": "not_built"},
            },
            "published": ["source"],
            "built_not_published": ["debian-12-bookworm"],
            "failed": ["ubuntu-24.04-noble"],
            "not_built": ["ubuntu-22.04-jammy"],
        });
        assert_eq!(
            render(&report),
            "4.168.2 (packaging branch HHVM-4.168): 1 published; 1 built, not published; 1 failed; 1 not built\n\
             \x20 source              published             s3://hhvm-downloads/source/hhvm-4.168.2.tar.gz\n\
             \x20 debian-12-bookworm  built, not published  4.168.2-1~bookworm; debian/pool/main/h/hhvm/hhvm_4.168.2-1~bookworm_amd64.deb is not in the pool\n\
             \x20 ubuntu-24.04-noble  failed                log s3://hhvm-scratch/logs/n.log\n\
             \x20 ubuntu-22.04-jammy  not built\n"
        );
    }

    #[test]
    fn a_source_tarball_not_published_shows_where_it_will_be() {
        let report = json!({
            "version": "4.168.9",
            "artifacts": {"source": {"status": "not_built", "location": {"bucket": "hhvm-downloads", "path": "source/hhvm-4.168.9.tar.gz"}}},
            "not_built": ["source"],
        });
        assert_eq!(
            render(&report),
            "4.168.9: 1 not built
  source  not built  to be published at s3://hhvm-downloads/source/hhvm-4.168.9.tar.gz
"
        );
    }

    #[test]
    fn a_version_published_in_full_says_so() {
        let report = json!({
            "version": "2026.12.04",
            "packagingBranch": "master",
            "success": true,
            "artifacts": {"source": {"status": "published"}},
            "published": ["source"],
        });
        assert_eq!(
            render(&report),
            "2026.12.04 (packaging branch master): published\n  source  published\n"
        );
    }
}
