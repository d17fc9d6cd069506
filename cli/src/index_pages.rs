//! `reindex` as an operator reads it: what `create-s3-index-html` did (its `indexPages`
//! summary) in a few lines — what it listed, the pages it wrote and left (and those another
//! run changed meanwhile), and the CDN invalidation of the written ones. Pure: the command fetches the answer (`--json` prints it as
//! it is).

use serde_json::Value;

use crate::status::strings;

fn count(summary: &Value, field: &str) -> u64 {
    summary.get(field).and_then(Value::as_u64).unwrap_or(0)
}

/// `first, second, … and N more` when `shown` holds the first few of `total`.
fn listed(shown: &[String], total: u64) -> String {
    let more = total.saturating_sub(shown.len() as u64);
    let list = shown.join(", ");
    if more > 0 {
        format!("{list} and {more} more")
    } else {
        list
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn render(answer: &Value) -> String {
    let Some(summary) = answer.get("indexPages") else {
        return "create-s3-index-html gave no indexPages summary\n".to_string();
    };
    let reindexed = strings(summary.get("reindexed"));
    let scope = if reindexed == ["/"] {
        "the whole bucket".to_string()
    } else {
        reindexed.join(", ")
    };
    let written = count(summary, "pagesWritten");
    let mut out = format!(
        "reindexed {scope}: {} listed in {}; {} written, {} unchanged\n",
        plural(count(summary, "objectsListed"), "object", "objects"),
        plural(count(summary, "directories"), "directory", "directories"),
        plural(written, "page", "pages"),
        count(summary, "pagesUnchanged"),
    );
    if written > 0 {
        out.push_str(&format!(
            "  changed      {}\n",
            listed(&strings(summary.get("changedDirectories")), written)
        ));
    }
    let skipped = count(summary, "keysSkipped");
    if skipped > 0 {
        out.push_str(&format!(
            "  skipped      {} with an empty path segment (no URL, so no page lists them)\n",
            plural(skipped, "key", "keys")
        ));
    }
    let relisted = count(summary, "pagesRelisted");
    if relisted > 0 {
        out.push_str(&format!(
            "  relisted     {} another index update changed meanwhile: rendered again from a new listing\n",
            plural(relisted, "page", "pages")
        ));
    }
    if let Some(invalidation) = summary.get("invalidation").filter(|value| !value.is_null()) {
        let text = |field: &str| invalidation.get(field).and_then(Value::as_str).unwrap_or("?");
        let paths = count(invalidation, "pathCount");
        out.push_str(&format!(
            "  invalidated  {} on CloudFront distribution {} (invalidation {}, {}): {}\n",
            plural(paths, "path", "paths"),
            text("distributionId"),
            text("id"),
            text("status"),
            listed(&strings(invalidation.get("paths")), paths)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_reindex_says_what_it_listed_wrote_and_invalidated() {
        let answer = json!({"indexPages": {
            "objectsListed": 70, "directories": 35, "pagesWritten": 12, "pagesUnchanged": 23, "keysSkipped": 1,
            "pagesRelisted": 2,
            "changedDirectories": ["/", "/conf/", "/debian/", "/debian/dists/", "/debian/pool/", "/d/5/", "/d/6/",
                "/d/7/", "/d/8/", "/d/9/"],
            "invalidation": {"distributionId": "K3ZFQ8LIYBTD6", "id": "MRCGI1XETUZLT", "status": "InProgress",
                "pathCount": 2, "paths": ["/", "/d/*"]},
            "reindexed": ["/"],
        }});
        assert_eq!(
            render(&answer),
            "reindexed the whole bucket: 70 objects listed in 35 directories; 12 pages written, 23 unchanged\n\
             \x20 changed      /, /conf/, /debian/, /debian/dists/, /debian/pool/, /d/5/, /d/6/, /d/7/, /d/8/, /d/9/ and 2 more\n\
             \x20 skipped      1 key with an empty path segment (no URL, so no page lists them)\n\
             \x20 relisted     2 pages another index update changed meanwhile: rendered again from a new listing\n\
             \x20 invalidated  2 paths on CloudFront distribution K3ZFQ8LIYBTD6 (invalidation MRCGI1XETUZLT, InProgress): /, /d/*\n"
        );
    }

    #[test]
    fn nothing_changed_is_one_line() {
        let answer = json!({"indexPages": {
            "objectsListed": 1, "directories": 1, "pagesWritten": 0, "pagesUnchanged": 1, "keysSkipped": 0,
            "changedDirectories": [], "invalidation": null, "reindexed": ["/debian/pool/main/h/hhvm/"],
        }});
        assert_eq!(
            render(&answer),
            "reindexed /debian/pool/main/h/hhvm/: 1 object listed in 1 directory; 0 pages written, 1 unchanged\n"
        );
    }
}
