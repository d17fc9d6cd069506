//! The head commit of a branch, as `git ls-remote` finds it: git's `info/refs` over HTTP. A
//! smart server (`?service=git-upload-pack`, as GitHub serves it) answers in pkt-lines
//! (`003f<sha> refs/heads/master\0<capabilities>`), a dumb one (a static file written by
//! `git update-server-info`) in lines of `<sha>\t<ref>`; both are read here.

use std::time::Duration;

use pipeline_core::PipelineError;

const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// GitHub's answer for facebook/hhvm lists every tag and branch: a few MB.
const MAX_REFS_BYTES: usize = 32 * 1024 * 1024;

/// A branch name safe to compare and to log: git's rules, narrowed.
pub fn is_branch_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.contains("..")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
}

/// The commit `refs/heads/<branch>` points at in an `info/refs` document.
pub fn head_commit(refs: &str, branch: &str) -> Option<String> {
    let wanted = format!("refs/heads/{branch}");
    refs.lines().find_map(|line| {
        // pkt-line: four hex digits of length first; the first ref line follows the flush
        // packet `0000` on the same line and carries capabilities after a NUL.
        let line = line.split('\0').next().unwrap_or(line);
        let (commit, reference) = line.split_once([' ', '\t'])?;
        let length_prefixed = |digits: usize| commit[..digits].bytes().all(|b| b.is_ascii_hexdigit());
        let commit = match commit.len() {
            40 => commit,
            44 if length_prefixed(4) => &commit[4..],
            48 if commit.starts_with("0000") && length_prefixed(8) => &commit[8..],
            _ => return None,
        };
        (reference.trim() == wanted && commit.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| commit.to_ascii_lowercase())
    })
}

/// Reads `refs_url` and returns the head commit of `branch`.
pub async fn fetch_head_commit(refs_url: &str, branch: &str) -> Result<String, PipelineError> {
    let unavailable = |problem: String| PipelineError::SourceUnavailable {
        url: refs_url.to_string(),
        problem,
    };
    let text = tokio::time::timeout(
        FETCH_TIMEOUT,
        pipeline_aws::packaging::fetch_text(refs_url, MAX_REFS_BYTES),
    )
    .await
    .map_err(|_| unavailable(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())))?
    .map_err(unavailable)?;
    head_commit(&text, branch).ok_or_else(|| unavailable(format!("no branch refs/heads/{branch} in the answer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
    const OTHER: &str = "89abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn smart_and_dumb_answers_are_read() {
        let smart = format!(
            "001e# service=git-upload-pack\n0000015b{OTHER} HEAD\0multi_ack symref=HEAD:refs/heads/master\n003f{SHA} refs/heads/master\n003f{OTHER} refs/heads/mastery\n0000"
        );
        assert_eq!(head_commit(&smart, "master").as_deref(), Some(SHA));
        assert_eq!(head_commit(&smart, "mastery").as_deref(), Some(OTHER));
        // Without a HEAD line, the branch is the first ref, right after the flush packet.
        let first = format!("001e# service=git-upload-pack\n0000003f{SHA} refs/heads/master\n0000");
        assert_eq!(head_commit(&first, "master").as_deref(), Some(SHA));
        let dumb = format!("{OTHER}\trefs/heads/HHVM-4.168\n{SHA}\trefs/heads/master\n");
        assert_eq!(head_commit(&dumb, "master").as_deref(), Some(SHA));
        assert_eq!(head_commit(&dumb, "main"), None);
        assert_eq!(head_commit("<html>rate limited</html>", "master"), None);
    }

    #[test]
    fn branch_names_are_checked() {
        for good in ["master", "HHVM-4.168", "release/v1"] {
            assert!(is_branch_name(good), "{good}");
        }
        for bad in ["", "-x", "a..b", "a b", "x/", "$(id)"] {
            assert!(!is_branch_name(bad), "{bad}");
        }
    }
}
