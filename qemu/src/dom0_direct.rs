//! Booting a kernel directly as dom0, the way Xen's own CI runs XTF: no
//! Linux, no toolstack, about a second per boot.
//!
//! QEMU's multiboot loader hands Xen the kernel as its first module; the
//! text after the module's path is the module's command line, which Xen
//! gives dom0 as its command line (QEMU splits `-initrd` at commas, so a
//! comma is written `,,`). The guest writes through `HYPERVISOR_console_io`,
//! which Xen sends to its serial port unchanged; Xen's own lines start with
//! `(XEN)`. The run ends when Xen says how the hardware domain ended (see
//! `xen_console.rs`): with `noreboot` a poweroff or crash halts the machine
//! and QEMU would wait forever, so QEMU is killed once the line is seen.
//!
//! A PVH dom0 is the same boot with `dom0=pvh` for Xen and an emulated
//! IOMMU for QEMU ([`PVH_DOM0_QEMU_ARGS`], [`PVH_DOM0_XEN_ARGS`]); Xen
//! announces the hardware domain's end with the same lines.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::RigError;
use crate::follow::LineFollower;
use crate::qemu::Qemu;
use crate::report::{Ending, GuestReport};
use crate::xen_console::{self, EndingWatcher};
use crate::{GuestMode, Rig, PVH_DOM0_QEMU_ARGS, PVH_DOM0_XEN_ARGS};

/// How often the serial log is polled.
const POLL: Duration = Duration::from_millis(10);

/// Escapes a QEMU `-initrd` module string: commas doubled.
pub fn qemu_module_arg(path: &str, cmdline: &str) -> String {
    let path = path.replace(',', ",,");
    let cmdline = cmdline.trim().replace(',', ",,");
    if cmdline.is_empty() {
        path
    } else {
        format!("{path} {cmdline}")
    }
}

/// The guest's console lines and Xen's verdict, from the whole serial log.
pub fn interpret(lines: &[String]) -> (Vec<String>, Option<(Ending, String)>) {
    let mut console = Vec::new();
    let mut watcher = EndingWatcher::default();
    let mut ending = None;
    for line in lines {
        let split = xen_console::split_line(line);
        if let Some(text) = split.guest {
            console.push(text.to_string());
        }
        if let Some(message) = split.xen {
            if ending.is_none() {
                ending = watcher.message(message);
            }
        }
    }
    (console, ending)
}

/// Does what [`Rig::boot_dom0`] promises.
pub fn boot_dom0(
    rig: &Rig,
    kernel: &Path,
    cmdline: &str,
    timeout: Duration,
    mode: GuestMode,
) -> Result<GuestReport, RigError> {
    let name = kernel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dom0".into());
    if !kernel.is_file() {
        return Err(RigError::Invalid(format!(
            "guest kernel {} does not exist",
            kernel.display()
        )));
    }
    let safe_label: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(24)
        .collect();
    let kind = match mode {
        GuestMode::Pv => "dom0",
        GuestMode::Pvh => "pvh-dom0",
    };
    let dir = crate::cache::new_run_dir(&rig.log_root, &format!("{kind}-{safe_label}"), 30)
        .map_err(|e| RigError::io(&rig.log_root, e))?;
    // A path with spaces cannot be a multiboot module path: use a copy.
    let kernel_path = if kernel.to_string_lossy().contains(char::is_whitespace) {
        let copy = dir.join("kernel");
        std::fs::copy(kernel, &copy).map_err(|e| RigError::io(kernel, e))?;
        copy
    } else {
        kernel.to_path_buf()
    };
    let serial = dir.join("serial.log");
    let xen_cmdline = direct_xen_cmdline(rig, mode);
    let cpu_args: Vec<&str> = match mode {
        GuestMode::Pv => vec!["-cpu", &rig.direct_cpu],
        GuestMode::Pvh => PVH_DOM0_QEMU_ARGS.to_vec(),
    };
    let machine = ["-M", "q35"].into_iter().chain(cpu_args);
    let args: Vec<String> = machine
        .chain([
            "-m",
            &format!("{}M", rig.direct_memory_mib),
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-monitor",
            "none",
            // Xen's console on the serial port: logged to `serial`, and
            // typed on through QEMU's stdin (debug keys for a hung guest).
            "-chardev",
            &format!("stdio,id=com1,signal=off,logfile={}", serial.display()),
            "-serial",
            "chardev:com1",
            "-kernel",
            &rig.xen.to_string_lossy(),
            "-append",
            xen_cmdline.trim(),
            "-initrd",
            &qemu_module_arg(&kernel_path.to_string_lossy(), cmdline),
        ])
        .map(str::to_string)
        .collect();
    std::fs::write(dir.join("qemu-command.txt"), shell_words(&rig.qemu, &args))
        .map_err(|e| RigError::io(&dir, e))?;

    progress!("booting Xen with {name} as {mode} dom0…");
    let mut qemu = Qemu::spawn_with_input(&rig.qemu, &args, &dir.join("qemu-output.log"))?;
    let start = qemu.started();
    let mut follower = LineFollower::new(&serial);
    let mut lines = Vec::new();
    let mut watcher = EndingWatcher::default();
    let mut seen = false;
    let mut exited = None;
    let elapsed;
    loop {
        for line in follower.poll() {
            if let Some(message) = xen_console::split_line(&line).xen {
                seen |= watcher.message(message).is_some();
            }
            lines.push(line);
        }
        // An ending line may still lack its newline (Xen halts right after).
        let partial = follower.partial();
        if let Some(message) = xen_console::split_line(&partial).xen {
            seen |= xen_console::hwdom_ending(message).is_some();
        }
        if seen {
            elapsed = start.elapsed();
            // Let QEMU flush what Xen printed after the line, then stop it.
            std::thread::sleep(Duration::from_millis(50));
            break;
        }
        if let Some(status) = qemu.try_wait() {
            elapsed = start.elapsed();
            exited = Some(status);
            break;
        }
        if start.elapsed() > timeout {
            elapsed = start.elapsed();
            break;
        }
        std::thread::sleep(POLL);
    }
    let hung = !seen && exited.is_none();
    if hung {
        lines.extend(ask_xen_for_dom0_state(&mut qemu, &mut follower));
    }
    qemu.kill();
    lines.extend(follower.poll());
    lines.extend(follower.take_partial());

    let (console, verdict) = interpret(&lines);
    let (ending, mut evidence) = match (verdict, exited) {
        (Some(verdict), _) => verdict,
        (None, Some(status)) => {
            let output = std::fs::read_to_string(dir.join("qemu-output.log")).unwrap_or_default();
            (
                Ending::Other(format!(
                    "QEMU exited ({status}) without Xen reporting an ending"
                )),
                format!("qemu: {status}; {}", crate::debs::tail(&output, 3)),
            )
        }
        (None, None) => (
            Ending::TimedOut,
            format!(
                "rig: no ending from Xen within {:.1} s; QEMU killed; dom0 then: {}",
                timeout.as_secs_f64(),
                dom0_state_summary(&lines)
            ),
        ),
    };
    progress!(
        "{name} ended: {ending} after {:.1} s",
        elapsed.as_secs_f64()
    );
    let xen_messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| xen_console::split_line(l).xen)
        .collect();
    let emulation_fault = xen_console::note_triple_fault(&mut evidence, &xen_messages, 0);
    Ok(GuestReport {
        emulation_fault,
        name,
        console,
        hypervisor_console: Vec::new(),
        ending,
        evidence,
        elapsed,
        dom0_output: Vec::new(),
        dom0_status: None,
        log: serial,
    })
}

/// Xen's debug keys, typed on its serial console once a guest has hung:
/// three Ctrl-A switch the input from dom0 to Xen, `0` dumps dom0's vCPU
/// registers and `e` its event channels. Returns the lines Xen printed
/// in the next two seconds.
fn ask_xen_for_dom0_state(qemu: &mut Qemu, follower: &mut LineFollower) -> Vec<String> {
    let mut lines = follower.poll();
    for keys in [&b"\x01\x01\x01"[..], b"0", b"e"] {
        if qemu.send(keys).is_err() {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let asked = Instant::now();
    while asked.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(POLL);
        lines.extend(follower.poll());
    }
    lines
}

/// The instruction pointer and flags from Xen's dump of dom0's vCPU 0
/// (`RIP:` and `RFLAGS:` lines), or a note that there was none.
fn dom0_state_summary(lines: &[String]) -> String {
    let Some(dump) = lines
        .iter()
        .rposition(|l| l.contains("Dumping Dom0 vcpu#0 state"))
    else {
        return "Xen printed no register dump".into();
    };
    let wanted: Vec<&str> = lines[dump..]
        .iter()
        .filter_map(|l| xen_console::split_line(l).xen)
        .filter(|m| m.contains("RIP:") || m.contains("RFLAGS:"))
        .take(2)
        .collect();
    if wanted.is_empty() {
        "a register dump without RIP".into()
    } else {
        wanted.join("; ")
    }
}

/// Xen's command line for a direct dom0 boot in `mode`.
fn direct_xen_cmdline(rig: &Rig, mode: GuestMode) -> String {
    let pvh = match mode {
        GuestMode::Pv => "",
        GuestMode::Pvh => PVH_DOM0_XEN_ARGS,
    };
    let line = format!(
        "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all noreboot \
         console_timestamps=boot dom0_mem={}M {pvh} {}",
        rig.direct_dom0_memory_mib, rig.xen_extra_cmdline
    );
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A command line that can be pasted into a shell to rerun QEMU by hand.
pub fn shell_words(program: &Path, args: &[String]) -> String {
    let quote = |s: &str| {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=.,:/+@%".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let mut words = vec![quote(&program.to_string_lossy())];
    words.extend(args.iter().map(|a| quote(a)));
    words.join(" ") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_argument_doubles_commas() {
        assert_eq!(qemu_module_arg("/k/hello", ""), "/k/hello");
        assert_eq!(qemu_module_arg("/k/a,b", "x=1,2 y"), "/k/a,,b x=1,,2 y");
    }

    #[test]
    fn summarises_xens_dump_of_a_hung_dom0() {
        let lines: Vec<String> = [
            "(XEN) [    9.10] RIP:    0008:[<0000000000100000>]",
            "(XEN) [    9.20] *** Dumping Dom0 vcpu#0 state: ***",
            "(XEN) [    9.21] ----[ Xen-4.17.5  x86_64  debug=n  Not tainted ]----",
            "(XEN) [    9.22] RIP:    0008:[<0000000000109026>]",
            "(XEN) [    9.23] RFLAGS: 0000000000000202   CONTEXT: hvm guest (d0v0)",
            "(XEN) [    9.24] rax: 0000000000000000   rbx: 0000000000000001",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            dom0_state_summary(&lines),
            "RIP:    0008:[<0000000000109026>]; RFLAGS: 0000000000000202   CONTEXT: hvm guest (d0v0)"
        );
        assert_eq!(
            dom0_state_summary(&lines[..1]),
            "Xen printed no register dump"
        );
    }

    #[test]
    fn interprets_a_serial_log() {
        let lines: Vec<String> = [
            "(XEN) [    1.76] *** Building a PV Dom0 ***",
            "hello from dom0",
            "  indented",
            "last words(XEN) [    2.06] Hardware Dom0 halted: halting machine",
            "(XEN) [    2.07] something after",
        ]
        .map(String::from)
        .to_vec();
        let (console, verdict) = interpret(&lines);
        assert_eq!(console, ["hello from dom0", "  indented", "last words"]);
        assert_eq!(
            verdict,
            Some((
                Ending::Poweroff,
                "Hardware Dom0 halted: halting machine".into()
            ))
        );
    }

    #[test]
    fn pvh_dom0_gets_dom0_pvh() {
        let rig = Rig {
            cache_dir: "/c".into(),
            qemu: "/q".into(),
            xen: "/x".into(),
            xen_version: crate::XenVersion::V4_17,
            vmlinux: "/v".into(),
            dom0_cpio: "/d".into(),
            log_root: "/l".into(),
            prepare_time: Duration::ZERO,
            xen_extra_cmdline: "sched=credit".into(),
            direct_cpu: "max".into(),
            direct_memory_mib: 512,
            direct_dom0_memory_mib: 64,
            memory_mib: 1024,
            dom0_memory_mib: 384,
            host_forwards: Vec::new(),
            include_dir: "/i".into(),
        };
        let pv = direct_xen_cmdline(&rig, GuestMode::Pv);
        assert!(pv.ends_with("dom0_mem=64M sched=credit"), "{pv}");
        assert!(!pv.contains("dom0=pvh"));
        let pvh = direct_xen_cmdline(&rig, GuestMode::Pvh);
        assert!(
            pvh.ends_with("dom0_mem=64M dom0=pvh iommu=1,no-intremap,no-sharept sched=credit"),
            "{pvh}"
        );
    }

    #[test]
    fn shell_words_quote() {
        let words = shell_words(
            Path::new("/usr/bin/qemu"),
            &["-append".into(), "a b".into()],
        );
        assert_eq!(words, "/usr/bin/qemu -append 'a b'\n");
    }
}
