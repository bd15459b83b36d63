//! Xenstore's wire format as xenstored sends it: the frame decoder and
//! the reply decoder over a byte stream cut into fuzzer-chosen pieces,
//! and the permission-list parser.
//!
//! Input: one byte `n`, then `n` piece sizes, then the stream. What must
//! hold: nothing panics; the messages decoded do not depend on how the
//! stream was cut (the ring delivers it in any pieces); every frame
//! re-encodes to the bytes it came from; a permission list that parses
//! re-encodes to one that parses the same.
#![no_main]

use drivers_pv::xenstore::wire::{
    encode_message, BadMessage, FrameDecoder, ReplyDecoder, HEADER_LEN,
};
use drivers_pv::xenstore::Permissions;
use libfuzzer_sys::fuzz_target;
use paravane_fuzz::pieces;

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let (sizes, stream) = rest.split_at(usize::from(count).min(rest.len()));

    // Whole, then in pieces: the same messages (and the same error).
    let whole = decode_replies([stream].into_iter());
    let cut = decode_replies(pieces(stream, sizes));
    assert_eq!(whole, cut, "decoding depends on how the stream is cut");

    // Frames re-encode to exactly the bytes they were decoded from.
    let mut frames = FrameDecoder::new();
    let mut input = stream;
    let mut consumed = 0;
    while let Some(frame) = frames.decode(&mut input) {
        let Ok(frame) = frame else { break };
        let mut again = Vec::new();
        encode_message(
            &mut again,
            frame.header.msg_type,
            frame.header.req_id,
            frame.header.tx_id,
            &[&frame.payload],
        )
        .expect("a decoded frame is within the payload limit");
        let len = HEADER_LEN + frame.payload.len();
        assert_eq!(again, stream[consumed..consumed + len]);
        consumed += len;
    }

    // The payload as a permission list (GET_PERMS's reply).
    if let Ok(perms) = Permissions::parse(stream) {
        let wire = perms.to_wire();
        assert_eq!(Permissions::parse(&wire), Ok(perms.clone()));
        let _ = format!("{perms}");
    }
});

/// Every message (or error) a reply decoder makes of `pieces`, and
/// whether it ended on a message boundary.
fn decode_replies<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> (Vec<String>, bool) {
    let mut decoder = ReplyDecoder::new();
    let mut out = Vec::new();
    for mut piece in pieces {
        while let Some(message) = decoder.decode(&mut piece) {
            out.push(format!("{message:?}"));
            // A broken stream stays broken: what follows is not decoded.
            if matches!(message, Err(BadMessage { header: None, .. })) {
                return (out, decoder.at_boundary());
            }
        }
    }
    (out, decoder.at_boundary())
}
