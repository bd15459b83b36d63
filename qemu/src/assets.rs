//! Preparing what a run needs, once: QEMU installed, the `.deb`s fetched
//! and extracted, and the derived artefacts built and cached — Xen
//! (gunzipped), the dom0 `vmlinux` (ELF, out of the bzImage; a zstd
//! bzImage as it is) and the base dom0 initramfs, one per Xen version
//! (each with its own toolstack) and dom0 Linux ([`DOM0_LINUX_VAR`]).
//!
//! Each derived artefact's file name carries the versions of the `.deb`s it
//! came from and a hash of what the rig put into it, so a new package or an
//! edited script rebuilds it, and a second run with nothing changed only
//! looks at file names (well under a second). Packages are extracted only
//! when something has to be built from them (the kernel package is 400 MB
//! extracted, and takes seconds).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cache::{self, Fingerprint};
use crate::debs::{self, Deb};
use crate::error::RigError;
use crate::hypervisor::{self, XenVersion};
use crate::initramfs;
use crate::vmlinux;

/// Xen's public headers.
const HEADERS: &str = "libxen-dev";
/// The dom0 userland.
const BUSYBOX: &str = "busybox-static";
/// `xenstore-read` and friends.
const XENSTORE_UTILS: &str = "xenstore-utils";
/// The environment variable that picks dom0's Linux: `bookworm` (the
/// default, for every Xen: any Xen-capable Linux runs under any Xen) or
/// `trixie`, Debian trixie's, with Xen 4.20 only (it comes through that
/// version's private apt configuration).
pub const DOM0_LINUX_VAR: &str = "PARAVANE_DOM0_LINUX";

/// Which version's Debian release dom0's Linux comes from, in a rig of
/// `version`, given [`DOM0_LINUX_VAR`]'s value.
fn dom0_linux_release(version: XenVersion, choice: Option<&str>) -> Result<XenVersion, RigError> {
    match choice.map(str::trim) {
        None | Some("") | Some("bookworm") => Ok(XenVersion::V4_17),
        Some("trixie") if version == XenVersion::V4_20 => Ok(XenVersion::V4_20),
        Some("trixie") => Err(RigError::Invalid(format!(
            "{DOM0_LINUX_VAR}=trixie needs Xen 4.20 (--xen 4.20): trixie's packages come \
             through its private apt configuration; this rig boots {version}"
        ))),
        Some(other) => Err(RigError::Invalid(format!(
            "{DOM0_LINUX_VAR} takes bookworm or trixie, not `{other}`"
        ))),
    }
}

/// Bumped when the way `xen` or `vmlinux` is derived changes.
const DERIVATION_VERSION: &str = "v1";

/// Paths of everything prepared.
#[derive(Clone, Debug)]
pub struct Assets {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// The gunzipped Xen (a multiboot ELF).
    pub xen: PathBuf,
    /// The dom0 kernel: an ELF, or a bzImage Xen unpacks quickly.
    pub vmlinux: PathBuf,
    /// The base dom0 initramfs (newc cpio, uncompressed).
    pub dom0_cpio: PathBuf,
    /// Xen's public headers (`.../extract/libxen-dev/usr/include`).
    pub include_dir: PathBuf,
}

/// The stem of a `.deb`'s file name (`name_version_arch`), with the
/// characters that do not belong in a file name replaced.
fn deb_stem(deb: &Deb) -> String {
    deb.file_name()
        .trim_end_matches(".deb")
        .replace(['%', ':', '~', '+'], "_")
}

/// Does everything [`Rig::prepare_xen`](crate::Rig::prepare_xen) promises:
/// the hypervisor and dom0's toolstack are `version`'s; busybox and the
/// Linux dom0 (kernel and modules) are bookworm's for every version.
pub fn prepare(root: &Path, version: XenVersion) -> Result<Assets, RigError> {
    let start = Instant::now();
    let qemu = debs::ensure_qemu()?;
    let debs_dir = root.join("debs");
    let extract_root = root.join("extract");

    // The headers of the Xen under test (4.20's from trixie, through the
    // same private apt configuration as its hypervisor), so the ABI
    // layout test can check our definitions against each version.
    let headers = hypervisor::fetch(root, version, HEADERS)?;
    let include_dir = debs::extract(&headers, &version.extract_dir(root))?.join("usr/include");

    let hypervisor = hypervisor::fetch_hypervisor(root, version)?;
    let xen_fp = Fingerprint::new()
        .mix(DERIVATION_VERSION)
        .mix(hypervisor.file_name());
    let xen = root
        .join("xen")
        .join(format!("xen-{}-{}", deb_stem(&hypervisor), xen_fp.hex()));
    if !xen.exists() {
        let dir = debs::extract(&hypervisor, &extract_root)?;
        build_xen(&dir, &xen)?;
        // Only older builds of the same hypervisor package go: each
        // version's build stays beside the other's.
        let prefix = format!("xen-{}_", hypervisor.package);
        cache::remove_stale(&root.join("xen"), &prefix, &xen);
    }

    let linux_release = dom0_linux_release(version, std::env::var(DOM0_LINUX_VAR).ok().as_deref())?;
    let linux_package = hypervisor::linux_image_package(root, linux_release)?;
    let linux = hypervisor::fetch(root, linux_release, &linux_package)?;
    let linux_extract_root = linux_release.extract_dir(root);
    let vmlinux_fp = Fingerprint::new()
        .mix(DERIVATION_VERSION)
        .mix(linux.file_name());
    let vmlinux =
        root.join("vmlinux")
            .join(format!("vmlinux-{}-{}", deb_stem(&linux), vmlinux_fp.hex()));
    if !vmlinux.exists() {
        let dir = debs::extract(&linux, &linux_extract_root)?;
        build_vmlinux(&dir, &vmlinux)?;
        cache::remove_stale(&root.join("vmlinux"), "vmlinux-", &vmlinux);
    }

    // Bookworm's busybox first and its Linux last; `version`'s toolstack
    // (and C library, if the host's is too old for it) between them.
    let mut used = vec![debs::fetch(&debs_dir, BUSYBOX)?];
    for package in version.toolstack() {
        used.push(hypervisor::fetch(root, version, &package)?);
    }
    if let Some(libc) = version.libc_package() {
        used.push(hypervisor::fetch(root, version, libc)?);
    }
    used.push(linux.clone());
    let cpio_fp = initramfs::fingerprint(&used, version);
    // Named `base-dom0-…`: older rigs delete every other `dom0-…` build
    // but their own, and branches of both kinds share one cache. 4.17's
    // keeps its historical name; the others name their version, so that
    // each version's build stays beside the other's.
    let prefix = match version {
        XenVersion::V4_17 => "base-dom0-".to_string(),
        other => format!("base-dom0-xen-{}-", other.as_str()),
    };
    let dom0_cpio = root
        .join("initramfs")
        .join(format!("{prefix}{}.cpio", cpio_fp.hex()));
    if !dom0_cpio.exists() {
        let roots = DebRoots {
            busybox: &extract_root,
            toolstack: &version.extract_dir(root),
            linux: &linux_extract_root,
        };
        build_dom0_cpio(&used, &roots, version, &dom0_cpio)?;
        cache::remove_stale(&root.join("initramfs"), &prefix, &dom0_cpio);
    }
    let elapsed = start.elapsed();
    if elapsed.as_secs_f64() > 1.0 {
        progress!("prepared in {:.1} s", elapsed.as_secs_f64());
    }
    Ok(Assets {
        qemu,
        xen,
        vmlinux,
        dom0_cpio,
        include_dir,
    })
}

/// Gunzips `boot/xen-*.gz` of the extracted hypervisor package.
fn build_xen(extracted: &Path, out: &Path) -> Result<(), RigError> {
    let boot = extracted.join("boot");
    let gz = fs::read_dir(&boot)
        .map_err(|e| RigError::io(&boot, e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("xen-") && name.ends_with(".gz")
        })
        .ok_or_else(|| RigError::Invalid(format!("no xen-*.gz in {}", boot.display())))?;
    progress!("gunzipping {}", gz.display());
    let compressed = fs::read(&gz).map_err(|e| RigError::io(&gz, e))?;
    let mut xen = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut xen)
        .map_err(|e| RigError::io(&gz, e))?;
    if !xen.starts_with(b"\x7fELF") {
        return Err(RigError::Invalid(format!("{} is not an ELF", gz.display())));
    }
    cache::write_atomic(out, &xen).map_err(|e| RigError::io(out, e))
}

/// Extracts the ELF out of `boot/vmlinuz-*` of the extracted kernel package.
fn build_vmlinux(extracted: &Path, out: &Path) -> Result<(), RigError> {
    let boot = extracted.join("boot");
    let vmlinuz = fs::read_dir(&boot)
        .map_err(|e| RigError::io(&boot, e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .starts_with("vmlinuz-")
        })
        .ok_or_else(|| RigError::Invalid(format!("no vmlinuz-* in {}", boot.display())))?;
    progress!("extracting vmlinux from {}", vmlinuz.display());
    let bzimage = fs::read(&vmlinuz).map_err(|e| RigError::io(&vmlinuz, e))?;
    let kernel = vmlinux::dom0_kernel(&bzimage)?;
    cache::write_atomic(out, &kernel).map_err(|e| RigError::io(out, e))
}

/// Where each kind of package of the base dom0 initramfs is extracted.
struct DebRoots<'a> {
    /// Busybox (bookworm's).
    busybox: &'a Path,
    /// The toolstack (its version's release).
    toolstack: &'a Path,
    /// The Linux dom0's kernel package (its release's).
    linux: &'a Path,
}

/// Extracts the packages and builds the base dom0 initramfs: `used` is
/// busybox first, Linux last, `version`'s toolstack between them.
fn build_dom0_cpio(
    used: &[Deb],
    roots: &DebRoots<'_>,
    version: XenVersion,
    out: &Path,
) -> Result<(), RigError> {
    let mut dirs = Vec::new();
    let last = used.len().saturating_sub(1);
    for (i, deb) in used.iter().enumerate() {
        let root = match i {
            0 => roots.busybox,
            i if i == last => roots.linux,
            _ => roots.toolstack,
        };
        dirs.push((deb.package.clone(), debs::extract(deb, root)?));
    }
    let dir = |package: &str| -> PathBuf {
        dirs.iter()
            .find(|(p, _)| p == package)
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    };
    let linux = dirs.last().map(|(_, d)| d.clone()).unwrap_or_default();
    progress!("building the dom0 initramfs ({version}'s toolstack)");
    let busybox = dir(BUSYBOX);
    let xen_utils = dir(&version.utils_package());
    let xenstore_utils = dir(XENSTORE_UTILS);
    let libc = version.libc_package().map(dir);
    let inputs = initramfs::Inputs {
        version,
        busybox: &busybox,
        xen_utils: &xen_utils,
        xenstore_utils: &xenstore_utils,
        libraries: version.library_packages().iter().map(|l| dir(l)).collect(),
        libc: libc.as_deref(),
        linux: &linux,
    };
    let cpio = initramfs::build_base(&inputs)?;
    progress!("dom0 initramfs: {:.1} MiB", cpio.len() as f64 / 1048576.0);
    cache::write_atomic(out, &cpio).map_err(|e| RigError::io(out, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dom0_linux_is_bookworms_unless_trixie_is_asked_for_with_4_20() {
        for version in XenVersion::ALL {
            for choice in [None, Some(""), Some("bookworm")] {
                assert_eq!(
                    dom0_linux_release(version, choice).unwrap(),
                    XenVersion::V4_17
                );
            }
        }
        assert_eq!(
            dom0_linux_release(XenVersion::V4_20, Some("trixie")).unwrap(),
            XenVersion::V4_20
        );
        assert!(dom0_linux_release(XenVersion::V4_17, Some("trixie")).is_err());
        assert!(dom0_linux_release(XenVersion::V4_20, Some("sid")).is_err());
    }
}
