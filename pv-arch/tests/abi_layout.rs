//! Checks `pv_arch::abi` against Xen's real public C headers.
//!
//! One table, [`abi_table!`] at the bottom of this file, lists every Rust
//! mirror with the C type it mirrors and every field with its C path, plus
//! constants and string tables. From that table the test writes a C
//! program that prints `sizeof`, `_Alignof` and `offsetof` of each entry
//! (and the value of each constant), compiles it against the headers with
//! `cc`, runs it, and compares with what `rustc` laid out. Every mismatch
//! is reported in one failure message.
//!
//! The headers come from Debian's `libxen-dev`, which `cargo xtask test`
//! downloads and unpacks. Set `PARAVANE_XEN_INCLUDE` to point elsewhere.
//! Without headers the test fails: a layout check that silently skips is
//! worse than none.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use pv_arch::abi::arch_x86::*;
use pv_arch::abi::callback::*;
use pv_arch::abi::console::*;
use pv_arch::abi::event_channel::*;
use pv_arch::abi::grant_table::*;
use pv_arch::abi::hvm::*;
use pv_arch::abi::memory::*;
use pv_arch::abi::mmu::*;
use pv_arch::abi::sched::*;
use pv_arch::abi::shared_info::*;
use pv_arch::abi::start_info::*;
use pv_arch::abi::vcpu::*;
use pv_arch::abi::version::*;
use pv_arch::abi::xen::hypercall_nr;
use pv_arch::abi::xen::*;
use pv_arch::abi::xenstore::*;
use pv_arch::Errno;

/// `__XEN_INTERFACE_VERSION__` the C side is compiled with: the newest
/// these headers support (Xen 4.17 says 0x00040e00), which is also the
/// version our definitions follow (e.g. `grant_entry_v1` naming, the
/// `flags` byte of `vcpu_time_info`).
const INTERFACE_VERSION: u32 = XEN_INTERFACE_VERSION;

/// Headers the generated program includes, in this order.
const HEADERS: &[&str] = &[
    "xen/xen.h",
    "xen/event_channel.h",
    "xen/grant_table.h",
    "xen/memory.h",
    "xen/vcpu.h",
    "xen/sched.h",
    "xen/callback.h",
    "xen/version.h",
    "xen/hvm/hvm_op.h",
    "xen/hvm/params.h",
    "xen/hvm/hvm_vcpu.h",
    "xen/arch-x86/hvm/start_info.h",
    "xen/io/console.h",
    "xen/io/xs_wire.h",
];

// ---------------------------------------------------------------------------
// The table's data model.

/// Rust-side facts about one struct (or union stand-in).
struct StructEntry {
    rust: &'static str,
    /// A C type name usable in `sizeof`/`offsetof`.
    c: &'static str,
    size: usize,
    align: usize,
    fields: Vec<FieldEntry>,
}

/// Rust-side facts about one field.
struct FieldEntry {
    rust: &'static str,
    /// Member path in C, as `offsetof` takes it (`console.domU.mfn`).
    c: &'static str,
    offset: usize,
    size: usize,
    /// 0 unsigned integer, 1 signed integer, 2 anything else.
    signedness: u8,
}

/// One integer constant: the Rust value and a C expression.
struct ConstEntry {
    rust: &'static str,
    c: &'static str,
    value: i128,
}

/// One string constant.
struct StrEntry {
    rust: &'static str,
    c: &'static str,
    value: &'static str,
}

/// A list of strings that C spells as an initializer macro.
struct StrListEntry {
    rust: &'static str,
    c: &'static str,
    values: Vec<&'static str>,
}

/// Everything the table lists.
struct Table {
    structs: Vec<StructEntry>,
    consts: Vec<ConstEntry>,
    strs: Vec<StrEntry>,
    str_lists: Vec<StrListEntry>,
    unions: Vec<UnionCase>,
}

/// One arm of a C union that Rust keeps as raw words.
///
/// C zeroes a `c_type`, assigns `c_set` (paths relative to `c_member`),
/// and prints the bytes of `c_member`. Rust must produce the same bytes
/// from its constructor (`rust_bytes`), and its accessors must read the
/// assigned values back out of C's bytes (`decode`).
struct UnionCase {
    name: &'static str,
    c_type: &'static str,
    /// Member holding the union, or `""` when `c_type` is the union.
    c_member: &'static str,
    c_set: &'static [(&'static str, u64)],
    rust_bytes: Vec<u8>,
    decode: fn(&[u8]) -> Result<(), String>,
}

/// Little-endian bytes of raw words, as x86_64 stores them.
fn le_bytes<const N: usize>(words: [u64; N]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Raw words from little-endian bytes (length must be a multiple of 8).
fn le_words<const N: usize>(bytes: &[u8]) -> Result<[u64; N], String> {
    if bytes.len() != N * 8 {
        return Err(format!(
            "C gave {} bytes, Rust expects {}",
            bytes.len(),
            N * 8
        ));
    }
    let mut words = [0u64; N];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    Ok(words)
}

/// Little-endian bytes of raw 32-bit words.
fn le_bytes32<const N: usize>(words: [u32; N]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Raw 32-bit words from little-endian bytes.
fn le_words32<const N: usize>(bytes: &[u8]) -> Result<[u32; N], String> {
    if bytes.len() != N * 4 {
        return Err(format!(
            "C gave {} bytes, Rust expects {}",
            bytes.len(),
            N * 4
        ));
    }
    let mut words = [0u32; N];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
    }
    Ok(words)
}

/// `Ok` if `ours == theirs`, else a message naming both.
fn same<T: PartialEq + std::fmt::Debug>(what: &str, ours: T, theirs: T) -> Result<(), String> {
    if ours == theirs {
        Ok(())
    } else {
        Err(format!(
            "{what}: Rust accessor gives {ours:?}, C assigned {theirs:?}"
        ))
    }
}

/// Size of the field `f` picks out of a `T`, without needing a `T`.
fn field_size<T, F>(_pick: fn(&T) -> &F) -> usize {
    core::mem::size_of::<F>()
}

/// Whether the field `f` picks out of a `T` is a signed or unsigned integer.
fn field_signedness<T, F>(_pick: fn(&T) -> &F) -> u8 {
    match core::any::type_name::<F>() {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => 1,
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => 0,
        _ => 2,
    }
}

/// Builds the [`Table`] from one declarative listing.
///
/// `Type = "c type" { rust_field => "c.path", ... }` checks size,
/// alignment and every listed field (offset, size, integer signedness);
/// the macro also builds the type from exactly those fields, so a Rust
/// field missing from the listing is a compile error naming it.
/// `Type = "c type";` checks size and alignment only (types whose fields
/// are private raw words standing in for a C union).
macro_rules! abi_table {
    (
        structs {
            $( $rty:path = $cty:literal $( { $( $rf:ident => $cf:literal ),* $(,)? } )? ; )*
        }
        consts {
            $( $rc:expr => $cc:literal ),* $(,)?
        }
        strs {
            $( $rs:expr => $cs:literal ),* $(,)?
        }
        str_lists {
            $( $rl:expr => $cl:literal ),* $(,)?
        }
    ) => {
        pub(crate) fn table() -> Table {
            #[allow(unused_mut)]
            let mut structs = Vec::new();
            $({
                #[allow(unused_mut)]
                let mut fields = Vec::new();
                $(
                    // Every field of the Rust struct must be listed: a
                    // forgotten one is "missing field `x` in initializer".
                    #[allow(dead_code)]
                    fn all_fields_listed(value: &$rty) -> $rty {
                        $rty { $( $rf: value.$rf ),* }
                    }
                    $(
                        fields.push(FieldEntry {
                            rust: stringify!($rf),
                            c: $cf,
                            offset: core::mem::offset_of!($rty, $rf),
                            size: field_size(|s: &$rty| &s.$rf),
                            signedness: field_signedness(|s: &$rty| &s.$rf),
                        });
                    )*
                )?
                structs.push(StructEntry {
                    rust: stringify!($rty),
                    c: $cty,
                    size: core::mem::size_of::<$rty>(),
                    align: core::mem::align_of::<$rty>(),
                    fields,
                });
            })*
            let consts = vec![
                $( ConstEntry { rust: stringify!($rc), c: $cc, value: ($rc) as i128 }, )*
            ];
            let strs = vec![
                $( StrEntry { rust: stringify!($rs), c: $cs, value: $rs }, )*
            ];
            let str_lists = vec![
                $( StrListEntry { rust: stringify!($rl), c: $cl, values: ($rl).to_vec() }, )*
            ];
            Table { structs, consts, strs, str_lists, unions: union_cases() }
        }
    };
}

// ---------------------------------------------------------------------------
// Finding the headers and the compiler.

fn include_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PARAVANE_XEN_INCLUDE") {
        return PathBuf::from(dir);
    }
    let cache = match std::env::var_os("PARAVANE_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/paravane")
        }
    };
    cache.join("extract/libxen-dev/usr/include")
}

/// `Err` with the message to fail with if `dir` holds no Xen headers.
fn check_headers(dir: &Path) -> Result<(), String> {
    if dir.join("xen/xen.h").is_file() {
        Ok(())
    } else {
        Err(format!(
            "Xen public headers not found at {}: run `cargo xtask test` \
             (which fetches Debian's libxen-dev) or set PARAVANE_XEN_INCLUDE",
            dir.display()
        ))
    }
}

// ---------------------------------------------------------------------------
// Generating, building and running the C side.

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from the C side"))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn c_program(table: &Table) -> String {
    let mut c = String::new();
    c.push_str(
        "#include <stdint.h>\n#include <stddef.h>\n#include <stdio.h>\n\
         #include <string.h>\n#include <errno.h>\n\n\
         #if !defined(__x86_64__)\n\
         #error \"the layout check compares against the x86_64 ABI: build it on an x86_64 host\"\n\
         #endif\n\n",
    );
    // Xen's errno list hides EINTR and ERESTART from guests; the default
    // include under __XEN__ gives the enum with all of them as XEN_E*.
    c.push_str("#define __XEN__\n#include <xen/errno.h>\n#undef __XEN__\n\n");
    for h in HEADERS {
        let _ = writeln!(c, "#include <{h}>");
    }
    c.push_str(
        "\n/* Names for anonymous member types. */\n\
         #define MEMBER_TYPE(type, member) __typeof__(((type *)0)->member)\n\n\
         static __attribute__((unused)) void str_hex(const char *s)\n{\n\
         \x20   if (!*s) putchar('-');\n\
         \x20   for (; *s; s++) printf(\"%02x\", (unsigned char)*s);\n}\n\n\
         #define SIGNEDNESS(x) _Generic((x), \\\n\
         \x20   char: ((char)-1 < 0), signed char: 1, short: 1, int: 1, long: 1, long long: 1, \\\n\
         \x20   unsigned char: 0, unsigned short: 0, unsigned int: 0, unsigned long: 0, \\\n\
         \x20   unsigned long long: 0, _Bool: 0, default: 2)\n\n\
         int main(void)\n{\n",
    );
    for (i, s) in table.structs.iter().enumerate() {
        let ty = s.c;
        let _ = writeln!(
            c,
            "    printf(\"T {i} %zu %zu\\n\", sizeof({ty}), (size_t)_Alignof({ty}));"
        );
        for (j, f) in s.fields.iter().enumerate() {
            let m = f.c;
            let _ = writeln!(
                c,
                "    printf(\"F {i} {j} %zu %zu %d\\n\", offsetof({ty}, {m}), \
                 sizeof(((({ty} *)0)->{m})), SIGNEDNESS((({ty} *)0)->{m}));"
            );
        }
    }
    for (i, k) in table.consts.iter().enumerate() {
        let e = k.c;
        let _ = writeln!(
            c,
            "    printf(\"C {i} %d %llu\\n\", (int)(({e}) < 0), (unsigned long long)({e}));"
        );
    }
    for (i, s) in table.strs.iter().enumerate() {
        let e = s.c;
        let _ = writeln!(c, "    printf(\"S {i} \"); str_hex({e}); putchar('\\n');");
    }
    for (i, l) in table.str_lists.iter().enumerate() {
        let e = l.c;
        let _ = writeln!(
            c,
            "    {{\n        static const char *const list[] = {e};\n\
             \x20       printf(\"L {i} %zu\\n\", sizeof(list) / sizeof(list[0]));\n\
             \x20       for (size_t k = 0; k < sizeof(list) / sizeof(list[0]); k++) {{\n\
             \x20           printf(\"LI {i} %zu \", k); str_hex(list[k]); putchar('\\n');\n\
             \x20       }}\n    }}"
        );
    }
    for (i, u) in table.unions.iter().enumerate() {
        let ty = u.c_type;
        let member = if u.c_member.is_empty() {
            "v".to_string()
        } else {
            format!("v.{}", u.c_member)
        };
        let _ = writeln!(
            c,
            "    {{\n        {ty} v;\n        memset(&v, 0, sizeof(v));"
        );
        for (path, value) in u.c_set {
            let _ = writeln!(c, "        {member}.{path} = {value:#x}ULL;");
        }
        let _ = writeln!(
            c,
            "        const unsigned char *p = (const unsigned char *)&{member};\n\
             \x20       printf(\"U {i} \");\n\
             \x20       for (size_t k = 0; k < sizeof({member}); k++) printf(\"%02x\", p[k]);\n\
             \x20       putchar('\\n');\n    }}"
        );
    }
    // xs_wire.h's table of error names (it needs the host's <errno.h>,
    // whose values agree with Xen's for these).
    c.push_str(
        "    for (size_t k = 0; k < sizeof(xsd_errors) / sizeof(xsd_errors[0]); k++)\n\
         \x20       printf(\"X %d %s\\n\", xsd_errors[k].errnum, xsd_errors[k].errstring);\n",
    );
    // Every errno a guest can see, by name, for the completeness check.
    c.push_str(
        "#define XEN_ERRNO(name, value) printf(\"E %s %d\\n\", #name, value);\n\
         #include <xen/errno.h>\n",
    );
    c.push_str("    printf(\"I %u\\n\", (unsigned)__XEN_LATEST_INTERFACE_VERSION__);\n");
    c.push_str("    return 0;\n}\n");
    c
}

/// Compiles and runs the generated program; returns its standard output.
fn run_c(source: &str, include: &Path) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("abi_layout");
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    // Tests run in parallel threads of one process: a name per call.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stem = format!("abi_layout_{}_{call}", std::process::id());
    let src = dir.join(format!("{stem}.c"));
    let exe = dir.join(&stem);
    std::fs::write(&src, source).expect("write the generated C program");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = Command::new(&cc)
        .arg("-std=gnu11")
        .arg("-Wall")
        .arg(format!(
            "-D__XEN_INTERFACE_VERSION__={INTERFACE_VERSION:#010x}"
        ))
        .arg("-I")
        .arg(include)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` (set CC to override): {e}"));
    if !out.status.success() {
        panic!(
            "the generated layout program ({}) does not compile against the headers in {}:\n{}",
            src.display(),
            include.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if !out.stderr.is_empty() {
        eprintln!(
            "C compiler warnings for {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let run = Command::new(&exe)
        .output()
        .expect("run the generated layout program");
    assert!(run.status.success(), "the generated layout program failed");
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&exe);
    String::from_utf8(run.stdout).expect("the layout program prints ASCII")
}

// ---------------------------------------------------------------------------
// Comparing.

/// What the C side reported, keyed like the table.
#[derive(Default)]
struct CFacts {
    types: HashMap<usize, (usize, usize)>,
    fields: HashMap<(usize, usize), (usize, usize, u8)>,
    consts: HashMap<usize, i128>,
    strs: HashMap<usize, String>,
    list_lens: HashMap<usize, usize>,
    list_items: HashMap<(usize, usize), String>,
    errnos: Vec<(String, i32)>,
    unions: HashMap<usize, Vec<u8>>,
    xsd_errors: Vec<(i32, String)>,
    /// `__XEN_LATEST_INTERFACE_VERSION__`: the newest interface the
    /// headers describe.
    latest_interface: Option<u32>,
}

fn parse(output: &str) -> CFacts {
    let mut facts = CFacts::default();
    for line in output.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let n = |k: usize| -> usize { w[k].parse().expect("a number from the C side") };
        match w[0] {
            "T" => {
                facts.types.insert(n(1), (n(2), n(3)));
            }
            "F" => {
                facts.fields.insert((n(1), n(2)), (n(3), n(4), n(5) as u8));
            }
            "C" => {
                let raw: u64 = w[3].parse().expect("a constant from the C side");
                let value = if w[2] == "1" {
                    i128::from(raw as i64)
                } else {
                    i128::from(raw)
                };
                facts.consts.insert(n(1), value);
            }
            "S" => {
                let s = if w[2] == "-" {
                    String::new()
                } else {
                    unhex(w[2])
                };
                facts.strs.insert(n(1), s);
            }
            "L" => {
                facts.list_lens.insert(n(1), n(2));
            }
            "LI" => {
                let s = if w[3] == "-" {
                    String::new()
                } else {
                    unhex(w[3])
                };
                facts.list_items.insert((n(1), n(2)), s);
            }
            "U" => {
                let bytes = (0..w[2].len())
                    .step_by(2)
                    .map(|k| u8::from_str_radix(&w[2][k..k + 2], 16).expect("hex from the C side"))
                    .collect();
                facts.unions.insert(n(1), bytes);
            }
            "X" => facts
                .xsd_errors
                .push((w[1].parse().expect("an errno value"), w[2].to_string())),
            "E" => facts
                .errnos
                .push((w[1].to_string(), w[2].parse().expect("an errno value"))),
            "I" => facts.latest_interface = Some(w[1].parse().expect("an interface version")),
            other => panic!("unexpected line from the C side: {other}"),
        }
    }
    facts
}

fn compare(table: &Table, c: &CFacts) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, s) in table.structs.iter().enumerate() {
        let Some(&(size, align)) = c.types.get(&i) else {
            bad.push(format!("{}: no report from C for `{}`", s.rust, s.c));
            continue;
        };
        if size != s.size {
            bad.push(format!(
                "{} (C `{}`): size: Rust {} vs C {}",
                s.rust, s.c, s.size, size
            ));
        }
        if align != s.align {
            bad.push(format!(
                "{} (C `{}`): alignment: Rust {} vs C {}",
                s.rust, s.c, s.align, align
            ));
        }
        for (j, f) in s.fields.iter().enumerate() {
            let Some(&(offset, fsize, sign)) = c.fields.get(&(i, j)) else {
                bad.push(format!("{}.{}: no report from C", s.rust, f.rust));
                continue;
            };
            if offset != f.offset {
                bad.push(format!(
                    "{}.{} (C `{}.{}`): offset: Rust {} vs C {}",
                    s.rust, f.rust, s.c, f.c, f.offset, offset
                ));
            }
            if fsize != f.size {
                bad.push(format!(
                    "{}.{} (C `{}.{}`): size: Rust {} vs C {}",
                    s.rust, f.rust, s.c, f.c, f.size, fsize
                ));
            }
            // Integer signedness matters (a negative status read as a
            // large positive one); raw words standing in for a C union or
            // wrapper types compare only by size.
            if sign != 2 && f.signedness != 2 && sign != f.signedness {
                let word = |s: u8| if s == 1 { "signed" } else { "unsigned" };
                bad.push(format!(
                    "{}.{} (C `{}.{}`): Rust is {} but C is {}",
                    s.rust,
                    f.rust,
                    s.c,
                    f.c,
                    word(f.signedness),
                    word(sign)
                ));
            }
        }
    }
    for (i, k) in table.consts.iter().enumerate() {
        match c.consts.get(&i) {
            Some(&v) if v == k.value => {}
            Some(&v) => bad.push(format!(
                "constant {} (C `{}`): Rust {} ({:#x}) vs C {} ({:#x})",
                k.rust, k.c, k.value, k.value, v, v
            )),
            None => bad.push(format!("constant {}: no report from C", k.rust)),
        }
    }
    for (i, s) in table.strs.iter().enumerate() {
        match c.strs.get(&i) {
            Some(v) if v == s.value => {}
            Some(v) => bad.push(format!(
                "string {} (C `{}`): Rust {:?} vs C {:?}",
                s.rust, s.c, s.value, v
            )),
            None => bad.push(format!("string {}: no report from C", s.rust)),
        }
    }
    for (i, l) in table.str_lists.iter().enumerate() {
        let len = c.list_lens.get(&i).copied().unwrap_or(0);
        if len != l.values.len() {
            bad.push(format!(
                "list {} (C `{}`): Rust has {} entries, C {}",
                l.rust,
                l.c,
                l.values.len(),
                len
            ));
        }
        for (k, value) in l.values.iter().enumerate().take(len) {
            let theirs = c.list_items.get(&(i, k)).map(String::as_str);
            if theirs != Some(*value) {
                bad.push(format!(
                    "list {}[{k}] (C `{}`): Rust {:?} vs C {:?}",
                    l.rust, l.c, value, theirs
                ));
            }
        }
    }
    for (i, u) in table.unions.iter().enumerate() {
        let Some(bytes) = c.unions.get(&i) else {
            bad.push(format!("union case {}: no report from C", u.name));
            continue;
        };
        if *bytes != u.rust_bytes {
            bad.push(format!(
                "union case {} (C `{}` .{}): Rust constructor gives bytes {:02x?}, C {:02x?}",
                u.name, u.c_type, u.c_member, u.rust_bytes, bytes
            ));
        }
        if let Err(e) = (u.decode)(bytes) {
            bad.push(format!("union case {}: {e}", u.name));
        }
    }
    if XSD_ERRORS.len() != c.xsd_errors.len() {
        bad.push(format!(
            "XSD_ERRORS (C `xsd_errors`): Rust has {} entries, C {}",
            XSD_ERRORS.len(),
            c.xsd_errors.len()
        ));
    }
    for (k, (ours, theirs)) in XSD_ERRORS.iter().zip(&c.xsd_errors).enumerate() {
        if (ours.errnum.0, ours.errstring) != (theirs.0, theirs.1.as_str()) {
            bad.push(format!(
                "XSD_ERRORS[{k}] (C `xsd_errors[{k}]`): Rust ({}, {:?}) vs C ({}, {:?})",
                ours.errnum.0, ours.errstring, theirs.0, theirs.1
            ));
        }
    }
    // Every errno the header gives guests must have a name in Errno.
    for (name, value) in &c.errnos {
        match Errno(*value).name() {
            Some(ours) if ours == name => {}
            // Aliases share a value; `name()` gives the primary spelling.
            Some(_) if name == "EWOULDBLOCK" || name == "EDEADLOCK" => {}
            ours => bad.push(format!(
                "errno {name} ({value}): Errno::name() gives {ours:?}"
            )),
        }
    }
    if c.errnos.is_empty() {
        bad.push("the C side listed no errno values".to_string());
    }
    bad
}

#[test]
fn abi_matches_xen_public_headers() {
    let include = include_dir();
    if let Err(msg) = check_headers(&include) {
        panic!("{msg}");
    }
    let table = table();
    let output = run_c(&c_program(&table), &include);
    let facts = parse(&output);
    let mut bad = compare(&table, &facts);
    // Our definitions follow one interface version (4.17's); newer
    // headers describe it too (compiled with it as
    // `__XEN_INTERFACE_VERSION__`), older ones cannot.
    let latest = facts.latest_interface.unwrap_or(0);
    if latest < XEN_INTERFACE_VERSION {
        bad.push(format!(
            "the headers' latest interface version {latest:#x} is older than ours {XEN_INTERFACE_VERSION:#x}"
        ));
    }
    let fields: usize = table.structs.iter().map(|s| s.fields.len()).sum();
    eprintln!(
        "checked {} types, {} fields, {} constants, {} strings, {} string lists, \
         {} union arms, {} errno names, at interface version {:#x} of headers up to {latest:#x}",
        table.structs.len(),
        fields,
        table.consts.len(),
        table.strs.len(),
        table.str_lists.len(),
        table.unions.len(),
        facts.errnos.len(),
        XEN_INTERFACE_VERSION
    );
    assert!(
        bad.is_empty(),
        "{} ABI mismatch(es) against the headers in {}:\n  {}",
        bad.len(),
        include.display(),
        bad.join("\n  ")
    );
}

#[test]
fn missing_headers_fail_loudly() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-xen-headers");
    let msg = check_headers(&dir).expect_err("no headers there");
    assert!(msg.contains("Xen public headers not found at"), "{msg}");
    assert!(msg.contains("PARAVANE_XEN_INCLUDE"), "{msg}");
    assert!(msg.contains("cargo xtask test"), "{msg}");
}

// ---------------------------------------------------------------------------
// The table.

abi_table! {
    structs {
        // xen/xen.h: start of day.
        StartInfo = "struct start_info" {
            magic => "magic",
            nr_pages => "nr_pages",
            shared_info => "shared_info",
            flags => "flags",
            store_mfn => "store_mfn",
            store_evtchn => "store_evtchn",
            console => "console",
            pt_base => "pt_base",
            nr_pt_frames => "nr_pt_frames",
            mfn_list => "mfn_list",
            mod_start => "mod_start",
            mod_len => "mod_len",
            cmd_line => "cmd_line",
            first_p2m_pfn => "first_p2m_pfn",
            nr_p2m_frames => "nr_p2m_frames",
        };
        StartInfoConsole = "MEMBER_TYPE(struct start_info, console)";
        StartInfoConsoleDomU = "MEMBER_TYPE(struct start_info, console.domU)" {
            mfn => "mfn",
            evtchn => "evtchn",
        };
        StartInfoConsoleDom0 = "MEMBER_TYPE(struct start_info, console.dom0)" {
            info_off => "info_off",
            info_size => "info_size",
        };

        XenMultibootModList = "struct xen_multiboot_mod_list" {
            mod_start => "mod_start",
            mod_end => "mod_end",
            cmdline => "cmdline",
            pad => "pad",
        };
        Dom0VgaConsoleInfo = "struct dom0_vga_console_info" {
            video_type => "video_type",
            u => "u",
        };
        Dom0VgaConsoleInfoU = "MEMBER_TYPE(struct dom0_vga_console_info, u)";
        Dom0VgaTextMode3 = "MEMBER_TYPE(struct dom0_vga_console_info, u.text_mode_3)" {
            font_height => "font_height",
            cursor_x => "cursor_x",
            cursor_y => "cursor_y",
            rows => "rows",
            columns => "columns",
        };
        Dom0VgaVesaLfb = "MEMBER_TYPE(struct dom0_vga_console_info, u.vesa_lfb)" {
            width => "width",
            height => "height",
            bytes_per_line => "bytes_per_line",
            bits_per_pixel => "bits_per_pixel",
            lfb_base => "lfb_base",
            lfb_size => "lfb_size",
            red_pos => "red_pos",
            red_size => "red_size",
            green_pos => "green_pos",
            green_size => "green_size",
            blue_pos => "blue_pos",
            blue_size => "blue_size",
            rsvd_pos => "rsvd_pos",
            rsvd_size => "rsvd_size",
            gbl_caps => "gbl_caps",
            mode_attrs => "mode_attrs",
            pad => "pad",
            ext_lfb_base => "ext_lfb_base",
        };
        MulticallEntry = "struct multicall_entry" {
            op => "op",
            result => "result",
            args => "args",
        };

        // xen/xen.h: page tables.
        MmuUpdate = "struct mmu_update" {
            ptr => "ptr",
            val => "val",
        };
        MmuextOp = "struct mmuext_op" {
            cmd => "cmd",
            arg1 => "arg1",
            arg2 => "arg2",
        };

        // xen/arch-x86/xen.h, xen-x86_64.h
        TrapInfo = "struct trap_info" {
            vector => "vector",
            flags => "flags",
            cs => "cs",
            address => "address",
        };
        IretContext = "struct iret_context" {
            rax => "rax",
            r11 => "r11",
            rcx => "rcx",
            flags => "flags",
            rip => "rip",
            cs => "cs",
            rflags => "rflags",
            rsp => "rsp",
            ss => "ss",
        };
        CpuUserRegs = "struct cpu_user_regs" {
            r15 => "r15",
            r14 => "r14",
            r13 => "r13",
            r12 => "r12",
            rbp => "rbp",
            rbx => "rbx",
            r11 => "r11",
            r10 => "r10",
            r9 => "r9",
            r8 => "r8",
            rax => "rax",
            rcx => "rcx",
            rdx => "rdx",
            rsi => "rsi",
            rdi => "rdi",
            error_code => "error_code",
            entry_vector => "entry_vector",
            rip => "rip",
            cs => "cs",
            _pad0 => "_pad0",
            saved_upcall_mask => "saved_upcall_mask",
            _pad1 => "_pad1",
            rflags => "rflags",
            rsp => "rsp",
            ss => "ss",
            _pad2 => "_pad2",
            es => "es",
            _pad3 => "_pad3",
            ds => "ds",
            _pad4 => "_pad4",
            fs => "fs",
            _pad5 => "_pad5",
            gs => "gs",
            _pad6 => "_pad6",
        };
        VcpuGuestContext = "struct vcpu_guest_context" {
            fpu_ctxt => "fpu_ctxt",
            flags => "flags",
            user_regs => "user_regs",
            trap_ctxt => "trap_ctxt",
            ldt_base => "ldt_base",
            ldt_ents => "ldt_ents",
            gdt_frames => "gdt_frames",
            gdt_ents => "gdt_ents",
            kernel_ss => "kernel_ss",
            kernel_sp => "kernel_sp",
            ctrlreg => "ctrlreg",
            debugreg => "debugreg",
            event_callback_eip => "event_callback_eip",
            failsafe_callback_eip => "failsafe_callback_eip",
            syscall_callback_eip => "syscall_callback_eip",
            vm_assist => "vm_assist",
            fs_base => "fs_base",
            gs_base_kernel => "gs_base_kernel",
            gs_base_user => "gs_base_user",
        };

        // xen/io/console.h
        XenconsInterface = "struct xencons_interface" {
            input => "in",
            output => "out",
            in_cons => "in_cons",
            in_prod => "in_prod",
            out_cons => "out_cons",
            out_prod => "out_prod",
        };

        // xen/xen.h + arch-x86: shared info and time.
        VcpuTimeInfo = "struct vcpu_time_info" {
            version => "version",
            pad0 => "pad0",
            tsc_timestamp => "tsc_timestamp",
            system_time => "system_time",
            tsc_to_system_mul => "tsc_to_system_mul",
            tsc_shift => "tsc_shift",
            flags => "flags",
            pad1 => "pad1",
        };
        ArchVcpuInfo = "struct arch_vcpu_info" {
            cr2 => "cr2",
            pad => "pad",
        };
        VcpuInfo = "struct vcpu_info" {
            evtchn_upcall_pending => "evtchn_upcall_pending",
            evtchn_upcall_mask => "evtchn_upcall_mask",
            evtchn_pending_sel => "evtchn_pending_sel",
            arch => "arch",
            time => "time",
        };
        ArchSharedInfo = "struct arch_shared_info" {
            max_pfn => "max_pfn",
            pfn_to_mfn_frame_list_list => "pfn_to_mfn_frame_list_list",
            nmi_reason => "nmi_reason",
            p2m_cr3 => "p2m_cr3",
            p2m_vaddr => "p2m_vaddr",
            p2m_generation => "p2m_generation",
        };
        SharedInfo = "struct shared_info" {
            vcpu_info => "vcpu_info",
            evtchn_pending => "evtchn_pending",
            evtchn_mask => "evtchn_mask",
            wc_version => "wc_version",
            wc_sec => "wc_sec",
            wc_nsec => "wc_nsec",
            wc_sec_hi => "wc_sec_hi",
            arch => "arch",
        };

        // xen/io/xs_wire.h
        XsdSockmsg = "struct xsd_sockmsg" {
            type_ => "type",
            req_id => "req_id",
            tx_id => "tx_id",
            len => "len",
        };
        XenstoreDomainInterface = "struct xenstore_domain_interface" {
            req => "req",
            rsp => "rsp",
            req_cons => "req_cons",
            req_prod => "req_prod",
            rsp_cons => "rsp_cons",
            rsp_prod => "rsp_prod",
            server_features => "server_features",
            connection => "connection",
            error => "error",
        };

        // xen/sched.h
        SchedShutdown = "struct sched_shutdown" {
            reason => "reason",
        };

        // xen/event_channel.h
        EvtchnSend = "struct evtchn_send" {
            port => "port",
        };

        SchedPoll = "struct sched_poll" {
            ports => "ports",
            nr_ports => "nr_ports",
            timeout => "timeout",
        };
        SchedRemoteShutdown = "struct sched_remote_shutdown" {
            domain_id => "domain_id",
            reason => "reason",
        };
        SchedWatchdog = "struct sched_watchdog" {
            id => "id",
            timeout => "timeout",
        };
        SchedPinOverride = "struct sched_pin_override" {
            pcpu => "pcpu",
        };

        // xen/event_channel.h
        EvtchnAllocUnbound = "struct evtchn_alloc_unbound" {
            dom => "dom",
            remote_dom => "remote_dom",
            port => "port",
        };
        EvtchnBindInterdomain = "struct evtchn_bind_interdomain" {
            remote_dom => "remote_dom",
            remote_port => "remote_port",
            local_port => "local_port",
        };
        EvtchnBindVirq = "struct evtchn_bind_virq" {
            virq => "virq",
            vcpu => "vcpu",
            port => "port",
        };
        EvtchnBindPirq = "struct evtchn_bind_pirq" {
            pirq => "pirq",
            flags => "flags",
            port => "port",
        };
        EvtchnBindIpi = "struct evtchn_bind_ipi" {
            vcpu => "vcpu",
            port => "port",
        };
        EvtchnClose = "struct evtchn_close" {
            port => "port",
        };
        EvtchnStatus = "struct evtchn_status" {
            dom => "dom",
            port => "port",
            status => "status",
            vcpu => "vcpu",
            u => "u",
        };
        EvtchnStatusU = "MEMBER_TYPE(struct evtchn_status, u)";
        EvtchnBindVcpu = "struct evtchn_bind_vcpu" {
            port => "port",
            vcpu => "vcpu",
        };
        EvtchnUnmask = "struct evtchn_unmask" {
            port => "port",
        };
        EvtchnReset = "struct evtchn_reset" {
            dom => "dom",
        };
        EvtchnInitControl = "struct evtchn_init_control" {
            control_gfn => "control_gfn",
            offset => "offset",
            vcpu => "vcpu",
            link_bits => "link_bits",
            _pad => "_pad",
        };
        EvtchnExpandArray = "struct evtchn_expand_array" {
            array_gfn => "array_gfn",
        };
        EvtchnSetPriority = "struct evtchn_set_priority" {
            port => "port",
            priority => "priority",
        };
        EvtchnFifoControlBlock = "struct evtchn_fifo_control_block" {
            ready => "ready",
            _rsvd => "_rsvd",
            head => "head",
        };

        // xen/grant_table.h
        GrantEntryV1 = "struct grant_entry_v1" {
            flags => "flags",
            domid => "domid",
            frame => "frame",
        };
        GrantEntryHeader = "struct grant_entry_header" {
            flags => "flags",
            domid => "domid",
        };
        GrantEntryV2 = "union grant_entry_v2";
        GrantEntryV2FullPage = "MEMBER_TYPE(union grant_entry_v2, full_page)" {
            hdr => "hdr",
            pad0 => "pad0",
            frame => "frame",
        };
        GrantEntryV2SubPage = "MEMBER_TYPE(union grant_entry_v2, sub_page)" {
            hdr => "hdr",
            page_off => "page_off",
            length => "length",
            frame => "frame",
        };
        GrantEntryV2Transitive = "MEMBER_TYPE(union grant_entry_v2, transitive)" {
            hdr => "hdr",
            trans_domid => "trans_domid",
            pad0 => "pad0",
            gref => "gref",
        };
        GnttabMapGrantRef = "struct gnttab_map_grant_ref" {
            host_addr => "host_addr",
            flags => "flags",
            ref_ => "ref",
            dom => "dom",
            status => "status",
            handle => "handle",
            dev_bus_addr => "dev_bus_addr",
        };
        GnttabUnmapGrantRef = "struct gnttab_unmap_grant_ref" {
            host_addr => "host_addr",
            dev_bus_addr => "dev_bus_addr",
            handle => "handle",
            status => "status",
        };
        GnttabSetupTable = "struct gnttab_setup_table" {
            dom => "dom",
            nr_frames => "nr_frames",
            status => "status",
            frame_list => "frame_list",
        };
        GnttabDumpTable = "struct gnttab_dump_table" {
            dom => "dom",
            status => "status",
        };
        GnttabTransfer = "struct gnttab_transfer" {
            mfn => "mfn",
            domid => "domid",
            ref_ => "ref",
            status => "status",
        };
        GnttabCopyPtr = "struct gnttab_copy_ptr" {
            u => "u",
            domid => "domid",
            offset => "offset",
        };
        GnttabCopy = "struct gnttab_copy" {
            source => "source",
            dest => "dest",
            len => "len",
            flags => "flags",
            status => "status",
        };
        GnttabQuerySize = "struct gnttab_query_size" {
            dom => "dom",
            nr_frames => "nr_frames",
            max_nr_frames => "max_nr_frames",
            status => "status",
        };
        GnttabUnmapAndReplace = "struct gnttab_unmap_and_replace" {
            host_addr => "host_addr",
            new_addr => "new_addr",
            handle => "handle",
            status => "status",
        };
        GnttabSetVersion = "struct gnttab_set_version" {
            version => "version",
        };
        GnttabGetStatusFrames = "struct gnttab_get_status_frames" {
            nr_frames => "nr_frames",
            dom => "dom",
            status => "status",
            frame_list => "frame_list",
        };
        GnttabGetVersion = "struct gnttab_get_version" {
            dom => "dom",
            pad => "pad",
            version => "version",
        };
        GnttabSwapGrantRef = "struct gnttab_swap_grant_ref" {
            ref_a => "ref_a",
            ref_b => "ref_b",
            status => "status",
        };
        GnttabCacheFlush = "struct gnttab_cache_flush" {
            a => "a",
            offset => "offset",
            length => "length",
            op => "op",
        };

        // xen/memory.h
        XenMemoryReservation = "struct xen_memory_reservation" {
            extent_start => "extent_start",
            nr_extents => "nr_extents",
            extent_order => "extent_order",
            mem_flags => "mem_flags",
            domid => "domid",
        };
        XenMemoryExchange = "struct xen_memory_exchange" {
            in_ => "in",
            out => "out",
            nr_exchanged => "nr_exchanged",
        };
        XenMemoryDomain = "struct xen_memory_domain" {
            domid => "domid",
        };
        XenMachphysMfnList = "struct xen_machphys_mfn_list" {
            max_extents => "max_extents",
            extent_start => "extent_start",
            nr_extents => "nr_extents",
        };
        XenMachphysMapping = "struct xen_machphys_mapping" {
            v_start => "v_start",
            v_end => "v_end",
            max_mfn => "max_mfn",
        };
        XenAddToPhysmap = "struct xen_add_to_physmap" {
            domid => "domid",
            size => "size",
            space => "space",
            idx => "idx",
            gpfn => "gpfn",
        };
        XenAddToPhysmapBatch = "struct xen_add_to_physmap_batch" {
            domid => "domid",
            space => "space",
            size => "size",
            u => "u",
            idxs => "idxs",
            gpfns => "gpfns",
            errs => "errs",
        };
        XenRemoveFromPhysmap = "struct xen_remove_from_physmap" {
            domid => "domid",
            gpfn => "gpfn",
        };
        XenMemoryMap = "struct xen_memory_map" {
            nr_entries => "nr_entries",
            buffer => "buffer",
        };
        XenForeignMemoryMap = "struct xen_foreign_memory_map" {
            domid => "domid",
            map => "map",
        };

        // xen/callback.h
        CallbackRegister = "struct callback_register" {
            type_ => "type",
            flags => "flags",
            address => "address",
        };
        CallbackUnregister = "struct callback_unregister" {
            type_ => "type",
            _unused => "_unused",
        };

        // xen/vcpu.h
        VcpuRunstateInfo = "struct vcpu_runstate_info" {
            state => "state",
            state_entry_time => "state_entry_time",
            time => "time",
        };
        VcpuRegisterRunstateMemoryArea = "struct vcpu_register_runstate_memory_area" {
            addr => "addr",
        };
        VcpuSetPeriodicTimer = "struct vcpu_set_periodic_timer" {
            period_ns => "period_ns",
        };
        VcpuSetSingleshotTimer = "struct vcpu_set_singleshot_timer" {
            timeout_abs_ns => "timeout_abs_ns",
            flags => "flags",
        };
        VcpuRegisterVcpuInfo = "struct vcpu_register_vcpu_info" {
            mfn => "mfn",
            offset => "offset",
            rsvd => "rsvd",
        };
        VcpuGetPhysid = "struct vcpu_get_physid" {
            phys_id => "phys_id",
        };
        VcpuRegisterTimeMemoryArea = "struct vcpu_register_time_memory_area" {
            addr => "addr",
        };

        // xen/arch-x86/hvm/start_info.h, xen/hvm/hvm_op.h
        HvmStartInfo = "struct hvm_start_info" {
            magic => "magic",
            version => "version",
            flags => "flags",
            nr_modules => "nr_modules",
            modlist_paddr => "modlist_paddr",
            cmdline_paddr => "cmdline_paddr",
            rsdp_paddr => "rsdp_paddr",
            memmap_paddr => "memmap_paddr",
            memmap_entries => "memmap_entries",
            reserved => "reserved",
        };
        HvmModlistEntry = "struct hvm_modlist_entry" {
            paddr => "paddr",
            size => "size",
            cmdline_paddr => "cmdline_paddr",
            reserved => "reserved",
        };
        HvmMemmapTableEntry = "struct hvm_memmap_table_entry" {
            addr => "addr",
            size => "size",
            type_ => "type",
            reserved => "reserved",
        };
        XenHvmParam = "struct xen_hvm_param" {
            domid => "domid",
            pad => "pad",
            index => "index",
            value => "value",
        };
        VcpuHvmX86_64 = "struct vcpu_hvm_x86_64" {
            rax => "rax",
            rcx => "rcx",
            rdx => "rdx",
            rbx => "rbx",
            rsp => "rsp",
            rbp => "rbp",
            rsi => "rsi",
            rdi => "rdi",
            rip => "rip",
            rflags => "rflags",
            cr0 => "cr0",
            cr3 => "cr3",
            cr4 => "cr4",
            efer => "efer",
        };
        VcpuHvmContext = "struct vcpu_hvm_context" {
            mode => "mode",
            pad => "pad",
            cpu_regs => "cpu_regs",
        };
        XenHvmEvtchnUpcallVector = "struct xen_hvm_evtchn_upcall_vector" {
            vcpu => "vcpu",
            vector => "vector",
        };

        // xen/version.h
        XenCompileInfo = "struct xen_compile_info" {
            compiler => "compiler",
            compile_by => "compile_by",
            compile_domain => "compile_domain",
            compile_date => "compile_date",
        };
        XenPlatformParameters = "struct xen_platform_parameters" {
            virt_start => "virt_start",
        };
        XenFeatureInfo = "struct xen_feature_info" {
            submap_idx => "submap_idx",
            submap => "submap",
        };
        XenBuildId = "struct xen_build_id" {
            len => "len",
        };
    }
    consts {
        XEN_INTERFACE_VERSION => "__XEN_INTERFACE_VERSION__",
        core::mem::size_of::<XenPfn>() => "sizeof(xen_pfn_t)",
        core::mem::size_of::<DomId>() => "sizeof(domid_t)",
        core::mem::size_of::<EvtchnPort>() => "sizeof(evtchn_port_t)",
        DOMID_SELF => "DOMID_SELF",

        hypercall_nr::SET_TRAP_TABLE => "__HYPERVISOR_set_trap_table",
        hypercall_nr::MMU_UPDATE => "__HYPERVISOR_mmu_update",
        hypercall_nr::SET_GDT => "__HYPERVISOR_set_gdt",
        hypercall_nr::STACK_SWITCH => "__HYPERVISOR_stack_switch",
        hypercall_nr::SET_CALLBACKS => "__HYPERVISOR_set_callbacks",
        hypercall_nr::FPU_TASKSWITCH => "__HYPERVISOR_fpu_taskswitch",
        hypercall_nr::PLATFORM_OP => "__HYPERVISOR_platform_op",
        hypercall_nr::SET_DEBUGREG => "__HYPERVISOR_set_debugreg",
        hypercall_nr::GET_DEBUGREG => "__HYPERVISOR_get_debugreg",
        hypercall_nr::UPDATE_DESCRIPTOR => "__HYPERVISOR_update_descriptor",
        hypercall_nr::MEMORY_OP => "__HYPERVISOR_memory_op",
        hypercall_nr::MULTICALL => "__HYPERVISOR_multicall",
        hypercall_nr::UPDATE_VA_MAPPING => "__HYPERVISOR_update_va_mapping",
        hypercall_nr::SET_TIMER_OP => "__HYPERVISOR_set_timer_op",
        hypercall_nr::EVENT_CHANNEL_OP_COMPAT => "__HYPERVISOR_event_channel_op_compat",
        hypercall_nr::XEN_VERSION => "__HYPERVISOR_xen_version",
        hypercall_nr::CONSOLE_IO => "__HYPERVISOR_console_io",
        hypercall_nr::PHYSDEV_OP_COMPAT => "__HYPERVISOR_physdev_op_compat",
        hypercall_nr::GRANT_TABLE_OP => "__HYPERVISOR_grant_table_op",
        hypercall_nr::VM_ASSIST => "__HYPERVISOR_vm_assist",
        hypercall_nr::UPDATE_VA_MAPPING_OTHERDOMAIN => "__HYPERVISOR_update_va_mapping_otherdomain",
        hypercall_nr::IRET => "__HYPERVISOR_iret",
        hypercall_nr::VCPU_OP => "__HYPERVISOR_vcpu_op",
        hypercall_nr::SET_SEGMENT_BASE => "__HYPERVISOR_set_segment_base",
        hypercall_nr::MMUEXT_OP => "__HYPERVISOR_mmuext_op",
        hypercall_nr::XSM_OP => "__HYPERVISOR_xsm_op",
        hypercall_nr::NMI_OP => "__HYPERVISOR_nmi_op",
        hypercall_nr::SCHED_OP => "__HYPERVISOR_sched_op",
        hypercall_nr::CALLBACK_OP => "__HYPERVISOR_callback_op",
        hypercall_nr::XENOPROF_OP => "__HYPERVISOR_xenoprof_op",
        hypercall_nr::EVENT_CHANNEL_OP => "__HYPERVISOR_event_channel_op",
        hypercall_nr::PHYSDEV_OP => "__HYPERVISOR_physdev_op",
        hypercall_nr::HVM_OP => "__HYPERVISOR_hvm_op",
        hypercall_nr::SYSCTL => "__HYPERVISOR_sysctl",
        hypercall_nr::DOMCTL => "__HYPERVISOR_domctl",
        hypercall_nr::KEXEC_OP => "__HYPERVISOR_kexec_op",
        hypercall_nr::ARGO_OP => "__HYPERVISOR_argo_op",
        hypercall_nr::XENPMU_OP => "__HYPERVISOR_xenpmu_op",
        hypercall_nr::DM_OP => "__HYPERVISOR_dm_op",
        hypercall_nr::HYPFS_OP => "__HYPERVISOR_hypfs_op",

        MAX_GUEST_CMDLINE => "MAX_GUEST_CMDLINE",
        SIF_PRIVILEGED => "SIF_PRIVILEGED",
        SIF_INITDOMAIN => "SIF_INITDOMAIN",
        SIF_MULTIBOOT_MOD => "SIF_MULTIBOOT_MOD",
        SIF_MOD_START_PFN => "SIF_MOD_START_PFN",
        SIF_VIRT_P2M_4TOOLS => "SIF_VIRT_P2M_4TOOLS",

        XENCONS_IN_SIZE => "sizeof(((struct xencons_interface *)0)->in)",
        XENCONS_OUT_SIZE => "sizeof(((struct xencons_interface *)0)->out)",
        CONSOLEIO_WRITE => "CONSOLEIO_write",
        CONSOLEIO_READ => "CONSOLEIO_read",

        SCHEDOP_YIELD => "SCHEDOP_yield",
        SCHEDOP_BLOCK => "SCHEDOP_block",
        SCHEDOP_SHUTDOWN => "SCHEDOP_shutdown",
        SCHEDOP_POLL => "SCHEDOP_poll",
        SCHEDOP_REMOTE_SHUTDOWN => "SCHEDOP_remote_shutdown",
        SCHEDOP_SHUTDOWN_CODE => "SCHEDOP_shutdown_code",
        SCHEDOP_WATCHDOG => "SCHEDOP_watchdog",
        SCHEDOP_PIN_OVERRIDE => "SCHEDOP_pin_override",
        SHUTDOWN_POWEROFF => "SHUTDOWN_poweroff",
        SHUTDOWN_REBOOT => "SHUTDOWN_reboot",
        SHUTDOWN_SUSPEND => "SHUTDOWN_suspend",
        SHUTDOWN_CRASH => "SHUTDOWN_crash",
        SHUTDOWN_WATCHDOG => "SHUTDOWN_watchdog",
        SHUTDOWN_SOFT_RESET => "SHUTDOWN_soft_reset",

        EVTCHNOP_SEND => "EVTCHNOP_send",

        XEN_LEGACY_MAX_VCPUS => "XEN_LEGACY_MAX_VCPUS",
        XEN_ULONG_BITS => "sizeof(xen_ulong_t) * 8",
        XEN_PVCLOCK_TSC_STABLE_BIT => "XEN_PVCLOCK_TSC_STABLE_BIT",
        XEN_PVCLOCK_GUEST_STOPPED => "XEN_PVCLOCK_GUEST_STOPPED",

        core::mem::size_of::<XenstoreRingIdx>() => "sizeof(XENSTORE_RING_IDX)",
        XENSTORE_RING_SIZE => "XENSTORE_RING_SIZE",
        mask_xenstore_idx(0x1234_5678) => "MASK_XENSTORE_IDX(0x12345678)",
        XENSTORE_PAYLOAD_MAX => "XENSTORE_PAYLOAD_MAX",
        XENSTORE_ABS_PATH_MAX => "XENSTORE_ABS_PATH_MAX",
        XENSTORE_REL_PATH_MAX => "XENSTORE_REL_PATH_MAX",
        XENSTORE_SERVER_FEATURE_RECONNECTION => "XENSTORE_SERVER_FEATURE_RECONNECTION",
        XENSTORE_SERVER_FEATURE_ERROR => "XENSTORE_SERVER_FEATURE_ERROR",
        XENSTORE_CONNECTED => "XENSTORE_CONNECTED",
        XENSTORE_RECONNECT => "XENSTORE_RECONNECT",
        XENSTORE_ERROR_NONE => "XENSTORE_ERROR_NONE",
        XENSTORE_ERROR_COMM => "XENSTORE_ERROR_COMM",
        XENSTORE_ERROR_RINGIDX => "XENSTORE_ERROR_RINGIDX",
        XENSTORE_ERROR_PROTO => "XENSTORE_ERROR_PROTO",
        XS_CONTROL => "XS_CONTROL",
        XS_DEBUG => "XS_DEBUG",
        XS_DIRECTORY => "XS_DIRECTORY",
        XS_READ => "XS_READ",
        XS_GET_PERMS => "XS_GET_PERMS",
        XS_WATCH => "XS_WATCH",
        XS_UNWATCH => "XS_UNWATCH",
        XS_TRANSACTION_START => "XS_TRANSACTION_START",
        XS_TRANSACTION_END => "XS_TRANSACTION_END",
        XS_INTRODUCE => "XS_INTRODUCE",
        XS_RELEASE => "XS_RELEASE",
        XS_GET_DOMAIN_PATH => "XS_GET_DOMAIN_PATH",
        XS_WRITE => "XS_WRITE",
        XS_MKDIR => "XS_MKDIR",
        XS_RM => "XS_RM",
        XS_SET_PERMS => "XS_SET_PERMS",
        XS_WATCH_EVENT => "XS_WATCH_EVENT",
        XS_ERROR => "XS_ERROR",
        XS_IS_DOMAIN_INTRODUCED => "XS_IS_DOMAIN_INTRODUCED",
        XS_RESUME => "XS_RESUME",
        XS_SET_TARGET => "XS_SET_TARGET",
        XS_RESET_WATCHES => "XS_RESET_WATCHES",
        XS_DIRECTORY_PART => "XS_DIRECTORY_PART",
        XS_TYPE_COUNT => "XS_TYPE_COUNT",
        XS_INVALID => "XS_INVALID",
        XS_WATCH_PATH => "XS_WATCH_PATH",
        XS_WATCH_TOKEN => "XS_WATCH_TOKEN",

        hypercall_nr::SCHED_OP_COMPAT => "__HYPERVISOR_sched_op_compat",
        hypercall_nr::TMEM_OP => "__HYPERVISOR_tmem_op",
        hypercall_nr::ARCH_0 => "__HYPERVISOR_arch_0",
        core::mem::size_of::<XenUlong>() => "sizeof(xen_ulong_t)",
        core::mem::size_of::<XenCallback>() => "sizeof(xen_callback_t)",
        core::mem::size_of::<GrantRef>() => "sizeof(grant_ref_t)",
        core::mem::size_of::<GrantHandle>() => "sizeof(grant_handle_t)",
        core::mem::size_of::<GrantStatus>() => "sizeof(grant_status_t)",
        core::mem::size_of::<EventWord>() => "sizeof(event_word_t)",
        core::mem::size_of::<XenExtraversion>() => "sizeof(xen_extraversion_t)",
        core::mem::size_of::<XenCapabilitiesInfo>() => "sizeof(xen_capabilities_info_t)",
        core::mem::size_of::<XenChangesetInfo>() => "sizeof(xen_changeset_info_t)",
        core::mem::size_of::<XenCommandline>() => "sizeof(xen_commandline_t)",
        core::mem::size_of::<XenDomainHandle>() => "sizeof(xen_domain_handle_t)",
        core::mem::size_of::<GrantEntryV2>() => "sizeof(grant_entry_v2_t)",
        core::mem::offset_of!(XenBuildId, len) + 4 => "offsetof(struct xen_build_id, buf)",
        xenmemf_address_bits(32) => "XENMEMF_address_bits(32)",
        xenmemf_get_address_bits(0x1_2345) => "XENMEMF_get_address_bits(0x12345)",
        xenmemf_node(5) => "XENMEMF_node(5)",
        xenmemf_get_node(xenmemf_node(5) | 32) => "XENMEMF_get_node(XENMEMF_node(5) | 32)",
        xen_pfn_to_cr3(0x1234) => "xen_pfn_to_cr3(0x1234)",
        xen_cr3_to_pfn(0x123_4000) => "xen_cr3_to_pfn(0x1234000)",
        TrapInfo::make_flags(3, true) => "({ struct trap_info t = {0}; TI_SET_DPL(&t, 3); TI_SET_IF(&t, 1); t.flags; })",
        VcpuGetPhysid { phys_id: 0x1111_2222_3333_4444 }.apic_id() => "xen_vcpu_physid_to_x86_apicid(0x1111222233334444ULL)",
        VcpuGetPhysid { phys_id: 0x1111_2222_3333_4444 }.acpi_id() => "xen_vcpu_physid_to_x86_acpiid(0x1111222233334444ULL)",
        hvm_callback_via_vector(0xf3) => "((uint64_t)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | 0xf3)",
        DOMID_FIRST_RESERVED => "DOMID_FIRST_RESERVED",
        DOMID_IO => "DOMID_IO",
        DOMID_XEN => "DOMID_XEN",
        DOMID_COW => "DOMID_COW",
        DOMID_INVALID => "DOMID_INVALID",
        DOMID_IDLE => "DOMID_IDLE",
        DOMID_MASK => "DOMID_MASK",
        SIF_PM_MASK => "SIF_PM_MASK",
        XEN_VGATYPE_TEXT_MODE_3 => "XEN_VGATYPE_TEXT_MODE_3",
        XEN_VGATYPE_VESA_LFB => "XEN_VGATYPE_VESA_LFB",
        XEN_VGATYPE_EFI_LFB => "XEN_VGATYPE_EFI_LFB",
        SHUTDOWN_MAX => "SHUTDOWN_MAX",
        EVTCHNOP_BIND_INTERDOMAIN => "EVTCHNOP_bind_interdomain",
        EVTCHNOP_BIND_VIRQ => "EVTCHNOP_bind_virq",
        EVTCHNOP_BIND_PIRQ => "EVTCHNOP_bind_pirq",
        EVTCHNOP_CLOSE => "EVTCHNOP_close",
        EVTCHNOP_STATUS => "EVTCHNOP_status",
        EVTCHNOP_ALLOC_UNBOUND => "EVTCHNOP_alloc_unbound",
        EVTCHNOP_BIND_IPI => "EVTCHNOP_bind_ipi",
        EVTCHNOP_BIND_VCPU => "EVTCHNOP_bind_vcpu",
        EVTCHNOP_UNMASK => "EVTCHNOP_unmask",
        EVTCHNOP_RESET => "EVTCHNOP_reset",
        EVTCHNOP_INIT_CONTROL => "EVTCHNOP_init_control",
        EVTCHNOP_EXPAND_ARRAY => "EVTCHNOP_expand_array",
        EVTCHNOP_SET_PRIORITY => "EVTCHNOP_set_priority",
        VIRQ_TIMER => "VIRQ_TIMER",
        VIRQ_DEBUG => "VIRQ_DEBUG",
        VIRQ_CONSOLE => "VIRQ_CONSOLE",
        VIRQ_DOM_EXC => "VIRQ_DOM_EXC",
        VIRQ_TBUF => "VIRQ_TBUF",
        VIRQ_DEBUGGER => "VIRQ_DEBUGGER",
        VIRQ_XENOPROF => "VIRQ_XENOPROF",
        VIRQ_CON_RING => "VIRQ_CON_RING",
        VIRQ_PCPU_STATE => "VIRQ_PCPU_STATE",
        VIRQ_MEM_EVENT => "VIRQ_MEM_EVENT",
        VIRQ_ARGO => "VIRQ_ARGO",
        VIRQ_ENOMEM => "VIRQ_ENOMEM",
        VIRQ_XENPMU => "VIRQ_XENPMU",
        VIRQ_ARCH_0 => "VIRQ_ARCH_0",
        NR_VIRQS => "NR_VIRQS",
        EVTCHNSTAT_CLOSED => "EVTCHNSTAT_closed",
        EVTCHNSTAT_UNBOUND => "EVTCHNSTAT_unbound",
        EVTCHNSTAT_INTERDOMAIN => "EVTCHNSTAT_interdomain",
        EVTCHNSTAT_PIRQ => "EVTCHNSTAT_pirq",
        EVTCHNSTAT_VIRQ => "EVTCHNSTAT_virq",
        EVTCHNSTAT_IPI => "EVTCHNSTAT_ipi",
        BIND_PIRQ__WILL_SHARE => "BIND_PIRQ__WILL_SHARE",
        EVTCHN_2L_NR_CHANNELS => "EVTCHN_2L_NR_CHANNELS",
        EVTCHN_FIFO_PRIORITY_MAX => "EVTCHN_FIFO_PRIORITY_MAX",
        EVTCHN_FIFO_PRIORITY_DEFAULT => "EVTCHN_FIFO_PRIORITY_DEFAULT",
        EVTCHN_FIFO_PRIORITY_MIN => "EVTCHN_FIFO_PRIORITY_MIN",
        EVTCHN_FIFO_MAX_QUEUES => "EVTCHN_FIFO_MAX_QUEUES",
        EVTCHN_FIFO_PENDING => "EVTCHN_FIFO_PENDING",
        EVTCHN_FIFO_MASKED => "EVTCHN_FIFO_MASKED",
        EVTCHN_FIFO_LINKED => "EVTCHN_FIFO_LINKED",
        EVTCHN_FIFO_BUSY => "EVTCHN_FIFO_BUSY",
        EVTCHN_FIFO_LINK_BITS => "EVTCHN_FIFO_LINK_BITS",
        EVTCHN_FIFO_LINK_MASK => "EVTCHN_FIFO_LINK_MASK",
        EVTCHN_FIFO_NR_CHANNELS => "EVTCHN_FIFO_NR_CHANNELS",
        GNTTAB_NR_RESERVED_ENTRIES => "GNTTAB_NR_RESERVED_ENTRIES",
        GNTTAB_RESERVED_CONSOLE => "GNTTAB_RESERVED_CONSOLE",
        GNTTAB_RESERVED_XENSTORE => "GNTTAB_RESERVED_XENSTORE",
        GTF_INVALID => "GTF_invalid",
        GTF_PERMIT_ACCESS => "GTF_permit_access",
        GTF_ACCEPT_TRANSFER => "GTF_accept_transfer",
        GTF_TRANSITIVE => "GTF_transitive",
        GTF_TYPE_MASK => "GTF_type_mask",
        GTF_READONLY => "GTF_readonly",
        GTF_READING => "GTF_reading",
        GTF_WRITING => "GTF_writing",
        GTF_PWT => "GTF_PWT",
        GTF_PCD => "GTF_PCD",
        GTF_PAT => "GTF_PAT",
        GTF_SUB_PAGE => "GTF_sub_page",
        GTF_TRANSFER_COMMITTED => "GTF_transfer_committed",
        GTF_TRANSFER_COMPLETED => "GTF_transfer_completed",
        GNTTABOP_MAP_GRANT_REF => "GNTTABOP_map_grant_ref",
        GNTTABOP_UNMAP_GRANT_REF => "GNTTABOP_unmap_grant_ref",
        GNTTABOP_SETUP_TABLE => "GNTTABOP_setup_table",
        GNTTABOP_DUMP_TABLE => "GNTTABOP_dump_table",
        GNTTABOP_TRANSFER => "GNTTABOP_transfer",
        GNTTABOP_COPY => "GNTTABOP_copy",
        GNTTABOP_QUERY_SIZE => "GNTTABOP_query_size",
        GNTTABOP_UNMAP_AND_REPLACE => "GNTTABOP_unmap_and_replace",
        GNTTABOP_SET_VERSION => "GNTTABOP_set_version",
        GNTTABOP_GET_STATUS_FRAMES => "GNTTABOP_get_status_frames",
        GNTTABOP_GET_VERSION => "GNTTABOP_get_version",
        GNTTABOP_SWAP_GRANT_REF => "GNTTABOP_swap_grant_ref",
        GNTTABOP_CACHE_FLUSH => "GNTTABOP_cache_flush",
        GNTMAP_DEVICE_MAP => "GNTMAP_device_map",
        GNTMAP_HOST_MAP => "GNTMAP_host_map",
        GNTMAP_READONLY => "GNTMAP_readonly",
        GNTMAP_APPLICATION_MAP => "GNTMAP_application_map",
        GNTMAP_CONTAINS_PTE => "GNTMAP_contains_pte",
        GNTMAP_GUEST_AVAIL_MASK => "GNTMAP_guest_avail_mask",
        GNTST_OKAY => "GNTST_okay",
        GNTST_GENERAL_ERROR => "GNTST_general_error",
        GNTST_BAD_DOMAIN => "GNTST_bad_domain",
        GNTST_BAD_GNTREF => "GNTST_bad_gntref",
        GNTST_BAD_HANDLE => "GNTST_bad_handle",
        GNTST_BAD_VIRT_ADDR => "GNTST_bad_virt_addr",
        GNTST_BAD_DEV_ADDR => "GNTST_bad_dev_addr",
        GNTST_NO_DEVICE_SPACE => "GNTST_no_device_space",
        GNTST_PERMISSION_DENIED => "GNTST_permission_denied",
        GNTST_BAD_PAGE => "GNTST_bad_page",
        GNTST_BAD_COPY_ARG => "GNTST_bad_copy_arg",
        GNTST_ADDRESS_TOO_BIG => "GNTST_address_too_big",
        GNTST_EAGAIN => "GNTST_eagain",
        GNTST_NO_SPACE => "GNTST_no_space",
        GNTCOPY_SOURCE_GREF => "GNTCOPY_source_gref",
        GNTCOPY_DEST_GREF => "GNTCOPY_dest_gref",
        GNTTAB_CACHE_CLEAN => "GNTTAB_CACHE_CLEAN",
        GNTTAB_CACHE_INVAL => "GNTTAB_CACHE_INVAL",
        GNTTAB_CACHE_SOURCE_GREF => "GNTTAB_CACHE_SOURCE_GREF",
        XENMEM_INCREASE_RESERVATION => "XENMEM_increase_reservation",
        XENMEM_DECREASE_RESERVATION => "XENMEM_decrease_reservation",
        XENMEM_MAXIMUM_RAM_PAGE => "XENMEM_maximum_ram_page",
        XENMEM_CURRENT_RESERVATION => "XENMEM_current_reservation",
        XENMEM_MAXIMUM_RESERVATION => "XENMEM_maximum_reservation",
        XENMEM_MACHPHYS_MFN_LIST => "XENMEM_machphys_mfn_list",
        XENMEM_POPULATE_PHYSMAP => "XENMEM_populate_physmap",
        XENMEM_ADD_TO_PHYSMAP => "XENMEM_add_to_physmap",
        XENMEM_MEMORY_MAP => "XENMEM_memory_map",
        XENMEM_MACHINE_MEMORY_MAP => "XENMEM_machine_memory_map",
        XENMEM_EXCHANGE => "XENMEM_exchange",
        XENMEM_MACHPHYS_MAPPING => "XENMEM_machphys_mapping",
        XENMEM_SET_MEMORY_MAP => "XENMEM_set_memory_map",
        XENMEM_MAXIMUM_GPFN => "XENMEM_maximum_gpfn",
        XENMEM_REMOVE_FROM_PHYSMAP => "XENMEM_remove_from_physmap",
        XENMEM_ADD_TO_PHYSMAP_BATCH => "XENMEM_add_to_physmap_batch",
        XENMEM_MACHPHYS_COMPAT_MFN_LIST => "XENMEM_machphys_compat_mfn_list",
        XENMEM_ACQUIRE_RESOURCE => "XENMEM_acquire_resource",
        XENMEMF_POPULATE_ON_DEMAND => "XENMEMF_populate_on_demand",
        XENMEMF_EXACT_NODE_REQUEST => "XENMEMF_exact_node_request",
        XENMEMF_VNODE => "XENMEMF_vnode",
        XENMAPSPACE_SHARED_INFO => "XENMAPSPACE_shared_info",
        XENMAPSPACE_GRANT_TABLE => "XENMAPSPACE_grant_table",
        XENMAPSPACE_GMFN => "XENMAPSPACE_gmfn",
        XENMAPSPACE_GMFN_RANGE => "XENMAPSPACE_gmfn_range",
        XENMAPSPACE_GMFN_FOREIGN => "XENMAPSPACE_gmfn_foreign",
        XENMAPSPACE_DEV_MMIO => "XENMAPSPACE_dev_mmio",
        XENMAPIDX_GRANT_TABLE_STATUS => "XENMAPIDX_grant_table_status",
        MMU_NORMAL_PT_UPDATE => "MMU_NORMAL_PT_UPDATE",
        MMU_MACHPHYS_UPDATE => "MMU_MACHPHYS_UPDATE",
        MMU_PT_UPDATE_PRESERVE_AD => "MMU_PT_UPDATE_PRESERVE_AD",
        MMU_PT_UPDATE_NO_TRANSLATE => "MMU_PT_UPDATE_NO_TRANSLATE",
        MMUEXT_PIN_L1_TABLE => "MMUEXT_PIN_L1_TABLE",
        MMUEXT_PIN_L2_TABLE => "MMUEXT_PIN_L2_TABLE",
        MMUEXT_PIN_L3_TABLE => "MMUEXT_PIN_L3_TABLE",
        MMUEXT_PIN_L4_TABLE => "MMUEXT_PIN_L4_TABLE",
        MMUEXT_UNPIN_TABLE => "MMUEXT_UNPIN_TABLE",
        MMUEXT_NEW_BASEPTR => "MMUEXT_NEW_BASEPTR",
        MMUEXT_TLB_FLUSH_LOCAL => "MMUEXT_TLB_FLUSH_LOCAL",
        MMUEXT_INVLPG_LOCAL => "MMUEXT_INVLPG_LOCAL",
        MMUEXT_TLB_FLUSH_MULTI => "MMUEXT_TLB_FLUSH_MULTI",
        MMUEXT_INVLPG_MULTI => "MMUEXT_INVLPG_MULTI",
        MMUEXT_TLB_FLUSH_ALL => "MMUEXT_TLB_FLUSH_ALL",
        MMUEXT_INVLPG_ALL => "MMUEXT_INVLPG_ALL",
        MMUEXT_FLUSH_CACHE => "MMUEXT_FLUSH_CACHE",
        MMUEXT_SET_LDT => "MMUEXT_SET_LDT",
        MMUEXT_NEW_USER_BASEPTR => "MMUEXT_NEW_USER_BASEPTR",
        MMUEXT_CLEAR_PAGE => "MMUEXT_CLEAR_PAGE",
        MMUEXT_COPY_PAGE => "MMUEXT_COPY_PAGE",
        MMUEXT_FLUSH_CACHE_GLOBAL => "MMUEXT_FLUSH_CACHE_GLOBAL",
        MMUEXT_MARK_SUPER => "MMUEXT_MARK_SUPER",
        MMUEXT_UNMARK_SUPER => "MMUEXT_UNMARK_SUPER",
        UVMF_NONE => "UVMF_NONE",
        UVMF_TLB_FLUSH => "UVMF_TLB_FLUSH",
        UVMF_INVLPG => "UVMF_INVLPG",
        UVMF_FLUSHTYPE_MASK => "UVMF_FLUSHTYPE_MASK",
        UVMF_MULTI => "UVMF_MULTI",
        UVMF_LOCAL => "UVMF_LOCAL",
        UVMF_ALL => "UVMF_ALL",
        VMASST_CMD_ENABLE => "VMASST_CMD_enable",
        VMASST_CMD_DISABLE => "VMASST_CMD_disable",
        VMASST_TYPE_4GB_SEGMENTS => "VMASST_TYPE_4gb_segments",
        VMASST_TYPE_4GB_SEGMENTS_NOTIFY => "VMASST_TYPE_4gb_segments_notify",
        VMASST_TYPE_WRITABLE_PAGETABLES => "VMASST_TYPE_writable_pagetables",
        VMASST_TYPE_PAE_EXTENDED_CR3 => "VMASST_TYPE_pae_extended_cr3",
        VMASST_TYPE_ARCHITECTURAL_IOPL => "VMASST_TYPE_architectural_iopl",
        VMASST_TYPE_RUNSTATE_UPDATE_FLAG => "VMASST_TYPE_runstate_update_flag",
        VMASST_TYPE_M2P_STRICT => "VMASST_TYPE_m2p_strict",
        FLAT_RING3_CS32 => "FLAT_RING3_CS32",
        FLAT_RING3_CS64 => "FLAT_RING3_CS64",
        FLAT_RING3_DS32 => "FLAT_RING3_DS32",
        FLAT_RING3_DS64 => "FLAT_RING3_DS64",
        FLAT_RING3_SS32 => "FLAT_RING3_SS32",
        FLAT_RING3_SS64 => "FLAT_RING3_SS64",
        FLAT_KERNEL_CS => "FLAT_KERNEL_CS",
        FLAT_KERNEL_DS => "FLAT_KERNEL_DS",
        FLAT_KERNEL_SS => "FLAT_KERNEL_SS",
        FLAT_USER_CS => "FLAT_USER_CS",
        FLAT_USER_DS => "FLAT_USER_DS",
        FLAT_USER_SS => "FLAT_USER_SS",
        FIRST_RESERVED_GDT_PAGE => "FIRST_RESERVED_GDT_PAGE",
        FIRST_RESERVED_GDT_BYTE => "FIRST_RESERVED_GDT_BYTE",
        FIRST_RESERVED_GDT_ENTRY => "FIRST_RESERVED_GDT_ENTRY",
        HYPERVISOR_VIRT_START => "HYPERVISOR_VIRT_START",
        HYPERVISOR_VIRT_END => "HYPERVISOR_VIRT_END",
        MACH2PHYS_VIRT_START => "MACH2PHYS_VIRT_START",
        MACH2PHYS_VIRT_END => "MACH2PHYS_VIRT_END",
        MACH2PHYS_NR_ENTRIES => "MACH2PHYS_NR_ENTRIES",
        SEGBASE_FS => "SEGBASE_FS",
        SEGBASE_GS_USER => "SEGBASE_GS_USER",
        SEGBASE_GS_KERNEL => "SEGBASE_GS_KERNEL",
        SEGBASE_GS_USER_SEL => "SEGBASE_GS_USER_SEL",
        VGCF_I387_VALID => "VGCF_i387_valid",
        VGCF_IN_KERNEL => "VGCF_in_kernel",
        VGCF_FAILSAFE_DISABLES_EVENTS => "VGCF_failsafe_disables_events",
        VGCF_SYSCALL_DISABLES_EVENTS => "VGCF_syscall_disables_events",
        VGCF_ONLINE => "VGCF_online",
        VGCF_IN_SYSCALL => "VGCF_in_syscall",
        CALLBACKTYPE_EVENT => "CALLBACKTYPE_event",
        CALLBACKTYPE_FAILSAFE => "CALLBACKTYPE_failsafe",
        CALLBACKTYPE_SYSCALL => "CALLBACKTYPE_syscall",
        CALLBACKTYPE_SYSENTER_DEPRECATED => "CALLBACKTYPE_sysenter_deprecated",
        CALLBACKTYPE_NMI => "CALLBACKTYPE_nmi",
        CALLBACKTYPE_SYSENTER => "CALLBACKTYPE_sysenter",
        CALLBACKTYPE_SYSCALL32 => "CALLBACKTYPE_syscall32",
        CALLBACKF_MASK_EVENTS => "CALLBACKF_mask_events",
        CALLBACKOP_REGISTER => "CALLBACKOP_register",
        CALLBACKOP_UNREGISTER => "CALLBACKOP_unregister",
        VCPUOP_INITIALISE => "VCPUOP_initialise",
        VCPUOP_UP => "VCPUOP_up",
        VCPUOP_DOWN => "VCPUOP_down",
        VCPUOP_IS_UP => "VCPUOP_is_up",
        VCPUOP_GET_RUNSTATE_INFO => "VCPUOP_get_runstate_info",
        VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => "VCPUOP_register_runstate_memory_area",
        VCPUOP_SET_PERIODIC_TIMER => "VCPUOP_set_periodic_timer",
        VCPUOP_STOP_PERIODIC_TIMER => "VCPUOP_stop_periodic_timer",
        VCPUOP_SET_SINGLESHOT_TIMER => "VCPUOP_set_singleshot_timer",
        VCPUOP_STOP_SINGLESHOT_TIMER => "VCPUOP_stop_singleshot_timer",
        VCPUOP_REGISTER_VCPU_INFO => "VCPUOP_register_vcpu_info",
        VCPUOP_SEND_NMI => "VCPUOP_send_nmi",
        VCPUOP_GET_PHYSID => "VCPUOP_get_physid",
        VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA => "VCPUOP_register_vcpu_time_memory_area",
        RUNSTATE_RUNNING => "RUNSTATE_running",
        RUNSTATE_RUNNABLE => "RUNSTATE_runnable",
        RUNSTATE_BLOCKED => "RUNSTATE_blocked",
        RUNSTATE_OFFLINE => "RUNSTATE_offline",
        XEN_RUNSTATE_UPDATE => "XEN_RUNSTATE_UPDATE",
        VCPU_SSHOTTMR_FUTURE => "VCPU_SSHOTTMR_future",
        XEN_HVM_START_MAGIC_VALUE => "XEN_HVM_START_MAGIC_VALUE",
        XEN_HVM_MEMMAP_TYPE_RAM => "XEN_HVM_MEMMAP_TYPE_RAM",
        XEN_HVM_MEMMAP_TYPE_RESERVED => "XEN_HVM_MEMMAP_TYPE_RESERVED",
        XEN_HVM_MEMMAP_TYPE_ACPI => "XEN_HVM_MEMMAP_TYPE_ACPI",
        XEN_HVM_MEMMAP_TYPE_NVS => "XEN_HVM_MEMMAP_TYPE_NVS",
        XEN_HVM_MEMMAP_TYPE_UNUSABLE => "XEN_HVM_MEMMAP_TYPE_UNUSABLE",
        XEN_HVM_MEMMAP_TYPE_DISABLED => "XEN_HVM_MEMMAP_TYPE_DISABLED",
        XEN_HVM_MEMMAP_TYPE_PMEM => "XEN_HVM_MEMMAP_TYPE_PMEM",
        HVMOP_SET_PARAM => "HVMOP_set_param",
        HVMOP_GET_PARAM => "HVMOP_get_param",
        HVMOP_FLUSH_TLBS => "HVMOP_flush_tlbs",
        HVMOP_PAGETABLE_DYING => "HVMOP_pagetable_dying",
        HVMOP_GET_TIME => "HVMOP_get_time",
        HVMOP_SET_EVTCHN_UPCALL_VECTOR => "HVMOP_set_evtchn_upcall_vector",
        HVM_PARAM_CALLBACK_IRQ => "HVM_PARAM_CALLBACK_IRQ",
        HVM_PARAM_CALLBACK_IRQ_TYPE_MASK => "HVM_PARAM_CALLBACK_IRQ_TYPE_MASK",
        HVM_PARAM_CALLBACK_TYPE_GSI => "HVM_PARAM_CALLBACK_TYPE_GSI",
        HVM_PARAM_CALLBACK_TYPE_PCI_INTX => "HVM_PARAM_CALLBACK_TYPE_PCI_INTX",
        HVM_PARAM_CALLBACK_TYPE_VECTOR => "HVM_PARAM_CALLBACK_TYPE_VECTOR",
        VCPU_HVM_MODE_32B => "VCPU_HVM_MODE_32B",
        VCPU_HVM_MODE_64B => "VCPU_HVM_MODE_64B",
        HVM_PARAM_STORE_PFN => "HVM_PARAM_STORE_PFN",
        HVM_PARAM_STORE_EVTCHN => "HVM_PARAM_STORE_EVTCHN",
        HVM_PARAM_TIMER_MODE => "HVM_PARAM_TIMER_MODE",
        HVM_PARAM_CONSOLE_PFN => "HVM_PARAM_CONSOLE_PFN",
        HVM_PARAM_CONSOLE_EVTCHN => "HVM_PARAM_CONSOLE_EVTCHN",
        HVM_NR_PARAMS => "HVM_NR_PARAMS",
        XENVER_VERSION => "XENVER_version",
        XENVER_EXTRAVERSION => "XENVER_extraversion",
        XENVER_COMPILE_INFO => "XENVER_compile_info",
        XENVER_CAPABILITIES => "XENVER_capabilities",
        XENVER_CHANGESET => "XENVER_changeset",
        XENVER_PLATFORM_PARAMETERS => "XENVER_platform_parameters",
        XENVER_GET_FEATURES => "XENVER_get_features",
        XENVER_PAGESIZE => "XENVER_pagesize",
        XENVER_GUEST_HANDLE => "XENVER_guest_handle",
        XENVER_COMMANDLINE => "XENVER_commandline",
        XENVER_BUILD_ID => "XENVER_build_id",
        XEN_EXTRAVERSION_LEN => "XEN_EXTRAVERSION_LEN",
        XEN_CAPABILITIES_INFO_LEN => "XEN_CAPABILITIES_INFO_LEN",
        XEN_CHANGESET_INFO_LEN => "XEN_CHANGESET_INFO_LEN",
        XENFEAT_WRITABLE_PAGE_TABLES => "XENFEAT_writable_page_tables",
        XENFEAT_WRITABLE_DESCRIPTOR_TABLES => "XENFEAT_writable_descriptor_tables",
        XENFEAT_AUTO_TRANSLATED_PHYSMAP => "XENFEAT_auto_translated_physmap",
        XENFEAT_SUPERVISOR_MODE_KERNEL => "XENFEAT_supervisor_mode_kernel",
        XENFEAT_PAE_PGDIR_ABOVE_4GB => "XENFEAT_pae_pgdir_above_4gb",
        XENFEAT_MMU_PT_UPDATE_PRESERVE_AD => "XENFEAT_mmu_pt_update_preserve_ad",
        XENFEAT_HIGHMEM_ASSIST => "XENFEAT_highmem_assist",
        XENFEAT_GNTTAB_MAP_AVAIL_BITS => "XENFEAT_gnttab_map_avail_bits",
        XENFEAT_HVM_CALLBACK_VECTOR => "XENFEAT_hvm_callback_vector",
        XENFEAT_HVM_SAFE_PVCLOCK => "XENFEAT_hvm_safe_pvclock",
        XENFEAT_HVM_PIRQS => "XENFEAT_hvm_pirqs",
        XENFEAT_DOM0 => "XENFEAT_dom0",
        XENFEAT_MEMORY_OP_VNODE_SUPPORTED => "XENFEAT_memory_op_vnode_supported",
        XENFEAT_ARM_SMCCC_SUPPORTED => "XENFEAT_ARM_SMCCC_supported",
        XENFEAT_LINUX_RSDP_UNRESTRICTED => "XENFEAT_linux_rsdp_unrestricted",
        XENFEAT_NOT_DIRECT_MAPPED => "XENFEAT_not_direct_mapped",
        XENFEAT_DIRECT_MAPPED => "XENFEAT_direct_mapped",
        XENFEAT_NR_SUBMAPS => "XENFEAT_NR_SUBMAPS",

        Errno::EPERM.0 => "XEN_EPERM",
        Errno::ENOENT.0 => "XEN_ENOENT",
        Errno::ESRCH.0 => "XEN_ESRCH",
        Errno::EINTR.0 => "XEN_EINTR",
        Errno::EIO.0 => "XEN_EIO",
        Errno::ENXIO.0 => "XEN_ENXIO",
        Errno::E2BIG.0 => "XEN_E2BIG",
        Errno::ENOEXEC.0 => "XEN_ENOEXEC",
        Errno::EBADF.0 => "XEN_EBADF",
        Errno::ECHILD.0 => "XEN_ECHILD",
        Errno::EAGAIN.0 => "XEN_EAGAIN",
        Errno::EWOULDBLOCK.0 => "XEN_EWOULDBLOCK",
        Errno::ENOMEM.0 => "XEN_ENOMEM",
        Errno::EACCES.0 => "XEN_EACCES",
        Errno::EFAULT.0 => "XEN_EFAULT",
        Errno::EBUSY.0 => "XEN_EBUSY",
        Errno::EEXIST.0 => "XEN_EEXIST",
        Errno::EXDEV.0 => "XEN_EXDEV",
        Errno::ENODEV.0 => "XEN_ENODEV",
        Errno::ENOTDIR.0 => "XEN_ENOTDIR",
        Errno::EISDIR.0 => "XEN_EISDIR",
        Errno::EINVAL.0 => "XEN_EINVAL",
        Errno::ENFILE.0 => "XEN_ENFILE",
        Errno::EMFILE.0 => "XEN_EMFILE",
        Errno::ENOSPC.0 => "XEN_ENOSPC",
        Errno::EROFS.0 => "XEN_EROFS",
        Errno::EMLINK.0 => "XEN_EMLINK",
        Errno::EDOM.0 => "XEN_EDOM",
        Errno::ERANGE.0 => "XEN_ERANGE",
        Errno::EDEADLK.0 => "XEN_EDEADLK",
        Errno::EDEADLOCK.0 => "XEN_EDEADLOCK",
        Errno::ENAMETOOLONG.0 => "XEN_ENAMETOOLONG",
        Errno::ENOLCK.0 => "XEN_ENOLCK",
        Errno::ENOSYS.0 => "XEN_ENOSYS",
        Errno::ENOTEMPTY.0 => "XEN_ENOTEMPTY",
        Errno::ENODATA.0 => "XEN_ENODATA",
        Errno::ETIME.0 => "XEN_ETIME",
        Errno::EBADMSG.0 => "XEN_EBADMSG",
        Errno::EOVERFLOW.0 => "XEN_EOVERFLOW",
        Errno::EILSEQ.0 => "XEN_EILSEQ",
        Errno::ERESTART.0 => "XEN_ERESTART",
        Errno::ENOTSOCK.0 => "XEN_ENOTSOCK",
        Errno::EMSGSIZE.0 => "XEN_EMSGSIZE",
        Errno::EOPNOTSUPP.0 => "XEN_EOPNOTSUPP",
        Errno::EADDRINUSE.0 => "XEN_EADDRINUSE",
        Errno::EADDRNOTAVAIL.0 => "XEN_EADDRNOTAVAIL",
        Errno::ENOBUFS.0 => "XEN_ENOBUFS",
        Errno::EISCONN.0 => "XEN_EISCONN",
        Errno::ENOTCONN.0 => "XEN_ENOTCONN",
        Errno::ETIMEDOUT.0 => "XEN_ETIMEDOUT",
        Errno::ECONNREFUSED.0 => "XEN_ECONNREFUSED",
    }
    strs {
        XS_WRITE_NONE => "XS_WRITE_NONE",
        XS_WRITE_CREATE => "XS_WRITE_CREATE",
        XS_WRITE_CREATE_EXCL => "XS_WRITE_CREATE_EXCL",
    }
    str_lists {
        GNTTABOP_ERROR_MSGS => "GNTTABOP_error_msgs",
    }
}

/// Union arms Rust keeps as raw words: constructors and accessors against C.
fn union_cases() -> Vec<UnionCase> {
    vec![
        UnionCase {
            name: "StartInfoConsole::dom_u",
            c_type: "struct start_info",
            c_member: "console",
            c_set: &[
                ("domU.mfn", 0x1122_3344_5566_7788),
                ("domU.evtchn", 0x99aa_bbcc),
            ],
            rust_bytes: le_bytes(
                StartInfoConsole::from_dom_u(0x1122_3344_5566_7788, 0x99aa_bbcc).raw(),
            ),
            decode: |b| {
                let arm = StartInfoConsole::from_raw(le_words(b)?).dom_u();
                same("domU.mfn", arm.mfn, 0x1122_3344_5566_7788)?;
                same("domU.evtchn", arm.evtchn, 0x99aa_bbcc)
            },
        },
        UnionCase {
            name: "StartInfoConsole::dom0",
            c_type: "struct start_info",
            c_member: "console",
            c_set: &[
                ("dom0.info_off", 0x1234_5678),
                ("dom0.info_size", 0x9abc_def0),
            ],
            rust_bytes: le_bytes(StartInfoConsole::from_dom0(0x1234_5678, 0x9abc_def0).raw()),
            decode: |b| {
                let arm = StartInfoConsole::from_raw(le_words(b)?).dom0();
                same("dom0.info_off", arm.info_off, 0x1234_5678)?;
                same("dom0.info_size", arm.info_size, 0x9abc_def0)
            },
        },
        UnionCase {
            name: "EvtchnStatusU::interdomain",
            c_type: "struct evtchn_status",
            c_member: "u",
            c_set: &[
                ("interdomain.dom", 0x7ff1),
                ("interdomain.port", 0x1234_5678),
            ],
            rust_bytes: le_bytes32(EvtchnStatusU::from_interdomain(0x7ff1, 0x1234_5678).raw()),
            decode: |b| {
                let u = EvtchnStatusU::from_raw(le_words32(b)?);
                same("interdomain", u.interdomain(), (0x7ff1, 0x1234_5678))
            },
        },
        UnionCase {
            name: "EvtchnStatusU::unbound_dom",
            c_type: "struct evtchn_status",
            c_member: "u",
            c_set: &[("unbound.dom", 0x0123)],
            rust_bytes: le_bytes32(EvtchnStatusU::from_unbound(0x0123).raw()),
            decode: |b| {
                let u = EvtchnStatusU::from_raw(le_words32(b)?);
                same("unbound.dom", u.unbound_dom(), 0x0123)
            },
        },
        UnionCase {
            name: "EvtchnStatusU::pirq",
            c_type: "struct evtchn_status",
            c_member: "u",
            c_set: &[("pirq", 0xdead_beef)],
            rust_bytes: le_bytes32(EvtchnStatusU::from_irq(0xdead_beef).raw()),
            decode: |b| {
                let u = EvtchnStatusU::from_raw(le_words32(b)?);
                same("pirq", u.pirq(), 0xdead_beef)
            },
        },
        UnionCase {
            name: "EvtchnStatusU::virq",
            c_type: "struct evtchn_status",
            c_member: "u",
            c_set: &[("virq", 0x17)],
            rust_bytes: le_bytes32(EvtchnStatusU::from_irq(0x17).raw()),
            decode: |b| {
                let u = EvtchnStatusU::from_raw(le_words32(b)?);
                same("virq", u.virq(), 0x17)
            },
        },
        UnionCase {
            name: "GrantEntryV2::full_page",
            c_type: "union grant_entry_v2",
            c_member: "",
            c_set: &[
                ("full_page.hdr.flags", 0x0101),
                ("full_page.hdr.domid", 0x0203),
                ("full_page.pad0", 0x0405_0607),
                ("full_page.frame", 0x0809_0a0b_0c0d_0e0f),
            ],
            rust_bytes: le_bytes(
                GrantEntryV2::from_full_page(GrantEntryV2FullPage {
                    hdr: GrantEntryHeader {
                        flags: 0x0101,
                        domid: 0x0203,
                    },
                    pad0: 0x0405_0607,
                    frame: 0x0809_0a0b_0c0d_0e0f,
                })
                .raw(),
            ),
            decode: |b| {
                let arm = GrantEntryV2::from_raw(le_words(b)?).full_page();
                same("full_page.hdr.flags", arm.hdr.flags, 0x0101)?;
                same("full_page.hdr.domid", arm.hdr.domid, 0x0203)?;
                same("full_page.pad0", arm.pad0, 0x0405_0607)?;
                same("full_page.frame", arm.frame, 0x0809_0a0b_0c0d_0e0f)
            },
        },
        UnionCase {
            name: "GrantEntryV2::sub_page",
            c_type: "union grant_entry_v2",
            c_member: "",
            c_set: &[
                ("sub_page.hdr.flags", 0x0101),
                ("sub_page.hdr.domid", 0x0203),
                ("sub_page.page_off", 0x0405),
                ("sub_page.length", 0x0607),
                ("sub_page.frame", 0x0809_0a0b_0c0d_0e0f),
            ],
            rust_bytes: le_bytes(
                GrantEntryV2::from_sub_page(GrantEntryV2SubPage {
                    hdr: GrantEntryHeader {
                        flags: 0x0101,
                        domid: 0x0203,
                    },
                    page_off: 0x0405,
                    length: 0x0607,
                    frame: 0x0809_0a0b_0c0d_0e0f,
                })
                .raw(),
            ),
            decode: |b| {
                let arm = GrantEntryV2::from_raw(le_words(b)?).sub_page();
                same(
                    "sub_page.hdr",
                    (arm.hdr.flags, arm.hdr.domid),
                    (0x0101, 0x0203),
                )?;
                same("sub_page.page_off", arm.page_off, 0x0405)?;
                same("sub_page.length", arm.length, 0x0607)?;
                same("sub_page.frame", arm.frame, 0x0809_0a0b_0c0d_0e0f)
            },
        },
        UnionCase {
            name: "GrantEntryV2::transitive",
            c_type: "union grant_entry_v2",
            c_member: "",
            c_set: &[
                ("transitive.hdr.flags", 0x0103),
                ("transitive.hdr.domid", 0x0203),
                ("transitive.trans_domid", 0x0405),
                ("transitive.pad0", 0x0607),
                ("transitive.gref", 0x0809_0a0b),
            ],
            rust_bytes: le_bytes(
                GrantEntryV2::from_transitive(GrantEntryV2Transitive {
                    hdr: GrantEntryHeader {
                        flags: 0x0103,
                        domid: 0x0203,
                    },
                    trans_domid: 0x0405,
                    pad0: 0x0607,
                    gref: 0x0809_0a0b,
                })
                .raw(),
            ),
            decode: |b| {
                let arm = GrantEntryV2::from_raw(le_words(b)?).transitive();
                same(
                    "transitive.hdr",
                    (arm.hdr.flags, arm.hdr.domid),
                    (0x0103, 0x0203),
                )?;
                same("transitive.trans_domid", arm.trans_domid, 0x0405)?;
                same("transitive.pad0", arm.pad0, 0x0607)?;
                same("transitive.gref", arm.gref, 0x0809_0a0b)
            },
        },
        UnionCase {
            name: "Dom0VgaConsoleInfoU::text_mode_3",
            c_type: "struct dom0_vga_console_info",
            c_member: "u",
            c_set: &[
                ("text_mode_3.font_height", 0x0102),
                ("text_mode_3.cursor_x", 0x0304),
                ("text_mode_3.cursor_y", 0x0506),
                ("text_mode_3.rows", 0x0708),
                ("text_mode_3.columns", 0x090a),
            ],
            rust_bytes: le_bytes32(Dom0VgaConsoleInfoU::from_text_mode_3(TEXT_MODE_3).raw()),
            decode: |b| {
                let arm = Dom0VgaConsoleInfoU::from_raw(le_words32(b)?).text_mode_3();
                same("text_mode_3", arm, TEXT_MODE_3)
            },
        },
        UnionCase {
            name: "Dom0VgaConsoleInfoU::vesa_lfb",
            c_type: "struct dom0_vga_console_info",
            c_member: "u",
            c_set: &[
                ("vesa_lfb.width", 0x0102),
                ("vesa_lfb.height", 0x0304),
                ("vesa_lfb.bytes_per_line", 0x0506),
                ("vesa_lfb.bits_per_pixel", 0x0708),
                ("vesa_lfb.lfb_base", 0x090a_0b0c),
                ("vesa_lfb.lfb_size", 0x0d0e_0f10),
                ("vesa_lfb.red_pos", 0x11),
                ("vesa_lfb.red_size", 0x12),
                ("vesa_lfb.green_pos", 0x13),
                ("vesa_lfb.green_size", 0x14),
                ("vesa_lfb.blue_pos", 0x15),
                ("vesa_lfb.blue_size", 0x16),
                ("vesa_lfb.rsvd_pos", 0x17),
                ("vesa_lfb.rsvd_size", 0x18),
                ("vesa_lfb.gbl_caps", 0x191a_1b1c),
                ("vesa_lfb.mode_attrs", 0x1d1e),
                ("vesa_lfb.pad", 0x1f20),
                ("vesa_lfb.ext_lfb_base", 0x2122_2324),
            ],
            rust_bytes: le_bytes32(Dom0VgaConsoleInfoU::from_vesa_lfb(VESA_LFB).raw()),
            decode: |b| {
                let arm = Dom0VgaConsoleInfoU::from_raw(le_words32(b)?).vesa_lfb();
                same("vesa_lfb", arm, VESA_LFB)
            },
        },
        UnionCase {
            name: "MmuextOp::set_ldt (arg2.nr_ents)",
            c_type: "struct mmuext_op",
            c_member: "arg2",
            c_set: &[("nr_ents", 0x8765_4321)],
            rust_bytes: le_bytes([MmuextOp::set_ldt(0, 0x8765_4321).arg2]),
            decode: |b| {
                let op = MmuextOp {
                    arg2: le_words::<1>(b)?[0],
                    ..MmuextOp::default()
                };
                same("arg2.nr_ents", op.nr_ents(), 0x8765_4321)
            },
        },
        UnionCase {
            name: "MmuextOp::copy_page (arg2.src_mfn)",
            c_type: "struct mmuext_op",
            c_member: "arg2",
            c_set: &[("src_mfn", 0x0123_4567_89ab_cdef)],
            rust_bytes: le_bytes([MmuextOp::copy_page(1, 0x0123_4567_89ab_cdef).arg2]),
            decode: |b| same("arg2.src_mfn", le_words::<1>(b)?[0], 0x0123_4567_89ab_cdef),
        },
        UnionCase {
            name: "MmuextOp::with_linear_addr (arg1.linear_addr)",
            c_type: "struct mmuext_op",
            c_member: "arg1",
            c_set: &[("linear_addr", 0xffff_8000_dead_b000)],
            rust_bytes: le_bytes([MmuextOp::with_linear_addr(
                MMUEXT_INVLPG_LOCAL,
                0xffff_8000_dead_b000,
            )
            .arg1]),
            decode: |b| {
                same(
                    "arg1.linear_addr",
                    le_words::<1>(b)?[0],
                    0xffff_8000_dead_b000,
                )
            },
        },
        UnionCase {
            name: "GnttabCopyPtr::from_gref (u.ref)",
            c_type: "struct gnttab_copy_ptr",
            c_member: "u",
            c_set: &[("ref", 0xfeed_f00d)],
            rust_bytes: le_bytes([GnttabCopyPtr::from_gref(0xfeed_f00d, 0, 0).u]),
            decode: |b| {
                let ptr = GnttabCopyPtr {
                    u: le_words::<1>(b)?[0],
                    ..GnttabCopyPtr::default()
                };
                same("u.ref", ptr.gref(), 0xfeed_f00d)
            },
        },
        UnionCase {
            name: "GnttabCopyPtr::from_gmfn (u.gmfn)",
            c_type: "struct gnttab_copy_ptr",
            c_member: "u",
            c_set: &[("gmfn", 0x0001_2345_6789_abcd)],
            rust_bytes: le_bytes([GnttabCopyPtr::from_gmfn(0x0001_2345_6789_abcd, 0, 0).u]),
            decode: |b| {
                let ptr = GnttabCopyPtr {
                    u: le_words::<1>(b)?[0],
                    ..GnttabCopyPtr::default()
                };
                same("u.gmfn", ptr.gmfn(), 0x0001_2345_6789_abcd)
            },
        },
        UnionCase {
            name: "GnttabCacheFlush.a (a.ref)",
            c_type: "struct gnttab_cache_flush",
            c_member: "a",
            c_set: &[("ref", 0x1357_9bdf)],
            rust_bytes: le_bytes([0x1357_9bdf]),
            decode: |b| same("a.ref", le_words::<1>(b)?[0] as u32, 0x1357_9bdf),
        },
    ]
}

const TEXT_MODE_3: Dom0VgaTextMode3 = Dom0VgaTextMode3 {
    font_height: 0x0102,
    cursor_x: 0x0304,
    cursor_y: 0x0506,
    rows: 0x0708,
    columns: 0x090a,
};

const VESA_LFB: Dom0VgaVesaLfb = Dom0VgaVesaLfb {
    width: 0x0102,
    height: 0x0304,
    bytes_per_line: 0x0506,
    bits_per_pixel: 0x0708,
    lfb_base: 0x090a_0b0c,
    lfb_size: 0x0d0e_0f10,
    red_pos: 0x11,
    red_size: 0x12,
    green_pos: 0x13,
    green_size: 0x14,
    blue_pos: 0x15,
    blue_size: 0x16,
    rsvd_pos: 0x17,
    rsvd_size: 0x18,
    gbl_caps: 0x191a_1b1c,
    mode_attrs: 0x1d1e,
    pad: 0x1f20,
    ext_lfb_base: 0x2122_2324,
};

// ---------------------------------------------------------------------------
// Interfaces newer than 4.17's headers.
//
// Each group is checked like the main table when the headers have it
// (its guard macro is defined), and otherwise every one of its constants
// must be absent: that checks our "new in 4.18" / "new in 4.20" claims
// against the older headers too. `cargo xtask test` runs this file
// against Xen 4.17's headers and against 4.20's.

/// Xen 4.18: the vCPU areas registered by guest-physical address.
mod since_4_18 {
    use super::*;

    /// Defined only by headers that have the group.
    pub const GUARD: &str = "VCPUOP_register_runstate_phys_area";

    abi_table! {
        structs {}
        consts {
            VCPUOP_REGISTER_RUNSTATE_PHYS_AREA => "VCPUOP_register_runstate_phys_area",
            VCPUOP_REGISTER_VCPU_TIME_PHYS_AREA => "VCPUOP_register_vcpu_time_phys_area",
            XENFEAT_RUNSTATE_PHYS_AREA => "XENFEAT_runstate_phys_area",
            XENFEAT_VCPU_TIME_PHYS_AREA => "XENFEAT_vcpu_time_phys_area",
        }
        strs {}
        str_lists {}
    }
}

/// Xen 4.20: the `XENVER_*2` string operations and `struct xen_varbuf`.
mod since_4_20 {
    use super::*;

    /// Defined only by headers that have the group.
    pub const GUARD: &str = "XENVER_extraversion2";

    abi_table! {
        structs {
            XenVarbuf = "struct xen_varbuf" {
                len => "len",
            };
        }
        consts {
            XENVER_EXTRAVERSION2 => "XENVER_extraversion2",
            XENVER_CAPABILITIES2 => "XENVER_capabilities2",
            XENVER_CHANGESET2 => "XENVER_changeset2",
            XENVER_COMMANDLINE2 => "XENVER_commandline2",
        }
        strs {}
        str_lists {}
    }
}

/// Which of `names` the headers define, by the preprocessor.
fn defined_macros(names: &[&str], include: &Path) -> Vec<String> {
    let mut c = String::from(
        "#include <stdint.h>\n#include <stddef.h>\n#include <stdio.h>\n#include <string.h>\n\
         #include <errno.h>\n",
    );
    for h in HEADERS {
        let _ = writeln!(c, "#include <{h}>");
    }
    c.push_str("int main(void)\n{\n");
    for name in names {
        let _ = writeln!(c, "#ifdef {name}\n    puts(\"{name}\");\n#endif");
    }
    c.push_str("    return 0;\n}\n");
    run_c(&c, include).lines().map(str::to_string).collect()
}

#[test]
fn newer_interfaces_match_or_are_absent() {
    let include = include_dir();
    if let Err(msg) = check_headers(&include) {
        panic!("{msg}");
    }
    let groups = [
        ("Xen 4.18", since_4_18::GUARD, since_4_18::table()),
        ("Xen 4.20", since_4_20::GUARD, since_4_20::table()),
    ];
    let mut bad = Vec::new();
    for (since, guard, mut table) in groups {
        // The main test already checks the union arms.
        table.unions.clear();
        let names: Vec<&str> = table.consts.iter().map(|k| k.c).collect();
        let present = defined_macros(&[&[guard][..], &names[..]].concat(), &include);
        if present.iter().any(|name| name == guard) {
            let facts = parse(&run_c(&c_program(&table), &include));
            bad.extend(compare(&table, &facts));
            eprintln!(
                "{since} group: {} types, {} constants checked",
                table.structs.len(),
                table.consts.len()
            );
        } else {
            bad.extend(
                present
                    .iter()
                    .map(|name| format!("{name} is defined by headers without {guard} ({since})")),
            );
            eprintln!("{since} group: absent from these headers, as its constants are");
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatch(es) in the newer interfaces against {}:\n  {}",
        bad.len(),
        include.display(),
        bad.join("\n  ")
    );
}
