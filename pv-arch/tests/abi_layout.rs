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

use pv_arch::abi::console::*;
use pv_arch::abi::event_channel::*;
use pv_arch::abi::sched::*;
use pv_arch::abi::shared_info::*;
use pv_arch::abi::start_info::*;
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
    "xen/sched.h",
    "xen/callback.h",
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
/// the macro also destructures the type with exactly those fields, so a
/// Rust field missing from the listing is a compile error.
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
        fn table() -> Table {
            let mut structs = Vec::new();
            $({
                #[allow(unused_mut)]
                let mut fields = Vec::new();
                $(
                    // Every field of the Rust struct must be listed.
                    #[allow(dead_code)]
                    fn all_fields_listed(value: &$rty) {
                        let $rty { $( $rf: _ ),* } = value;
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

fn require_headers(dir: &Path) {
    if !dir.join("xen/xen.h").is_file() {
        panic!(
            "Xen public headers not found at {}: run `cargo xtask test` \
             (which fetches Debian's libxen-dev) or set PARAVANE_XEN_INCLUDE",
            dir.display()
        );
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
         static void str_hex(const char *s)\n{\n\
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
    c.push_str("    return 0;\n}\n");
    c
}

/// Compiles and runs the generated program; returns its standard output.
fn run_c(source: &str, include: &Path) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("abi_layout");
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    let src = dir.join(format!("abi_layout_{}.c", std::process::id()));
    let exe = dir.join(format!("abi_layout_{}", std::process::id()));
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
    let ours: Vec<(i32, String)> = XSD_ERRORS
        .iter()
        .map(|e| (e.errnum.0, e.errstring.to_string()))
        .collect();
    if ours != c.xsd_errors {
        bad.push(format!(
            "XSD_ERRORS (C `xsd_errors`): Rust {ours:?} vs C {:?}",
            c.xsd_errors
        ));
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
    require_headers(&include);
    let table = table();
    let output = run_c(&c_program(&table), &include);
    let facts = parse(&output);
    let bad = compare(&table, &facts);
    let fields: usize = table.structs.iter().map(|s| s.fields.len()).sum();
    eprintln!(
        "checked {} types, {} fields, {} constants, {} strings, {} string lists, \
         {} union arms, {} errno names",
        table.structs.len(),
        fields,
        table.consts.len(),
        table.strs.len(),
        table.str_lists.len(),
        table.unions.len(),
        facts.errnos.len()
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
    let err = std::panic::catch_unwind(|| require_headers(&dir)).expect_err("must fail");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("Xen public headers not found"), "{msg}");
    assert!(msg.contains("PARAVANE_XEN_INCLUDE"), "{msg}");
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
    }
    consts {
        XEN_INTERFACE_VERSION => "__XEN_LATEST_INTERFACE_VERSION__",
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
    str_lists {}
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
    ]
}
