//! Kernel modules for dom0: which files to copy, in which order to load
//! them, and the `modules.dep` that busybox's `modprobe` reads.
//!
//! Debian's kernel package ships no `modules.dep` (its postinst runs
//! `depmod`), and a fresh machine may lack `depmod` (kmod). The dependencies
//! are in each module's own `.modinfo` ELF section (`depends=a,b`), so the
//! rig reads them there and writes `modules.dep` itself.
//!
//! Newer Debian kernels (trixie's 6.12) ship their modules xz-compressed
//! (`name.ko.xz`). Busybox's `modprobe` loads plain `.ko` files, so the
//! rig names every module by its `.ko` path and [`read`] decompresses a
//! compressed one when it is read (for its `.modinfo`, and when it is
//! copied into dom0's initramfs).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::RigError;

/// The modules dom0 loads, with everything they depend on, in load order.
#[derive(Debug, Default)]
pub struct ModuleSet {
    /// `(name, path relative to lib/modules/KVER)`, dependencies first.
    pub load_order: Vec<(String, String)>,
    /// The text of `modules.dep` for these modules.
    pub modules_dep: String,
}

/// A module's name as the kernel knows it (`xen-privcmd` and `xen_privcmd`
/// are the same module).
pub fn canonical_name(name: &str) -> String {
    name.trim_end_matches(".ko").replace('-', "_")
}

/// The `key=value` strings of an ELF object's `.modinfo` section.
pub fn modinfo(elf: &[u8]) -> Option<Vec<String>> {
    let section = elf_section(elf, ".modinfo")?;
    Some(
        section
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// The contents of the named section of a little-endian ELF64 file.
fn elf_section<'a>(elf: &'a [u8], wanted: &str) -> Option<&'a [u8]> {
    if !elf.starts_with(b"\x7fELF") || *elf.get(4)? != 2 || *elf.get(5)? != 1 {
        return None;
    }
    let u16_at = |at: usize| -> Option<usize> {
        Some(usize::from(u16::from_le_bytes(
            elf.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    let u32_at = |at: usize| -> Option<usize> {
        usize::try_from(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?)).ok()
    };
    let u64_at = |at: usize| -> Option<usize> {
        usize::try_from(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?)).ok()
    };
    let shoff = u64_at(0x28)?;
    let shentsize = u16_at(0x3a)?;
    let shnum = u16_at(0x3c)?;
    let shstrndx = u16_at(0x3e)?;
    let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let body = |i: usize| -> Option<&'a [u8]> {
        let h = header(i)?;
        let offset = u64_at(h + 24)?;
        let size = u64_at(h + 32)?;
        elf.get(offset..offset.checked_add(size)?)
    };
    let names = body(shstrndx)?;
    (0..shnum).find_map(|i| {
        let name_at = u32_at(header(i)?)?;
        let name = names.get(name_at..)?.split(|&b| b == 0).next()?;
        (name == wanted.as_bytes()).then(|| body(i)).flatten()
    })
}

/// The `depends=` list of a module, as canonical names.
pub fn depends(elf: &[u8]) -> Vec<String> {
    modinfo(elf)
        .unwrap_or_default()
        .iter()
        .filter_map(|kv| kv.strip_prefix("depends="))
        .flat_map(|list| list.split(','))
        .filter(|d| !d.is_empty())
        .map(canonical_name)
        .collect()
}

/// The suffix of an xz-compressed module (`name.ko.xz`).
const XZ_SUFFIX: &str = ".xz";

/// Every `.ko` or `.ko.xz` under `dir` (recursively), by canonical name,
/// as `.ko` paths relative to `base` (see [`read`]).
fn index(dir: &Path, base: &Path, out: &mut BTreeMap<String, PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            index(&path, base, out)?;
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            let plain = name.strip_suffix(XZ_SUFFIX).unwrap_or(name);
            if let Some(stem) = plain.strip_suffix(".ko") {
                let relative = path
                    .strip_prefix(base)
                    .unwrap_or(&path)
                    .with_file_name(plain);
                out.insert(canonical_name(stem), relative);
            }
        }
    }
    Ok(())
}

/// The plain bytes of the module at `relative` (a `.ko` path) under
/// `modules_dir`: the file itself, or its `.ko.xz`, decompressed.
pub fn read(modules_dir: &Path, relative: &str) -> Result<Vec<u8>, RigError> {
    let plain = modules_dir.join(relative);
    if plain.is_file() {
        return fs::read(&plain).map_err(|e| RigError::io(&plain, e));
    }
    let compressed = modules_dir.join(format!("{relative}{XZ_SUFFIX}"));
    let file = fs::File::open(&compressed).map_err(|e| RigError::io(&compressed, e))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut xz2::read::XzDecoder::new(file), &mut bytes)
        .map_err(|e| RigError::io(&compressed, e))?;
    Ok(bytes)
}

/// Resolves `wanted` (module names) against `modules_dir`
/// (`lib/modules/KVER`): adds their dependencies, orders them so that each
/// module comes after what it needs, and builds `modules.dep`.
/// `read` gives a module's bytes from its relative path.
pub fn resolve(modules_dir: &Path, wanted: &[&str]) -> Result<ModuleSet, RigError> {
    let mut by_name = BTreeMap::new();
    let kernel_dir = modules_dir.join("kernel");
    index(&kernel_dir, modules_dir, &mut by_name).map_err(|e| RigError::io(&kernel_dir, e))?;
    let lookup = |name: &str| -> Result<(PathBuf, Vec<String>), RigError> {
        let relative = by_name.get(name).ok_or_else(|| {
            RigError::Invalid(format!(
                "kernel module {name} not found under {}",
                modules_dir.display()
            ))
        })?;
        let bytes = read(modules_dir, &relative.to_string_lossy())?;
        Ok((relative.clone(), depends(&bytes)))
    };
    let mut graph = BTreeMap::new();
    let mut pending: Vec<String> = wanted.iter().map(|w| canonical_name(w)).collect();
    while let Some(name) = pending.pop() {
        if graph.contains_key(&name) {
            continue;
        }
        let (relative, deps) = lookup(&name)?;
        pending.extend(deps.iter().cloned());
        graph.insert(name, (relative, deps));
    }
    let wanted: Vec<String> = wanted.iter().map(|w| canonical_name(w)).collect();
    let order = load_order(&wanted, &|name| {
        graph.get(name).map(|(_, d)| d.clone()).unwrap_or_default()
    });
    let path_of = |name: &str| graph[name].0.to_string_lossy().into_owned();
    let mut modules_dep = String::new();
    for name in &order {
        let needed = transitive(name, &|n| graph[n].1.clone());
        // kmod's convention: modprobe loads the listed dependencies from the
        // last to the first.
        let listed: Vec<String> = order
            .iter()
            .rev()
            .filter(|m| needed.contains(*m))
            .map(|m| path_of(m))
            .collect();
        modules_dep.push_str(&path_of(name));
        modules_dep.push(':');
        for dep in listed {
            modules_dep.push(' ');
            modules_dep.push_str(&dep);
        }
        modules_dep.push('\n');
    }
    let load_order = order
        .iter()
        .map(|name| {
            let path = path_of(name);
            let file_stem = Path::new(&path)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.clone());
            (file_stem, path)
        })
        .collect();
    Ok(ModuleSet {
        load_order,
        modules_dep,
    })
}

/// Everything `name` needs, directly or not.
fn transitive(name: &str, deps: &dyn Fn(&str) -> Vec<String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut pending = deps(name);
    while let Some(d) = pending.pop() {
        if seen.insert(d.clone()) {
            pending.extend(deps(&d));
        }
    }
    seen
}

/// A depth-first post-order over `wanted`: dependencies before dependents,
/// otherwise in the order asked for.
pub fn load_order(wanted: &[String], deps: &dyn Fn(&str) -> Vec<String>) -> Vec<String> {
    fn visit(
        name: &str,
        deps: &dyn Fn(&str) -> Vec<String>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if !seen.insert(name.to_string()) {
            return;
        }
        for d in deps(name) {
            visit(&d, deps, seen, out);
        }
        out.push(name.to_string());
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for name in wanted {
        visit(name, deps, &mut seen, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with a `.modinfo` and a `.shstrtab` section.
    fn fake_module(modinfo: &[u8]) -> Vec<u8> {
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        let modinfo_at = elf.len();
        elf.extend_from_slice(modinfo);
        let shstrtab_at = elf.len();
        elf.extend_from_slice(shstrtab);
        let shoff = elf.len();
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        let section = |name: u32, offset: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[24..32].copy_from_slice(&(offset as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            h
        };
        elf.extend(section(0, 0, 0));
        elf.extend(section(1, modinfo_at, modinfo.len()));
        elf.extend(section(10, shstrtab_at, shstrtab.len()));
        elf
    }

    #[test]
    fn reads_depends_from_modinfo() {
        let elf = fake_module(b"license=GPL\0depends=xen-privcmd,foo_bar\0intree=Y\0");
        assert_eq!(
            modinfo(&elf).unwrap(),
            ["license=GPL", "depends=xen-privcmd,foo_bar", "intree=Y"]
        );
        assert_eq!(depends(&elf), ["xen_privcmd", "foo_bar"]);
        assert!(depends(&fake_module(b"depends=\0")).is_empty());
        assert!(modinfo(b"not an elf").is_none());
    }

    #[test]
    fn orders_dependencies_first() {
        let deps = |name: &str| -> Vec<String> {
            match name {
                "xenfs" => vec!["xen_privcmd".into()],
                "bridge" => vec!["stp".into(), "llc".into()],
                "stp" => vec!["llc".into()],
                _ => vec![],
            }
        };
        let wanted: Vec<String> = ["xen_evtchn", "xenfs", "bridge", "xen_privcmd"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            load_order(&wanted, &deps),
            ["xen_evtchn", "xen_privcmd", "xenfs", "llc", "stp", "bridge"]
        );
        assert_eq!(
            transitive("bridge", &deps),
            ["llc", "stp"].map(String::from).into_iter().collect()
        );
    }

    #[test]
    fn compressed_modules_resolve_and_read_as_plain_ones() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("rig-modules-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("kernel/fs")).unwrap();
        let privcmd = fake_module(b"depends=\0");
        let mut encoder = xz2::write::XzEncoder::new(Vec::new(), 1);
        encoder.write_all(&privcmd).unwrap();
        fs::write(
            dir.join("kernel/fs/xen-privcmd.ko.xz"),
            encoder.finish().unwrap(),
        )
        .unwrap();
        fs::write(
            dir.join("kernel/fs/xenfs.ko"),
            fake_module(b"depends=xen-privcmd\0"),
        )
        .unwrap();
        let set = resolve(&dir, &["xenfs"]).unwrap();
        let read_back = read(&dir, "kernel/fs/xen-privcmd.ko").unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            set.load_order,
            [
                ("xen-privcmd".into(), "kernel/fs/xen-privcmd.ko".into()),
                ("xenfs".into(), "kernel/fs/xenfs.ko".into())
            ]
        );
        assert!(set
            .modules_dep
            .contains("kernel/fs/xenfs.ko: kernel/fs/xen-privcmd.ko"));
        assert_eq!(read_back, privcmd);
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_name("xen-privcmd.ko"), "xen_privcmd");
        assert_eq!(canonical_name("xenfs"), "xenfs");
    }
}
