//! Making sure the Rust toolchain has what the guest build needs.
//!
//! `rust-toolchain.toml` names the `x86_64-unknown-none` target and the
//! `rustfmt`/`clippy` components, but rustup installs them by itself only
//! when `RUSTUP_AUTO_INSTALL` is not `0`. Many CI images (and the machines
//! this project is built on) set it to `0`, and a fresh clone then fails at
//! the first guest build with `can't find crate for 'core'`. So before
//! anything is built we look at the toolchain that cargo will use, and ask
//! rustup explicitly for whatever is missing, saying so.

use std::path::Path;
use std::process::Command;

/// The bare-metal target every guest is built for.
pub const GUEST_TARGET: &str = "x86_64-unknown-none";

/// The components the lints use.
pub const COMPONENTS: [&str; 2] = ["rustfmt", "clippy"];

/// What the toolchain lacks, as found by [`inspect`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Missing {
    /// The guest target's standard library is not installed.
    pub target: bool,
    /// Components (by rustup name) whose cargo subcommand does not run.
    pub components: Vec<&'static str>,
}

impl Missing {
    /// Whether nothing needs installing.
    pub fn is_empty(&self) -> bool {
        !self.target && self.components.is_empty()
    }

    /// The rustup commands that install what is missing.
    pub fn rustup_commands(&self) -> Vec<Vec<String>> {
        let mut commands = Vec::new();
        if self.target {
            commands.push(vec!["target".into(), "add".into(), GUEST_TARGET.into()]);
        }
        if !self.components.is_empty() {
            let mut cmd = vec!["component".to_string(), "add".to_string()];
            cmd.extend(self.components.iter().map(|c| c.to_string()));
            commands.push(cmd);
        }
        commands
    }
}

/// Decides what is missing from the sysroot's contents and which
/// component probes succeeded (pure, so it is unit-tested).
pub fn decide(target_lib_present: bool, component_ok: &[(&'static str, bool)]) -> Missing {
    Missing {
        target: !target_lib_present,
        components: component_ok
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| *name)
            .collect(),
    }
}

/// Whether `sysroot` holds the guest target's `core`.
fn target_installed(sysroot: &Path) -> bool {
    let lib = sysroot.join("lib/rustlib").join(GUEST_TARGET).join("lib");
    std::fs::read_dir(lib)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
        })
        .unwrap_or(false)
}

/// Looks at the toolchain that cargo uses in the workspace.
pub fn inspect() -> Result<Missing, String> {
    let root = crate::guest_build::workspace_root();
    let output = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(&root)
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`rustc --print sysroot` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let probes: Vec<(&'static str, bool)> = COMPONENTS
        .iter()
        .map(|&component| {
            let sub = if component == "rustfmt" {
                "fmt"
            } else {
                component
            };
            let ok = crate::guest_build::cargo()
                .args([sub, "--version"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            (component, ok)
        })
        .collect();
    Ok(decide(target_installed(Path::new(&sysroot)), &probes))
}

/// Installs what is missing through rustup, printing what it does.
pub fn ensure() -> Result<(), String> {
    let missing = inspect()?;
    if missing.is_empty() {
        return Ok(());
    }
    let root = crate::guest_build::workspace_root();
    for args in missing.rustup_commands() {
        eprintln!(
            "xtask: the toolchain lacks what rust-toolchain.toml names (rustup does not add it when RUSTUP_AUTO_INSTALL=0); running `rustup {}`",
            args.join(" ")
        );
        let status = Command::new("rustup")
            .args(&args)
            .current_dir(&root)
            .status()
            .map_err(|e| format!("cannot run rustup ({e}); install the target with `rustup target add {GUEST_TARGET}`"))?;
        if !status.success() {
            return Err(format!("`rustup {}` failed ({status})", args.join(" ")));
        }
    }
    let still = inspect()?;
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!("after rustup, the toolchain still lacks {still:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_runs_nothing() {
        let missing = decide(true, &[("rustfmt", true), ("clippy", true)]);
        assert!(missing.is_empty());
        assert!(missing.rustup_commands().is_empty());
    }

    #[test]
    fn missing_target_and_clippy_ask_rustup_for_both() {
        let missing = decide(false, &[("rustfmt", true), ("clippy", false)]);
        assert_eq!(
            missing.rustup_commands(),
            vec![
                vec!["target", "add", "x86_64-unknown-none"],
                vec!["component", "add", "clippy"],
            ]
        );
    }

    #[test]
    fn target_probe_reads_the_sysroot() {
        let dir = std::env::temp_dir().join(format!("xtask-sysroot-{}", std::process::id()));
        let lib = dir.join("lib/rustlib").join(GUEST_TARGET).join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        assert!(!target_installed(&dir));
        std::fs::write(lib.join("libcore-0123.rlib"), b"").unwrap();
        assert!(target_installed(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
