//! dom0's initramfs: the cached base archive (busybox, the xl toolstack with
//! its shared libraries, the backend modules, the rig's scripts) and the
//! small per-run archive appended to it (guest kernels, xl configs, the run
//! script).
//!
//! Shared libraries: the Xen ones come from the extracted `.deb`s, the rest
//! (libc, uuid, z, lzma, zstd, ...) from the host, as `ldd` resolves them
//! with the extracted library directories on `LD_LIBRARY_PATH`. A toolstack
//! that needs a newer glibc than the host's (4.20's, from trixie) brings
//! its release's `libc6`: then that package's dynamic loader resolves them
//! (`ld.so --list --library-path`, the C library's directory first), so
//! dom0 gets the new loader and C library and the host's other libraries,
//! whose older symbol versions the new glibc still provides. glibc
//! `dlopen`s `libgcc_s.so.1` (for thread cancellation) and `xl` aborts
//! without it, so it is added by hand.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache::Fingerprint;
use crate::cpio::CpioWriter;
use crate::debs::{self, Deb};
use crate::error::RigError;
use crate::hypervisor::XenVersion;
use crate::modules;
use crate::scripts;

/// Where libraries go inside dom0.
const LIB_DIR: &str = "usr/lib/x86_64-linux-gnu";
/// The toolstack's programs, under `usr/lib/xen-<version>/bin/` in
/// `xen-utils-<version>` and in dom0 alike (libxl runs some by that path;
/// the same names in 4.17 and 4.20).
const XEN_PROGRAMS: &[&str] = &[
    "xl",
    "xenstored",
    "xenconsoled",
    "xenconsole",
    "xen-init-dom0",
    "libxl-save-helper",
    // Xen's per-domain CPU accounting in batch mode (`xentop -b -d 10
    // -i 2`: CPU % over the 10 s between its two samples, to 0.1 %),
    // for the rig's idle-cost tests; `xl list` gives only 0.1 s steps.
    "xentop",
    // Every HVM save record of a domain (registers with the IDTR, GDTR
    // and TR, the pending event, the local APIC): what the rig prints
    // when a PVH guest triple-faults, before it destroys the domain.
    "xen-hvmctx",
];
/// Names under which `usr/bin/xenstore` (a multi-call binary) is linked.
const XENSTORE_LINKS: &[&str] = &[
    "xenstore-read",
    "xenstore-write",
    "xenstore-ls",
    "xenstore-list",
    "xenstore-rm",
    "xenstore-exists",
    "xenstore-chmod",
    "xenstore-watch",
];
/// Backend modules dom0 loads (their dependencies are added).
/// `xen-privcmd` before `xenfs`, which uses a symbol of it.
pub const MODULES: &[&str] = &[
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-privcmd",
    "xenfs",
    "xen-blkback",
    "xen-netback",
    "loop",
    "bridge",
    // The NIC QEMU gets when the host forwards ports into dom0
    // (`Rig::host_forwards`); with no such card it only registers its
    // PCI driver.
    "e1000",
];
/// Bumped when the way the archive is assembled changes.
const LAYOUT_VERSION: &str = "dom0-initramfs-v1";

/// The extracted packages the base archive is made from.
pub struct Inputs<'a> {
    /// Which Xen the toolstack is for.
    pub version: XenVersion,
    /// `busybox-static`, extracted.
    pub busybox: &'a Path,
    /// `xen-utils-<version>`, extracted.
    pub xen_utils: &'a Path,
    /// `xenstore-utils`, extracted.
    pub xenstore_utils: &'a Path,
    /// The library packages, extracted.
    pub libraries: Vec<PathBuf>,
    /// The toolstack's own C library (`libc6`), extracted, when the
    /// host's is too old for it.
    pub libc: Option<&'a Path>,
    /// The kernel package, extracted.
    pub linux: &'a Path,
}

/// The cache key of the base archive: the `.deb` versions plus every
/// script and list that goes into it.
pub fn fingerprint(debs: &[Deb], version: XenVersion) -> Fingerprint {
    let mut fp = Fingerprint::new().mix(LAYOUT_VERSION);
    for deb in debs {
        fp = fp.mix(deb.file_name());
    }
    for (path, mode, text) in scripts::base_files(&[], version) {
        fp = fp.mix(path).mix(mode.to_string()).mix(text);
    }
    for name in MODULES.iter().chain(XEN_PROGRAMS).chain(XENSTORE_LINKS) {
        fp = fp.mix(name);
    }
    fp
}

/// The kernel version directory (`lib/modules/6.1.0-48-amd64`) of an
/// extracted kernel package: under `lib/modules` (bookworm) or, in a
/// merged-`/usr` package (trixie's), `usr/lib/modules`.
pub fn kernel_modules_dir(linux: &Path) -> Result<PathBuf, RigError> {
    ["lib/modules", "usr/lib/modules"]
        .iter()
        .filter_map(|base| fs::read_dir(linux.join(base)).ok())
        .flat_map(|entries| entries.flatten())
        .map(|e| e.path())
        .find(|dir| dir.join("kernel").is_dir())
        .ok_or_else(|| {
            RigError::Invalid(format!(
                "no kernel modules under {}/lib/modules or usr/lib/modules",
                linux.display()
            ))
        })
}

/// Builds the base archive.
pub fn build_base(inputs: &Inputs<'_>) -> Result<Vec<u8>, RigError> {
    let mut cpio = CpioWriter::new();
    for dir in [
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "root",
        "etc",
        "lib64",
        "var/log/xen/console",
        "var/lib/xen",
        "var/lib/xenstored",
    ] {
        cpio.dir(dir);
    }
    cpio.symlink("var/run", "/run");
    cpio.symlink("var/lock", "/run/lock");
    cpio.char_device("dev/console", 0o600, 5, 1);
    cpio.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    cpio.file("etc/group", 0o644, b"root:x:0:\n");

    add_busybox(&mut cpio, inputs.busybox)?;

    let mut programs = Vec::new();
    let programs_dir = inputs.version.programs_dir();
    for program in XEN_PROGRAMS {
        let from = inputs.xen_utils.join(&programs_dir).join(program);
        add_file(
            &mut cpio,
            &format!("{programs_dir}/{program}"),
            &from,
            0o755,
        )?;
        programs.push(from);
    }
    let xenstore = inputs.xenstore_utils.join("usr/bin/xenstore");
    add_file(&mut cpio, "usr/bin/xenstore", &xenstore, 0o755)?;
    for link in XENSTORE_LINKS {
        cpio.symlink(&format!("usr/bin/{link}"), "xenstore");
    }
    programs.push(xenstore);
    add_libraries(
        &mut cpio,
        &programs,
        &inputs.libraries,
        inputs.libc,
        inputs.version,
    )?;

    let modules_dir = kernel_modules_dir(inputs.linux)?;
    let kernel_version = modules_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let set = modules::resolve(&modules_dir, MODULES)?;
    let target = format!("lib/modules/{kernel_version}");
    for (_, relative) in &set.load_order {
        // Decompressed if the package ships it as `.ko.xz`.
        let module = modules::read(&modules_dir, relative)?;
        cpio.file(&format!("{target}/{relative}"), 0o644, &module);
    }
    cpio.file(
        &format!("{target}/modules.dep"),
        0o644,
        set.modules_dep.as_bytes(),
    );
    let names: Vec<String> = set
        .load_order
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    for (path, mode, text) in scripts::base_files(&names, inputs.version) {
        cpio.file(path, mode, text.as_bytes());
    }
    Ok(cpio.finish())
}

fn add_file(cpio: &mut CpioWriter, path: &str, from: &Path, mode: u32) -> Result<(), RigError> {
    let data = fs::read(from).map_err(|e| RigError::io(from, e))?;
    cpio.file(path, mode, &data);
    Ok(())
}

/// `/bin/busybox` and a link for each of its applets.
fn add_busybox(cpio: &mut CpioWriter, extracted: &Path) -> Result<(), RigError> {
    let busybox = extracted.join("bin/busybox");
    add_file(cpio, "bin/busybox", &busybox, 0o755)?;
    let list = debs::run(Command::new(&busybox).arg("--list-full"))?;
    for applet in list.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet != "bin/busybox" {
            cpio.symlink(applet, "/bin/busybox");
        }
    }
    Ok(())
}

/// One line of `ldd` output: the library's name and where it resolved
/// (`None` for "not found"); the vDSO gives nothing.
pub fn parse_ldd_line(line: &str) -> Option<(String, Option<PathBuf>)> {
    let line = line.trim();
    if let Some((name, rest)) = line.split_once(" => ") {
        let rest = rest.trim();
        if rest.starts_with("not found") {
            return Some((name.trim().to_string(), None));
        }
        let path = rest.split(" (").next()?.trim();
        return (!path.is_empty()).then(|| (name.trim().to_string(), Some(PathBuf::from(path))));
    }
    // The dynamic loader: "/lib64/ld-linux-x86-64.so.2 (0x...)".
    let path = line.split(" (").next()?.trim();
    path.starts_with('/')
        .then(|| (path.to_string(), Some(PathBuf::from(path))))
}

/// Where a package keeps its shared libraries.
const PACKAGE_LIBRARY_DIR: &str = "usr/lib/x86_64-linux-gnu";
/// The host's library directories, searched after the packages' when the
/// package's own loader (not the host's `ldd`) resolves.
const HOST_LIBRARY_DIRS: &[&str] = &["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"];

/// The command that lists `program`'s libraries: the host's `ldd` with
/// `search_path` on `LD_LIBRARY_PATH`, or, when the toolstack brings its
/// own C library, that library's loader told to search `search_path`
/// (which then ends with the host's directories: a foreign loader does
/// not know the host's cache).
fn list_libraries(program: &Path, search_path: &std::ffi::OsStr, loader: Option<&Path>) -> Command {
    match loader {
        None => {
            let mut command = Command::new("ldd");
            command.arg(program).env("LD_LIBRARY_PATH", search_path);
            command
        }
        Some(loader) => {
            let mut command = Command::new(loader);
            command
                .arg("--list")
                .arg("--library-path")
                .arg(search_path)
                .arg(program);
            command
        }
    }
}

/// Every shared library the programs need, resolved by `ldd` (or `libc`'s
/// loader) with the extracted library directories searched first, plus
/// `libgcc_s.so.1`.
fn add_libraries(
    cpio: &mut CpioWriter,
    programs: &[PathBuf],
    library_packages: &[PathBuf],
    libc: Option<&Path>,
    version: XenVersion,
) -> Result<(), RigError> {
    let mut search: Vec<PathBuf> = Vec::new();
    // The toolstack's own C library first, so its libc.so.6 wins.
    let libc_dir = libc.map(|l| l.join(PACKAGE_LIBRARY_DIR));
    search.extend(libc_dir.clone());
    let private = version.private_libraries_dir();
    for package in library_packages {
        for dir in [PACKAGE_LIBRARY_DIR, private.as_str()] {
            let dir = package.join(dir);
            if dir.is_dir() {
                search.push(dir);
            }
        }
    }
    let loader = match &libc_dir {
        None => None,
        Some(dir) => {
            search.extend(HOST_LIBRARY_DIRS.iter().map(PathBuf::from));
            let loader = dir.join("ld-linux-x86-64.so.2");
            if !loader.is_file() {
                return Err(RigError::Invalid(format!(
                    "no dynamic loader in the C library package: {}",
                    loader.display()
                )));
            }
            Some(loader)
        }
    };
    let search_path = std::env::join_paths(&search)
        .map_err(|e| RigError::Invalid(format!("library path: {e}")))?;
    let mut libraries = std::collections::BTreeMap::new();
    for program in programs {
        let output = debs::run(&mut list_libraries(
            program,
            &search_path,
            loader.as_deref(),
        ))?;
        for (name, path) in output.lines().filter_map(parse_ldd_line) {
            let path = path.ok_or_else(|| {
                RigError::Invalid(format!("{}: library {name} not found", program.display()))
            })?;
            libraries.insert(name, path);
        }
    }
    let libgcc = [
        "/lib/x86_64-linux-gnu/libgcc_s.so.1",
        "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .ok_or_else(|| RigError::Invalid("libgcc_s.so.1 not found on the host".into()))?;
    libraries.insert("libgcc_s.so.1".into(), libgcc);
    for (name, path) in &libraries {
        if name.starts_with('/') {
            // The dynamic loader keeps its absolute path.
            add_file(cpio, name, path, 0o755)?;
        } else {
            add_file(cpio, &format!("{LIB_DIR}/{name}"), path, 0o755)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        assert_eq!(
            parse_ldd_line("\tlibxenlight.so.4.17 => /x/libxenlight.so.4.17 (0x00007f)"),
            Some((
                "libxenlight.so.4.17".into(),
                Some(PathBuf::from("/x/libxenlight.so.4.17"))
            ))
        );
        assert_eq!(
            parse_ldd_line("\tlibyajl.so.2 => not found"),
            Some(("libyajl.so.2".into(), None))
        );
        assert_eq!(
            parse_ldd_line("\t/lib64/ld-linux-x86-64.so.2 (0x00007f)"),
            Some((
                "/lib64/ld-linux-x86-64.so.2".into(),
                Some(PathBuf::from("/lib64/ld-linux-x86-64.so.2"))
            ))
        );
        // A package's own loader (`ld.so --list`) names where it found
        // itself.
        assert_eq!(
            parse_ldd_line("\t/lib64/ld-linux-x86-64.so.2 => /x/ld-linux-x86-64.so.2 (0x00007f)"),
            Some((
                "/lib64/ld-linux-x86-64.so.2".into(),
                Some(PathBuf::from("/x/ld-linux-x86-64.so.2"))
            ))
        );
        assert_eq!(parse_ldd_line("\tlinux-vdso.so.1 (0x00007ffd)"), None);
    }
}
