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

    /// The apt suites (`ubuntu/noble`, `ubuntu/noble-4.168`) this distro's packages go to, for
    /// its packaging branch's `DEBIAN_REPOSITORIES` templates: the codename with what follows
    /// `DISTRO` in each, as update-repos.sh's `dists_of` makes them (it reads the codename from
    /// the distro's `DISTRIBUTION` file, which names the same codename).
    pub fn suites(&self, templates: &[String]) -> Result<Vec<String>, String> {
        templates
            .iter()
            .map(|template| {
                let dist = format!(
                    "{}{}",
                    self.codename(),
                    template.strip_prefix("DISTRO").unwrap_or(template)
                );
                let plain = dist.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && dist
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
                if plain {
                    Ok(format!("{}/{dist}", self.os()))
                } else {
                    Err(format!(
                        "DEBIAN_REPOSITORIES line {template:?} gives a bad dist {dist:?}"
                    ))
                }
            })
            .collect()
    }
}

impl FromStr for Distro {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.len() > MAX_DISTRO_LEN {
            return Err(format!(
                "a distro name of {} characters is not one (at most {MAX_DISTRO_LEN})",
                value.len()
            ));
        }
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

/// Longer than any real distro name, and short enough that every key and tag built from one is
/// within S3's and EC2's limits.
const MAX_DISTRO_LEN: usize = 64;

impl fmt::Display for Distro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The optional `distros` field of a payload, read the same way by every function: absent or
/// null is `None` (every distro the packaging branch's `CURRENT_TARGETS` lists); otherwise a
/// non-empty array of distinct, valid distro names, errors naming the element (`distros[1]`).
/// An empty list is refused rather than read as "all" or "none".
pub fn read_distros(payload: &crate::Payload) -> Result<Option<Vec<Distro>>, crate::PipelineError> {
    match payload.get("distros") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(_) => {
            let distros =
                payload.required_array("distros", "distro names such as \"debian-12-bookworm\"", |value| {
                    crate::payload::string_element(value)?.parse()
                })?;
            if distros.is_empty() {
                return Err(crate::PipelineError::invalid_input(
                    "distros",
                    "is empty; leave it out to build every distro of CURRENT_TARGETS",
                ));
            }
            if let Some(index) = (1..distros.len()).find(|&i| distros[..i].contains(&distros[i])) {
                return Err(crate::PipelineError::invalid_input(
                    format!("distros[{index}]"),
                    format!("{} is listed twice", distros[index]),
                ));
            }
            Ok(Some(distros))
        }
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

/// Parses a `DEBIAN_REPOSITORIES` file: one suite template per line (`DISTRO`, `DISTRO-4.168`);
/// blank lines and `#` comments ignored, as update-repos.sh reads it.
pub fn parse_debian_repositories(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_follow_debian_repositories_as_the_repository_update_does() {
        let distro: Distro = "ubuntu-24.04-noble".parse().unwrap();
        let templates = parse_debian_repositories("DISTRO\n# pinned\n\nDISTRO-4.168\n");
        assert_eq!(templates, ["DISTRO", "DISTRO-4.168"]);
        assert_eq!(
            distro.suites(&templates).unwrap(),
            ["ubuntu/noble", "ubuntu/noble-4.168"]
        );
        let bad = distro.suites(&["DISTRO/../x".to_string()]).unwrap_err();
        assert!(bad.contains("\"noble/../x\""), "{bad}");
    }

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
        let huge = format!("debian-12-{}", "a".repeat(1 << 20));
        assert!(huge.parse::<Distro>().unwrap_err().contains("at most 64"));
    }

    #[test]
    fn distros_are_optional_and_validated_by_element() {
        let read = |input| read_distros(&crate::Payload::from_value(input).unwrap());
        assert_eq!(read(serde_json::json!({})).unwrap(), None);
        assert_eq!(read(serde_json::json!({"distros": null})).unwrap(), None);
        let distros = read(serde_json::json!({"distros": ["debian-12-bookworm"]}))
            .unwrap()
            .unwrap();
        assert_eq!(
            distros.iter().map(Distro::as_str).collect::<Vec<_>>(),
            ["debian-12-bookworm"]
        );
        let error = read(serde_json::json!({"distros": ["debian-12-bookworm", "fedora-40-x"]})).unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        assert!(error.to_string().contains("`distros[1]`"), "{error}");
        let error = read(serde_json::json!({"distros": "debian-12-bookworm"})).unwrap_err();
        assert!(error.to_string().contains("`distros`: expected an array"), "{error}");
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
