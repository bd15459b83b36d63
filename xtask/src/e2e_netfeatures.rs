//! Checks that netfront took up what Linux's netback offered, in the
//! network end-to-end run ([`crate::e2e_net`]).
//!
//! dom0's script prints what it sees in xenstore, independently of the
//! guest: `NET offer …` (the back end's keys) and `NET front …` (the keys
//! the guest wrote). The guest prints one line at connect
//! (`netfront: vif/0 mac … queues N (backend max M) split-evtchn yes …`)
//! and its counters at the end. The check requires: as many queues as
//! offered up to 2 (one if netback offers one: dom0's vCPU count decides,
//! and nothing is faked), split channels and sg exactly when offered,
//! rx-copy, checksum offload on, the matching keys in xenstore, and
//! counters showing offload really used both ways (frames sent with
//! `csum_blank`, frames received with it from dom0's own stack) with no
//! checksum or protocol errors.
//!
//! The vif gets a jumbo MTU ([`JUMBO_MTU`], the toolstack's `mtu=`, which
//! the guest reads from xenstore), and dom0 raises its side to match once
//! the guest is up (netback allows it only once the front end said
//! `feature-sg`): so with sg, the 8 MiB echo travels in frames of three
//! slots each way, and the check requires multi-slot frames both ways.

use rig::GuestReport;

/// The vif's MTU (`mtu=` in its xl config, and dom0's side).
pub const JUMBO_MTU: usize = 9000;

/// dom0's lines (busybox sh) printing the back end's and the guest's
/// keys; `$NAME` is the guest. Missing keys print as empty values.
pub fn dom0_lines() -> &'static str {
    r#"D=$(xl domid $NAME)
B=/local/domain/0/backend/vif/$D/0
F=/local/domain/$D/device/vif/0
k() { xenstore-read "$1" 2> /dev/null; }
echo "NET offer sg=$(k $B/feature-sg) split=$(k $B/feature-split-event-channels) max-queues=$(k $B/multi-queue-max-queues) rx-copy=$(k $B/feature-rx-copy) gso-tcpv4=$(k $B/feature-gso-tcpv4)"
echo "NET front num-queues=$(k $F/multi-queue-num-queues) sg=$(k $F/feature-sg) no-csum-offload=$(k $F/feature-no-csum-offload) split=$(k $F/event-channel-rx)$(k $F/queue-0/event-channel-rx)"
[ "$(k $B/feature-sg)" = 1 ] && ip link set dev vif$D.0 mtu 9000
echo "NET dom0 mtu $(cat /sys/class/net/vif$D.0/mtu)"
"#
}

/// `key=value` pairs of the first dom0 line starting with `prefix`.
fn pairs<'a>(guest: &'a GuestReport, prefix: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    let line = guest
        .dom0_output
        .iter()
        .find_map(|line| line.strip_prefix(prefix))
        .ok_or_else(|| format!("dom0 printed no `{prefix}` line"))?;
    Ok(line
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .collect())
}

fn value<'a>(pairs: &[(&str, &'a str)], key: &str) -> &'a str {
    pairs.iter().find(|(k, _)| *k == key).map_or("", |(_, v)| v)
}

/// The word after `word` in `line`.
fn after<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == word)?;
    words.next()
}

/// The guest's connect line, for the test's name.
pub fn connect_line(guest: &GuestReport) -> Option<&str> {
    guest
        .console
        .iter()
        .find(|line| line.starts_with("netfront: vif/0 mac "))
        .map(String::as_str)
}

/// The check (see the module docs).
pub fn check(guest: &GuestReport) -> Result<(), String> {
    let offer = pairs(guest, "NET offer ")?;
    let front = pairs(guest, "NET front ")?;
    let line = connect_line(guest).ok_or("the guest printed no `netfront: vif/0 mac` line")?;
    let yes = |flag: bool| if flag { "yes" } else { "no" };
    let offered_max: usize = match value(&offer, "max-queues") {
        "" => 0,
        n => n.parse().map_err(|_| format!("max-queues={n}"))?,
    };
    let want_queues = offered_max.clamp(1, 2);
    let sg_offered = value(&offer, "sg") == "1";
    let expect = [
        ("queues", want_queues.to_string()),
        ("max", offered_max.to_string()),
        (
            "split-evtchn",
            yes(value(&offer, "split") == "1").to_string(),
        ),
        ("sg", yes(value(&offer, "sg") == "1").to_string()),
        ("rx-copy", "yes".to_string()),
        ("csum-offload", "yes".to_string()),
        ("mtu", if sg_offered { JUMBO_MTU } else { 1500 }.to_string()),
    ];
    for (word, want) in &expect {
        // `(backend max 2)` closes a parenthesis.
        let got = after(line, word).map(|w| w.trim_end_matches(')'));
        if got != Some(want.as_str()) {
            return Err(format!(
                "`{word}` is {got:?}, netback offers {want}: {line}"
            ));
        }
    }
    if value(&offer, "rx-copy") != "1" {
        return Err(format!("netback offers no rx-copy: {offer:?}"));
    }
    let want_num = if offered_max > 0 {
        want_queues.to_string()
    } else {
        String::new()
    };
    if value(&front, "num-queues") != want_num
        || value(&front, "sg") != "1"
        || value(&front, "no-csum-offload") != "0"
        || (value(&front, "split").is_empty() == (value(&offer, "split") == "1"))
    {
        return Err(format!("the guest's keys in xenstore: {front:?}"));
    }
    let counters = guest
        .console
        .iter()
        .find(|line| line.starts_with("echo: netfront "))
        .ok_or("the guest printed no netfront counters")?;
    let number = |word: &str| after(counters, word).and_then(|n| n.parse::<u64>().ok());
    match (
        number("tx_csum_blank"),
        number("rx_csum_blank"),
        number("rx_csum_errors"),
        number("bad_responses"),
    ) {
        (Some(tx), Some(rx), Some(0), Some(0)) if tx > 0 && rx > 0 => {}
        _ => return Err(format!("checksum offload not used both ways: {counters}")),
    }
    match (number("rx_multi_slot"), number("tx_multi_slot")) {
        (Some(rx), Some(tx)) if !sg_offered || (rx > 0 && tx > 0) => Ok(()),
        _ => Err(format!("no multi-slot frames both ways: {counters}")),
    }
}
