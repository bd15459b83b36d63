//! Where the rig keeps what it downloads and builds, and how it names
//! derived files so that a change of input rebuilds them.
//!
//! Everything lives under one cache root outside the repository
//! (`$PARAVANE_CACHE`, else `$HOME/.cache/paravane`) and is reused across
//! runs. Derived artefacts carry a [`Fingerprint`] of their inputs (the
//! `.deb` file names, which include the versions, plus the scripts and
//! configuration put into them) in their file name, and are written through a
//! temporary file and a rename so an interrupted build never leaves a
//! half-written artefact under the final name.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The cache root: `$PARAVANE_CACHE` if set, else `$HOME/.cache/paravane`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("PARAVANE_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache").join("paravane")
}

/// A stable 64-bit hash (FNV-1a) of a derived artefact's inputs.
///
/// Not `DefaultHasher`: its output may change between Rust releases, which
/// would rebuild every artefact after a toolchain update.
#[derive(Clone, Copy, Debug)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprint {
    /// The hash of nothing.
    pub fn new() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }

    /// Mixes in `bytes`, followed by a separator so that ("ab","c") and
    /// ("a","bc") differ.
    pub fn mix(mut self, bytes: impl AsRef<[u8]>) -> Self {
        for &b in bytes.as_ref().iter().chain(std::iter::once(&0xff)) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    /// The hash as 16 hex digits, for file names.
    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Writes `data` to `path` through a temporary file in the same directory
/// and a rename, creating the directory if needed.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = temp_sibling(path);
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)
}

/// A temporary name next to `path`, unique to this process.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// How many builds of one artefact [`remove_stale`] leaves: several
/// branches share one cache, and each may need its own build (one branch
/// deleting another's, then the other deleting its, rebuilt both on every
/// run and failed runs that had just prepared theirs).
pub const BUILDS_KEPT: usize = 4;

/// Deletes older builds of an artefact in `dir` (files whose names start
/// with `prefix`): all but `keep` and the newest others, [`BUILDS_KEPT`]
/// in all, by modification time. Errors are ignored: this is tidying.
pub fn remove_stale(dir: &Path, prefix: &str, keep: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut others: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix) && e.path() != keep)
        .map(|e| {
            let modified = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, e.path())
        })
        .collect();
    // Newest first; `keep` is one of the builds kept.
    others.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in others.into_iter().skip(BUILDS_KEPT.saturating_sub(1)) {
        let _ = fs::remove_file(&path);
    }
}

/// Finds `program` on `$PATH` (plus the sbin directories, which a non-root
/// `$PATH` may lack).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The process id in a run directory's name
/// (`run-SECS.MS-PID-ATTEMPT-LABEL`).
fn run_dir_pid(name: &str) -> Option<u32> {
    name.strip_prefix("run-")?.split('-').nth(1)?.parse().ok()
}

/// Whether the process that made run directory `name` still runs: its
/// directory is still being written (several agents share one cache,
/// and a long domU session must not lose its logs to another's pruning).
fn run_dir_in_use(name: &str) -> bool {
    run_dir_pid(name).is_some_and(|pid| Path::new("/proc").join(pid.to_string()).exists())
}

/// Makes a new directory for one run's logs under `log_root`, named
/// `YYYY...-LABEL` by start time, and deletes the oldest runs until
/// fewer than `keep` are left, sparing those whose process still runs
/// (see [`run_dir_in_use`]).
pub fn new_run_dir(log_root: &Path, label: &str, keep: usize) -> io::Result<PathBuf> {
    fs::create_dir_all(log_root)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut runs: Vec<PathBuf> = fs::read_dir(log_root)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("run-"))
        .map(|e| e.path())
        .collect();
    runs.sort();
    let mut left = runs.len();
    for run in runs {
        if left < keep.max(1) {
            break;
        }
        let name = run.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.as_deref().is_some_and(run_dir_in_use) {
            continue;
        }
        let _ = fs::remove_dir_all(run);
        left -= 1;
    }
    for attempt in 0u32.. {
        let dir = log_root.join(format!(
            "run-{}.{:03}-{}-{attempt}-{label}",
            now.as_secs(),
            now.subsec_millis(),
            std::process::id()
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 attempts exhausted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_builds_beyond_the_newest_few_go() {
        let dir = std::env::temp_dir().join(format!("rig-stale-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let keep = dir.join("a-keep");
        fs::write(&keep, b"k").unwrap();
        for i in 0..6 {
            fs::write(dir.join(format!("a-{i}")), b"x").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        fs::write(dir.join("other"), b"o").unwrap();
        remove_stale(&dir, "a-", &keep);
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(left, ["a-3", "a-4", "a-5", "a-keep", "other"]);
    }

    #[test]
    fn runs_of_live_processes_are_spared() {
        let mine = format!("run-1796401120.795-{}-0-domu", std::process::id());
        assert_eq!(run_dir_pid(&mine), Some(std::process::id()));
        assert!(run_dir_in_use(&mine));
        assert!(!run_dir_in_use("run-1796401120.795-4294967290-0-domu"));
        assert_eq!(run_dir_pid("other"), None);

        let root = std::env::temp_dir().join(format!("rig-prune-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join(&mine)).unwrap();
        for i in 0..3 {
            fs::create_dir_all(root.join(format!("run-100000000{i}.000-4294967290-0-x"))).unwrap();
        }
        let new = new_run_dir(&root, "t", 2).unwrap();
        let left: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        fs::remove_dir_all(&root).unwrap();
        assert!(left.contains(&mine), "{left:?}");
        assert!(left.iter().any(|n| new.ends_with(n)), "{left:?}");
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn fingerprint_is_stable_and_separates_fields() {
        // FNV-1a of the empty input followed by the 0xff separator.
        assert_eq!(Fingerprint::new().mix("").hex(), "af64724c8602eb6e");
        let ab_c = Fingerprint::new().mix("ab").mix("c").hex();
        let a_bc = Fingerprint::new().mix("a").mix("bc").hex();
        assert_ne!(ab_c, a_bc);
        assert_eq!(ab_c, Fingerprint::new().mix("ab").mix("c").hex());
    }

    #[test]
    fn temp_sibling_stays_in_directory() {
        let tmp = temp_sibling(Path::new("/x/y/vmlinux-1"));
        assert_eq!(tmp.parent(), Some(Path::new("/x/y")));
        assert!(tmp
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("vmlinux-1.tmp"));
    }
}
