//! A Linux PV domU for side-by-side measurements: Debian's kernel (the
//! same `vmlinux` dom0 runs, gzipped once so libxc unpacks it quickly) and
//! a tiny initramfs of busybox, the frontend modules the caller names
//! (Debian builds `xen-netfront` and `xen-blkfront` as modules) with their
//! dependencies, and the caller's `/init`.
//!
//! Both are cached under `<cache>/linux-domu/`, keyed by what went in.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache::{self, Fingerprint};
use crate::cpio::CpioWriter;
use crate::debs;
use crate::error::RigError;
use crate::initramfs::kernel_modules_dir;
use crate::{modules, Rig};

/// Bumped when the way the archive is assembled changes.
const LAYOUT_VERSION: &str = "linux-domu-initramfs-v1";

fn out_dir(rig: &Rig) -> PathBuf {
    rig.cache_dir.join("linux-domu")
}

/// Does what [`Rig::linux_domu_initramfs`] promises.
pub fn initramfs(rig: &Rig, wanted: &[&str], init: &str) -> Result<PathBuf, RigError> {
    let debs_dir = rig.cache_dir.join("debs");
    let busybox_deb = debs::fetch(&debs_dir, "busybox-static")?;
    let linux_deb = debs::fetch(&debs_dir, &debs::linux_image_package(&debs_dir)?)?;
    let mut fp = Fingerprint::new()
        .mix(LAYOUT_VERSION)
        .mix(busybox_deb.file_name())
        .mix(linux_deb.file_name())
        .mix(init);
    for module in wanted {
        fp = fp.mix(module);
    }
    let out = out_dir(rig).join(format!("initramfs-{}.cpio", fp.hex()));
    if out.exists() {
        return Ok(out);
    }
    let extract_root = rig.cache_dir.join("extract");
    let busybox = debs::extract(&busybox_deb, &extract_root)?;
    let linux = debs::extract(&linux_deb, &extract_root)?;
    let archive = build(&busybox, &linux, wanted, init)?;
    fs::create_dir_all(out_dir(rig)).map_err(|e| RigError::io(&out, e))?;
    cache::write_atomic(&out, &archive).map_err(|e| RigError::io(&out, e))?;
    Ok(out)
}

/// The archive: busybox with its applet links, `/lib/modules/KVER/…` with
/// `modules.dep` (so `modprobe NAME` works), and `/init`.
fn build(busybox: &Path, linux: &Path, wanted: &[&str], init: &str) -> Result<Vec<u8>, RigError> {
    let mut cpio = CpioWriter::new();
    for dir in ["proc", "sys", "dev", "tmp", "etc", "root"] {
        cpio.dir(dir);
    }
    cpio.char_device("dev/console", 0o600, 5, 1);
    let binary = busybox.join("bin/busybox");
    let data = fs::read(&binary).map_err(|e| RigError::io(&binary, e))?;
    cpio.file("bin/busybox", 0o755, &data);
    let list = debs::run(Command::new(&binary).arg("--list-full"))?;
    for applet in list.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet != "bin/busybox" {
            cpio.symlink(applet, "/bin/busybox");
        }
    }
    let modules_dir = kernel_modules_dir(linux)?;
    let version = modules_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let set = modules::resolve(&modules_dir, wanted)?;
    let target = format!("lib/modules/{version}");
    for (_, relative) in &set.load_order {
        let from = modules_dir.join(relative);
        let data = fs::read(&from).map_err(|e| RigError::io(&from, e))?;
        cpio.file(&format!("{target}/{relative}"), 0o644, &data);
    }
    cpio.file(
        &format!("{target}/modules.dep"),
        0o644,
        set.modules_dep.as_bytes(),
    );
    cpio.file("init", 0o755, init.as_bytes());
    Ok(cpio.finish())
}

/// Does what [`Rig::linux_domu_kernel`] promises.
pub fn kernel(rig: &Rig) -> Result<PathBuf, RigError> {
    let name = rig
        .vmlinux
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vmlinux".into());
    let out = out_dir(rig).join(format!("{name}.gz"));
    if out.exists() {
        return Ok(out);
    }
    progress!("gzipping {} for a Linux domU", rig.vmlinux.display());
    let elf = fs::read(&rig.vmlinux).map_err(|e| RigError::io(&rig.vmlinux, e))?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let gz = std::io::Write::write_all(&mut encoder, &elf)
        .and_then(|()| encoder.finish())
        .map_err(|e| RigError::io(&rig.vmlinux, e))?;
    fs::create_dir_all(out_dir(rig)).map_err(|e| RigError::io(&out, e))?;
    cache::write_atomic(&out, &gz).map_err(|e| RigError::io(&out, e))?;
    Ok(out)
}
