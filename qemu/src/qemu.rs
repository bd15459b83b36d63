//! Starting QEMU, and making sure it never outlives the rig.
//!
//! A QEMU left running after a test eats a core for nothing and, worse,
//! keeps the next run's files busy. Three layers make sure it goes away:
//! the child asks the kernel to SIGKILL it when its parent thread dies
//! (`PR_SET_PDEATHSIG`, set in `pre_exec`, which also covers the xtask being
//! SIGKILLed); [`Qemu`]'s `Drop` kills and reaps it on every return path,
//! errors and panics included; and a SIGINT/SIGTERM/SIGHUP handler kills every
//! live QEMU before the process exits. If the calling program installs its
//! own handler (only one is allowed), it should call [`kill_all_qemu`] from
//! it.
//!
//! QEMU runs in a process group of its own, so the Ctrl-C a terminal sends
//! to its foreground group reaches the xtask alone: the xtask decides what
//! happens to QEMU (the rig's handler kills it; `cargo xtask run --serve`
//! first shuts its guest down through dom0). QEMU would otherwise quit at
//! once on SIGINT, before any clean shutdown could be asked for.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Mutex, Once};
use std::time::Instant;

use crate::error::RigError;

/// The QEMUs this process started: those not yet reaped, and those that
/// [`kill_all_qemu`] reaped behind their [`Qemu`]'s back (with the raw wait
/// status), so that a `Qemu` never signals or waits for a pid that may have
/// been reused.
struct Registry {
    live: Vec<u32>,
    reaped: Vec<(u32, i32)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    live: Vec::new(),
    reaped: Vec::new(),
});
static HANDLER: Once = Once::new();

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// SIGKILLs every QEMU this process started that is still running, and
/// reaps them (waiting up to a second each). Safe to call from a
/// signal-handling thread; call it from your own Ctrl-C handler if you
/// install one (the rig's own handler is then not installed).
pub fn kill_all_qemu() {
    let mut registry = registry();
    for pid in std::mem::take(&mut registry.live) {
        let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
            continue;
        };
        // SAFETY: kill(2) takes plain integers and touches no memory of
        // ours. The pid is one of our own unreaped children (children are
        // reaped only under this lock, or after leaving `live`), so it
        // cannot have been reused by another process.
        unsafe {
            libc::kill(raw_pid, libc::SIGKILL);
        }
        let mut status = 0;
        for _ in 0..100 {
            // SAFETY: waitpid(2) writes only to `status`, a live local; the
            // pid is our own unreaped child (see above). WNOHANG keeps it
            // from blocking while the lock is held.
            if unsafe { libc::waitpid(raw_pid, &mut status, libc::WNOHANG) } != 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        registry.reaped.push((pid, status));
    }
}

fn install_signal_handler() {
    HANDLER.call_once(|| {
        // `set_handler` replaces a plain disposition, including the SIG_IGN
        // a shell gives background jobs for SIGINT (`try_set_handler` would
        // give up there). It fails if the program installed its own ctrlc
        // handler: that one is expected to call kill_all_qemu (and
        // PDEATHSIG still applies).
        let _ = ctrlc::set_handler(|| {
            kill_all_qemu();
            eprintln!("rig: interrupted, QEMU killed");
            std::process::exit(130);
        });
    });
}

/// A running QEMU, killed and reaped when dropped.
pub struct Qemu {
    child: Child,
    started: Instant,
    status: Option<ExitStatus>,
    /// QEMU's stdin, for a machine whose serial input is `stdio`.
    input: Option<ChildStdin>,
}

impl Qemu {
    /// Starts `binary` with `args`, its stdout and stderr going to
    /// `output_log`, its stdin closed.
    pub fn spawn(binary: &Path, args: &[String], output_log: &Path) -> Result<Qemu, RigError> {
        Self::start(binary, args, output_log, false)
    }

    /// As [`Qemu::spawn`], with QEMU's stdin a pipe that [`Qemu::send`]
    /// writes to (for `-chardev stdio`: typing on the serial port).
    pub fn spawn_with_input(
        binary: &Path,
        args: &[String],
        output_log: &Path,
    ) -> Result<Qemu, RigError> {
        Self::start(binary, args, output_log, true)
    }

    fn start(
        binary: &Path,
        args: &[String],
        output_log: &Path,
        input: bool,
    ) -> Result<Qemu, RigError> {
        install_signal_handler();
        let log = File::create(output_log).map_err(|e| RigError::io(output_log, e))?;
        let log2 = log.try_clone().map_err(|e| RigError::io(output_log, e))?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(if input { Stdio::piped() } else { Stdio::null() })
            .stdout(log)
            .stderr(log2);
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe operations are allowed: it makes three plain
        // system calls (setpgid, prctl, getppid) and allocates nothing unless
        // it fails.
        unsafe {
            command.pre_exec(move || {
                // Out of the terminal's foreground group (see the module's
                // documentation).
                if libc::setpgid(0, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    return Err(std::io::Error::other("parent exited"));
                }
                Ok(())
            });
        }
        // Register under the lock, so a signal arriving during the spawn
        // waits and then kills the new child too.
        let mut registry = registry();
        let mut child = command.spawn().map_err(|e| RigError::Command {
            command: format!("{} {}", binary.display(), args.join(" ")),
            detail: e.to_string(),
        })?;
        registry.live.push(child.id());
        drop(registry);
        let input = child.stdin.take();
        Ok(Qemu {
            child,
            started: Instant::now(),
            status: None,
            input,
        })
    }

    /// Writes `bytes` to QEMU's stdin (started with
    /// [`Qemu::spawn_with_input`]).
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.input {
            Some(stdin) => stdin.write_all(bytes).and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("QEMU was started without input")),
        }
    }

    /// When QEMU was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// QEMU's exit status, if it has exited (it is then reaped).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            // Reap and unregister under the lock, so kill_all_qemu never
            // signals a pid that has been reaped (and could be reused).
            let mut registry = registry();
            let id = self.child.id();
            if let Some(&(_, raw)) = registry.reaped.iter().find(|(pid, _)| *pid == id) {
                self.status = Some(ExitStatus::from_raw(raw));
            } else if let Ok(Some(status)) = self.child.try_wait() {
                registry.live.retain(|&pid| pid != id);
                self.status = Some(status);
            }
        }
        self.status
    }

    /// Kills QEMU (if still running) and reaps it.
    pub fn kill(&mut self) {
        if self.try_wait().is_some() {
            return;
        }
        {
            let mut registry = registry();
            let id = self.child.id();
            if !registry.live.contains(&id) {
                // kill_all_qemu got here first; try_wait above saw its status.
                return;
            }
            let _ = self.child.kill();
            registry.live.retain(|&pid| pid != id);
        }
        // Unregistered but not yet reaped: nobody else signals or reaps it.
        if let Ok(status) = self.child.wait() {
            self.status = Some(status);
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}
