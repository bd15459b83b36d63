//! Running guests as PV or PVH domUs next to a Linux dom0: one boot of Xen,
//! Linux and the xl toolstack, every guest in turn (PV and PVH ones mixed as
//! given), then dom0 powers off.
//!
//! The guests' kernels, their xl configs and the run script travel in a
//! small cpio appended to the cached base initramfs. dom0 reports over its
//! second serial port (see `channel.rs`); the host follows that file and
//! Xen's serial log (for dom0 failures, and for the `(dN)` lines a domU
//! writes through `HYPERVISOR_console_io`). A guest's ending is the
//! `Domain N has shut down, reason code R` line of `xl create -F`; a guest
//! that outlives its timeout is destroyed by dom0 and reported `TimedOut`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::channel::{self, Event, XlNews};
use crate::cpio::CpioWriter;
use crate::debs::tail;
use crate::dom0_direct::shell_words;
use crate::error::RigError;
use crate::follow::LineFollower;
use crate::qemu::Qemu;
use crate::report::{Dom0Session, Ending, GuestReport};
use crate::scripts;
use crate::xen_console::{self, EndingWatcher};
use crate::{GuestSpec, Rig};

/// How often the logs are polled.
const POLL: Duration = Duration::from_millis(20);
/// How long QEMU may take to exit after dom0 said it is done.
const POWEROFF_GRACE: Duration = Duration::from_secs(15);

/// Kernels bigger than this travel gzipped (libxc un-gzips them quickly,
/// PV and PVH alike). A Linux `vmlinux` is 66 MB, and our release guests
/// keep their debug info (about 6.7 MB each, a fifth of that gzipped):
/// dom0 unpacks the archive into its RAM, and a domU session of twenty
/// guests shipped as they are no longer fits in it.
const GZIP_ABOVE: usize = 1 << 20;

/// The per-run archive: `/rig/run.sh`, the guests' dom0 tools in
/// `/rig/bin/`, and, per guest, `/rig/NAME/kernel`,
/// `/rig/NAME/guest.cfg`, `/rig/NAME/dom0.sh`, `/rig/NAME/ramdisk` and,
/// for a guest created paused, the marker `/rig/NAME/paused`.
/// A kernel or ramdisk file that an earlier guest already brought is a
/// symlink to that guest's copy: dom0 unpacks the archive into its RAM,
/// and a session that boots Linux six times would not fit otherwise.
pub fn run_archive(guests: &[GuestSpec]) -> Result<Vec<u8>, RigError> {
    let mut cpio = CpioWriter::new();
    cpio.file("rig/run.sh", 0o755, scripts::run_script(guests).as_bytes());
    // Source file -> where its first copy is in the archive.
    let mut stored: HashMap<PathBuf, String> = HashMap::new();
    let mut tools = std::collections::BTreeSet::new();
    for tool in guests.iter().flat_map(|g| &g.dom0_tools) {
        let name = tool
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| scripts::valid_guest_name(n))
            .ok_or_else(|| {
                RigError::Invalid(format!(
                    "dom0 tool {}: not a plain file name",
                    tool.display()
                ))
            })?;
        if tools.insert(name.to_string()) {
            let data = fs::read(tool).map_err(|e| RigError::io(tool, e))?;
            cpio.file(&format!("rig/bin/{name}"), 0o755, &data);
        }
    }
    for guest in guests {
        let dir = format!("rig/{}", guest.name);
        let kernel_at = format!("{dir}/kernel");
        if let Some(first) = stored.get(&guest.kernel) {
            cpio.symlink(&kernel_at, &format!("/{first}"));
        } else {
            cpio.file(&kernel_at, 0o644, &kernel_image(&guest.kernel)?);
            stored.insert(guest.kernel.clone(), kernel_at);
        }
        cpio.file(
            &format!("{dir}/guest.cfg"),
            0o644,
            scripts::guest_config(guest).as_bytes(),
        );
        if let Some(script) = &guest.dom0_script {
            cpio.file(&format!("{dir}/dom0.sh"), 0o755, script.as_bytes());
        }
        if guest.create_paused {
            cpio.file(&format!("{dir}/paused"), 0o644, b"");
        }
        if let Some(ramdisk) = &guest.ramdisk {
            let ramdisk_at = format!("{dir}/ramdisk");
            if let Some(first) = stored.get(ramdisk) {
                cpio.symlink(&ramdisk_at, &format!("/{first}"));
            } else {
                let data = fs::read(ramdisk).map_err(|e| RigError::io(ramdisk, e))?;
                cpio.file(&ramdisk_at, 0o644, &data);
                stored.insert(ramdisk.clone(), ramdisk_at);
            }
        }
    }
    Ok(cpio.finish())
}

/// A guest kernel as it travels: gzipped when big and not gzipped yet.
fn kernel_image(path: &Path) -> Result<Vec<u8>, RigError> {
    let mut kernel = fs::read(path).map_err(|e| RigError::io(path, e))?;
    if kernel.len() > GZIP_ABOVE && !kernel.starts_with(&[0x1f, 0x8b]) {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &kernel)
            .and_then(|()| encoder.finish())
            .map(|gz| kernel = gz)
            .map_err(|e| RigError::io(path, e))?;
    }
    Ok(kernel)
}

/// Checks names (plain words, unique) and kernels (existing files).
fn validate(guests: &[GuestSpec]) -> Result<(), RigError> {
    let mut seen = std::collections::HashSet::new();
    for guest in guests {
        if !scripts::valid_guest_name(&guest.name) {
            return Err(RigError::Invalid(format!(
                "guest name {:?}: use letters, digits, '-', '_' and '.'",
                guest.name
            )));
        }
        if !seen.insert(guest.name.as_str()) {
            return Err(RigError::Invalid(format!(
                "guest name {} used twice",
                guest.name
            )));
        }
        if !guest.kernel.is_file() {
            return Err(RigError::Invalid(format!(
                "guest {}: kernel {} does not exist",
                guest.name,
                guest.kernel.display()
            )));
        }
    }
    Ok(())
}

/// What the host has learnt about one guest so far.
#[derive(Default)]
struct GuestState {
    begun: Option<Instant>,
    ended: Option<Instant>,
    domid: Option<u32>,
    xl: Vec<String>,
    shutdown: Option<(Ending, String)>,
    destroyed: Option<String>,
    timed_out: bool,
    console: Vec<String>,
    dom0_output: Vec<String>,
    dom0_status: Option<i32>,
    post_mortem: Vec<String>,
}

impl GuestState {
    /// Folds one xl line in.
    fn xl_line(&mut self, text: String, now: Instant) {
        match channel::parse_xl(&text) {
            Some(XlNews::DomainId(domid)) => self.domid = Some(domid),
            // A suspend is not an ending when the guest is restored or
            // migrated (rig_save_restore, rig_migrate): the new domain's
            // ending, which xl reports later, replaces it.
            Some(XlNews::ShutDown { code, .. })
                if self.shutdown.is_none()
                    || matches!(self.shutdown, Some((Ending::Suspend, _))) =>
            {
                let ending = Ending::from_reason_code(code);
                if ending != Ending::Suspend {
                    self.ended.get_or_insert(now);
                }
                self.shutdown = Some((ending, text.clone()));
            }
            Some(XlNews::Destroyed(_)) if self.destroyed.is_none() => {
                self.destroyed = Some(text.clone());
                self.ended.get_or_insert(now);
            }
            _ => {}
        }
        self.xl.push(text);
    }

    /// The ending, decided from what xl and the watchdog reported.
    fn verdict(&self, timeout: Duration) -> (Ending, String) {
        if let Some(shutdown) = &self.shutdown {
            return shutdown.clone();
        }
        if self.timed_out {
            let destroyed = self.destroyed.as_deref().unwrap_or("(xl said nothing)");
            return (
                Ending::TimedOut,
                format!(
                    "rig watchdog: no shutdown within {} s, xl destroy; xl: {destroyed}",
                    timeout.as_millis().div_ceil(1000)
                ),
            );
        }
        if let Some(destroyed) = &self.destroyed {
            return (
                Ending::Other("destroyed from outside".into()),
                destroyed.clone(),
            );
        }
        let last = self.xl.last().cloned().unwrap_or_default();
        (
            Ending::Other(format!("xl create ended without a shutdown report: {last}")),
            last,
        )
    }
}

/// Does what [`Rig::run_domus`] promises.
/// `on_live` gets the [`Event::Live`] and [`Event::Note`] lines as they
/// arrive.
pub fn run_domus(
    rig: &Rig,
    guests: &[GuestSpec],
    timeout: Duration,
    on_live: &mut dyn FnMut(&Event),
) -> Result<Dom0Session, RigError> {
    validate(guests)?;
    let dir = crate::cache::new_run_dir(&rig.log_root, "domu", 30)
        .map_err(|e| RigError::io(&rig.log_root, e))?;
    let run = run_archive(guests)?;
    fs::write(dir.join("run.cpio"), &run).map_err(|e| RigError::io(&dir, e))?;
    let mut initrd = fs::read(&rig.dom0_cpio).map_err(|e| RigError::io(&rig.dom0_cpio, e))?;
    initrd.extend_from_slice(&run);
    let initrd_path = dir.join("dom0.cpio");
    fs::write(&initrd_path, &initrd).map_err(|e| RigError::io(&initrd_path, e))?;
    drop(initrd);

    let serial = dir.join("xen-serial.log");
    let channel_log = dir.join("channel.log");
    let dom0_mem = rig.dom0_memory_mib;
    let xen_cmdline = format!(
        "console=com1 com1=115200,8n1 dom0_mem={dom0_mem}M,max:{dom0_mem}M loglvl=all \
         guest_loglvl=all noreboot console_timestamps=boot {}",
        rig.xen_extra_cmdline
    );
    let module = format!(
        "{} console=hvc0 earlyprintk=xen quiet,{}",
        rig.vmlinux.to_string_lossy().replace(',', ",,"),
        initrd_path.to_string_lossy().replace(',', ",,")
    );
    let mut args: Vec<String> = [
        "-M",
        "q35",
        "-cpu",
        crate::DOM0_SESSION_CPU,
        "-m",
        &format!("{}M", rig.memory_mib),
        "-smp",
        "2",
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        &format!("file:{}", serial.display()),
        "-serial",
        &format!("file:{}", channel_log.display()),
        "-kernel",
        &rig.xen.to_string_lossy(),
        "-append",
        xen_cmdline.trim(),
        "-initrd",
        &module,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(crate::user_net_args(&rig.host_forwards));
    fs::write(dir.join("qemu-command.txt"), shell_words(&rig.qemu, &args))
        .map_err(|e| RigError::io(&dir, e))?;

    progress!("booting Xen + dom0…");
    let mut qemu = Qemu::spawn(&rig.qemu, &args, &dir.join("qemu-output.log"))?;
    let start = qemu.started();
    let mut serial_follower = LineFollower::new(&serial);
    let mut channel_follower = LineFollower::new(&channel_log);
    let mut watcher = EndingWatcher::default();
    let mut states: BTreeMap<String, GuestState> = BTreeMap::new();
    let mut hypervisor_lines: HashMap<u32, Vec<String>> = HashMap::new();
    // Xen's own messages, for the triple-fault reports of HVM guests.
    let mut xen_messages: Vec<String> = Vec::new();
    let mut xl_info = Vec::new();
    let mut dom0_ready = None;
    let mut done_at: Option<Instant> = None;
    let mut halted = false;
    let spec = |name: &str| guests.iter().find(|g| g.name == name);

    let fail = |reason: String, serial: &Path| -> RigError {
        let log = fs::read_to_string(serial).unwrap_or_default();
        RigError::Dom0Failed {
            reason,
            log_tail: tail(&log, 40),
        }
    };

    loop {
        let now = Instant::now();
        for line in serial_follower.poll() {
            let split = xen_console::split_line(&line);
            if let Some((domid, text)) = split.domain {
                hypervisor_lines
                    .entry(domid)
                    .or_default()
                    .push(text.to_string());
            }
            if let Some(message) = split.xen {
                xen_messages.push(message.to_string());
                if let Some((ending, evidence)) = watcher.message(message) {
                    if done_at.is_some() && ending == Ending::Poweroff {
                        halted = true;
                    } else {
                        return Err(fail(
                            format!(
                                "Xen reported the hardware domain's end ({ending}): {evidence}"
                            ),
                            &serial,
                        ));
                    }
                }
            }
        }
        for line in channel_follower.poll() {
            let Some(event) = channel::parse(&line) else {
                continue;
            };
            match event {
                Event::Ready => {
                    let ready = start.elapsed();
                    dom0_ready = Some(ready);
                    progress!("dom0 ready after {:.1} s", ready.as_secs_f64());
                }
                Event::Info(text) => xl_info.push(text),
                Event::Begin(name) => {
                    let mode = spec(&name).map(|g| g.mode).unwrap_or_default();
                    progress!("xl create {name} ({mode})…");
                    states.entry(name).or_default().begun = Some(now);
                }
                Event::Xl(name, text) => states.entry(name).or_default().xl_line(text, now),
                Event::Timeout(name) => {
                    let state = states.entry(name).or_default();
                    state.timed_out = true;
                    state.ended.get_or_insert(now);
                }
                Event::Console(name, text) => states.entry(name).or_default().console.push(text),
                Event::Shell(name, text) => states.entry(name).or_default().dom0_output.push(text),
                Event::PostMortem(name, text) => {
                    states.entry(name).or_default().post_mortem.push(text)
                }
                Event::ShellExit(name, status) => {
                    states.entry(name).or_default().dom0_status = Some(status)
                }
                Event::End(name) => {
                    let state = states.entry(name.clone()).or_default();
                    let limit = spec(&name).map(|g| g.timeout).unwrap_or_default();
                    let (ending, _) = state.verdict(limit);
                    let elapsed = elapsed(state, now);
                    progress!(
                        "{name} ended: {ending} after {:.1} s",
                        elapsed.as_secs_f64()
                    );
                }
                Event::Live(..) | Event::Note(..) => on_live(&event),
                Event::Done => done_at = Some(now),
                Event::Error(text) => return Err(fail(format!("dom0's init: {text}"), &serial)),
            }
        }
        if halted {
            break;
        }
        if let Some(status) = qemu.try_wait() {
            if done_at.is_none() {
                return Err(fail(
                    format!("QEMU exited ({status}) before dom0 finished"),
                    &serial,
                ));
            }
            break;
        }
        if done_at.is_some_and(|at| at.elapsed() > POWEROFF_GRACE) {
            progress!("dom0 did not power off; killing QEMU");
            break;
        }
        if start.elapsed() > timeout {
            qemu.kill();
            let what = match dom0_ready {
                None => "dom0 to become ready".to_string(),
                Some(_) => format!(
                    "the guests to finish (overall limit {:.0} s)",
                    timeout.as_secs_f64()
                ),
            };
            let log = fs::read_to_string(&serial).unwrap_or_default();
            let channel = fs::read_to_string(&channel_log).unwrap_or_default();
            return Err(RigError::Timeout {
                what,
                log_tail: format!(
                    "{}\n--- channel ---\n{}",
                    tail(&log, 25),
                    tail(&channel, 10)
                ),
            });
        }
        std::thread::sleep(POLL);
    }
    qemu.kill();
    let total = start.elapsed();

    let xen_lines: Vec<&str> = xen_messages.iter().map(String::as_str).collect();
    let mut reports = Vec::new();
    for guest in guests {
        let state = states.remove(&guest.name).ok_or_else(|| {
            fail(
                format!("dom0 sent nothing about guest {}", guest.name),
                &serial,
            )
        })?;
        let (ending, mut evidence) = state.verdict(guest.timeout);
        let emulation_fault = state
            .domid
            .and_then(|d| xen_console::note_triple_fault(&mut evidence, &xen_lines, d))
            .or_else(|| xen_console::sound_tables_fault(&state.post_mortem));
        let log = dir.join(format!("guest-{}.log", guest.name));
        if !state.post_mortem.is_empty() {
            evidence = format!(
                "{evidence}; its HVM state (xen-hvmctx) is in {}",
                log.display()
            );
        }
        let hypervisor_console = state
            .domid
            .and_then(|d| hypervisor_lines.remove(&d))
            .unwrap_or_default();
        let mut text = String::new();
        let _ = writeln!(text, "ending: {ending}\nevidence: {evidence}");
        for (tag, lines) in [
            ("xl", &state.xl),
            ("console", &state.console),
            ("console_io", &hypervisor_console),
            ("dom0", &state.dom0_output),
            ("postmortem", &state.post_mortem),
        ] {
            for line in lines {
                let _ = writeln!(text, "{tag}: {line}");
            }
        }
        // Recreate the directory if something removed it meanwhile.
        fs::create_dir_all(&dir)
            .and_then(|()| fs::write(&log, text))
            .map_err(|e| RigError::io(&log, e))?;
        reports.push(GuestReport {
            emulation_fault,
            name: guest.name.clone(),
            console: state.console.clone(),
            hypervisor_console,
            ending,
            evidence,
            elapsed: elapsed(&state, Instant::now()),
            dom0_output: state.dom0_output.clone(),
            dom0_status: state.dom0_status,
            log,
        });
    }
    // The concatenated initramfs is the cached base plus run.cpio: not kept.
    let _ = fs::remove_file(&initrd_path);
    Ok(Dom0Session {
        guests: reports,
        dom0_ready: dom0_ready.unwrap_or_default(),
        total,
        xl_info,
        log_dir: dir,
    })
}

/// From `xl create` to the end (or to `now` if no end was seen).
fn elapsed(state: &GuestState, now: Instant) -> Duration {
    match state.begun {
        Some(begun) => state.ended.unwrap_or(now).saturating_duration_since(begun),
        None => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_kernel_shared_by_guests_travels_once() {
        let dir = std::env::temp_dir().join(format!("rig-archive-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let kernel = dir.join("kernel");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        fs::write(&kernel, &bytes).unwrap();
        let guests = [GuestSpec::new("a", &kernel), GuestSpec::new("b", &kernel)];
        let archive = run_archive(&guests).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            archive.len() < bytes.len() + 20_000,
            "{} bytes",
            archive.len()
        );
        // b's kernel is a symlink to a's.
        let target = b"/rig/a/kernel";
        assert!(archive.windows(target.len()).any(|w| w == target));
    }

    #[test]
    fn verdict_prefers_xl_shutdown_report() {
        let now = Instant::now();
        let mut state = GuestState::default();
        state.xl_line("Waiting for domain g (domid 4) to die [pid 9]".into(), now);
        assert_eq!(state.domid, Some(4));
        state.timed_out = true;
        state.xl_line("Domain 4 has shut down, reason code 3 0x3".into(), now);
        let (ending, evidence) = state.verdict(Duration::from_secs(5));
        assert_eq!(ending, Ending::Crash);
        assert_eq!(evidence, "Domain 4 has shut down, reason code 3 0x3");

        // Saved and restored: the restored domain's ending is the verdict.
        let mut moved = GuestState::default();
        moved.xl_line("Domain 4 has shut down, reason code 2 0x2".into(), now);
        assert_eq!(moved.verdict(Duration::from_secs(5)).0, Ending::Suspend);
        assert!(moved.ended.is_none(), "a suspend is not the end yet");
        moved.xl_line("Domain 5 has shut down, reason code 0 0x0".into(), now);
        let (ending, evidence) = moved.verdict(Duration::from_secs(5));
        assert_eq!(ending, Ending::Poweroff);
        assert_eq!(evidence, "Domain 5 has shut down, reason code 0 0x0");
    }

    #[test]
    fn verdict_timed_out_and_failed_create() {
        let now = Instant::now();
        let mut state = GuestState {
            timed_out: true,
            ..GuestState::default()
        };
        state.xl_line("Domain 2 has been destroyed.".into(), now);
        let (ending, evidence) = state.verdict(Duration::from_millis(4500));
        assert_eq!(ending, Ending::TimedOut);
        assert!(evidence.contains("within 5 s"), "{evidence}");
        assert!(evidence.contains("Domain 2 has been destroyed."));

        let mut failed = GuestState::default();
        failed.xl_line("libxl: error: bad kernel".into(), now);
        let (ending, evidence) = failed.verdict(Duration::from_secs(1));
        assert!(matches!(ending, Ending::Other(_)));
        assert_eq!(evidence, "libxl: error: bad kernel");
    }

    #[test]
    fn dom0_tools_travel_once_each() {
        let dir = std::env::temp_dir().join(format!("rig-tools-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let kernel = dir.join("kernel");
        let tool = dir.join("loadgen");
        fs::write(&kernel, b"kernel").unwrap();
        fs::write(&tool, b"TOOL-BYTES").unwrap();
        let mut a = GuestSpec::new("a", &kernel);
        a.dom0_tools = vec![tool.clone()];
        let mut b = GuestSpec::new("b", &kernel);
        b.dom0_tools = vec![tool.clone()];
        let archive = run_archive(&[a, b]).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let count = |needle: &[u8]| {
            archive
                .windows(needle.len())
                .filter(|w| *w == needle)
                .count()
        };
        assert_eq!(count(b"TOOL-BYTES"), 1);
        assert_eq!(count(b"rig/bin/loadgen"), 1);
    }

    #[test]
    fn rejects_bad_guest_lists() {
        let g = GuestSpec::new("a b", PathBuf::from("/nonexistent"));
        assert!(validate(&[g]).is_err());
        let g = GuestSpec::new("ok", PathBuf::from("/nonexistent"));
        assert!(validate(&[g]).is_err());
    }
}
