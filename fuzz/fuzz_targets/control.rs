//! What the toolstack writes into the domain's `control/` directory:
//! `control/shutdown` (the request word) and `control/sysrq` (a key).
//!
//! What must hold: nothing panics; a request that parses is one whose
//! word parses back to it; what is not understood is reported (its text
//! printable and bounded), never acted on.
#![no_main]

use drivers_pv::control::{parse_shutdown, parse_sysrq};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|value: &[u8]| {
    match parse_shutdown(value) {
        Ok(Some(request)) => {
            assert_eq!(parse_shutdown(request.word().as_bytes()), Ok(Some(request)));
            let _ = format!("{request}");
        }
        Ok(None) => {}
        Err(unknown) => {
            let shown = format!("{unknown}");
            assert!(!unknown.as_str().is_empty() || shown.is_empty() || !value.is_empty());
        }
    }
    match parse_sysrq(value) {
        Ok(Some(key)) => assert!(key.key().is_ascii_graphic()),
        Ok(None) => {}
        Err(unknown) => {
            let _ = format!("{unknown}");
        }
    }
});
