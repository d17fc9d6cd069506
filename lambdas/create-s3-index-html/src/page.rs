//! Rendering a directory's page, and telling a stored page from the listing alone. A page is a
//! function of its directory's listing (no generation time, nothing else that changes by
//! itself), so an unchanged directory renders the same bytes, whose MD5 is the stored page's
//! ETag: nothing has to be read back to know a page is current.

use std::fmt::Write;
use std::sync::OnceLock;

use minijinja::{Environment, HtmlEscape, Value, context};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::listing::Directory;

/// Everything but RFC 3986's unreserved characters is encoded in a path segment (so `*`, `?`,
/// `#`, `%` and spaces in S3 keys all make working links and literal invalidation paths).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

const TEMPLATE: &str = include_str!("index.html.j2");

/// A path segment (a file or directory name) made safe for a URL.
pub fn encode_segment(name: &str) -> String {
    String::from(std::borrow::Cow::from(utf8_percent_encode(name, SEGMENT)))
}

/// A directory path made safe for a URL, slashes kept.
pub fn encode_path(path: &str) -> String {
    path.split('/').map(encode_segment).collect::<Vec<_>>().join("/")
}

/// The URL path of a directory: `/` for the root, `/debian/pool/` otherwise.
pub fn directory_url(path: &str) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        format!("/{}/", encode_path(path))
    }
}

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut environment = Environment::new();
        // The `.html` name turns on HTML auto-escaping of every value: S3 keys may hold `<`, `&`, `"`.
        environment
            .add_template("index.html", TEMPLATE)
            .expect("the page template is valid");
        environment
    })
}

/// Formats an epoch time as `2026-11-21 10:42:07` (UTC).
fn format_time(seconds: i64) -> String {
    use chrono::{Datelike, Timelike};
    let Some(time) = chrono::DateTime::from_timestamp(seconds, 0) else {
        return String::new();
    };
    let year = time.year();
    if !(0..=9999).contains(&year) {
        return time.to_rfc3339();
    }
    // Digits written by hand: `format!` (let alone chrono's pattern parser) was the largest
    // single cost of a page with a million rows.
    let mut text = *b"0000-00-00 00:00:00";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for index in (at..at + width).rev() {
            text[index] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, time.month());
    put(8, 2, time.day());
    put(11, 2, time.hour());
    put(14, 2, time.minute());
    put(17, 2, time.second());
    String::from_utf8_lossy(&text).into_owned()
}

/// The rows of the files, in key order. They are written here rather than by a template loop:
/// a directory may hold a million files, and the interpreter's per-row cost was most of the
/// time of a whole-bucket run. The name goes through minijinja's own HTML escaping, the link is
/// percent-encoded (so it holds nothing to escape), and the time and size hold only digits,
/// letters, spaces and `.:-`.
fn render_file_rows(directory: &Directory) -> String {
    let mut rows = String::with_capacity(directory.files.len() * 192);
    for file in &directory.files {
        let _ = writeln!(
            rows,
            "<tr><td>📃 <a href=\"{href}\">{name}</a></td><td class=\"date\">{modified}</td>\
             <td class=\"size\" title=\"{bytes} bytes\">{size}</td></tr>",
            href = encode_segment(&file.name),
            name = HtmlEscape(&file.name),
            modified = format_time(file.last_modified),
            bytes = file.size,
            size = humansize::format_size(file.size, humansize::BINARY),
        );
    }
    rows
}

/// The HTML page listing `directory`.
pub fn render_index_page(directory: &Directory) -> String {
    // Each ancestor of the directory, linked: the heading reads as the path and navigates it.
    let mut breadcrumbs: Vec<Value> = Vec::new();
    if !directory.path.is_empty() {
        let mut end = 0;
        for name in directory.path.split('/') {
            end += name.len();
            let href = directory_url(&directory.path[..end]);
            breadcrumbs.push(context! { name => name, href => Value::from_safe_string(href) });
            end += 1;
        }
    }
    let parent = (!directory.path.is_empty()).then(|| match directory.path.rsplit_once('/') {
        Some((parent, _)) => directory_url(parent),
        None => "/".to_string(),
    });
    // Links are percent-encoded, so they hold no character HTML would need escaped: passing
    // them as safe keeps them readable in the page source.
    let directories: Vec<Value> = directory
        .subdirectories
        .iter()
        .map(|name| {
            context! { name => name, href => Value::from_safe_string(format!("{}/", encode_segment(name))) }
        })
        .collect();
    let file_rows = Value::from_safe_string(render_file_rows(directory));
    let template = environment()
        .get_template("index.html")
        .expect("the template was added");
    template
        .render(context! {
            breadcrumbs => breadcrumbs,
            parent => parent.map(Value::from_safe_string),
            directories => directories,
            file_rows => file_rows,
            has_files => !directory.files.is_empty(),
        })
        .expect("rendering plain data cannot fail")
}

/// The ETag S3 gives `page` when it is put in one part without KMS: its hex MD5.
pub fn page_etag(page: &str) -> String {
    use md5::Digest;
    md5::Md5::digest(page.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether `rendered` is what the listing says is stored for `directory` (its ETag). A page
/// stored otherwise (in parts, by something else) does not match, and is written again.
pub fn is_stored(directory: &Directory, rendered: &str) -> bool {
    directory
        .stored_page_etag
        .as_deref()
        .is_some_and(|stored| stored == page_etag(rendered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::FileEntry;

    fn directory() -> Directory {
        Directory {
            path: "debian/pool".into(),
            subdirectories: vec!["main".into(), "odd <dir> & \"quotes\"".into()],
            files: vec![
                FileEntry {
                    name: "hhvm_4.168.2-1~bookworm_amd64.deb".into(),
                    size: 123_456_789,
                    last_modified: 1_700_000_000,
                },
                FileEntry {
                    name: "a b&c<d>.txt".into(),
                    size: 0,
                    last_modified: 0,
                },
            ],
            has_index_page: false,
            stored_page_etag: None,
        }
    }

    #[test]
    fn page_lists_parent_directories_and_files() {
        let page = render_index_page(&directory());
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(page.contains("<title>/debian/pool/ - HHVM Downloads</title>"), "{page}");
        assert!(
            page.contains(
                r#"<h2><a href="/">/</a><a href="/debian/">debian</a>/<a href="/debian/pool/">pool</a>/</h2>"#
            ),
            "{page}"
        );
        assert!(page.contains(r#"<a href="/debian/">..</a>"#), "{page}");
        assert!(page.contains(r#"<a href="main/">main/</a>"#), "{page}");
        assert!(page.contains(r#"href="hhvm_4.168.2-1~bookworm_amd64.deb""#), "{page}");
        assert!(page.contains("117.74 MiB"), "{page}");
        assert!(page.contains("2023-11-14 22:13:20"), "{page}");
        assert!(
            page.contains(r#"<td class="size" title="123456789 bytes">117.74 MiB</td>"#),
            "{page}"
        );
        assert!(
            !page.contains("Generated"),
            "nothing in a page changes by itself: {page}"
        );
    }

    #[test]
    fn names_are_escaped_and_links_encoded() {
        let page = render_index_page(&directory());
        assert!(page.contains(r#"href="a%20b%26c%3Cd%3E.txt""#), "{page}");
        assert!(page.contains("a b&amp;c&lt;d&gt;.txt"), "{page}");
        assert!(page.contains("odd &lt;dir&gt; &amp; &quot;quotes&quot;"), "{page}");
        assert!(!page.contains("<dir>"), "{page}");
    }

    #[test]
    fn root_has_no_parent_link_and_top_level_parent_is_root() {
        let root = Directory {
            path: String::new(),
            ..Directory::default()
        };
        let page = render_index_page(&root);
        assert!(!page.contains(">..</a>"), "{page}");
        let top = Directory {
            path: "debian".into(),
            ..Directory::default()
        };
        assert!(render_index_page(&top).contains(r#"<a href="/">..</a>"#));
    }

    #[test]
    fn a_page_is_known_stored_by_its_etag_alone() {
        let page = render_index_page(&directory());
        assert_eq!(
            page,
            render_index_page(&directory()),
            "a directory renders the same page"
        );
        // The MD5 of the empty string and of "abc", as S3 reports them.
        assert_eq!(page_etag(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(page_etag("abc"), "900150983cd24fb0d6963f7d28e17f72");
        let mut stored = directory();
        stored.stored_page_etag = Some(page_etag(&page));
        assert!(is_stored(&stored, &page));
        let mut changed = stored.clone();
        changed.files[0].size += 1;
        assert!(!is_stored(&changed, &render_index_page(&changed)));
        stored.stored_page_etag = Some("0a1b2c3d4e5f67890a1b2c3d4e5f6789-2".into());
        assert!(!is_stored(&stored, &page), "a page put in parts is written again");
        assert!(!is_stored(&directory(), &page), "no page stored");
    }

    #[test]
    fn times_are_utc_with_seconds() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_763_721_727), "2025-11-21 10:42:07");
        assert_eq!(format_time(253_402_300_799), "9999-12-31 23:59:59");
    }

    #[test]
    fn urls_encode_each_segment() {
        assert_eq!(directory_url(""), "/");
        assert_eq!(directory_url("debian/pool"), "/debian/pool/");
        assert_eq!(directory_url("a b/c*?#"), "/a%20b/c%2A%3F%23/");
    }
}
