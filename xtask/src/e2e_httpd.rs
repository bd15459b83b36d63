//! The HTTP end-to-end test: dom0 fetches pages from the `httpd` guest.
//!
//! One domU runs `httpd` (HTTP/1.0 on port 80 over netfront and smoltcp)
//! at `10.0.0.2`, its vif through the rig's `vif-rig` hotplug script as in
//! [`crate::e2e_net`]. dom0's script waits until the guest answers a ping,
//! then makes 100 sequential busybox `wget` requests for `/`, counting
//! those that succeed and those whose page carries the marker
//! `Paravane httpd`; then it makes a request while a silent client holds
//! a connection (it must be served at once; the silent one is reset after
//! 5 s); then it asks for an unknown path (expecting 404),
//! sends a malformed request line with `nc` (expecting a 400 status line),
//! and finally `GET /quit`, after which the guest powers off. The checks
//! rest on what dom0 and the guest printed and on how the guest ended.
//! The time for the 100 requests (dom0's clock) is printed.
//!
//! Between the 100 requests and the rest, two more things are measured:
//! the guest's CPU time over 10 s of quiet (Xen's accounting, see
//! [`crate::idle`]: under 1 % passes), then 64 clients at once (the rig's
//! load generator, [`crate::load`]: [`LOAD_REQUESTS`] requests by 64
//! threads, every answer a 200 with the marker), during which the page's
//! tick counter (a background task in the guest) must advance. The PV
//! and the PVH guest run side by side in one dom0 session, on their own
//! addresses ([`guest_ip`]), so their quiet windows overlap.
//!
//! [`demo_spec`] is the same guest with a script that fetches the page
//! once and prints it, for `cargo xtask run`.

use rig::{Ending, GuestMode, GuestReport, GuestSpec, Rig};
use std::path::Path;
use std::time::Duration;

/// The PV guest's address (and the vif's `ip=`); also `cargo xtask
/// run`'s.
pub const GUEST_IP: &str = "10.0.0.2";
/// The PVH guest's address: it runs beside the PV one.
pub const PVH_GUEST_IP: &str = "10.0.0.3";
/// Requests for `/` that dom0 makes.
const REQUESTS: u32 = 100;
/// Clients at once in the load step.
pub const CLIENTS: usize = 64;
/// Requests the load step makes in all (four per client).
pub const LOAD_REQUESTS: usize = 4 * CLIENTS;

/// The guest's address in `mode`.
pub fn guest_ip(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => GUEST_IP,
        GuestMode::Pvh => PVH_GUEST_IP,
    }
}
/// What every page for `/` contains.
const MARKER: &str = "Paravane httpd";
/// Where `cargo xtask run`'s script prints the page: between these lines.
pub const PAGE_BEGIN: &str = "HTTPD page begin";
/// See [`PAGE_BEGIN`].
pub const PAGE_END: &str = "HTTPD page end";

/// The start of every dom0 script: wait (paced, up to ~2 minutes) until
/// the guest at `ip` answers a ping.
pub(crate) fn wait_for_ping(ip: &str) -> String {
    format!("G={ip}\n{}", crate::e2e_net::wait_for_ping("HTTPD", 120))
}

/// The end of every dom0 script: ask the guest to power off, and make
/// sure it does.
fn quit() -> &'static str {
    r#"wget -q -O - http://$G/quit
echo "HTTPD quit rc=$?"
sleep 15
if xl list $NAME > /dev/null 2>&1; then
  echo "HTTPD guest still running after /quit: destroying it"
  xl destroy $NAME
fi
"#
}

/// dom0's side of the test against the guest at `ip` (busybox sh).
/// Every result line starts `HTTPD `.
fn dom0_script(ip: &str) -> String {
    format!(
        r#"{wait}ok=0
marked=0
n=0
t0=$(cut -d' ' -f1 /proc/uptime)
while [ $n -lt {REQUESTS} ]; do
  n=$((n+1))
  if wget -q -O - http://$G/ > /tmp/$NAME-httpd-page 2> /tmp/$NAME-httpd-err; then
    ok=$((ok+1))
    grep -q '{MARKER}' /tmp/$NAME-httpd-page && marked=$((marked+1))
  else
    echo "HTTPD request $n failed: $(cat /tmp/$NAME-httpd-err)"
  fi
done
t1=$(cut -d' ' -f1 /proc/uptime)
echo "HTTPD fetched $ok/{REQUESTS}"
echo "HTTPD marked $marked/{REQUESTS}"
echo "HTTPD time $t0 $t1"
{idle}{load}# A client that connects and says nothing must not stall the server:
# httpd resets it after its 5 s read timeout and then serves wget, which
# gives up after 30 s. nc's input is a fifo held open and never written.
mkfifo /tmp/$NAME-httpd-silent
nc $G 80 < /tmp/$NAME-httpd-silent > /dev/null 2>&1 &
S=$!
exec 5> /tmp/$NAME-httpd-silent
sleep 1
s0=$(cut -d' ' -f1 /proc/uptime)
timeout 30 wget -q -O - http://$G/ > /tmp/$NAME-httpd-after-silent 2>&1
rc=$?
s1=$(cut -d' ' -f1 /proc/uptime)
echo "HTTPD after silent rc=$rc marked=$(grep -q '{MARKER}' /tmp/$NAME-httpd-after-silent && echo yes || echo no) time $s0 $s1"
# httpd serves each connection in a task of its own: the wget above did
# not wait for the silent client, which is reset only at its 5 s read
# timeout; keep it open until then.
sleep 6
kill $S 2> /dev/null
exec 5>&-
echo "HTTPD missing: $(wget -q -O - http://$G/no-such-page 2>&1 | tr '\n' ' ')"
echo "HTTPD malformed: $(printf 'NONSENSE\r\n\r\n' | nc $G 80 | head -n 1)"
{quit}"#,
        wait = wait_for_ping(ip),
        idle = crate::idle::dom0_lines("HTTPD"),
        load = crate::load::dom0_lines(
            "HTTPD",
            &format!(
                "http $G:80 / --concurrency {CLIENTS} --requests {LOAD_REQUESTS} --marker '{MARKER}' --timeout 60"
            )
        ),
        quit = quit()
    )
}

/// dom0's script for `cargo xtask run`: fetch the page once, print it
/// between [`PAGE_BEGIN`] and [`PAGE_END`], then `/quit`.
fn demo_script() -> String {
    format!(
        r#"{wait}echo "{PAGE_BEGIN}"
wget -O - http://$G/ 2> /tmp/$NAME-httpd-err
echo "HTTPD wget rc=$?"
echo "{PAGE_END}"
sed 's/^/HTTPD wget: /' /tmp/$NAME-httpd-err
{quit}"#,
        wait = wait_for_ping(GUEST_IP),
        quit = quit()
    )
}

/// The `httpd` guest at `ip` with its vif (the MAC ends in the
/// address's last byte), and `script` run in dom0 alongside.
pub(crate) fn spec(name: &str, elf: &Path, script: String, ip: &str) -> GuestSpec {
    let last: u8 = ip
        .rsplit('.')
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or(2);
    let mut guest = GuestSpec::new(name, elf);
    guest.cmdline = format!("ip={ip}/24 gw=10.0.0.254");
    guest.memory_mib = 64;
    guest.timeout = Duration::from_secs(300);
    guest.extra_config = vec![format!(
        "vif = ['mac=00:16:3e:00:00:{last:02x},ip={ip},script=vif-rig']"
    )];
    guest.dom0_script = Some(script);
    guest
}

/// The guest `cargo xtask run` boots: dom0 fetches the page once.
pub fn demo_spec(elf: &Path) -> GuestSpec {
    spec("httpd", elf, demo_script(), GUEST_IP)
}

/// An `httpd` guest for `cargo xtask bench`, named `name`, at
/// [`GUEST_IP`], with `script` in dom0 and the load generator.
pub fn bench_spec(name: &str, elf: &Path, loadgen: &Path, script: String) -> GuestSpec {
    let mut guest = spec(name, elf, script, GUEST_IP);
    guest.dom0_tools = vec![loadgen.to_path_buf()];
    guest
}

/// What every page for `/` contains (the load generator checks it).
pub fn marker() -> &'static str {
    MARKER
}

/// The test's guest in `mode` (named `e2e-httpd` or `pvh-e2e-httpd`),
/// carrying the load generator for dom0.
pub fn test_spec(httpd_elf: &Path, loadgen: &Path, mode: GuestMode) -> GuestSpec {
    let name = match mode {
        GuestMode::Pv => "e2e-httpd",
        GuestMode::Pvh => "pvh-e2e-httpd",
    };
    let ip = guest_ip(mode);
    let mut guest = spec(name, httpd_elf, dom0_script(ip), ip).with_mode(mode);
    guest.dom0_tools = vec![loadgen.to_path_buf()];
    // 100 + 256 requests, 10 s of quiet and the error cases took 296 s
    // beside a PVH twin on a host at load 10: room for that.
    guest.timeout = Duration::from_secs(600);
    guest
}

/// The lines of the page `demo_spec`'s script printed, and whether
/// `wget` succeeded and the page carries the marker.
pub fn demo_page(guest: &GuestReport) -> (Vec<&str>, bool) {
    let lines: Vec<&str> = guest
        .dom0_output
        .iter()
        .map(String::as_str)
        .skip_while(|line| *line != PAGE_BEGIN)
        .skip(1)
        .take_while(|line| *line != PAGE_END)
        .collect();
    let ok = lines.contains(&"HTTPD wget rc=0") && lines.iter().any(|l| l.contains(MARKER));
    let page = lines
        .into_iter()
        .filter(|line| !line.starts_with("HTTPD wget rc="))
        .collect();
    (page, ok)
}

/// The words after `prefix` on the first dom0 line starting with it.
fn dom0_rest<'a>(guest: &'a GuestReport, prefix: &str) -> Option<&'a str> {
    guest
        .dom0_output
        .iter()
        .find_map(|line| line.strip_prefix(prefix))
}

fn check_up(guest: &GuestReport, ip: &str) -> Result<(), String> {
    guest
        .console
        .iter()
        .any(|line| line.starts_with("httpd: up:") && line.contains(ip))
        .then_some(())
        .ok_or_else(|| {
            format!(
                "no `httpd: up:` line; the guest ended {} ({}); log {}",
                guest.ending,
                guest.evidence,
                guest.log.display()
            )
        })
}

fn check_count(guest: &GuestReport, prefix: &str) -> Result<(), String> {
    let want = format!("{REQUESTS}/{REQUESTS}");
    match dom0_rest(guest, prefix) {
        Some(got) if got.trim() == want => Ok(()),
        Some(got) => {
            let failures: Vec<&str> = guest
                .dom0_output
                .iter()
                .filter(|line| line.starts_with("HTTPD request "))
                .take(3)
                .map(String::as_str)
                .collect();
            Err(format!("{prefix}{got} (first failures: {failures:?})"))
        }
        None => Err(format!("dom0 printed no `{prefix}` line")),
    }
}

fn check_missing(guest: &GuestReport) -> Result<(), String> {
    match dom0_rest(guest, "HTTPD missing: ") {
        Some(text) if text.contains("404") => Ok(()),
        Some(text) => Err(format!("wget of an unknown path said: {text}")),
        None => Err("dom0 never asked for an unknown path".into()),
    }
}

fn check_malformed(guest: &GuestReport) -> Result<(), String> {
    match dom0_rest(guest, "HTTPD malformed: ") {
        Some(text) if text.trim_end().starts_with("HTTP/1.0 400 Bad Request") => Ok(()),
        Some(text) => Err(format!("a malformed request got: {text:?}")),
        None => Err("dom0 never sent a malformed request".into()),
    }
}

/// A silent client was reset after the read timeout, and the request
/// made while it held its connection (dom0's wget, killed after 30 s)
/// was served without waiting for it (in under 4.5 s: httpd serves each
/// connection in a task of its own).
fn check_silent(guest: &GuestReport) -> Result<(), String> {
    let line = dom0_rest(guest, "HTTPD after silent ")
        .ok_or("dom0 never tried a request behind a silent client")?;
    let reset = guest.console.iter().find(|l| {
        l.starts_with("httpd: connection ") && l.ends_with(": reading: timed out, reset")
    });
    let waited = line.split_once(" time ").and_then(|(_, times)| {
        let mut words = times.split_whitespace();
        let s0: f64 = words.next()?.parse().ok()?;
        let s1: f64 = words.next()?.parse().ok()?;
        Some(s1 - s0)
    });
    match (reset, waited) {
        (Some(_), Some(seconds)) if line.starts_with("rc=0 marked=yes ") && seconds < 4.5 => Ok(()),
        _ => Err(format!(
            "dom0: `{line}` (served after {waited:?} s); guest's reset line: {:?}",
            reset.map(String::as_str)
        )),
    }
}

/// The guest's request count from its final `httpd: served N requests` line.
fn served(guest: &GuestReport) -> Option<u64> {
    guest.console.iter().find_map(|line| {
        line.strip_prefix("httpd: served ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// The 64-client step: every answer a 200 with the marker.
pub(crate) fn check_load(guest: &GuestReport) -> Result<(), String> {
    let rc = dom0_rest(guest, "HTTPD load rc=").map(str::trim);
    let pairs = crate::load::summary(guest, "HTTPD", "http").ok_or_else(|| {
        format!(
            "the load generator printed no summary (rc {rc:?}); dom0 said: {:?}",
            guest
                .dom0_output
                .iter()
                .filter(|l| l.starts_with("HTTPD load") || l.starts_with("HTTPD LOADGEN"))
                .take(3)
                .collect::<Vec<_>>()
        )
    })?;
    let count = |key: &str| crate::load::number(&pairs, key).unwrap_or(-1.0) as i64;
    let want = LOAD_REQUESTS as i64;
    let figures = format!(
        "{} of {want} answered 200, {} with the marker, {} failed, {:.1} requests/s, p50 {} ms, p99 {} ms",
        count("ok"),
        count("marked"),
        count("failed"),
        crate::load::number(&pairs, "rps").unwrap_or(0.0),
        crate::load::get(&pairs, "p50_ms").unwrap_or("-"),
        crate::load::get(&pairs, "p99_ms").unwrap_or("-"),
    );
    println!("e2e httpd ({}): {CLIENTS} clients: {figures}", guest.name);
    if count("ok") == want && count("marked") == want && count("failed") == 0 && rc == Some("0") {
        Ok(())
    } else {
        Err(format!(
            "{figures}; first errors: {:?}",
            crate::load::errors(guest, "HTTPD")
        ))
    }
}

/// The page's tick counter (a background task in the guest) advanced
/// across the 64-client step.
fn check_ticks(guest: &GuestReport) -> Result<(), String> {
    let pairs = crate::load::summary(guest, "HTTPD", "http")
        .ok_or("the load generator printed no summary")?;
    match crate::load::ticks(&pairs) {
        Some((low, high)) if high > low => Ok(()),
        Some((low, high)) => Err(format!(
            "the tick counter did not advance across the load: lowest {low}, highest {high}"
        )),
        None => Err(
            "the pages show no tick counter (a line containing `tick` with a number, \
             e.g. `<li>background ticks: N</li>`)"
                .into(),
        ),
    }
}

fn check_served(guest: &GuestReport) -> Result<(), String> {
    let want = u64::from(REQUESTS) + 1;
    match served(guest) {
        Some(n) if n >= want => Ok(()),
        Some(n) => Err(format!("the guest served {n} requests, wanted >= {want}")),
        None => Err("the guest printed no `httpd: served` line".into()),
    }
}

pub(crate) fn check_poweroff(guest: &GuestReport) -> Result<(), String> {
    let quit = dom0_rest(guest, "HTTPD quit rc=").map(str::trim);
    if guest.ending == Ending::Poweroff && served(guest).is_some() && quit == Some("0") {
        Ok(())
    } else {
        Err(format!(
            "ended {} ({}), /quit rc {quit:?}, served line {}",
            guest.ending,
            guest.evidence,
            if served(guest).is_some() {
                "seen"
            } else {
                "missing"
            }
        ))
    }
}

/// dom0's seconds for the requests, from its `HTTPD time` line.
fn elapsed(guest: &GuestReport) -> Option<f64> {
    let mut words = dom0_rest(guest, "HTTPD time ")?.split_whitespace();
    let t0: f64 = words.next()?.parse().ok()?;
    let t1: f64 = words.next()?.parse().ok()?;
    (t1 >= t0).then_some(t1 - t0)
}

/// Boots `httpd_elf` next to the Linux dom0 once per mode in `modes`,
/// side by side in one dom0 session (the PVH guest is named
/// `pvh-e2e-httpd`), and runs the checks; one named result per check and
/// mode.
pub fn run(
    rig: &Rig,
    httpd_elf: &Path,
    loadgen: &Path,
    modes: &[GuestMode],
) -> Vec<(GuestMode, String, Result<(), String>)> {
    let mut guests: Vec<GuestSpec> = modes
        .iter()
        .map(|&mode| test_spec(httpd_elf, loadgen, mode))
        .collect();
    side_by_side(&mut guests);
    let limit = Duration::from_secs(120 + 300 * guests.len() as u64);
    let session = match rig.run_domus(&guests, limit) {
        Ok(session) => session,
        Err(e) => {
            return modes
                .iter()
                .map(|&mode| (mode, "run".to_string(), Err(e.to_string())))
                .collect()
        }
    };
    let mut results = Vec::new();
    for (&mode, guest) in modes.iter().zip(&guests) {
        results.extend(
            checks_of(&session, &guest.name, mode)
                .into_iter()
                .map(|(name, result)| (mode, name, result)),
        );
    }
    results
}

/// Marks `guests` to start together (all but the last start with the
/// next).
pub fn side_by_side(guests: &mut [GuestSpec]) {
    let count = guests.len();
    for (i, guest) in guests.iter_mut().enumerate() {
        guest.start_with_next = i + 1 < count;
    }
}

/// The checks of guest `name` in `session` (run in `mode`).
pub fn checks_of(
    session: &rig::Dom0Session,
    name: &str,
    mode: GuestMode,
) -> Vec<(String, Result<(), String>)> {
    crate::e2e_net::guest_checks(session, name, "run", |report| {
        checks(report, guest_ip(mode))
    })
}

/// The checks of one finished `httpd` guest at `ip`.
fn checks(report: &GuestReport, ip: &str) -> Vec<(String, Result<(), String>)> {
    let name = |check: &str| check.to_string();
    match elapsed(report) {
        Some(seconds) => println!(
            "e2e httpd ({}): {REQUESTS} sequential requests in {seconds:.2} s ({:.1} ms each)",
            report.name,
            seconds * 1000.0 / f64::from(REQUESTS)
        ),
        None => println!("e2e httpd ({}): no timing figure", report.name),
    }
    if let Some(line) = report
        .console
        .iter()
        .find(|line| line.starts_with("httpd: served "))
    {
        println!("e2e httpd ({}): guest said: {line}", report.name);
    }
    vec![
        (
            // PV keeps its old name (the porting guides cite it).
            if ip == GUEST_IP {
                name("netfront connects, guest up at 10.0.0.2")
            } else {
                format!("netfront connects, guest up at {ip}")
            },
            check_up(report, ip),
        ),
        (
            name("100/100 sequential wget requests succeed"),
            check_count(report, "HTTPD fetched "),
        ),
        (
            name("100/100 pages carry the marker"),
            check_count(report, "HTTPD marked "),
        ),
        (
            name("idle after 100 requests: under 1 % of 10 s running (Xen's accounting, xentop)"),
            crate::idle::check(report, "HTTPD", "100 requests"),
        ),
        (
            name("64 concurrent clients: 256/256 answers are 200 with the marker (dom0 loadgen)"),
            check_load(report),
        ),
        (
            name("a background task keeps ticking during the 64-client load"),
            check_ticks(report),
        ),
        (
            name("a silent client does not hold up the next request and is reset after 5 s"),
            check_silent(report),
        ),
        (name("an unknown path gets 404"), check_missing(report)),
        (
            name("a malformed request line gets 400"),
            check_malformed(report),
        ),
        (
            name("the guest counted >= 101 requests served"),
            check_served(report),
        ),
        (
            name("guest powers off after GET /quit"),
            check_poweroff(report),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_line(ok: usize, marked: usize, failed: usize, ticks: &str) -> String {
        format!(
            "HTTPD LOADGEN http concurrency=64 requests=256 ok={ok} marked={marked} failed={failed} \
             seconds=4.0 rps=64.0 p50_ms=500.0 p99_ms=900.0 max_ms=950.0 ticks={ticks}"
        )
    }

    fn report(lines: &[String]) -> GuestReport {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        crate::idle::tests_report(&lines)
    }

    #[test]
    fn load_and_ticks_are_judged() {
        let good = report(&["HTTPD load rc=0".into(), load_line(256, 256, 0, "3..40")]);
        assert_eq!(check_load(&good), Ok(()));
        assert_eq!(check_ticks(&good), Ok(()));

        let refused = report(&[
            "HTTPD load rc=1".into(),
            load_line(5, 5, 251, "none"),
            "HTTPD LOADGEN error request 6: connect: Connection refused (os error 111)".into(),
        ]);
        let why = check_load(&refused).unwrap_err();
        assert!(
            why.contains("5 of 256 answered 200") && why.contains("refused"),
            "{why}"
        );
        assert!(check_ticks(&refused)
            .unwrap_err()
            .contains("no tick counter"));

        let stuck = report(&["HTTPD load rc=0".into(), load_line(256, 256, 0, "7..7")]);
        assert!(check_ticks(&stuck).unwrap_err().contains("did not advance"));
        let unmarked = report(&["HTTPD load rc=1".into(), load_line(256, 200, 0, "1..9")]);
        assert!(check_load(&unmarked).is_err());
        assert!(check_load(&report(&[])).is_err());
    }
}
