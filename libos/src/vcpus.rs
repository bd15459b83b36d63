//! The domain's vCPUs as the toolstack sets them: `vcpus=` and
//! `maxvcpus=` when it builds the domain, `xl vcpu-set` while it runs.
//!
//! libxl gives the domain `maxvcpus` vCPUs and writes
//! `cpu/N/availability` (`online` or `offline`) for each; only vCPU 0
//! runs at first, and which others run is the guest's to do. `xl
//! vcpu-set D N` rewrites the keys: the first N online, the rest
//! offline. An app that runs on several vCPUs calls [`start`]: it
//! brings up the vCPUs the keys call online and keeps following them,
//! bringing vCPUs up and taking them offline (`kernel::smp`'s
//! `bring_online` and `take_offline`: an offline vCPU's tasks and event
//! channels move to the others first). Apps that do not call it run on
//! vCPU 0 alone, whatever the keys say.
//!
//! vCPUs run as a prefix (0..N), as `xl vcpu-set` writes them; a key
//! that would leave a hole (vCPU 2 online after an offline vCPU 1), a
//! value that is neither word, and `offline` for vCPU 0 are refused
//! with a line saying so ([`plan`], host-tested). A missing key counts
//! as online: a toolstack that writes none means every vCPU it gave.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// What `cpu/N/availability` says of one vCPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// `online`.
    Online,
    /// `offline`.
    Offline,
    /// No such key.
    Missing,
    /// Anything else (as read, lossily).
    Bad(String),
}

impl Availability {
    /// Reads a key's value (`None`: no key).
    pub fn parse(value: Option<&[u8]>) -> Availability {
        match value {
            None => Availability::Missing,
            Some(b"online") => Availability::Online,
            Some(b"offline") => Availability::Offline,
            Some(other) => Availability::Bad(String::from_utf8_lossy(other).into_owned()),
        }
    }
}

/// How many vCPUs should run, and what in the keys was set aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// vCPUs `0..online` should run (at least 1).
    pub online: u32,
    /// One line per key refused.
    pub refused: Vec<String>,
}

/// The plan for the keys of vCPUs `0..keys.len()`, with `running`
/// vCPUs running now (a bad value keeps its vCPU as it is).
pub fn plan(keys: &[Availability], running: u32) -> Plan {
    let mut refused = Vec::new();
    let mut online = 1;
    let mut hole: Option<usize> = None;
    for (id, key) in keys.iter().enumerate() {
        let up = match key {
            Availability::Online | Availability::Missing => true,
            Availability::Offline => false,
            Availability::Bad(value) => {
                refused.push(format!(
                    "cpu/{id}/availability {value:?}: neither online nor offline; vCPU {id} stays {}",
                    if (id as u32) < running { "online" } else { "offline" }
                ));
                (id as u32) < running
            }
        };
        if id == 0 {
            if !up {
                refused.push("cpu/0/availability offline: vCPU 0 cannot go offline".into());
            }
            continue;
        }
        match (up, hole) {
            (true, None) => online = id as u32 + 1,
            (false, None) => hole = Some(id),
            (true, Some(first)) => refused.push(format!(
                "cpu/{id}/availability online, but vCPU {first} is offline: vCPUs run as a prefix; vCPU {id} stays offline"
            )),
            (false, Some(_)) => {}
        }
    }
    Plan { online, refused }
}

#[cfg(target_os = "none")]
pub use guest::start;

#[cfg(target_os = "none")]
mod guest {
    use super::{plan, Availability, Plan};
    use alloc::format;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicBool, Ordering};
    use drivers_pv::xenstore::guest::{within, xenstore, REPLY_TIMEOUT};
    use drivers_pv::xenstore::TxId;
    use kernel::{println, sched, smp, AppError};

    /// The directory the toolstack writes the keys in.
    const CPU_DIR: &str = "cpu";

    static FOLLOWING: AtomicBool = AtomicBool::new(false);

    /// Reads `cpu/N/availability` for every vCPU of the domain.
    async fn read_keys() -> Result<Vec<Availability>, AppError> {
        let xs = xenstore().map_err(|e| AppError::new(format_args!("vcpus: xenstore: {e}")))?;
        let mut keys = Vec::new();
        for id in 0..smp::domain_vcpus() {
            let path = format!("{CPU_DIR}/{id}/availability");
            let value = within(REPLY_TIMEOUT, xs.read_opt(TxId::NONE, &path))
                .await
                .map_err(|e| AppError::new(format_args!("vcpus: reading {path}: {e}")))?;
            keys.push(Availability::parse(value.as_deref()));
        }
        Ok(keys)
    }

    /// Brings vCPUs up or takes them offline until `0..want` run.
    async fn apply(want: u32) -> Result<(), AppError> {
        let fail = |e: smp::SmpError| AppError::new(format_args!("vcpus: {e}"));
        let running = smp::vcpus_online();
        for id in running..want {
            smp::bring_online(id).await.map_err(fail)?;
        }
        for id in (want..running).rev() {
            smp::take_offline(id).await.map_err(fail)?;
        }
        Ok(())
    }

    /// Brings up the vCPUs the toolstack's keys call online and starts
    /// following the keys (once; later calls only report). Returns how
    /// many vCPUs run.
    pub async fn start() -> Result<u32, AppError> {
        if FOLLOWING.swap(true, Ordering::AcqRel) {
            return Ok(smp::vcpus_online());
        }
        let keys = read_keys().await?;
        if smp::domain_exceeds_max_vcpus() {
            println!(
                "vcpus: refused the domain's vCPUs from {} on: Paravane runs at most {} (kernel::smp::MAX_VCPUS)",
                smp::MAX_VCPUS,
                smp::MAX_VCPUS
            );
        }
        let Plan { online, refused } = plan(&keys, 1);
        for line in &refused {
            println!("vcpus: refused {line}");
        }
        apply(online).await?;
        println!(
            "vcpus: {online} of the domain's {} online, as cpu/*/availability asks; following it",
            keys.len()
        );
        sched::spawn_on(0, follow())
            .map_err(|e| AppError::new(format_args!("vcpus: no follower task: {e}")))?;
        Ok(online)
    }

    /// Follows the keys: the watch on `cpu` fires for every write under
    /// it. Each refusal or failure is printed; none stops the task.
    async fn follow() {
        let Ok(xs) = xenstore() else {
            println!("vcpus: no xenstore connection: not following cpu/*/availability");
            return;
        };
        let mut watch = match within(REPLY_TIMEOUT, xs.watch(CPU_DIR)).await {
            Ok(watch) => watch,
            Err(why) => {
                println!("vcpus: cannot watch {CPU_DIR}: {why}");
                return;
            }
        };
        let mut last_refused = Vec::new();
        loop {
            if let Err(why) = watch.next_event().await {
                println!("vcpus: watch on {CPU_DIR} failed: {why}; stopping");
                return;
            }
            // `xl vcpu-set` writes one key per vCPU: take the burst in.
            while let Ok(Some(_)) = watch.try_next() {}
            let keys = match read_keys().await {
                Ok(keys) => keys,
                Err(why) => {
                    println!("{why}");
                    continue;
                }
            };
            let running = smp::vcpus_online();
            let Plan { online, refused } = plan(&keys, running);
            if refused != last_refused {
                for line in &refused {
                    println!("vcpus: refused {line}");
                }
                last_refused = refused;
            }
            if online == running {
                continue;
            }
            match apply(online).await {
                Ok(()) => println!(
                    "vcpus: {} online (was {running}), as cpu/*/availability asks",
                    smp::vcpus_online()
                ),
                Err(why) => println!("{why}; {} online now", smp::vcpus_online()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Availability::{Missing, Offline, Online};

    #[test]
    fn values_parse() {
        assert_eq!(Availability::parse(Some(b"online")), Online);
        assert_eq!(Availability::parse(Some(b"offline")), Offline);
        assert_eq!(Availability::parse(None), Missing);
        assert_eq!(
            Availability::parse(Some(b"on\xff")),
            Availability::Bad("on\u{fffd}".into())
        );
    }

    #[test]
    fn the_online_prefix_runs() {
        let p = |keys: &[Availability], running| plan(keys, running);
        assert_eq!(p(&[Online, Online, Offline, Offline], 1).online, 2);
        assert_eq!(p(&[Online, Online, Online], 1).online, 3);
        assert_eq!(p(&[Online, Offline, Offline], 3).online, 1);
        assert_eq!(p(&[], 1).online, 1, "no keys read: vCPU 0 alone");
        let all = p(&[Missing, Missing, Missing], 1);
        assert_eq!(
            (all.online, all.refused.len()),
            (3, 0),
            "no keys: every vCPU"
        );
    }

    #[test]
    fn holes_bad_values_and_vcpu0_offline_are_refused() {
        let hole = plan(&[Online, Offline, Online], 1);
        assert_eq!(hole.online, 1);
        assert_eq!(
            hole.refused,
            ["cpu/2/availability online, but vCPU 1 is offline: vCPUs run as a prefix; vCPU 2 stays offline"]
        );
        let zero = plan(&[Offline, Online], 2);
        assert_eq!(zero.online, 2);
        assert_eq!(
            zero.refused,
            ["cpu/0/availability offline: vCPU 0 cannot go offline"]
        );
        let bad = [Online, Availability::Bad("maybe".into()), Online];
        assert_eq!(plan(&bad, 3).online, 3, "a bad value keeps a running vCPU");
        let kept = plan(&bad, 1);
        assert_eq!(kept.online, 1, "and a stopped one stopped");
        assert_eq!(
            kept.refused.len(),
            2,
            "the bad value, and the hole it leaves"
        );
        assert!(kept.refused[0].starts_with("cpu/1/availability \"maybe\""));
    }
}
