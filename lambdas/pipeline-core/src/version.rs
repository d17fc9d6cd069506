//! HHVM versions and packaging branches.
//!
//! A nightly is `YYYY.MM.DD` and must be a real date; a release is `x.y.z`. Anything else is
//! refused here, at the edge: the original pipeline crashed on such input or passed it on to a
//! shell. Numbers must not carry leading zeros, so a parsed version prints back exactly as it
//! was written (it names files, tags and S3 keys).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, Utc};

use crate::PipelineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    Nightly(NaiveDate),
    Release { major: u32, minor: u32, patch: u32 },
}

impl Version {
    /// Today's nightly, by the UTC calendar (as the original: builds are named after UTC days).
    pub fn nightly_today() -> Version {
        Version::Nightly(Utc::now().date_naive())
    }

    pub fn is_nightly(&self) -> bool {
        matches!(self, Version::Nightly(_))
    }

    /// The branch of the packaging repository this version is built from by default.
    pub fn default_packaging_branch(&self) -> PackagingBranch {
        match *self {
            Version::Nightly(_) => PackagingBranch::Master,
            Version::Release { major, minor, .. } => PackagingBranch::Release { major, minor },
        }
    }

    /// The payload's required `version`: the one reader of the field.
    pub fn read(payload: &crate::Payload) -> Result<Version, PipelineError> {
        payload
            .required::<String>("version", "a version string (YYYY.MM.DD or x.y.z)")?
            .parse()
            .map_err(|error: PipelineError| error.in_field("version"))
    }

    /// The payload's optional `version`; `""` also means "not given" (the nightly schedule's
    /// input relies on it).
    pub fn read_optional(payload: &crate::Payload) -> Result<Option<Version>, PipelineError> {
        payload
            .optional_nonempty_str("version")?
            .map(|text| text.parse().map_err(|error: PipelineError| error.in_field("version")))
            .transpose()
    }

    /// `hhvm-nightly` for nightlies, `hhvm` for releases: the Debian package and tarball prefix.
    pub fn package_name(&self) -> &'static str {
        if self.is_nightly() { "hhvm-nightly" } else { "hhvm" }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Nightly(date) => write!(f, "{:04}.{:02}.{:02}", date.year(), date.month(), date.day()),
            Version::Release { major, minor, patch } => write!(f, "{major}.{minor}.{patch}"),
        }
    }
}

impl FromStr for Version {
    type Err = PipelineError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = |problem: &str| PipelineError::invalid_version(value, problem);
        const EXPECTED: &str = "expected a nightly YYYY.MM.DD (a real date) or a release x.y.z";

        let parts: Vec<&str> = value.split('.').collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid(EXPECTED));
        }
        if parts[0].len() == 4 && parts[1].len() == 2 && parts[2].len() == 2 {
            // The nightly shape: it must be a date, never silently a release 2026.13.45.
            let (year, month, day) = (parts[0].parse().ok(), parts[1].parse().ok(), parts[2].parse().ok());
            return match (year, month, day) {
                (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(y, m, d)
                    .map(Version::Nightly)
                    .ok_or_else(|| invalid("looks like a nightly but is not a real date")),
                _ => Err(invalid(EXPECTED)),
            };
        }
        let number = |part: &str| -> Result<u32, PipelineError> {
            if part.len() > 1 && part.starts_with('0') {
                return Err(invalid("release numbers must not have leading zeros"));
            }
            part.parse().map_err(|_| invalid("release number out of range"))
        };
        Ok(Version::Release {
            major: number(parts[0])?,
            minor: number(parts[1])?,
            patch: number(parts[2])?,
        })
    }
}

/// The branch of the packaging repository: `master` for nightlies, `HHVM-x.y` for releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PackagingBranch {
    Master,
    Release { major: u32, minor: u32 },
}

impl fmt::Display for PackagingBranch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackagingBranch::Master => f.write_str("master"),
            PackagingBranch::Release { major, minor } => write!(f, "HHVM-{major}.{minor}"),
        }
    }
}

impl FromStr for PackagingBranch {
    type Err = PipelineError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            PipelineError::invalid_input(
                "packagingBranch",
                format!("{value:?} is not a packaging branch; expected \"master\" or \"HHVM-x.y\""),
            )
        };
        if value == "master" {
            return Ok(PackagingBranch::Master);
        }
        let numbers = value.strip_prefix("HHVM-").ok_or_else(invalid)?;
        let (major, minor) = numbers.split_once('.').ok_or_else(invalid)?;
        let number = |part: &str| -> Result<u32, PipelineError> {
            let canonical = !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_digit())
                && !(part.len() > 1 && part.starts_with('0'));
            if !canonical {
                return Err(invalid());
            }
            part.parse().map_err(|_| invalid())
        };
        Ok(PackagingBranch::Release {
            major: number(major)?,
            minor: number(minor)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Version, PipelineError> {
        value.parse()
    }

    #[test]
    fn nightly_is_a_real_date_and_prints_back_unchanged() {
        let version = parse("2026.02.28").unwrap();
        assert_eq!(version, Version::Nightly(NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()));
        assert!(version.is_nightly());
        assert_eq!(version.to_string(), "2026.02.28");
        assert_eq!(version.package_name(), "hhvm-nightly");
    }

    #[test]
    fn leap_day_is_a_nightly_only_in_leap_years() {
        assert!(parse("2024.02.29").is_ok());
        let error = parse("2026.02.29").unwrap_err();
        assert_eq!(error.error_type(), "InvalidVersion");
        assert!(error.to_string().contains("not a real date"), "{error}");
    }

    #[test]
    fn nightly_shaped_non_dates_are_not_releases() {
        for value in ["2026.13.01", "2026.00.10", "2026.12.32"] {
            assert_eq!(parse(value).unwrap_err().error_type(), "InvalidVersion", "{value}");
        }
    }

    #[test]
    fn release_is_three_canonical_numbers() {
        let version = parse("4.168.2").unwrap();
        assert_eq!(
            version,
            Version::Release {
                major: 4,
                minor: 168,
                patch: 2
            }
        );
        assert!(!version.is_nightly());
        assert_eq!(version.to_string(), "4.168.2");
        assert_eq!(version.package_name(), "hhvm");
        assert_eq!(parse("3.30.0").unwrap().to_string(), "3.30.0");
        // A year-like release that is not nightly-shaped stays a release.
        assert!(matches!(parse("2026.1.1").unwrap(), Version::Release { .. }));
    }

    #[test]
    fn anything_else_is_an_invalid_version() {
        for value in [
            "",
            "4",
            "4.1",
            "4.1.2.3",
            "4.01.2",
            "04.1.2",
            "4.1.x",
            "v4.1.2",
            "4.1.2 ",
            " 4.1.2",
            "4..2",
            "4.1.2;rm -rf /",
            "$(id).1.2",
            "4.1.99999999999",
            "2026.1.02-1",
            "２０２６.01.01",
        ] {
            let error = parse(value).unwrap_err();
            assert_eq!(error.error_type(), "InvalidVersion", "{value:?}");
        }
    }

    #[test]
    fn default_branches_follow_the_version() {
        assert_eq!(
            parse("2026.11.21").unwrap().default_packaging_branch().to_string(),
            "master"
        );
        assert_eq!(
            parse("4.168.2").unwrap().default_packaging_branch().to_string(),
            "HHVM-4.168"
        );
    }

    #[test]
    fn today_is_a_nightly() {
        let today = Version::nightly_today();
        assert!(today.is_nightly());
        assert_eq!(parse(&today.to_string()).unwrap(), today);
    }

    #[test]
    fn packaging_branches_are_master_or_hhvm_x_y() {
        assert_eq!("master".parse::<PackagingBranch>().unwrap(), PackagingBranch::Master);
        assert_eq!(
            "HHVM-4.168".parse::<PackagingBranch>().unwrap(),
            PackagingBranch::Release { major: 4, minor: 168 }
        );
        for value in [
            "",
            "main",
            "Master",
            "HHVM-4",
            "HHVM-4.1.2",
            "HHVM-4.x",
            "HHVM-04.1",
            "hhvm-4.1",
            "HHVM-4.1;id",
        ] {
            let error = value.parse::<PackagingBranch>().unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput", "{value:?}");
            assert!(error.to_string().contains("packagingBranch"), "{error}");
        }
    }
}
