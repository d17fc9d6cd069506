//! Which CloudFront paths to invalidate after pages changed: each changed directory's URL, or —
//! when there are more than the configured cap — wildcards over their ancestors, so an
//! invalidation never exceeds CloudFront's limits (3,000 paths, 15 of them wildcards).

use std::collections::BTreeSet;

use crate::page::{directory_url, encode_path};

/// CloudFront's limits for one invalidation.
pub const MAX_PATHS: usize = 3000;
pub const MAX_WILDCARDS: usize = 15;

fn depth(path: &str) -> usize {
    if path.is_empty() { 0 } else { path.split('/').count() }
}

fn ancestor(path: &str, depth: usize) -> &str {
    if depth == 0 {
        return "";
    }
    match path.match_indices('/').nth(depth - 1) {
        Some((index, _)) => &path[..index],
        None => path,
    }
}

/// The paths for `changed` directories (paths as in `Directory::path`), at most `cap` of them
/// (itself at most 3,000). Directories deeper than a level are replaced by `/<ancestor>/*`,
/// trying the deepest level first, so the wildcards stay as narrow as the cap allows.
pub fn invalidation_paths(changed: &[String], cap: usize) -> Vec<String> {
    let cap = cap.clamp(1, MAX_PATHS);
    let exact: BTreeSet<String> = changed.iter().map(|path| directory_url(path)).collect();
    if exact.len() <= cap {
        return exact.into_iter().collect();
    }
    let deepest = changed.iter().map(|path| depth(path)).max().unwrap_or(0);
    for level in (0..deepest).rev() {
        let mut paths = BTreeSet::new();
        let mut wildcards = BTreeSet::new();
        for path in changed {
            if depth(path) <= level {
                paths.insert(directory_url(path));
            } else {
                let ancestor = ancestor(path, level);
                wildcards.insert(if ancestor.is_empty() {
                    "/*".to_string()
                } else {
                    format!("/{}/*", encode_path(ancestor))
                });
            }
        }
        if paths.len() + wildcards.len() <= cap && wildcards.len() <= MAX_WILDCARDS {
            paths.extend(wildcards);
            return paths.into_iter().collect();
        }
    }
    vec!["/*".to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn few_changes_are_invalidated_exactly() {
        let paths = invalidation_paths(&dirs(&["", "debian/pool", "a b"]), 10);
        assert_eq!(paths, ["/", "/a%20b/", "/debian/pool/"]);
    }

    #[test]
    fn nothing_changed_means_no_paths() {
        assert!(invalidation_paths(&[], 10).is_empty());
    }

    #[test]
    fn many_changes_collapse_to_the_narrowest_wildcards_within_the_cap() {
        let mut changed = dirs(&["", "debian", "debian/pool"]);
        changed.extend((0..50).map(|i| format!("debian/pool/main/h/pkg{i}")));
        changed.push("debian/pool/main/h".into());
        changed.push("debian/pool/main".into());
        let paths = invalidation_paths(&changed, 10);
        assert_eq!(
            paths,
            [
                "/",
                "/debian/",
                "/debian/pool/",
                "/debian/pool/main/",
                "/debian/pool/main/h/",
                "/debian/pool/main/h/*"
            ]
        );
        let paths = invalidation_paths(&changed, 3);
        assert_eq!(paths, ["/", "/debian/", "/debian/*"]);
        assert_eq!(invalidation_paths(&changed, 1), ["/*"]);
    }

    #[test]
    fn wildcards_never_exceed_fifteen() {
        let changed: Vec<String> = (0..40).map(|i| format!("top{i}/sub")).collect();
        let paths = invalidation_paths(&changed, 30);
        assert_eq!(paths, ["/*"]);
        let paths = invalidation_paths(&changed, 3000);
        assert_eq!(paths.len(), 40);
    }

    #[test]
    fn every_changed_directory_is_covered() {
        let changed: Vec<String> = (0..200).map(|i| format!("a/b{}/c{i}", i % 7)).collect();
        for cap in [1, 5, 8, 20, 199, 200] {
            let paths = invalidation_paths(&changed, cap);
            assert!(paths.len() <= cap.max(1), "cap {cap}: {paths:?}");
            for dir in &changed {
                let url = directory_url(dir);
                let covered = paths
                    .iter()
                    .any(|p| p == &url || p.strip_suffix('*').is_some_and(|prefix| url.starts_with(prefix)));
                assert!(covered, "cap {cap}: {url} not covered by {paths:?}");
            }
        }
    }
}
