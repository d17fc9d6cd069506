//! Distribution directories of the packaging repository: `<os>-<numeric version>-<codename>`,
//! e.g. `debian-12-bookworm`, `ubuntu-24.04-noble`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A distro name matching `^(debian|ubuntu)-[0-9.]+-[a-z]+$`: safe in a shell word, an S3 key,
/// a tag and a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Distro(String);

impl Distro {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `debian` or `ubuntu`: the apt repository this distro's packages go to.
    pub fn os(&self) -> &str {
        self.0.split('-').next().unwrap_or_default()
    }

    /// The trailing codename, e.g. `bookworm`.
    pub fn codename(&self) -> &str {
        self.0.rsplit('-').next().unwrap_or_default()
    }
}

impl FromStr for Distro {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid =
            || format!("{value:?} is not a distro name (expected e.g. debian-12-bookworm or ubuntu-24.04-noble)");
        let rest = value
            .strip_prefix("debian-")
            .or_else(|| value.strip_prefix("ubuntu-"))
            .ok_or_else(invalid)?;
        let (number, codename) = rest.split_once('-').ok_or_else(invalid)?;
        let number_ok = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        let codename_ok = !codename.is_empty() && codename.bytes().all(|b| b.is_ascii_lowercase());
        if !number_ok || !codename_ok {
            return Err(invalid());
        }
        Ok(Distro(value.to_string()))
    }
}

impl fmt::Display for Distro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a `CURRENT_TARGETS` file: one distro per line; blank lines and `#` comments ignored.
pub fn parse_current_targets(text: &str) -> Result<Vec<Distro>, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distro_names_follow_the_directory_convention() {
        let distro: Distro = "ubuntu-24.04-noble".parse().unwrap();
        assert_eq!((distro.os(), distro.codename()), ("ubuntu", "noble"));
        assert!("debian-12-bookworm".parse::<Distro>().is_ok());
        for bad in [
            "",
            "debian",
            "debian-12",
            "debian--bookworm",
            "fedora-40-x",
            "debian-12-Bookworm",
            "debian-12-book worm",
            "debian-12-a;b",
            "debian-1x-a",
            "debian-12-bookworm-2",
        ] {
            assert!(bad.parse::<Distro>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn current_targets_are_read_line_by_line() {
        let distros = parse_current_targets("debian-12-bookworm\n\n# comment\nubuntu-24.04-noble\n").unwrap();
        assert_eq!(
            distros.iter().map(Distro::as_str).collect::<Vec<_>>(),
            ["debian-12-bookworm", "ubuntu-24.04-noble"]
        );
        assert!(parse_current_targets("debian-12-bookworm\n$(id)\n").is_err());
    }
}
