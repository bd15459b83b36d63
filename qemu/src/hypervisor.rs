//! Which Xen the rig boots, and where each one's hypervisor comes from.
//!
//! Xen 4.17 (the default) is Debian bookworm's, fetched with the machine's
//! own apt configuration like every other package of the rig. Xen 4.20 is
//! Debian trixie's: the machine is a bookworm one, so trixie's package
//! lists are kept apart inside the rig's cache, under an apt configuration
//! of the rig's own (its sources list, lists, archive cache and an empty
//! dpkg status), so that fetching one `.deb` from trixie never changes
//! what the machine's apt sees. The trixie source line uses the Debian
//! mirror the machine is already configured with (read from
//! `/etc/apt/sources.list` or the deb822 `sources.list.d/*.sources`), never
//! a host written here. Each version's `.deb`s are cached in a directory of
//! their own, so both hypervisors sit side by side.
//!
//! Each version also has its own toolstack for the Linux dom0 (xl,
//! xenstored, xenconsoled and their libraries, [`XenVersion::toolstack`]),
//! fetched the same way, so both run domUs. Trixie's toolstack needs
//! trixie's glibc (its binaries ask for `GLIBC_2.38`; bookworm has 2.36), so
//! a 4.20 toolstack brings trixie's `libc6` with it
//! ([`XenVersion::libc_package`]); the other shared libraries it needs
//! (uuid, z, lzma, zstd, ncurses) are older sonames' same ABI and come from
//! the host, as for 4.17. The dom0 kernel stays bookworm's Linux 6.1 for
//! both (any Xen-capable Linux runs under any Xen), unless
//! `PARAVANE_DOM0_LINUX=trixie` asks for trixie's with 4.20
//! ([`linux_image_package`] finds it through the same configuration).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::debs::{self, Deb};
use crate::error::RigError;

/// A hypervisor the rig can boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XenVersion {
    /// Debian bookworm's Xen 4.17 (the rig's own toolstack matches it).
    #[default]
    V4_17,
    /// Debian trixie's Xen 4.20, with trixie's toolstack.
    V4_20,
}

impl XenVersion {
    /// Every version the rig has, oldest first.
    pub const ALL: [XenVersion; 2] = [XenVersion::V4_17, XenVersion::V4_20];

    /// `4.17` or `4.20`: what `--xen` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            XenVersion::V4_17 => "4.17",
            XenVersion::V4_20 => "4.20",
        }
    }

    /// Reads `4.17` or `4.20`.
    pub fn parse(word: &str) -> Option<XenVersion> {
        XenVersion::ALL.into_iter().find(|v| v.as_str() == word)
    }

    /// The Debian package holding the hypervisor.
    pub fn hypervisor_package(self) -> String {
        format!("xen-hypervisor-{}-amd64", self.as_str())
    }

    /// The Debian release that ships it.
    pub fn debian_suite(self) -> &'static str {
        match self {
            XenVersion::V4_17 => "bookworm",
            XenVersion::V4_20 => "trixie",
        }
    }

    /// The package of the toolstack's programs (`xen-utils-4.20`).
    pub fn utils_package(self) -> String {
        format!("xen-utils-{}", self.as_str())
    }

    /// Where the toolstack's programs live, in the package and in dom0
    /// alike (`usr/lib/xen-4.20/bin`: libxl runs some by that path).
    pub fn programs_dir(self) -> String {
        format!("usr/lib/xen-{}/bin", self.as_str())
    }

    /// Where `libxenmisc` keeps its private libraries (`libxenfsimage`).
    pub fn private_libraries_dir(self) -> String {
        format!("usr/lib/xen-{}/lib/x86_64-linux-gnu", self.as_str())
    }

    /// The toolstack's packages for dom0: the programs, `xenstore-utils`
    /// and the libraries `xen-utils-*` and `libxenmisc*` depend on (their
    /// Depends lines, the same names in bookworm and trixie but for
    /// `libxenmisc`'s version). Not `xen-utils-common`: the rig writes its
    /// own `xl.conf` and hotplug scripts.
    pub fn toolstack(self) -> Vec<String> {
        let mut packages = vec![self.utils_package(), "xenstore-utils".to_string()];
        packages.extend(self.library_packages());
        packages
    }

    /// The library packages of [`XenVersion::toolstack`], whose
    /// directories `ldd` searches first.
    pub fn library_packages(self) -> Vec<String> {
        let mut packages = vec![format!("libxenmisc{}", self.as_str())];
        packages.extend(
            [
                "libxencall1",
                "libxenevtchn1",
                "libxenforeignmemory1",
                "libxengnttab1",
                "libxenstore4",
                "libxentoollog1",
                "libxendevicemodel1",
                "libxenhypfs1",
                "libxentoolcore1",
                "libyajl2",
            ]
            .map(str::to_string),
        );
        packages
    }

    /// The C library the toolstack needs when the host's is too old for
    /// it: trixie's binaries need `GLIBC_2.38` (`objdump -T`), bookworm
    /// has 2.36. Its dynamic loader then resolves (and runs) them.
    pub fn libc_package(self) -> Option<&'static str> {
        match self {
            XenVersion::V4_17 => None,
            XenVersion::V4_20 => Some("libc6"),
        }
    }

    /// Where this version's `.deb`s are kept under the cache root. 4.17
    /// keeps the rig's historical `debs/` (shared with the busybox and
    /// Linux packages); others get `xen-<version>/debs/`.
    pub fn debs_dir(self, root: &Path) -> PathBuf {
        match self {
            XenVersion::V4_17 => root.join("debs"),
            other => root.join(format!("xen-{}", other.as_str())).join("debs"),
        }
    }

    /// Where this version's `.deb`s are extracted: 4.17 in the rig's
    /// historical `extract/`; others in `xen-<version>/extract/`, since
    /// most library packages have the same name in both releases and
    /// an extraction directory is named after the package.
    pub fn extract_dir(self, root: &Path) -> PathBuf {
        match self {
            XenVersion::V4_17 => root.join("extract"),
            other => root.join(format!("xen-{}", other.as_str())).join("extract"),
        }
    }

    /// The private apt configuration's directory for this version, if it
    /// is not fetched with the machine's own apt.
    pub fn apt_dir(self, root: &Path) -> Option<PathBuf> {
        match self {
            XenVersion::V4_17 => None,
            other => Some(root.join(format!("xen-{}", other.as_str())).join("apt")),
        }
    }
}

impl std::fmt::Display for XenVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Xen {}", self.as_str())
    }
}

/// One apt source: a mirror URI and the suites it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AptSource {
    uri: String,
    suites: Vec<String>,
}

/// The sources of a one-line-style `sources.list`: `deb [options] URI
/// SUITE COMPONENT...` (`deb-src` and comments ignored).
fn one_line_sources(text: &str) -> Vec<AptSource> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut rest = rest.trim_start();
        // `[arch=amd64 signed-by=...]` options come before the URI.
        if rest.starts_with('[') {
            match rest.find(']') {
                Some(end) => rest = rest[end + 1..].trim_start(),
                None => continue,
            }
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            sources.push(AptSource {
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
            });
        }
    }
    sources
}

/// The sources of a deb822 `.sources` file: paragraphs with `Types:`,
/// `URIs:` and `Suites:` (paragraphs without type `deb`, or `Enabled: no`,
/// ignored).
fn deb822_sources(text: &str) -> Vec<AptSource> {
    let mut sources = Vec::new();
    for paragraph in text.split("\n\n") {
        let mut types = Vec::new();
        let mut uris = Vec::new();
        let mut suites = Vec::new();
        let mut enabled = true;
        for line in paragraph.lines() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let words = || value.split_whitespace().map(str::to_string);
            match key.trim().to_ascii_lowercase().as_str() {
                "types" => types = words().collect(),
                "uris" => uris = words().collect(),
                "suites" => suites = words().collect(),
                "enabled" => enabled = !value.trim().eq_ignore_ascii_case("no"),
                _ => {}
            }
        }
        if enabled && types.iter().any(|t| t == "deb") {
            for uri in uris {
                sources.push(AptSource {
                    uri,
                    suites: suites.clone(),
                });
            }
        }
    }
    sources
}

/// The Debian archive mirror among `sources`: the first whose suites
/// include a release itself (`bookworm`, not `bookworm-security` or
/// `bookworm-updates`, which the security archive and the updates
/// pocket serve). Trailing slashes are dropped.
fn archive_mirror(sources: &[AptSource]) -> Option<String> {
    sources
        .iter()
        .find(|s| s.suites.iter().any(|suite| !suite.contains(['-', '/'])))
        .map(|s| s.uri.trim_end_matches('/').to_string())
}

/// The machine's Debian mirror, from `/etc/apt/sources.list` and
/// `/etc/apt/sources.list.d/*.list|*.sources`.
fn configured_mirror(etc_apt: &Path) -> Result<String, RigError> {
    let mut sources = Vec::new();
    if let Ok(text) = fs::read_to_string(etc_apt.join("sources.list")) {
        sources.extend(one_line_sources(&text));
    }
    let parts = etc_apt.join("sources.list.d");
    let mut files: Vec<PathBuf> = fs::read_dir(&parts)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for file in files {
        let name = file.to_string_lossy().into_owned();
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        if name.ends_with(".sources") {
            sources.extend(deb822_sources(&text));
        } else if name.ends_with(".list") {
            sources.extend(one_line_sources(&text));
        }
    }
    archive_mirror(&sources).ok_or_else(|| RigError::Download {
        package: "apt sources".into(),
        detail: format!(
            "no Debian archive mirror (a `deb` source for a release suite) in {}/sources.list or {}/*.sources",
            etc_apt.display(),
            parts.display()
        ),
    })
}

/// The source line of the private configuration for `suite`.
fn source_line(mirror: &str, suite: &str, keyring: Option<&Path>) -> String {
    let options = keyring
        .map(|k| format!("[signed-by={}] ", k.display()))
        .unwrap_or_default();
    format!("deb {options}{mirror} {suite} main\n")
}

/// `-o` options pointing apt at the private configuration in `dir`.
fn private_apt_options(dir: &Path) -> Vec<String> {
    let at = |p: &str| dir.join(p).display().to_string();
    [
        ("Dir::Etc::sourcelist", at("sources.list")),
        ("Dir::Etc::sourceparts", "-".into()),
        ("Dir::Etc::preferencesparts", at("preferences.d")),
        ("Dir::State::Lists", at("lists")),
        ("Dir::State::status", at("status")),
        ("Dir::Cache", at("cache")),
        ("APT::Architecture", "amd64".into()),
        ("Acquire::Languages", "none".into()),
    ]
    .into_iter()
    .flat_map(|(key, value)| ["-o".to_string(), format!("{key}={value}")])
    .collect()
}

/// Sets up the private apt configuration for `version` in `dir` and runs
/// `apt-get update` on it when it has no package lists yet (its progress
/// shown as it goes).
fn ensure_private_lists(version: XenVersion, dir: &Path) -> Result<(), RigError> {
    let lists = dir.join("lists");
    if debs::has_package_lists(&lists) {
        return Ok(());
    }
    for sub in ["lists/partial", "cache/archives/partial", "preferences.d"] {
        fs::create_dir_all(dir.join(sub)).map_err(|e| RigError::io(dir.join(sub), e))?;
    }
    let mirror = configured_mirror(Path::new("/etc/apt"))?;
    let keyring = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg");
    let line = source_line(
        &mirror,
        version.debian_suite(),
        keyring.is_file().then_some(keyring),
    );
    fs::write(dir.join("sources.list"), &line).map_err(|e| RigError::io(dir, e))?;
    fs::write(dir.join("status"), "").map_err(|e| RigError::io(dir, e))?;
    progress!(
        "apt-get update for {version} (Debian {}, private lists in {}): {}",
        version.debian_suite(),
        dir.display(),
        line.trim()
    );
    // Progress goes straight to the terminal: a first update fetches
    // about 15 MB.
    let status = Command::new("apt-get")
        .args(private_apt_options(dir))
        .arg("update")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| RigError::Download {
            package: format!("apt-get update ({})", version.debian_suite()),
            detail: e.to_string(),
        })?;
    let has_lists_now = debs::has_package_lists(&lists);
    if !status.success() || !has_lists_now {
        return Err(RigError::Download {
            package: format!("apt-get update ({})", version.debian_suite()),
            detail: format!(
                "{status}; no {} package lists in {} (source: {})",
                version.debian_suite(),
                lists.display(),
                line.trim()
            ),
        });
    }
    Ok(())
}

/// The versioned Linux image package of `version`'s Debian release (what
/// its `linux-image-amd64` depends on), the cached one if there is one.
pub fn linux_image_package(root: &Path, version: XenVersion) -> Result<String, RigError> {
    let debs_dir = version.debs_dir(root);
    let Some(apt_dir) = version.apt_dir(root) else {
        return debs::linux_image_package(&debs_dir);
    };
    if let Some(package) = debs::cached_linux_image_package(&debs_dir) {
        return Ok(package);
    }
    ensure_private_lists(version, &apt_dir)?;
    let depends = debs::run(
        Command::new("apt-cache")
            .args(private_apt_options(&apt_dir))
            .args(["depends", "linux-image-amd64"]),
    )?;
    debs::linux_image_dependency(&depends)
}

/// The hypervisor's `.deb` for `version`, downloaded if not cached.
pub fn fetch_hypervisor(root: &Path, version: XenVersion) -> Result<Deb, RigError> {
    fetch(root, version, &version.hypervisor_package())
}

/// The `.deb` of `package` from `version`'s Debian release, downloaded
/// into `version`'s cache directory if not cached: with the machine's apt
/// for 4.17, with the private configuration for the others.
pub fn fetch(root: &Path, version: XenVersion, package: &str) -> Result<Deb, RigError> {
    let debs_dir = version.debs_dir(root);
    let Some(apt_dir) = version.apt_dir(root) else {
        return debs::fetch(&debs_dir, package);
    };
    if let Some(deb) = debs::cached(&debs_dir, package) {
        return Ok(deb);
    }
    ensure_private_lists(version, &apt_dir)?;
    fs::create_dir_all(&debs_dir).map_err(|e| RigError::io(&debs_dir, e))?;
    progress!(
        "downloading {package} from Debian {}",
        version.debian_suite()
    );
    let output = Command::new("apt-get")
        .args(private_apt_options(&apt_dir))
        .args(["download", package])
        .current_dir(&debs_dir)
        .output()
        .map_err(|e| RigError::Download {
            package: package.to_string(),
            detail: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(RigError::Download {
            package: package.to_string(),
            detail: format!(
                "apt-get download against Debian {}'s lists in {}: {}",
                version.debian_suite(),
                apt_dir.display(),
                debs::tail(&String::from_utf8_lossy(&output.stderr), 5)
            ),
        });
    }
    debs::cached(&debs_dir, package).ok_or_else(|| RigError::Download {
        package: package.to_string(),
        detail: format!(
            "apt-get download left no {package}_*.deb in {}",
            debs_dir.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_name_their_packages() {
        for version in XenVersion::ALL {
            assert_eq!(XenVersion::parse(version.as_str()), Some(version));
        }
        assert_eq!(XenVersion::parse("4.18"), None);
        assert_eq!(XenVersion::default(), XenVersion::V4_17);
        assert_eq!(
            XenVersion::V4_20.hypervisor_package(),
            "xen-hypervisor-4.20-amd64"
        );
        assert_eq!(XenVersion::V4_20.debian_suite(), "trixie");
        assert_eq!(XenVersion::V4_20.utils_package(), "xen-utils-4.20");
        assert_eq!(XenVersion::V4_20.programs_dir(), "usr/lib/xen-4.20/bin");
        assert_eq!(XenVersion::V4_17.libc_package(), None);
        assert_eq!(XenVersion::V4_20.libc_package(), Some("libc6"));
    }

    #[test]
    fn each_toolstack_names_its_own_packages() {
        let old = XenVersion::V4_17.toolstack();
        let new = XenVersion::V4_20.toolstack();
        assert_eq!(old.len(), new.len());
        assert_eq!(old[0], "xen-utils-4.17");
        assert!(old.contains(&"libxenmisc4.17".to_string()));
        assert!(new.contains(&"libxenmisc4.20".to_string()));
        assert!(new.contains(&"xenstore-utils".to_string()));
        for library in XenVersion::V4_20.library_packages() {
            assert!(new.contains(&library), "{library}");
        }
    }

    #[test]
    fn each_version_has_its_own_cache_directory() {
        let root = Path::new("/c");
        assert_eq!(XenVersion::V4_17.debs_dir(root), Path::new("/c/debs"));
        assert_eq!(
            XenVersion::V4_20.debs_dir(root),
            Path::new("/c/xen-4.20/debs")
        );
        assert_eq!(XenVersion::V4_17.extract_dir(root), Path::new("/c/extract"));
        assert_eq!(
            XenVersion::V4_20.extract_dir(root),
            Path::new("/c/xen-4.20/extract")
        );
        assert_eq!(XenVersion::V4_17.apt_dir(root), None);
        assert_eq!(
            XenVersion::V4_20.apt_dir(root).as_deref(),
            Some(Path::new("/c/xen-4.20/apt"))
        );
        let options = private_apt_options(Path::new("/c/xen-4.20/apt"));
        assert!(options.contains(&"Dir::State::Lists=/c/xen-4.20/apt/lists".to_string()));
        assert!(options.contains(&"Dir::Etc::sourcelist=/c/xen-4.20/apt/sources.list".into()));
        assert!(options.contains(&"Dir::Etc::sourceparts=-".to_string()));
    }

    #[test]
    fn mirror_from_a_one_line_sources_list() {
        let text = "# comment\n\
                    deb-src http://src.example/debian bookworm main\n\
                    deb http://security.example/debian-security bookworm-security main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib # x\n";
        let sources = one_line_sources(text);
        assert_eq!(sources.len(), 2);
        assert_eq!(
            archive_mirror(&sources).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn mirror_from_deb822_sources() {
        let text = "Types: deb\n\
                    # http://snapshot.debian.org/archive/debian-security/20250520T000000Z\n\
                    URIs: http://deb.debian.org/debian-security\n\
                    Suites: bookworm-security\n\
                    Components: main\n\
                    \n\
                    Types: deb-src\n\
                    URIs: http://src.example/debian\n\
                    Suites: bookworm\n\
                    \n\
                    Types: deb\n\
                    URIs: http://off.example/debian\n\
                    Suites: bookworm\n\
                    Enabled: no\n\
                    \n\
                    Types: deb\n\
                    URIs: http://deb.debian.org/debian\n\
                    Suites: bookworm bookworm-updates\n\
                    Components: main\n\
                    Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";
        assert_eq!(
            archive_mirror(&deb822_sources(text)).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        assert_eq!(archive_mirror(&deb822_sources("Types: deb\n")), None);
    }

    #[test]
    fn the_private_source_line_names_the_suite() {
        assert_eq!(
            source_line("http://m/debian", "trixie", Some(Path::new("/k.gpg"))),
            "deb [signed-by=/k.gpg] http://m/debian trixie main\n"
        );
        assert_eq!(
            source_line("http://m/debian", "trixie", None),
            "deb http://m/debian trixie main\n"
        );
    }
}
