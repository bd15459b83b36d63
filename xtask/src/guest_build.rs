//! Building guest ELFs for `x86_64-unknown-none`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Cargo profile for the guest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `dev`: unoptimised, with debug assertions.
    Debug,
    /// `release`: what the rig boots by default (faster under emulation).
    Release,
}

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Cargo's target directory (`$CARGO_TARGET_DIR`, else `target/`), where
/// reports are written beside the builds.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The example xl configuration shipped for real Xen hosts.
pub fn example_xl_config() -> PathBuf {
    workspace_root().join("libos/apps/xl/paravane.cfg")
}

/// The cargo that runs us (so the toolchain file applies to both).
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Builds app `name` and returns the image to boot: `boot/NAME` beside
/// the ELF ([`boot_image`]). Every rig command boots this image, so what
/// `cargo xtask size` calls the stripped image is the one tested.
pub fn build(name: &str, profile: Profile) -> Result<PathBuf, String> {
    boot_image(&build_elf(name, profile)?)
}

/// Writes the bootable image of `elf` as `boot/NAME` in the ELF's
/// directory: the loaded bytes packed, without symbols or debug info
/// ([`crate::footprint::strip`]). The ELF stays as cargo built it, with
/// its symbols, for crash reports and debuggers. Same file name, so the
/// rig names the guest after the app as before.
pub fn boot_image(elf: &Path) -> Result<PathBuf, String> {
    let bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    let image = crate::footprint::strip(&bytes).map_err(|e| format!("{}: {e}", elf.display()))?;
    let dir = elf.parent().unwrap_or(Path::new(".")).join("boot");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(elf.file_name().unwrap_or_default());
    if std::fs::read(&path).ok().as_deref() != Some(&image[..]) {
        std::fs::write(&path, &image).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(path)
}

/// Builds app `name` and returns the path of its ELF, as linked (with
/// symbols and debug info).
pub fn build_elf(name: &str, profile: Profile) -> Result<PathBuf, String> {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--package",
        "paravane-apps",
        "--bin",
        name,
        "--target",
        "x86_64-unknown-none",
    ]);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the guest `{name}` failed ({status})"));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let dir = match profile {
        Profile::Debug => "debug",
        Profile::Release => "release",
    };
    let elf = target_dir.join("x86_64-unknown-none").join(dir).join(name);
    if elf.is_file() {
        Ok(elf)
    } else {
        Err(format!(
            "cargo built `{name}` but {} is missing",
            elf.display()
        ))
    }
}

/// Builds the rig's load generator (`qemu/loadgen`, crate `rig-loadgen`)
/// for dom0 ([`build_dom0_tool`]). Returns the binary's path.
pub fn build_loadgen() -> Result<PathBuf, String> {
    build_dom0_tool("rig-loadgen", "loadgen")
}

/// Builds the rig's own blkif backend (`dom0-backend`) for dom0
/// ([`build_dom0_tool`]). Returns the binary's path.
pub fn build_dom0_backend() -> Result<PathBuf, String> {
    build_dom0_tool("dom0-backend", "dom0-backend")
}

/// Builds binary `binary` of `package` for dom0:
/// `x86_64-unknown-linux-gnu` with the C library linked in
/// statically (`-C target-feature=+crt-static`, symbols stripped), so it
/// runs in dom0's busybox userland with no shared library. Returns the
/// binary's path. It builds into its own target directory
/// (`target/dom0-tools`), so the different flags never invalidate the
/// host's own builds.
pub fn build_dom0_tool(package: &str, binary: &str) -> Result<PathBuf, String> {
    const TARGET: &str = "x86_64-unknown-linux-gnu";
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("dom0-tools");
    let status = cargo()
        .args([
            "build",
            "--release",
            "--package",
            package,
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C strip=symbols",
        )
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the dom0 tool {package} failed ({status})"
        ));
    }
    let path = target_dir.join(TARGET).join("release").join(binary);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "cargo built {package} but {} is missing",
            path.display()
        ))
    }
}
