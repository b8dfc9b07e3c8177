//! `FrameHeader::parse` on arbitrary bytes: never panics, never claims more bytes than it
//! was given, and whatever it parses re-encodes (minimally) into bytes that parse back to
//! the same header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_ws::frame::MAX_HEADER_LEN;
use switchboard_ws::FrameHeader;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((header, used))) = FrameHeader::parse(data) else {
        return;
    };
    assert!(used <= data.len(), "consumed {used} of {}", data.len());
    assert!(used <= MAX_HEADER_LEN);
    // Parsing is a pure function of the header bytes alone.
    assert_eq!(FrameHeader::parse(&data[..used]), Ok(Some((header, used))));

    let mut buf = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut buf);
    assert_eq!(n, header.encoded_len());
    assert!(
        n <= used,
        "minimal encoding ({n}) longer than the input's ({used})"
    );
    assert_eq!(FrameHeader::parse(&buf[..n]), Ok(Some((header, n))));
    // Every strict prefix of a header needs more input.
    for cut in 0..n {
        assert_eq!(FrameHeader::parse(&buf[..cut]), Ok(None));
    }
});
