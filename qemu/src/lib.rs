//! The rig: real Xen 4.17 from Debian's packages, inside QEMU (software
//! emulation), running Paravane guests and reporting how they ended.
//!
//! [`Rig::prepare`] installs QEMU if it is missing, fetches Debian's Xen,
//! Linux, busybox and toolstack packages and builds what a run needs, all
//! cached outside the repository (`$PARAVANE_CACHE`, else
//! `$HOME/.cache/paravane`). Then either:
//!
//! - [`Rig::boot_dom0`] boots a kernel directly as dom0 (no Linux, no
//!   toolstack; about a second), or
//! - [`Rig::run_domus`] boots Xen with a Linux dom0 and the xl toolstack once
//!   and runs each guest in turn as a PV domU.
//!
//! Every ending in a report was stated by Xen or by xl, never inferred from
//! the guest's output. QEMU never outlives the rig (see [`kill_all_qemu`]).
//! This is a host library; it may not touch the guest crates. The recipe it
//! automates is `shared/RIG.md`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Prints one progress line on stderr (`rig: ...`).
macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!("rig: {}", format_args!($($arg)*))
    };
}

mod assets;
pub mod cache;
pub mod channel;
pub mod cpio;
mod debs;
mod dom0_direct;
mod domu;
mod error;
pub mod follow;
mod initramfs;
mod linux_domu;
pub mod modules;
mod qemu;
mod report;
mod scripts;
pub mod vmlinux;
pub mod xen_console;

pub use error::RigError;
pub use qemu::kill_all_qemu;
pub use report::{Dom0Session, Ending, GuestReport};

/// The prepared rig: where everything is, and how runs are set up.
#[derive(Clone, Debug)]
pub struct Rig {
    /// The cache root everything was prepared in.
    pub cache_dir: PathBuf,
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// Xen, gunzipped (a multiboot ELF for `-kernel`).
    pub xen: PathBuf,
    /// Debian's Linux kernel as an ELF, for dom0.
    pub vmlinux: PathBuf,
    /// The base dom0 initramfs (uncompressed newc cpio).
    pub dom0_cpio: PathBuf,
    /// Where each run's logs go (one `run-*` directory per run, the 30 newest
    /// kept). Default: `<cache>/runs`.
    pub log_root: PathBuf,
    /// How long [`Rig::prepare`] took.
    pub prepare_time: Duration,
    /// Extra words for Xen's command line, for both kinds of boot (e.g.
    /// `dom0=pvh dom0-iommu=none` with [`Rig::direct_cpu`]
    /// `qemu64,+svm,+npt` for a PVH dom0). Default: empty.
    pub xen_extra_cmdline: String,
    /// Direct dom0 boot: QEMU's `-cpu`. Default `max`.
    pub direct_cpu: String,
    /// Direct dom0 boot: the machine's memory in MiB. Default 512.
    pub direct_memory_mib: u32,
    /// Direct dom0 boot: Xen's `dom0_mem` in MiB. Default 64.
    pub direct_dom0_memory_mib: u32,
    /// Linux dom0 runs: the machine's memory in MiB. Default 1024.
    pub memory_mib: u32,
    /// Linux dom0 runs: dom0's memory in MiB (the rest is for the guests).
    /// Default 384.
    pub dom0_memory_mib: u32,
    include_dir: PathBuf,
}

impl Rig {
    /// Installs qemu if missing, fetches and extracts the debs, builds xen
    /// (gunzipped), vmlinux (ELF extracted from the bzImage's xz payload) and
    /// the base dom0 initramfs; all cached. Prints a progress line on stderr
    /// for each slow step.
    pub fn prepare() -> Result<Rig, RigError> {
        let start = Instant::now();
        let root = cache::cache_root();
        let assets = assets::prepare(&root)?;
        Ok(Rig {
            log_root: root.join("runs"),
            cache_dir: root,
            qemu: assets.qemu,
            xen: assets.xen,
            vmlinux: assets.vmlinux,
            dom0_cpio: assets.dom0_cpio,
            prepare_time: start.elapsed(),
            xen_extra_cmdline: String::new(),
            direct_cpu: "max".into(),
            direct_memory_mib: 512,
            direct_dom0_memory_mib: 64,
            memory_mib: 1024,
            dom0_memory_mib: 384,
            include_dir: assets.include_dir,
        })
    }

    /// Directory holding Xen's public headers from libxen-dev
    /// (`…/extract/libxen-dev/usr/include`).
    pub fn xen_include_dir(&self) -> PathBuf {
        self.include_dir.clone()
    }

    /// Boots `kernel` directly as dom0 (no Linux, no toolstack):
    /// `qemu -kernel xen -initrd "kernel cmdline"`. The report's console is
    /// what the kernel wrote through `HYPERVISOR_console_io`; its ending is
    /// the one Xen announced, or `TimedOut` when QEMU is killed after
    /// `timeout` (measured from QEMU's start).
    pub fn boot_dom0(
        &self,
        kernel: &Path,
        cmdline: &str,
        timeout: Duration,
    ) -> Result<GuestReport, RigError> {
        dom0_direct::boot_dom0(self, kernel, cmdline, timeout)
    }

    /// Boots Xen + the Linux dom0 + xl ONCE and runs every guest in turn as
    /// a PV domU, then powers dom0 off. `timeout` bounds the whole QEMU run;
    /// each guest also has its own watchdog ([`GuestSpec::timeout`]). With no
    /// guests, it just boots dom0 and reports `xl info` / `xl list`.
    pub fn run_domus(
        &self,
        guests: &[GuestSpec],
        timeout: Duration,
    ) -> Result<Dom0Session, RigError> {
        domu::run_domus(self, guests, timeout)
    }

    /// Debian's kernel (the one dom0 runs) as a gzipped ELF for a Linux PV
    /// domU; made once and cached.
    pub fn linux_domu_kernel(&self) -> Result<PathBuf, RigError> {
        linux_domu::kernel(self)
    }

    /// A tiny initramfs for a Linux PV domU (see [`GuestSpec::ramdisk`]):
    /// busybox with its applet links, the kernel `modules` named (with
    /// their dependencies and a `modules.dep`, so `modprobe NAME` works;
    /// Debian builds `xen-netfront` and `xen-blkfront` as modules) and
    /// `init` as `/init`. An uncompressed newc cpio, cached by content.
    pub fn linux_domu_initramfs(&self, modules: &[&str], init: &str) -> Result<PathBuf, RigError> {
        linux_domu::initramfs(self, modules, init)
    }
}

/// One guest to run as a PV domU.
#[derive(Clone, Debug)]
pub struct GuestSpec {
    /// The domain's name: letters, digits, `-`, `_`, `.` (it is used in
    /// file names and shell words).
    pub name: String,
    /// The guest kernel (a 64-bit PV ELF, or a gzipped one).
    pub kernel: PathBuf,
    /// Its command line.
    pub cmdline: String,
    /// Its memory in MiB.
    pub memory_mib: u32,
    /// Its watchdog: after this long (rounded up to whole seconds) dom0
    /// destroys it and it is reported `TimedOut`.
    pub timeout: Duration,
    /// Extra xl config lines, after the rig's own (so they may override
    /// them), e.g. `vif=['ip=10.0.0.2']` or
    /// `disk=['format=raw,vdev=xvda,access=rw,script=block-rig,target=/tmp/d.img']`.
    pub extra_config: Vec<String>,
    /// A dom0 shell script (busybox sh) started together with `xl create`,
    /// with `$NAME` set to the guest's name. After the guest has ended it
    /// gets 5 more seconds, then it is killed. Its output and exit status
    /// come back in the report.
    pub dom0_script: Option<String>,
    /// An initial ramdisk for the guest (xl's `ramdisk=`), shipped into
    /// dom0 with the kernel. Default: none.
    pub ramdisk: Option<PathBuf>,
}

impl GuestSpec {
    /// A guest with an empty command line, 32 MiB and a 30 s watchdog.
    pub fn new(name: impl Into<String>, kernel: impl Into<PathBuf>) -> GuestSpec {
        GuestSpec {
            name: name.into(),
            kernel: kernel.into(),
            cmdline: String::new(),
            memory_mib: 32,
            timeout: Duration::from_secs(30),
            extra_config: Vec::new(),
            dom0_script: None,
            ramdisk: None,
        }
    }
}
