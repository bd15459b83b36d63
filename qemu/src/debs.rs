//! Debian packages: installing host tools, downloading `.deb` files and
//! extracting them, all through apt's and dpkg's ordinary clients.
//!
//! Downloads land in `<cache>/debs/` and are reused: a package whose `.deb`
//! is already there is not looked up again, so a second run makes no network
//! request at all. Each package is extracted once to
//! `<cache>/extract/<package>/` (the layout other tests rely on for Xen's
//! headers), with a stamp file naming the `.deb` it came from so a new
//! version replaces it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache;
use crate::error::RigError;

/// The name of the stamp file inside an extraction directory.
const STAMP: &str = ".paravane-extracted-from";

/// One downloaded package.
#[derive(Clone, Debug)]
pub struct Deb {
    /// The package name (`xen-utils-4.17`).
    pub package: String,
    /// The `.deb` file; its name carries the version.
    pub path: PathBuf,
}

impl Deb {
    /// The `.deb`'s file name (`name_version_arch.deb`), used in cache keys.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Runs a command and returns its stdout, or a [`RigError::Command`] with the
/// tail of its output.
pub fn run(command: &mut Command) -> Result<String, RigError> {
    let shown = format!("{command:?}");
    let output = command.output().map_err(|e| RigError::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Err(RigError::Command {
            command: shown,
            detail: format!("{}: {}", output.status, tail(&text, 15)),
        })
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions, touches no memory and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `apt-get ARGS` as root: directly when we are root, else through sudo.
fn apt_get(args: &[&str]) -> Command {
    let mut command = if is_root() {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("apt-get");
        sudo
    };
    command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    command
}

/// Whether the apt lists directory `dir` holds any `Packages` index.
pub fn has_package_lists(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
        })
        .unwrap_or(false)
}

/// Runs `apt-get update` unless apt already has package lists.
pub fn ensure_apt_lists() -> Result<(), RigError> {
    if has_package_lists(Path::new("/var/lib/apt/lists")) {
        return Ok(());
    }
    progress!("apt-get update (no package lists yet)");
    run(&mut apt_get(&["update"])).map_err(|e| RigError::Download {
        package: "apt-get update".into(),
        detail: e.to_string(),
    })?;
    Ok(())
}

/// Installs Debian's `package` with `apt-get install -y
/// --no-install-recommends` (as root, or through sudo), running `apt-get
/// update` first if apt has no package lists. apt's output goes to our
/// stderr as it comes, so a long download shows progress.
pub fn apt_install(package: &str) -> Result<(), RigError> {
    ensure_apt_lists()?;
    progress!("installing {package} with apt-get install -y --no-install-recommends {package}");
    let status = apt_get(&["install", "-y", "--no-install-recommends", package])
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| RigError::Command {
            command: format!("apt-get install {package}"),
            detail: e.to_string(),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(RigError::Command {
            command: format!("apt-get install -y --no-install-recommends {package}"),
            detail: status.to_string(),
        })
    }
}

/// Makes sure `qemu-system-x86_64` exists, installing Debian's
/// `qemu-system-x86` if not. Returns its path.
pub fn ensure_qemu() -> Result<PathBuf, RigError> {
    if let Some(path) = cache::which("qemu-system-x86_64") {
        return Ok(path);
    }
    apt_install("qemu-system-x86").map_err(|e| RigError::QemuMissing(e.to_string()))?;
    cache::which("qemu-system-x86_64")
        .ok_or_else(|| RigError::QemuMissing("still not on PATH after apt-get install".into()))
}

/// The newest cached `.deb` in `dir` whose name starts with `prefix`.
fn cached_deb(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let entries = fs::read_dir(dir).ok()?;
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(prefix) && name.ends_with(".deb")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// The newest `.deb` of `package` already in `debs_dir`, if any.
pub fn cached(debs_dir: &Path, package: &str) -> Option<Deb> {
    cached_deb(debs_dir, &format!("{package}_")).map(|path| Deb {
        package: package.into(),
        path,
    })
}

/// The `.deb` of `package` in `debs_dir`, downloaded with `apt-get download`
/// if it is not there yet.
pub fn fetch(debs_dir: &Path, package: &str) -> Result<Deb, RigError> {
    let prefix = format!("{package}_");
    if let Some(deb) = cached(debs_dir, package) {
        return Ok(deb);
    }
    fs::create_dir_all(debs_dir).map_err(|e| RigError::io(debs_dir, e))?;
    ensure_apt_lists()?;
    progress!("downloading {package}");
    // apt-get download writes into the current directory.
    Command::new("apt-get")
        .args(["download", package])
        .current_dir(debs_dir)
        .output()
        .map_err(|e| RigError::Download {
            package: package.into(),
            detail: e.to_string(),
        })
        .and_then(|out| {
            if out.status.success() {
                Ok(())
            } else {
                Err(RigError::Download {
                    package: package.into(),
                    detail: tail(&String::from_utf8_lossy(&out.stderr), 5),
                })
            }
        })?;
    let path = cached_deb(debs_dir, &prefix).ok_or_else(|| RigError::Download {
        package: package.into(),
        detail: format!("apt-get download left no {prefix}*.deb"),
    })?;
    Ok(Deb {
        package: package.into(),
        path,
    })
}

/// The name of the versioned kernel package (`linux-image-6.1.0-48-amd64`):
/// the one already cached, else the one `linux-image-amd64` depends on.
pub fn linux_image_package(debs_dir: &Path) -> Result<String, RigError> {
    if let Some(package) = cached_linux_image_package(debs_dir) {
        return Ok(package);
    }
    ensure_apt_lists()?;
    let depends = run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    linux_image_dependency(&depends)
}

/// The newest versioned kernel package cached in `debs_dir`, if any.
pub fn cached_linux_image_package(debs_dir: &Path) -> Option<String> {
    let entries = fs::read_dir(debs_dir).ok()?;
    let mut cached: Vec<(std::time::SystemTime, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let package = name.split('_').next()?.to_string();
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            is_versioned_kernel_package(&package).then_some((modified, package))
        })
        .collect();
    cached.sort();
    cached.pop().map(|(_, package)| package)
}

/// The versioned kernel package in `apt-cache depends linux-image-amd64`'s
/// output.
pub fn linux_image_dependency(depends: &str) -> Result<String, RigError> {
    depends
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|package| is_versioned_kernel_package(package))
        .map(str::to_string)
        .ok_or_else(|| RigError::Download {
            package: "linux-image-amd64".into(),
            detail: format!("no linux-image-*-amd64 dependency in:\n{depends}"),
        })
}

/// `linux-image-6.1.0-48-amd64` (bookworm) or
/// `linux-image-6.12.117+deb13-amd64` (trixie): not the meta package, nor
/// the `-dbg`, `-unsigned`, `-cloud` or `-rt` flavours.
fn is_versioned_kernel_package(package: &str) -> bool {
    package
        .strip_prefix("linux-image-")
        .and_then(|rest| rest.strip_suffix("-amd64"))
        .is_some_and(|version| {
            // Trixie's names carry the Debian release (`+deb13`).
            let version = match version.split_once("+deb") {
                Some((upstream, release)) if release.chars().all(|c| c.is_ascii_digit()) => {
                    upstream
                }
                _ => version,
            };
            version.starts_with(|c: char| c.is_ascii_digit())
                && version
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        })
}

/// Extracts `deb` to `<extract_root>/<package>/` unless that directory was
/// already extracted from the same `.deb`. Returns the directory.
pub fn extract(deb: &Deb, extract_root: &Path) -> Result<PathBuf, RigError> {
    let dest = extract_root.join(&deb.package);
    let stamp = dest.join(STAMP);
    let from = deb.file_name();
    if fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == from) {
        return Ok(dest);
    }
    progress!("extracting {from}");
    // Leftovers of an interrupted extraction (any process) go first.
    if let Ok(entries) = fs::read_dir(extract_root) {
        let prefix = format!(".{}.", deb.package);
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let tmp = extract_root.join(format!(".{}.tmp{}", deb.package, std::process::id()));
    fs::create_dir_all(&tmp).map_err(|e| RigError::io(&tmp, e))?;
    run(Command::new("dpkg").arg("-x").arg(&deb.path).arg(&tmp))?;
    fs::write(tmp.join(STAMP), &from).map_err(|e| RigError::io(&tmp, e))?;
    // Swap the new tree in with renames so readers see the old or the new
    // one, never a half-extracted one.
    let old = extract_root.join(format!(".{}.old{}", deb.package, std::process::id()));
    if dest.exists() {
        fs::rename(&dest, &old).map_err(|e| RigError::io(&dest, e))?;
    }
    fs::rename(&tmp, &dest).map_err(|e| RigError::io(&dest, e))?;
    let _ = fs::remove_dir_all(&old);
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_package_names() {
        assert!(is_versioned_kernel_package("linux-image-6.1.0-48-amd64"));
        assert!(!is_versioned_kernel_package("linux-image-amd64"));
        assert!(!is_versioned_kernel_package(
            "linux-image-6.1.0-48-amd64-unsigned"
        ));
        assert!(!is_versioned_kernel_package(
            "linux-image-6.1.0-48-amd64-dbg"
        ));
        assert!(!is_versioned_kernel_package(
            "linux-image-6.1.0-48-cloud-amd64"
        ));
        assert!(!is_versioned_kernel_package(
            "linux-image-6.1.0-48-rt-amd64"
        ));
        assert!(is_versioned_kernel_package(
            "linux-image-6.12.117+deb13-amd64"
        ));
        assert!(!is_versioned_kernel_package(
            "linux-image-6.12.117+deb13-cloud-amd64"
        ));
        assert_eq!(
            linux_image_dependency(
                "linux-image-amd64\n  Depends: linux-image-6.12.117+deb13-amd64\n"
            )
            .unwrap(),
            "linux-image-6.12.117+deb13-amd64"
        );
        assert!(linux_image_dependency("linux-image-amd64\n").is_err());
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
