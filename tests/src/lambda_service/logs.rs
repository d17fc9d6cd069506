//! The service's logs: `lambda-service.log` (a line per invocation and per change of a
//! function's process) and each function's own `<name>.log`, which its processes write to.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};

use crate::{Context, StackError};

/// How many lines of a function's log an exit report quotes.
const TAIL_LINES: usize = 20;

/// `lambda-service.log`, shared by the tasks of the service.
pub(super) struct ServiceLog {
    file: Mutex<File>,
}

impl ServiceLog {
    pub fn create(path: &Path) -> Result<ServiceLog, StackError> {
        let file = open_append(path)?;
        Ok(ServiceLog { file: Mutex::new(file) })
    }

    /// One line, stamped like the functions' tracing (UTC, milliseconds) so both read together.
    pub fn line(&self, text: &str) {
        let stamp = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A log line that cannot be written must not fail an invocation.
        let _ = writeln!(file, "{stamp} {text}");
    }
}

/// A function's log; each of its processes appends to it, after a line that says which start
/// (cold start) the lines below belong to.
pub(super) struct FunctionLog {
    pub path: PathBuf,
}

impl FunctionLog {
    pub fn new(log_dir: &Path, function: &str) -> FunctionLog {
        FunctionLog {
            path: log_dir.join(format!("{function}.log")),
        }
    }

    /// Writes the header of a new process's part and returns the file for its stdout and
    /// stderr, with the offset its output starts at.
    pub fn begin_instance(&self, header: &str) -> Result<(File, u64), StackError> {
        let mut file = open_append(&self.path)?;
        let stamp = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        writeln!(file, "--- {stamp} {header} ---").context(format!("write {}", self.path.display()))?;
        let offset = file
            .seek(SeekFrom::End(0))
            .context(format!("seek in {}", self.path.display()))?;
        Ok((file, offset))
    }

    /// The last lines one process wrote (from `offset` on), for an exit report.
    pub fn tail_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.path)
            && file.seek(SeekFrom::Start(offset)).is_ok()
        {
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        pipeline_testing::process::last_lines(&text, TAIL_LINES)
    }
}

fn open_append(path: &Path) -> Result<File, StackError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .context(format!("open {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_holds_only_the_last_process_lines() {
        let dir = std::env::temp_dir().join(format!("lambda-service-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = FunctionLog::new(&dir, "f");
        let (mut first, _) = log.begin_instance("cold start 1").unwrap();
        writeln!(first, "old line").unwrap();
        let (mut second, offset) = log.begin_instance("cold start 2").unwrap();
        for n in 0..30 {
            writeln!(second, "line {n}").unwrap();
        }
        let tail = log.tail_since(offset);
        assert!(!tail.contains("old line") && !tail.contains("cold start"), "{tail}");
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(tail.ends_with("line 29"), "{tail}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
