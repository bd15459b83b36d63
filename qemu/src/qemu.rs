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

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, Once};
use std::time::Instant;

use crate::error::RigError;

/// Process ids of the QEMUs this process has started and not yet reaped.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

/// SIGKILLs every QEMU this process started that is still running. Safe to
/// call from a signal-handling thread; call it from your own Ctrl-C handler
/// if you install one (the rig's own handler is then not installed).
pub fn kill_all_qemu() {
    let live = LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for &pid in live.iter() {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) takes plain integers and touches no memory of
            // ours. The pid is one of our own unreaped children (a child
            // leaves LIVE, under this lock, before it is reaped), so it
            // cannot have been reused by another process.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn install_signal_handler() {
    HANDLER.call_once(|| {
        // Fails if the program already has a handler: then that handler is
        // expected to call kill_all_qemu (and PDEATHSIG still applies).
        let _ = ctrlc::try_set_handler(|| {
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
}

impl Qemu {
    /// Starts `binary` with `args`, its stdout and stderr going to
    /// `output_log`, its stdin closed.
    pub fn spawn(binary: &Path, args: &[String], output_log: &Path) -> Result<Qemu, RigError> {
        install_signal_handler();
        let log = File::create(output_log).map_err(|e| RigError::io(output_log, e))?;
        let log2 = log.try_clone().map_err(|e| RigError::io(output_log, e))?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe operations are allowed: it makes two plain system
        // calls (prctl, getppid) and allocates nothing unless it fails.
        unsafe {
            command.pre_exec(move || {
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
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        let child = command.spawn().map_err(|e| RigError::Command {
            command: format!("{} {}", binary.display(), args.join(" ")),
            detail: e.to_string(),
        })?;
        live.push(child.id());
        drop(live);
        Ok(Qemu {
            child,
            started: Instant::now(),
            status: None,
        })
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
            let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(Some(status)) = self.child.try_wait() {
                let id = self.child.id();
                live.retain(|&pid| pid != id);
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
            let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
            let _ = self.child.kill();
            let id = self.child.id();
            live.retain(|&pid| pid != id);
        }
        // Unregistered but not yet reaped: nobody else signals it now.
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
