//! The rig: real Xen 4.17 from Debian's packages, inside QEMU (software
//! emulation), running Paravane guests and reporting how they ended.
//! [`Rig::prepare_xen`] boots Debian trixie's Xen 4.20 instead, with
//! trixie's toolstack in dom0, for both kinds of run.
//!
//! [`Rig::prepare`] installs QEMU if it is missing, fetches Debian's Xen,
//! Linux, busybox and toolstack packages and builds what a run needs, all
//! cached outside the repository (`$PARAVANE_CACHE`, else
//! `$HOME/.cache/paravane`). Then either:
//!
//! - [`Rig::boot_dom0`] boots a kernel directly as dom0 (no Linux, no
//!   toolstack; about a second), as a PV dom0 or, with
//!   [`Rig::boot_dom0_mode`], as a PVH dom0, or
//! - [`Rig::run_domus`] boots Xen with a Linux dom0 and the xl toolstack once
//!   and runs each guest in turn as a PV or PVH domU ([`GuestSpec::mode`];
//!   both kinds may share one session).
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
mod hypervisor;
pub use hypervisor::XenVersion;
mod initramfs;
mod linux_domu;
pub mod modules;
mod qemu;
mod report;
mod scripts;
pub use scripts::PVH_TSC_MODE;
pub mod vmlinux;
pub mod xen_console;

pub use debs::apt_install;
pub use error::RigError;
pub use qemu::kill_all_qemu;
pub use report::{Dom0Session, Ending, GuestReport};

/// How a guest is run: paravirtualised, with Xen's PV page-table and trap
/// interfaces (PV), or in an HVM container without emulated devices,
/// started in 32-bit protected mode at its `XEN_ELFNOTE_PHYS32_ENTRY` with
/// an `hvm_start_info` (PVH).
///
/// PVH needs hardware-assisted paging (Debian's Xen has no shadow paging);
/// the rig's QEMU gives Xen AMD SVM with nested paging (`+svm,+npt`), see
/// [`PVH_DOM0_QEMU_ARGS`] and [`DOM0_SESSION_CPU`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GuestMode {
    /// A PV guest (xl `type = "pv"`; as dom0, Xen's default).
    #[default]
    Pv,
    /// A PVH guest (xl `type = "pvh"`; as dom0, Xen's `dom0=pvh`).
    Pvh,
}

impl GuestMode {
    /// Both modes, PV first.
    pub const ALL: [GuestMode; 2] = [GuestMode::Pv, GuestMode::Pvh];

    /// `pv` or `pvh`: the word xl's `type =` takes, and the one
    /// [`GuestMode::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestMode::Pv => "pv",
            GuestMode::Pvh => "pvh",
        }
    }

    /// Reads `pv` or `pvh` (any case).
    pub fn parse(word: &str) -> Option<GuestMode> {
        match word.to_ascii_lowercase().as_str() {
            "pv" => Some(GuestMode::Pv),
            "pvh" => Some(GuestMode::Pvh),
            _ => None,
        }
    }
}

impl std::fmt::Display for GuestMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestMode::Pv => "PV",
            GuestMode::Pvh => "PVH",
        })
    }
}

/// QEMU's `-cpu` for the Linux dom0 session. `+svm,+npt` give Xen
/// hardware-assisted paging, so PVH domUs can run next to PV ones (`xl
/// info` then shows `virt_caps : pv hvm hap …`); plain `qemu64` underneath
/// is what the Linux PV dom0 boots on (`-cpu max` crashed it early);
/// `+rdrand` spares each `xl create` ~3 s waiting for dom0's entropy.
pub const DOM0_SESSION_CPU: &str = "qemu64,+svm,+npt,+rdrand";

/// QEMU's arguments for booting a kernel directly as a PVH dom0: SVM with
/// nested paging, and an emulated Intel IOMMU (without interrupt
/// remapping, which Xen would then insist on). Checked with Debian's Linux
/// as a PVH dom0: it boots to userspace. With `dom0-iommu=none` and no
/// IOMMU instead, the same Linux spun forever after `ACPI: Core revision`.
pub const PVH_DOM0_QEMU_ARGS: &[&str] = &[
    "-cpu",
    "qemu64,+svm,+npt",
    "-device",
    "intel-iommu,intremap=off",
];

/// Xen's command-line words for a PVH dom0 to go with
/// [`PVH_DOM0_QEMU_ARGS`]; Xen then logs `*** Building a PVH Dom0 ***`.
/// `no-sharept`: Xen would otherwise share the (here AMD nested) p2m
/// tables with the Intel IOMMU ("Intel VT-d Shared EPT tables enabled")
/// and fail to set up dom0's PCI devices (`setup 0000:00:1f.0 for d0
/// failed (-12)`).
pub const PVH_DOM0_XEN_ARGS: &str = "dom0=pvh iommu=1,no-intremap,no-sharept";

/// The evidence of a guest's second run, saying why there was one.
fn retried_note(evidence: &str, first_fault: &str) -> String {
    format!("{evidence} (second run: the first hit the emulated machine's fault: {first_fault})")
}

/// The prepared rig: where everything is, and how runs are set up.
#[derive(Clone, Debug)]
pub struct Rig {
    /// The cache root everything was prepared in.
    pub cache_dir: PathBuf,
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// Xen, gunzipped (a multiboot ELF for `-kernel`).
    pub xen: PathBuf,
    /// Which Xen [`Rig::xen`] is; dom0's toolstack (in
    /// [`Rig::dom0_cpio`]) is the same version's. The Linux dom0 kernel is
    /// bookworm's 6.1 for every version unless `PARAVANE_DOM0_LINUX=trixie`
    /// picks trixie's 6.12 for 4.20.
    pub xen_version: XenVersion,
    /// Debian's Linux kernel for dom0: bookworm's as an ELF (or, with
    /// `PARAVANE_DOM0_LINUX=trixie` and Xen 4.20, trixie's zstd bzImage,
    /// which Xen unpacks itself).
    pub vmlinux: PathBuf,
    /// The base dom0 initramfs (uncompressed newc cpio).
    pub dom0_cpio: PathBuf,
    /// Where each run's logs go (one `run-*` directory per run, the 30 newest
    /// kept). Default: `<cache>/runs`.
    pub log_root: PathBuf,
    /// How long [`Rig::prepare`] took.
    pub prepare_time: Duration,
    /// Extra words for Xen's command line, for both kinds of boot (after
    /// the rig's own, so they may override them). Default: empty.
    pub xen_extra_cmdline: String,
    /// Direct PV dom0 boot: QEMU's `-cpu`. Default `max`. (A PVH dom0
    /// gets [`PVH_DOM0_QEMU_ARGS`].)
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
    /// Linux dom0 runs: TCP ports of the host's loopback forwarded into
    /// dom0 over QEMU's user networking (see [`HostForward`]). Default:
    /// none, and then the machine has no network card at all.
    pub host_forwards: Vec<HostForward>,
    include_dir: PathBuf,
}

/// dom0's address on QEMU's user network (the one QEMU's DHCP server
/// would hand out first); a dom0 script that uses [`Rig::host_forwards`]
/// gives it to the e1000 interface itself (see [`DOM0_USER_NET_SETUP`]).
pub const DOM0_USER_NET_IP: &str = "10.0.2.15";

/// busybox sh lines that bring up dom0's e1000 (the NIC QEMU gets when
/// [`Rig::host_forwards`] is not empty; Debian's Linux has its driver as
/// a module, which dom0's init loads) with [`DOM0_USER_NET_IP`], and set
/// `$UPLINK` to its name (empty if no such interface was found).
pub const DOM0_USER_NET_SETUP: &str = r#"UPLINK=
for dev in /sys/class/net/*; do
  [ "$(basename "$(readlink "$dev/device/driver" 2> /dev/null)")" = e1000 ] && UPLINK=${dev##*/}
done
if [ -n "$UPLINK" ]; then
  ip link set "$UPLINK" up
  ip addr add 10.0.2.15/24 dev "$UPLINK"
fi
"#;

/// One TCP port forward from the host into dom0: QEMU listens on
/// `127.0.0.1:host` (loopback only) and connects each client to dom0's
/// `DOM0_USER_NET_IP:dom0` through its user-mode network stack (slirp,
/// `restrict=on`: dom0 cannot reach out through it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostForward {
    /// The port on the host's 127.0.0.1.
    pub host: u16,
    /// The port in dom0.
    pub dom0: u16,
}

/// QEMU's arguments for `forwards`: an e1000 on a user-mode network with
/// a `hostfwd` rule each; nothing when there are none.
pub fn user_net_args(forwards: &[HostForward]) -> Vec<String> {
    if forwards.is_empty() {
        return Vec::new();
    }
    let mut netdev = String::from("user,id=uplink,net=10.0.2.0/24,restrict=on");
    for forward in forwards {
        netdev.push_str(&format!(
            ",hostfwd=tcp:127.0.0.1:{}-{DOM0_USER_NET_IP}:{}",
            forward.host, forward.dom0
        ));
    }
    [
        "-netdev",
        &netdev,
        "-device",
        "e1000,netdev=uplink,mac=52:54:00:12:34:56",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Rig {
    /// Installs qemu if missing, fetches and extracts the debs, builds xen
    /// (gunzipped), vmlinux (ELF extracted from the bzImage's xz payload) and
    /// the base dom0 initramfs; all cached. Prints a progress line on stderr
    /// for each slow step.
    pub fn prepare() -> Result<Rig, RigError> {
        Rig::prepare_xen(XenVersion::default())
    }

    /// [`Rig::prepare`] with the hypervisor of `version` (fetched into a
    /// cache directory of its own; 4.20 from Debian trixie through a
    /// private apt configuration, see `hypervisor.rs`), and a dom0
    /// initramfs with the same version's toolstack (cached side by side
    /// with the other versions'), so both direct dom0 boots and domUs
    /// work on every version.
    pub fn prepare_xen(version: XenVersion) -> Result<Rig, RigError> {
        let start = Instant::now();
        let root = cache::cache_root();
        let assets = assets::prepare(&root, version)?;
        Ok(Rig {
            log_root: root.join("runs"),
            cache_dir: root,
            qemu: assets.qemu,
            xen: assets.xen,
            xen_version: version,
            vmlinux: assets.vmlinux,
            dom0_cpio: assets.dom0_cpio,
            prepare_time: start.elapsed(),
            xen_extra_cmdline: String::new(),
            direct_cpu: "max".into(),
            direct_memory_mib: 512,
            direct_dom0_memory_mib: 64,
            memory_mib: 1024,
            dom0_memory_mib: 384,
            host_forwards: Vec::new(),
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
        dom0_direct::boot_dom0(self, kernel, cmdline, timeout, GuestMode::Pv)
    }

    /// [`Rig::boot_dom0`] as a PV or a PVH dom0. For PVH, QEMU gets
    /// [`PVH_DOM0_QEMU_ARGS`] (in place of [`Rig::direct_cpu`]) and Xen
    /// [`PVH_DOM0_XEN_ARGS`]; the kernel needs a `XEN_ELFNOTE_PHYS32_ENTRY`
    /// note. The ending is read from the same `Hardware Dom0 …` lines of
    /// Xen's as for PV.
    ///
    /// A dom0 that dies of the emulated machine's fault (a triple fault
    /// with Xen's own state in its registers:
    /// [`xen_console::emulated_svm_fault`], seen only with PVH under
    /// QEMU's emulated SVM) is booted once more, and the report's evidence
    /// says so. Any other ending, or the same fault twice, is reported as
    /// it is.
    pub fn boot_dom0_mode(
        &self,
        kernel: &Path,
        cmdline: &str,
        timeout: Duration,
        mode: GuestMode,
    ) -> Result<GuestReport, RigError> {
        let first = dom0_direct::boot_dom0(self, kernel, cmdline, timeout, mode)?;
        let Some(fault) = first.emulation_fault.clone() else {
            return Ok(first);
        };
        progress!(
            "{} hit the emulated machine's fault ({fault}); booting it once more",
            first.name
        );
        let mut second = dom0_direct::boot_dom0(self, kernel, cmdline, timeout, mode)?;
        second.evidence = retried_note(&second.evidence, &fault);
        Ok(second)
    }

    /// Boots Xen + the Linux dom0 + xl ONCE and runs every guest in turn as
    /// a PV or PVH domU (each its own [`GuestSpec::mode`]), then powers dom0 off. `timeout` bounds the whole QEMU run;
    /// each guest also has its own watchdog ([`GuestSpec::timeout`]). With no
    /// guests, it just boots dom0 and reports `xl info` / `xl list`.
    ///
    /// Guests that die of the emulated machine's fault (see
    /// [`Rig::boot_dom0_mode`]) are run once more in a second session;
    /// their reports are replaced and their evidence says so. A session
    /// in which Xen itself crashes on a stack that is not its own
    /// ([`xen_console::xen_on_foreign_stack`]) is run once more whole,
    /// each report's evidence naming the first run's crash; any other
    /// failure of Xen or dom0 is the error.
    pub fn run_domus(
        &self,
        guests: &[GuestSpec],
        timeout: Duration,
    ) -> Result<Dom0Session, RigError> {
        let mut session = match domu::run_domus(self, guests, timeout, &mut |_| {}) {
            Err(RigError::Dom0Failed { reason, log_tail }) => {
                let Some(crash) = xen_console::xen_on_foreign_stack(&log_tail) else {
                    return Err(RigError::Dom0Failed { reason, log_tail });
                };
                // Xen itself crashed on a stack that is not its own: the
                // emulated CPU's doing, not any guest's. Every report of
                // the session went with it, so the session runs again.
                progress!(
                    "Xen crashed during the session ({crash}); running the session once more"
                );
                let mut again = domu::run_domus(self, guests, timeout, &mut |_| {})?;
                for report in &mut again.guests {
                    report.evidence = retried_note(&report.evidence, &crash);
                }
                again
            }
            other => other?,
        };
        // Reports come in the order of `guests`, one each.
        let faulted: Vec<(usize, String)> = session
            .guests
            .iter()
            .enumerate()
            .filter_map(|(i, report)| Some((i, report.emulation_fault.clone()?)))
            .collect();
        if faulted.is_empty() {
            return Ok(session);
        }
        for (i, fault) in &faulted {
            progress!(
                "{} hit the emulated machine's fault ({fault}); running it once more",
                guests[*i].name
            );
        }
        let specs: Vec<GuestSpec> = faulted.iter().map(|(i, _)| guests[*i].clone()).collect();
        let again = domu::run_domus(self, &specs, timeout, &mut |_| {})?;
        for ((i, fault), mut report) in faulted.into_iter().zip(again.guests) {
            report.evidence = retried_note(&report.evidence, &fault);
            session.guests[i] = report;
        }
        session.total += again.total;
        Ok(session)
    }

    /// [`Rig::run_domus`] for a session watched as it goes: `on_live` is
    /// called, from this thread, with every [`channel::Event::Live`] and
    /// [`channel::Event::Note`] line as soon as the host reads it (a dom0
    /// script sends them with `rig LIVE|NOTE $NAME TEXT`; see
    /// `/etc/rig/lib.sh`). A guest that hits the emulated machine's fault
    /// is not run again: this is for sessions a person watches.
    pub fn run_domus_live(
        &self,
        guests: &[GuestSpec],
        timeout: Duration,
        on_live: &mut dyn FnMut(&channel::Event),
    ) -> Result<Dom0Session, RigError> {
        domu::run_domus(self, guests, timeout, on_live)
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

/// One guest to run as a domU.
#[derive(Clone, Debug)]
pub struct GuestSpec {
    /// The domain's name: letters, digits, `-`, `_`, `.` (it is used in
    /// file names and shell words).
    pub name: String,
    /// The guest kernel (a 64-bit ELF with the notes its mode needs, or a
    /// gzipped one).
    pub kernel: PathBuf,
    /// PV or PVH (xl's `type =`). Default: PV.
    pub mode: GuestMode,
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
    /// come back in the report. While the file `/run/rig-$NAME.hold`
    /// exists (at most 10 s after the guest ended) the rig leaves the
    /// preserved domain alone, so the script can read its xenstore nodes
    /// after it shut down.
    pub dom0_script: Option<String>,
    /// An initial ramdisk for the guest (xl's `ramdisk=`), shipped into
    /// dom0 with the kernel. Default: none.
    pub ramdisk: Option<PathBuf>,
    /// Programs for dom0 (static binaries, e.g. the rig's load
    /// generator), shipped as `/rig/bin/FILE-NAME` for the dom0 scripts
    /// of this session; one copy per file name however many guests list
    /// it. Default: none.
    pub dom0_tools: Vec<PathBuf>,
    /// Start this guest together with the next one in the list (and that
    /// one with the next, if it says so too): their `xl create`s, dom0
    /// scripts and watchdogs run side by side, and the session goes on
    /// when the last of the group has ended. Guests that run together
    /// need their own vif addresses and MACs. Default: `false` (one
    /// guest after the other).
    pub start_with_next: bool,
    /// Create the domain paused (`xl create -p`): its dom0 script wires
    /// its devices (the rig's own backend, `dom0-backend`, writes them
    /// into xenstore itself) and runs `xl unpause`. Default: `false`.
    pub create_paused: bool,
}

impl GuestSpec {
    /// A PV guest with an empty command line, 32 MiB and a 30 s watchdog.
    pub fn new(name: impl Into<String>, kernel: impl Into<PathBuf>) -> GuestSpec {
        GuestSpec {
            name: name.into(),
            kernel: kernel.into(),
            mode: GuestMode::Pv,
            cmdline: String::new(),
            memory_mib: 32,
            timeout: Duration::from_secs(30),
            extra_config: Vec::new(),
            dom0_script: None,
            ramdisk: None,
            dom0_tools: Vec::new(),
            start_with_next: false,
            create_paused: false,
        }
    }

    /// The same guest in `mode`.
    pub fn with_mode(mut self, mode: GuestMode) -> GuestSpec {
        self.mode = mode;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_mode_words() {
        for mode in GuestMode::ALL {
            assert_eq!(GuestMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(GuestMode::parse("PVH"), Some(GuestMode::Pvh));
        assert_eq!(GuestMode::parse("hvm"), None);
        assert_eq!(GuestMode::default(), GuestMode::Pv);
        assert_eq!(GuestMode::Pvh.to_string(), "PVH");
        let spec = GuestSpec::new("g", "/k").with_mode(GuestMode::Pvh);
        assert_eq!(spec.mode, GuestMode::Pvh);
    }

    #[test]
    fn user_net_only_with_forwards() {
        assert!(user_net_args(&[]).is_empty());
        let args = user_net_args(&[
            HostForward {
                host: 8080,
                dom0: 80,
            },
            HostForward {
                host: 40001,
                dom0: 9999,
            },
        ]);
        assert_eq!(args[0], "-netdev");
        assert_eq!(
            args[1],
            "user,id=uplink,net=10.0.2.0/24,restrict=on,\
             hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80,hostfwd=tcp:127.0.0.1:40001-10.0.2.15:9999"
        );
        assert_eq!(args[2], "-device");
        assert!(args[3].starts_with("e1000,netdev=uplink"));
    }
}
