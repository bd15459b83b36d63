//! The shell side of the rig: dom0's init, the helper functions the per-run
//! script uses, the hotplug scripts, `xl.conf`, and the per-run files (the
//! run script and each guest's xl config).
//!
//! All of it runs under busybox `sh`. Xen's stock hotplug scripts need bash,
//! flock, coreutils and util-linux and cost seconds per `xl create`; the two
//! here do only what libxl waits for. Everything dom0 reports to the host
//! goes through fd 3 (its `/dev/ttyS1`) as marker lines (see `channel.rs`).
//! The base scripts' text is part of the base initramfs's cache key, so
//! editing them rebuilds it.

use std::fmt::Write as _;

use crate::{GuestMode, GuestSpec, XenVersion};

/// dom0's `/init`. `@MODULES@` is replaced by the modules to load, in
/// order; `@XEN_BIN@` by the toolstack's programs directory, which names
/// the Xen version (`/usr/lib/xen-4.20/bin`): xenstored, xen-init-dom0 and
/// xenconsoled keep their names and options from 4.17 to 4.20.
const INIT: &str = r#"#!/bin/sh
# dom0's init, written by the Paravane rig (qemu/src/scripts.rs).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:@XEN_BIN@
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu
export HOME=/root TERM=dumb
say() { echo "rig-init: $*"; }
fail() {
    say "FAILED: $*"
    echo "@@RIG@@ ERROR $*" > /dev/ttyS1
    poweroff -f
    sleep 1000000
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mkdir -p /run/xen /run/xenstored /run/lock /var/log/xen/console /var/lib/xen /var/lib/xenstored
hostname dom0
ip link set lo up

[ -c /dev/ttyS1 ] || fail "no /dev/ttyS1"
stty -F /dev/ttyS1 raw -echo
exec 3>/dev/ttyS1

for module in @MODULES@; do
    modprobe "$module" || say "modprobe $module failed"
done
mount -t xenfs xenfs /proc/xen || fail "cannot mount xenfs"

xenstored --pid-file=/run/xenstored.pid || fail "xenstored did not start"
n=0
until xenstore-read -s / >/dev/null 2>&1; do
    n=$((n + 1))
    [ $n -gt 200 ] && fail "xenstored does not answer"
    sleep 0.05
done
xen-init-dom0 || fail "xen-init-dom0"
xenconsoled --log=guest --log-dir=/var/log/xen/console --pid-file=/run/xenconsoled.pid \
    || fail "xenconsoled did not start"
echo "@@RIG@@ READY" >&3

if [ -f /rig/run.sh ]; then
    sh /rig/run.sh
else
    echo "@@RIG@@ ERROR no /rig/run.sh in the initramfs" >&3
fi
echo "@@RIG@@ DONE" >&3
# Closing the tty waits until everything written has gone out.
exec 3>&-
poweroff -f
"#;

/// Functions for the per-run script (installed as `/etc/rig/lib.sh`).
const LIB: &str = r#"# Helpers for the rig's per-run scripts (qemu/src/scripts.rs).
# fd 3 is the channel to the host (dom0's /dev/ttyS1).

# rig KIND [NAME] [TEXT]: one marker line.
rig() { echo "@@RIG@@ $*" >&3; }

# rig_relay "KIND NAME": relays stdin, one marker line per line.
rig_relay() {
    awk -v p="@@RIG@@ $1 " '{ sub(/\r$/, ""); print p $0; fflush() }' >&3
}

# rig_capture COMMAND...: relays a command's output as INFO lines.
rig_capture() { "$@" 2>&1 | rig_relay INFO; }

# rig_tmp_mark: notes what /tmp holds before a guest (or a group).
rig_tmp_mark() { ls -A /tmp > /run/rig-tmp.before 2> /dev/null; }

# rig_tmp_sweep: removes what appeared in /tmp since rig_tmp_mark (the
# guests it was for have ended), saying what it removed.
rig_tmp_sweep() {
    for f in $(ls -A /tmp); do
        grep -qxF "$f" /run/rig-tmp.before 2> /dev/null && continue
        rm -rf "/tmp/$f"
        echo "swept /tmp/$f" | rig_relay INFO
    done
}

# rig_post_mortem NAME: if Xen's log says a vCPU of domain NAME
# triple-faulted, relays `xen-hvmctx` of it (every vCPU's registers,
# descriptor tables, pending event and local APIC) as POSTMORTEM lines,
# and, where the load generator is in dom0, what the guest's memory held
# for the interrupt's delivery (`loadgen postmortem`).
rig_post_mortem() {
    id=$(xl domid "$1" 2> /dev/null) || return 0
    xl dmesg 2> /dev/null | grep -q "d${id}v[0-9]* Triple fault" || return 0
    {
        echo "domain $id triple-faulted; its HVM state:"
        xen-hvmctx "$id" 2>&1
        # With the load generator in dom0, read the tables the delivery
        # used from the guest's memory too.
        if [ -x /rig/bin/loadgen ]; then
            echo "what its memory held for the delivery (loadgen postmortem):"
            xen-hvmctx "$id" 2> /dev/null | /rig/bin/loadgen postmortem "$id" 2>&1
        fi
    } | rig_relay "POSTMORTEM $1"
}

# rig_guest NAME TIMEOUT_SECONDS: runs /rig/NAME/guest.cfg to its end.
# A dom0 script that saves and restores the guest (rig_save_restore) or
# migrates it (rig_migrate) keeps it alive past the first `xl create -F`
# ending (reason suspend): rig_guest then waits for the move and follows
# the new domain to its final ending, whose xl lines come after the first.
rig_guest() {
    name=$1
    limit=$2
    dir=/rig/$name
    log=/var/log/xen/console/guest-$name.log
    flag=/run/rig-$name.timedout
    out=/run/rig-$name.dom0.out
    hold=/run/rig-$name.hold
    rm -f "$flag" "$hold" /run/rig-$name.moving /run/rig-$name.following.* /run/rig-$name.follow
    rig BEGIN "$name"
    spid=
    if [ -f "$dir/dom0.sh" ]; then
        NAME=$name sh "$dir/dom0.sh" > "$out" 2>&1 &
        spid=$!
    fi
    ( sleep "$limit"; : > "$flag"; xl destroy "$name" > /dev/null 2>&1 ) &
    wpid=$!
    # A guest whose dom0 script wires its devices is created paused
    # (the script unpauses it).
    paused=
    [ -e "$dir/paused" ] && paused=-p
    xl create -F $paused "$dir/guest.cfg" 2>&1 | rig_relay "XL $name"
    # Moving (saved, being restored or migrated): wait for the new domain
    # and follow it (the helpers write its xl lines to the follow file).
    while [ -e /run/rig-$name.moving ] || ls /run/rig-$name.following.* > /dev/null 2>&1; do
        [ -e "$flag" ] && break
        sleep 0.1
    done
    [ -f /run/rig-$name.follow ] && rig_relay "XL $name" < /run/rig-$name.follow
    kill $wpid 2> /dev/null
    [ -e "$flag" ] && rig TIMEOUT "$name"
    # A dom0 script may hold the preserved domain a little longer, to
    # read its xenstore nodes after it shut down: it creates $hold
    # before the guest ends and removes it when done (at most 10 s).
    n=0
    while [ -e "$hold" ] && [ $n -lt 100 ]; do
        n=$((n + 1))
        sleep 0.1
    done
    # A triple fault (Xen's `dDvN Triple fault` in its log): print the
    # preserved domain's HVM state before it goes, so that what the CPU
    # was delivering and through which tables can be read afterwards.
    rig_post_mortem "$name"
    # The domain was preserved (on_* = "preserve"): give xenconsoled time
    # to drain its console ring before destroying it.
    last=-1
    n=0
    while [ $n -lt 30 ]; do
        size=$(stat -c %s "$log" 2> /dev/null || echo 0)
        [ "$size" = "$last" ] && break
        last=$size
        n=$((n + 1))
        sleep 0.1
    done
    xl destroy "$name" > /dev/null 2>&1
    [ -f "$log" ] && rig_relay "CON $name" < "$log"
    # A migrated domain arrived as NAME--incoming, and xenconsoled named
    # its log then.
    [ -f "${log%.log}--incoming.log" ] && rig_relay "CON $name" < "${log%.log}--incoming.log"
    if [ -n "$spid" ]; then
        n=0
        while kill -0 $spid 2> /dev/null && [ $n -lt 50 ]; do
            n=$((n + 1))
            sleep 0.1
        done
        kill $spid 2> /dev/null
        wait $spid
        rc=$?
        rig_relay "SH $name" < "$out"
        rig SHEXIT "$name" $rc
    fi
    rig END "$name"
}

# For dom0 scripts (`. /etc/rig/lib.sh`). rig_save_restore NAME FILE:
# `xl save` the guest to FILE, then `xl restore -F` it, in the
# background, its xl lines going to rig_guest (which follows the restored
# domain to its end). Returns xl save's status once the restore started.
rig_save_restore() {
    : > /run/rig-$1.moving
    if ! xl save "$1" "$2"; then
        rm -f /run/rig-$1.moving
        return 1
    fi
    following=$(mktemp /run/rig-$1.following.XXXXXX)
    ( xl restore -F "$2" >> /run/rig-$1.follow 2>&1; rm -f "$following" ) &
    # Until the restored domain exists (or the restore gave up).
    n=0
    until xl domid "$1" > /dev/null 2>&1 || [ $n -ge 600 ] || [ ! -e "$following" ]; do
        n=$((n + 1))
        sleep 0.1
    done
    rm -f /run/rig-$1.moving
}

# rig_checkpoint NAME FILE: `xl save -c`, a checkpoint: the guest
# suspends, is saved to FILE and runs on in place (its suspend hypercall
# returns 1). `xl create -F` stops watching at the suspend, so this
# watches the same domain to its end in `xl list -v` (whose Reason-Code
# column is the shutdown reason Xen recorded) and hands rig_guest that
# ending, in xl's words with the source named. A later save or migration
# (reason suspend, or another domain id under the name) is left to its
# own helper. Returns xl save's status.
rig_checkpoint() {
    : > /run/rig-$1.moving
    following=$(mktemp /run/rig-$1.following.XXXXXX)
    domid=$(xl domid "$1" 2> /dev/null)
    xl save -c "$1" "$2"
    rc=$?
    if [ $rc -eq 0 ] && [ -n "$domid" ]; then
        (
            guest=$1
            while :; do
                set -- $(xl list -v "$guest" 2> /dev/null | awk 'NR == 2 { print $2, $5, $8 }')
                [ "$1" = "$domid" ] || break
                case "$2" in
                *s*|*c*)
                    case "$3" in
                    2) break ;;
                    [0-9]*)
                        echo "Domain $domid has shut down, reason code $3 (seen by rig_checkpoint in xl list -v)" \
                            >> /run/rig-$guest.follow
                        break ;;
                    esac ;;
                esac
                sleep 0.5
            done
            rm -f "$following"
        ) &
    else
        rm -f "$following"
    fi
    rm -f /run/rig-$1.moving
    return $rc
}

# rig_migrate NAME: `xl migrate` the guest to this same host, the
# receiving `xl migrate-receive` run through a local pipe (xl runs
# `sh -c HOST` when the ssh command is empty). The receiver leaves an xl
# daemon watching the new domain, which logs to
# /var/log/xen/xl-NAME--incoming.log (the domain's name while it
# arrived); rig_guest relays that log once it reports the domain's end.
# Returns xl migrate's status.
rig_migrate() {
    : > /run/rig-$1.moving
    following=$(mktemp /run/rig-$1.following.XXXXXX)
    xl migrate -s '' "$1" "xl migrate-receive"
    rc=$?
    if [ $rc -eq 0 ]; then
        (
            follow=/var/log/xen/xl-$1--incoming.log
            until grep -q -e 'has shut down, reason code [013456789]' -e 'has been destroyed' \
                "$follow" 2> /dev/null; do
                sleep 0.2
            done
            cat "$follow" >> /run/rig-$1.follow
            rm -f "$following"
        ) &
    else
        rm -f "$following"
    fi
    rm -f /run/rig-$1.moving
    return $rc
}
"#;

/// The vif hotplug script (`/etc/xen/scripts/vif-rig`, xl's default).
const VIF: &str = r#"#!/bin/sh
# vif hotplug script of the Paravane rig (busybox sh, qemu/src/scripts.rs).
# Brings the backend interface up; if the vif names the guest's address
# (ip=A.B.C.D), dom0 takes A.B.C.254 on that interface with a host route to
# the guest, so dom0 can reach several guests, each on its own vif.
case "$1" in
online|add)
    ip link set "$vif" up
    gip=$(xenstore-read "$XENBUS_PATH/ip" 2> /dev/null)
    if [ -n "$gip" ]; then
        gip=${gip%% *}
        ip addr add "${gip%.*}.254/32" dev "$vif" 2> /dev/null
        # replace, not add: during a migration to this host the old
        # domain's vif still holds the route until it is destroyed.
        ip route replace "$gip/32" dev "$vif" 2> /dev/null
    fi
    xenstore-write "$XENBUS_PATH/hotplug-status" connected
    ;;
offline|remove)
    ip link set "$vif" down 2> /dev/null
    ;;
esac
exit 0
"#;

/// The disk hotplug script (`/etc/xen/scripts/block-rig`).
const BLOCK: &str = r#"#!/bin/sh
# Disk hotplug script of the Paravane rig (busybox sh, qemu/src/scripts.rs).
# Use as disk=['format=raw,vdev=xvda,access=rw,script=block-rig,target=FILE'].
# FILE may still be missing when xl creates the guest (a run's dom0 script
# makes it alongside `xl create`): the script waits up to 8 s for it to
# appear (libxl kills hotplug scripts after 10 s). Create it at once (a
# sparse file of the final size) and fill it in place, rather than build
# a big image first.
case "$1" in
add)
    file=$(xenstore-read "$XENBUS_PATH/params")
    n=0
    while [ ! -e "$file" ] && [ $n -lt 80 ]; do
        n=$((n + 1))
        sleep 0.1
    done
    [ -e "$file" ] || exit 1
    mode=$(xenstore-read "$XENBUS_PATH/mode" 2> /dev/null)
    ro=
    [ "$mode" = r ] && ro=-r
    dev=$(losetup -f) || exit 1
    losetup $ro "$dev" "$file" || exit 1
    xenstore-write "$XENBUS_PATH/physical-device" "$(stat -L -c %t:%T "$dev")"
    xenstore-write "$XENBUS_PATH/physical-device-path" "$dev"
    xenstore-write "$XENBUS_PATH/hotplug-status" connected
    ;;
remove)
    dev=$(xenstore-read "$XENBUS_PATH/physical-device-path" 2> /dev/null)
    [ -n "$dev" ] && losetup -d "$dev"
    ;;
esac
exit 0
"#;

/// `/etc/xen/xl.conf`.
const XL_CONF: &str = r#"# xl.conf of the Paravane rig: dom0's memory is fixed (dom0_mem=...,max:...).
autoballoon="off"
lockfile="/run/lock/xl"
vif.default.script="vif-rig"
"#;

/// The fixed files of dom0's initramfs: `(path, mode, text)`, with the init
/// loading `modules` in that order and running `version`'s toolstack.
pub fn base_files(modules: &[String], version: XenVersion) -> Vec<(&'static str, u32, String)> {
    let init = INIT
        .replace("@MODULES@", &modules.join(" "))
        .replace("@XEN_BIN@", &format!("/{}", version.programs_dir()));
    vec![
        ("init", 0o755, init),
        ("etc/rig/lib.sh", 0o644, LIB.to_string()),
        ("etc/xen/scripts/vif-rig", 0o755, VIF.to_string()),
        ("etc/xen/scripts/block-rig", 0o755, BLOCK.to_string()),
        ("etc/xen/xl.conf", 0o644, XL_CONF.to_string()),
    ]
}

/// Quotes `text` for an xl config file: a double-quoted string with `\` and
/// `"` escaped.
pub fn xl_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// xl's `tsc_mode` for PVH domUs. Xen's default would emulate the TSC
/// here (QEMU's CPU model does not say the TSC is invariant), so every
/// `rdtsc`, which the kernel runs each time it reads the clock, would exit
/// to Xen; under QEMU's software-emulated SVM, about one PVH HTTP
/// end-to-end run in four then died of a triple fault on that very
/// `rdtsc` (Xen's dump: `RIP 0008:` at the instruction, 3 of 12 runs).
/// With the TSC passed through it exits no more (0 of 12 runs).
pub const PVH_TSC_MODE: &str = "native";

/// The xl config of one guest. Every `on_*` action is `preserve`, so the
/// rig sees how the guest ended (`xl create -F` reports it) and xenconsoled
/// can drain the console before the rig destroys the domain; the guest's
/// `extra_config` lines come last and may override anything.
pub fn guest_config(guest: &GuestSpec) -> String {
    let mut config = String::new();
    let _ = writeln!(config, "name = {}", xl_string(&guest.name));
    let _ = writeln!(config, "type = \"{}\"", guest.mode.as_str());
    let _ = writeln!(
        config,
        "kernel = {}",
        xl_string(&format!("/rig/{}/kernel", guest.name))
    );
    let _ = writeln!(config, "cmdline = {}", xl_string(&guest.cmdline));
    if guest.ramdisk.is_some() {
        let _ = writeln!(
            config,
            "ramdisk = {}",
            xl_string(&format!("/rig/{}/ramdisk", guest.name))
        );
    }
    let _ = writeln!(config, "memory = {}", guest.memory_mib);
    let _ = writeln!(config, "vcpus = 1");
    if guest.mode == GuestMode::Pvh {
        // See PVH_TSC_MODE.
        let _ = writeln!(config, "tsc_mode = \"{PVH_TSC_MODE}\"");
    }
    for event in ["poweroff", "reboot", "crash", "watchdog", "soft_reset"] {
        let _ = writeln!(config, "on_{event} = \"preserve\"");
    }
    for line in &guest.extra_config {
        let _ = writeln!(config, "{line}");
    }
    config
}

/// The per-run script: reports `xl info` and `xl list`, then runs each
/// guest in turn with its watchdog (whole seconds, rounded up); guests
/// joined by [`GuestSpec::start_with_next`] run side by side in the
/// background, and the next guest starts when all of them have ended.
/// Whatever a guest's dom0 script left in dom0's `/tmp` (a tmpfs, half of
/// dom0's memory) is removed once the guest (or its group) has ended
/// (`rig_tmp_mark` / `rig_tmp_sweep`): the rig stops a dom0 script 5 s
/// after its guest, which can be before the script's own clean-up, and a
/// leftover save file once filled `/tmp` under the next guest's
/// `xl save`.
pub fn run_script(guests: &[GuestSpec]) -> String {
    let mut script = String::from("#!/bin/sh\n# Per-run script of the Paravane rig.\n");
    script.push_str(". /etc/rig/lib.sh\nrig_capture xl info\nrig_capture xl list\n");
    let mut in_group = false;
    for guest in guests {
        let seconds = guest.timeout.as_millis().div_ceil(1000).max(1);
        if !in_group {
            script.push_str("rig_tmp_mark\n");
        }
        if guest.start_with_next || in_group {
            let _ = writeln!(script, "rig_guest {} {seconds} &", guest.name);
            if !guest.start_with_next {
                script.push_str("wait\nrig_tmp_sweep\n");
            }
        } else {
            let _ = writeln!(script, "rig_guest {} {seconds}\nrig_tmp_sweep", guest.name);
        }
        in_group = guest.start_with_next;
    }
    if in_group {
        script.push_str("wait\nrig_tmp_sweep\n");
    }
    script
}

/// Whether `name` can be a guest name: it ends up in file names, shell
/// words and xl's domain names unquoted.
pub fn valid_guest_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with(['.', '-'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn spec() -> GuestSpec {
        let mut guest = GuestSpec::new("hello", PathBuf::from("/tmp/hello"));
        guest.cmdline = r#"say "hi" \o/"#.into();
        guest.timeout = Duration::from_millis(2500);
        guest.extra_config = vec!["vcpus = 2".into()];
        guest
    }

    #[test]
    fn guest_config_quotes_and_preserves() {
        let config = guest_config(&spec());
        assert!(config.contains("name = \"hello\"\n"));
        assert!(config.contains("kernel = \"/rig/hello/kernel\"\n"));
        assert!(config.contains(r#"cmdline = "say \"hi\" \\o/""#));
        assert!(config.contains("on_crash = \"preserve\"\n"));
        assert!(config.ends_with("vcpus = 2\n"));
    }

    #[test]
    fn guest_config_type_follows_the_mode() {
        assert!(guest_config(&spec()).contains("type = \"pv\"\n"));
        let guest = spec().with_mode(crate::GuestMode::Pvh);
        let config = guest_config(&guest);
        assert!(config.contains("type = \"pvh\"\n"), "{config}");
        assert!(config.contains("kernel = \"/rig/hello/kernel\"\n"));
        assert!(config.contains("tsc_mode = \"native\"\n"), "{config}");
        assert!(!guest_config(&spec()).contains("tsc_mode"));
    }

    #[test]
    fn guest_config_ramdisk_only_when_given() {
        assert!(!guest_config(&spec()).contains("ramdisk"));
        let mut guest = spec();
        guest.ramdisk = Some(PathBuf::from("/tmp/initrd.cpio"));
        assert!(guest_config(&guest).contains("ramdisk = \"/rig/hello/ramdisk\"\n"));
    }

    #[test]
    fn run_script_rounds_timeouts_up() {
        let script = run_script(&[spec()]);
        assert!(script.contains("rig_guest hello 3\n"));
        assert!(script.contains(". /etc/rig/lib.sh"));
    }

    #[test]
    fn guests_started_together_are_waited_for() {
        let mut a = spec();
        a.name = "a".into();
        a.start_with_next = true;
        let mut b = spec();
        b.name = "b".into();
        let mut c = spec();
        c.name = "c".into();
        let mut d = spec();
        d.name = "d".into();
        d.start_with_next = true;
        let script = run_script(&[a, b, c, d]);
        let body: Vec<&str> = script
            .lines()
            .filter(|l| l.starts_with("rig_guest") || l.starts_with("rig_tmp") || *l == "wait")
            .collect();
        assert_eq!(
            body,
            [
                "rig_tmp_mark",
                "rig_guest a 3 &",
                "rig_guest b 3 &",
                "wait",
                "rig_tmp_sweep",
                "rig_tmp_mark",
                "rig_guest c 3",
                "rig_tmp_sweep",
                "rig_tmp_mark",
                "rig_guest d 3 &",
                "wait",
                "rig_tmp_sweep"
            ]
        );
    }

    #[test]
    fn init_loads_modules_in_order() {
        let files = base_files(&["xen_privcmd".into(), "xenfs".into()], XenVersion::V4_17);
        let init = &files[0].2;
        assert!(init.contains("for module in xen_privcmd xenfs; do"));
        assert!(!init.contains("@MODULES@"));
    }

    #[test]
    fn init_runs_its_versions_toolstack() {
        for (version, dir) in [
            (XenVersion::V4_17, ":/usr/lib/xen-4.17/bin\n"),
            (XenVersion::V4_20, ":/usr/lib/xen-4.20/bin\n"),
        ] {
            let init = &base_files(&[], version)[0].2;
            assert!(init.contains(dir), "{version}");
            assert!(!init.contains("@XEN_BIN@"));
        }
    }

    #[test]
    fn the_shell_scripts_parse() {
        // `sh -n` reads without running: a merge that leaves a conflict
        // marker, or a quoting slip, fails here instead of in dom0.
        for (name, text) in [
            ("init", INIT),
            ("lib.sh", LIB),
            ("vif", VIF),
            ("block", BLOCK),
        ] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", text])
                .output()
                .expect("sh runs");
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn guest_names() {
        assert!(valid_guest_name("hello-1.test_x"));
        assert!(!valid_guest_name(""));
        assert!(!valid_guest_name("a b"));
        assert!(!valid_guest_name("a/b"));
        assert!(!valid_guest_name("-x"));
        assert!(!valid_guest_name("$(x)"));
    }
}
