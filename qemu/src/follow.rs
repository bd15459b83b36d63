//! Following a log file that QEMU is still writing, line by line.
//!
//! QEMU writes each serial port to a file (`-serial file:PATH`); the rig
//! polls those files for new complete lines while QEMU runs. Polling a file
//! needs no thread and no pipe that could fill up and stall QEMU, and the
//! file is the run's log afterwards.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Reads the lines appended to a file since the last poll.
pub struct LineFollower {
    path: PathBuf,
    file: Option<File>,
    pending: Vec<u8>,
}

impl LineFollower {
    /// Follows `path`, which need not exist yet.
    pub fn new(path: &Path) -> Self {
        LineFollower {
            path: path.to_path_buf(),
            file: None,
            pending: Vec::new(),
        }
    }

    /// The complete lines added since the last call, without their line
    /// ends (`\n`, and any `\r` before it).
    pub fn poll(&mut self) -> Vec<String> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        if let Some(file) = &mut self.file {
            let _ = file.read_to_end(&mut self.pending);
        }
        split_complete_lines(&mut self.pending)
    }

    /// The text after the last line end (a line still being written).
    pub fn partial(&self) -> String {
        clean(&self.pending)
    }

    /// Takes the unfinished last line, if any, as a final line.
    pub fn take_partial(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        (!rest.is_empty()).then(|| clean(&rest))
    }
}

/// Removes the complete lines from the front of `pending` and returns them.
pub fn split_complete_lines(pending: &mut Vec<u8>) -> Vec<String> {
    let Some(last_newline) = pending.iter().rposition(|&b| b == b'\n') else {
        return Vec::new();
    };
    let rest = pending.split_off(last_newline + 1);
    let complete = std::mem::replace(pending, rest);
    complete[..complete.len() - 1]
        .split(|&b| b == b'\n')
        .map(clean)
        .collect()
}

/// Lossy UTF-8 without trailing `\r`s or NULs.
fn clean(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches(['\r', '\0'])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_only_complete_lines() {
        let mut pending = b"one\r\ntwo\n\nthr".to_vec();
        assert_eq!(split_complete_lines(&mut pending), ["one", "two", ""]);
        assert_eq!(pending, b"thr");
        assert!(split_complete_lines(&mut pending).is_empty());
        pending.extend_from_slice(b"ee\r\n");
        assert_eq!(split_complete_lines(&mut pending), ["three"]);
        assert!(pending.is_empty());
    }

    #[test]
    fn follows_a_growing_file() {
        let dir = std::env::temp_dir().join(format!("rig-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("serial.log");
        let mut follower = LineFollower::new(&path);
        assert!(follower.poll().is_empty());
        std::fs::write(&path, "a\nb").unwrap();
        assert_eq!(follower.poll(), ["a"]);
        assert_eq!(follower.partial(), "b");
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"c\nd").unwrap();
        assert_eq!(follower.poll(), ["bc"]);
        assert_eq!(follower.take_partial().as_deref(), Some("d"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
