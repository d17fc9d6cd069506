//! The directory tree of a bucket, built from its keys as S3 lists them (ascending UTF-8
//! bytes). All keys under `dir/` are contiguous in that order, so a directory is complete as
//! soon as a key outside it arrives: the walker hands back each finished directory and holds
//! only the directories on the path to the current key — not the whole bucket.

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub last_modified: i64,
    /// As the listing gives it, without quotes.
    pub e_tag: Option<String>,
}

/// A file shown on a directory's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub last_modified: i64,
}

/// Everything one directory's page shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directory {
    /// `""` for the root, else the path without slashes at either end (`debian/pool`).
    pub path: String,
    /// Names of the immediate sub-directories, sorted.
    pub subdirectories: Vec<String>,
    /// Files directly in the directory, in key order; never folder markers or `index.html`.
    pub files: Vec<FileEntry>,
    /// Whether the listing holds this directory's `index.html` (so there is a page to compare).
    pub has_index_page: bool,
    /// That page's ETag, as the listing gives it.
    pub stored_page_etag: Option<String>,
}

impl Directory {
    fn new(path: String) -> Directory {
        Directory {
            path,
            ..Directory::default()
        }
    }

    /// The key of this directory's page: `index.html` at the root, else `<path>/index.html`.
    pub fn index_key(&self) -> String {
        format!("{}index.html", prefix_of(&self.path))
    }
}

/// Why a key was not placed in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkError {
    /// Keys must arrive in strictly ascending order; S3 guarantees it, so this means the
    /// listing is not what S3 returns.
    OutOfOrder { previous: String, key: String },
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkError::OutOfOrder { previous, key } => {
                write!(
                    f,
                    "the listing is not in ascending key order: {key:?} came after {previous:?}"
                )
            }
        }
    }
}

/// What happened to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    File,
    /// A key ending in `/`: it makes its directory exist, but is no file.
    FolderMarker,
    /// A directory's own `index.html`.
    IndexPage,
    /// A key with an empty path segment (`a//b`, `/a`): it has no URL on the site.
    Skipped,
}

/// Builds the tree from keys in listing order; see the module documentation.
pub struct DirectoryWalker {
    open: Vec<Directory>,
    previous_key: String,
    started: bool,
}

impl Default for DirectoryWalker {
    fn default() -> Self {
        Self::new()
    }
}

impl DirectoryWalker {
    /// A walker of the whole bucket.
    pub fn new() -> DirectoryWalker {
        DirectoryWalker::rooted_at("")
    }

    /// A walker of the sub-tree `path` (`debian/dists`), fed only the keys under `path/`: the
    /// directories it finishes are `path` and those below it.
    pub fn rooted_at(path: &str) -> DirectoryWalker {
        DirectoryWalker {
            open: vec![Directory::new(path.to_string())],
            previous_key: String::new(),
            started: false,
        }
    }

    /// Places `object` in the tree; directories finished by it are appended to `finished`,
    /// deepest first.
    pub fn push(&mut self, object: ListedObject, finished: &mut Vec<Directory>) -> Result<Placement, WalkError> {
        if self.started && self.previous_key.as_bytes() >= object.key.as_bytes() {
            return Err(WalkError::OutOfOrder {
                previous: self.previous_key.clone(),
                key: object.key,
            });
        }
        // One reused buffer: cloning every key would be an allocation per object.
        self.previous_key.clear();
        self.previous_key.push_str(&object.key);
        self.started = true;

        let (dir, name) = object.key.rsplit_once('/').unwrap_or(("", object.key.as_str()));
        if object.key.starts_with('/') || (!dir.is_empty() && dir.split('/').any(str::is_empty)) {
            return Ok(Placement::Skipped);
        }
        self.close_until_ancestor_of(dir, finished);
        self.open_down_to(dir);
        let current = self.open.last_mut().expect("the root is never closed before finish");
        let placement = match name {
            "" => Placement::FolderMarker,
            "index.html" => {
                current.has_index_page = true;
                current.stored_page_etag = object.e_tag;
                Placement::IndexPage
            }
            _ => {
                current.files.push(FileEntry {
                    name: name.to_string(),
                    size: object.size,
                    last_modified: object.last_modified,
                });
                Placement::File
            }
        };
        Ok(placement)
    }

    /// Closes every open directory, the root last.
    pub fn finish(mut self, finished: &mut Vec<Directory>) {
        while let Some(directory) = self.open.pop() {
            finished.push(sorted(directory));
        }
    }

    fn close_until_ancestor_of(&mut self, dir: &str, finished: &mut Vec<Directory>) {
        while let Some(top) = self.open.last() {
            let contains = top.path.is_empty()
                || dir == top.path
                || (dir.starts_with(top.path.as_str()) && dir.as_bytes().get(top.path.len()) == Some(&b'/'));
            if contains {
                return;
            }
            let closed = self.open.pop().expect("checked above");
            finished.push(sorted(closed));
        }
    }

    fn open_down_to(&mut self, dir: &str) {
        loop {
            let top = self.open.last_mut().expect("the root is never closed before finish");
            if top.path == dir {
                return;
            }
            let rest = if top.path.is_empty() {
                dir
            } else {
                &dir[top.path.len() + 1..]
            };
            let name = rest.split('/').next().unwrap_or(rest);
            let path = if top.path.is_empty() {
                name.to_string()
            } else {
                format!("{}/{name}", top.path)
            };
            top.subdirectories.push(name.to_string());
            self.open.push(Directory::new(path));
        }
    }
}

/// The key prefix of the objects under directory `path`: `""` for the root, else `path/`.
pub fn prefix_of(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    }
}

/// One directory from the listing of its level alone (`objects` directly under `path/`, the
/// names of its sub-directories): the page the walker of the whole bucket would make of it —
/// but for a sub-directory that holds only keys with an empty segment (`a/b//c`), which the
/// walker skips and a level's listing still names.
pub fn directory_from_level(path: &str, objects: Vec<ListedObject>, subdirectories: Vec<String>) -> Directory {
    let mut directory = Directory::new(path.to_string());
    let prefix = prefix_of(path);
    for object in objects {
        let Some(name) = object.key.strip_prefix(&prefix) else {
            continue;
        };
        match name {
            "" => {}
            "index.html" => {
                directory.has_index_page = true;
                directory.stored_page_etag = object.e_tag;
            }
            _ => directory.files.push(FileEntry {
                name: name.to_string(),
                size: object.size,
                last_modified: object.last_modified,
            }),
        }
    }
    directory.subdirectories = subdirectories.into_iter().filter(|name| !name.is_empty()).collect();
    sorted(directory)
}

/// The proper ancestors of `subtrees` (the root `""` included) that are in none of them,
/// deepest first: the pages that list a re-indexed sub-tree without being in one.
pub fn ancestors_outside(subtrees: &[String]) -> Vec<String> {
    let inside = |path: &str| {
        subtrees
            .iter()
            .any(|tree| path == tree || path.starts_with(&format!("{tree}/")))
    };
    let mut ancestors: Vec<String> = Vec::new();
    for tree in subtrees {
        let mut path = tree.as_str();
        while !path.is_empty() {
            path = path.rsplit_once('/').map_or("", |(parent, _)| parent);
            if !inside(path) && !ancestors.iter().any(|known| known == path) {
                ancestors.push(path.to_string());
            }
        }
    }
    let depth = |path: &String| {
        if path.is_empty() {
            0
        } else {
            path.matches('/').count() + 1
        }
    };
    ancestors.sort_by(|a, b| depth(b).cmp(&depth(a)).then_with(|| a.cmp(b)));
    ancestors
}

fn sorted(mut directory: Directory) -> Directory {
    // Keys list `a-b/` before `a/` ('-' < '/'), but a reader expects `a/` first.
    directory.subdirectories.sort_unstable();
    directory
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(keys: &[&str]) -> Vec<Directory> {
        let mut sorted_keys: Vec<&str> = keys.to_vec();
        sorted_keys.sort_unstable();
        let mut walker = DirectoryWalker::new();
        let mut finished = Vec::new();
        for key in sorted_keys {
            walker
                .push(
                    ListedObject {
                        key: key.to_string(),
                        size: 1,
                        last_modified: 0,
                        e_tag: None,
                    },
                    &mut finished,
                )
                .unwrap();
        }
        walker.finish(&mut finished);
        finished
    }

    fn names(files: &[FileEntry]) -> Vec<&str> {
        files.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn directories_come_out_deepest_first_with_their_entries() {
        let dirs = walk(&["a/b/c.txt", "a/x.txt", "a/b-c/d", "top.txt", "z/y/w/v"]);
        let paths: Vec<&str> = dirs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["a/b-c", "a/b", "a", "z/y/w", "z/y", "z", ""]);
        let a = &dirs[2];
        assert_eq!(a.subdirectories, ["b", "b-c"]);
        assert_eq!(names(&a.files), ["x.txt"]);
        let root = dirs.last().unwrap();
        assert_eq!(root.subdirectories, ["a", "z"]);
        assert_eq!(names(&root.files), ["top.txt"]);
        assert_eq!(dirs[4].subdirectories, ["w"]);
    }

    #[test]
    fn markers_and_index_pages_are_not_files() {
        let dirs = walk(&["empty/", "docs/index.html", "docs/a.txt", "index.html"]);
        let empty = dirs.iter().find(|d| d.path == "empty").unwrap();
        assert!(empty.files.is_empty() && !empty.has_index_page);
        let docs = dirs.iter().find(|d| d.path == "docs").unwrap();
        assert_eq!(names(&docs.files), ["a.txt"]);
        assert!(docs.has_index_page);
        let root = dirs.last().unwrap();
        assert!(root.has_index_page);
        assert!(root.files.is_empty());
        assert_eq!(root.subdirectories, ["docs", "empty"]);
    }

    #[test]
    fn a_file_and_a_directory_may_share_a_name() {
        let dirs = walk(&["a/b", "a/b/c"]);
        let a = dirs.iter().find(|d| d.path == "a").unwrap();
        assert_eq!(a.subdirectories, ["b"]);
        assert_eq!(names(&a.files), ["b"]);
    }

    #[test]
    fn keys_without_a_url_are_skipped() {
        let mut walker = DirectoryWalker::new();
        let mut finished = Vec::new();
        for (key, expected) in [
            ("/abs", Placement::Skipped),
            ("a/", Placement::FolderMarker),
            ("a//b", Placement::Skipped),
            ("a/b", Placement::File),
        ] {
            let object = ListedObject {
                key: key.into(),
                size: 0,
                last_modified: 0,
                e_tag: None,
            };
            assert_eq!(walker.push(object, &mut finished).unwrap(), expected, "{key}");
        }
    }

    #[test]
    fn a_sub_tree_walks_into_the_same_pages_as_the_whole_bucket() {
        let keys = [
            "debian/dists/a/InRelease",
            "debian/dists/a/main/x",
            "debian/dists/b/InRelease",
            "debian/pool/p.deb",
        ];
        let whole = walk(&keys);
        let mut walker = DirectoryWalker::rooted_at("debian/dists");
        let mut finished = Vec::new();
        for key in keys.iter().filter(|key| key.starts_with("debian/dists/")) {
            let object = ListedObject {
                key: key.to_string(),
                size: 1,
                last_modified: 0,
                e_tag: None,
            };
            walker.push(object, &mut finished).unwrap();
        }
        walker.finish(&mut finished);
        let paths: Vec<&str> = finished.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "debian/dists/a/main",
                "debian/dists/a",
                "debian/dists/b",
                "debian/dists"
            ]
        );
        for directory in &finished {
            assert_eq!(Some(directory), whole.iter().find(|d| d.path == directory.path));
        }
    }

    #[test]
    fn a_level_listing_makes_the_walkers_directory() {
        let keys = [
            "debian/",
            "debian/index.html",
            "debian/README",
            "debian/dists/a/InRelease",
            "debian/pool/p.deb",
        ];
        let whole = walk(&keys);
        let object = |key: &str, e_tag: Option<&str>| ListedObject {
            key: key.to_string(),
            size: 1,
            last_modified: 0,
            e_tag: e_tag.map(str::to_string),
        };
        let level = directory_from_level(
            "debian",
            vec![
                object("debian/", None),
                object("debian/README", None),
                object("debian/index.html", Some("abc")),
            ],
            vec!["pool".into(), "dists".into(), String::new()],
        );
        let mut walked = whole.iter().find(|d| d.path == "debian").unwrap().clone();
        assert_eq!(level.stored_page_etag.as_deref(), Some("abc"));
        walked.stored_page_etag = level.stored_page_etag.clone();
        assert_eq!(level, walked);
    }

    #[test]
    fn the_ancestors_of_sub_trees_are_those_outside_them_deepest_first() {
        let trees = ["debian/dists", "debian/pool/main/h/hhvm", "source", "source/nightlies"].map(String::from);
        assert_eq!(
            ancestors_outside(&trees),
            ["debian/pool/main/h", "debian/pool/main", "debian/pool", "debian", ""]
        );
        assert_eq!(ancestors_outside(&[]), Vec::<String>::new());
    }

    #[test]
    fn out_of_order_keys_are_refused() {
        let mut walker = DirectoryWalker::new();
        let mut finished = Vec::new();
        walker
            .push(
                ListedObject {
                    key: "b".into(),
                    size: 0,
                    last_modified: 0,
                    e_tag: None,
                },
                &mut finished,
            )
            .unwrap();
        let error = walker
            .push(
                ListedObject {
                    key: "a".into(),
                    size: 0,
                    last_modified: 0,
                    e_tag: None,
                },
                &mut finished,
            )
            .unwrap_err();
        assert!(error.to_string().contains("\"a\" came after \"b\""), "{error}");
    }

    #[test]
    fn index_keys() {
        let dirs = walk(&["a/b/c"]);
        assert_eq!(dirs[0].index_key(), "a/b/index.html");
        assert_eq!(dirs.last().unwrap().index_key(), "index.html");
    }
}
