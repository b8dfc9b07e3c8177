//! The native WebSocket's writer for direct delivery ([`switchboard_hub::direct`]): the
//! fan-out's pacer writes a waiting connection's envelope frames to its socket with one
//! `send`, instead of waking the connection's task to do it.
//!
//! Used on every event loop of `serve` (each a current-thread runtime, `crate::loops`), by
//! plain-TCP connections that have nothing else queued and whose frames are shared
//! ([`super::native`] decides): without permessage-deflate, or with it and
//! `server_no_context_takeover`, which the server always asks for (then each message goes
//! out as its one compressed frame, as the task would send it). Several frames waiting
//! for one connection are copied into the per-thread buffer of
//! [`switchboard_ws_tokio::with_scratch`], at most [`GATHER`] bytes, and sent together, as
//! [`switchboard_ws_tokio::poll_write_gathered`] does for a task's writes.
//!
//! Why it is worth an `unsafe` call: at 10,000 subscribers × 10 msgs/s (one message per
//! write) it saves the task's wake and poll and the socket's readiness checks per
//! delivery (`docs/perf/REPORT.md`, "Direct delivery", with the same-run pairs).

use std::io;

use switchboard_hub::{Message as HubMessage, Written};
use switchboard_ws::SharedFraming;

use super::compact::{payload_frame, ENVELOPES, PAYLOADS};
use super::WsFrame;

/// Most bytes gathered into one `send` (what the connection's own writes gather).
pub const GATHER: usize = switchboard_ws_tokio::GATHER_LIMIT;
/// Most messages gathered into one `send`.
const MAX_FRAMES: usize = 64;

/// A sink's kind for the hub: the connection's format (bit 0: [`ENVELOPES`] or
/// [`PAYLOADS`]) and its [`SharedFraming`] (bits 1–3: 0 for plain frames, else the
/// compressor's window bits less 8; bits 4–15: its compression threshold in bytes).
/// `None` when that does not fit (a threshold from 4 KiB on): the task then writes.
pub fn sink_kind(format: u8, shared: SharedFraming) -> Option<u16> {
    if format > 1 {
        return None;
    }
    let (bits, threshold) = shared.deflate().map_or((0, 0), |(b, t)| (b - 8, t));
    let threshold = u16::try_from(threshold).ok().filter(|t| *t < 1 << 12)?;
    Some(u16::from(format) | u16::from(bits) << 1 | threshold << 4)
}

/// The format and shared framing a [`sink_kind`] packs.
fn unpack(kind: u16) -> (u8, SharedFraming) {
    let format = (kind & 1) as u8;
    let shared = match ((kind >> 1) & 7) as u8 {
        0 => SharedFraming::PLAIN,
        bits => SharedFraming::deflated(bits + 8, usize::from(kind >> 4)),
    };
    (format, shared)
}

/// The frame of `m` for sinks of `format`, framed as `shared`; `None` when it has none (a
/// message that only travels as a compact control record: the connection's task sends it).
fn frame(format: u8, shared: SharedFraming, m: &HubMessage) -> Option<&[u8]> {
    let prepared = match format {
        ENVELOPES => m.encoded::<WsFrame>(),
        PAYLOADS => payload_frame(m)?,
        _ => return None,
    };
    Some(shared.frame_bytes(prepared))
}

/// A [`switchboard_hub::DirectWrite`]: sends the frames of `messages` (as sinks of `kind`
/// frame them, [`sink_kind`]) to `fd` as far as the socket takes them without waiting,
/// stopping before a message without such a frame.
pub fn write_frames(
    fd: i32,
    kind: u16,
    messages: &mut dyn Iterator<Item = &HubMessage>,
) -> Written {
    let (format, shared) = unpack(kind);
    let mut next = || messages.next().and_then(|m| frame(format, shared, m));
    let Some(first) = next() else {
        return Written::default();
    };
    let second = if first.len() < GATHER { next() } else { None };
    let Some(second) = second.filter(|s| first.len() + s.len() <= GATHER) else {
        // One frame (a second that does not fit was taken and is left for the next call).
        return written(send(fd, first), &[first.len()]);
    };
    switchboard_ws_tokio::with_scratch(|buf| {
        let mut lens = [0usize; MAX_FRAMES];
        let mut n = 0;
        for frame in [first, second] {
            buf.extend_from_slice(frame);
            lens[n] = frame.len();
            n += 1;
        }
        while n < MAX_FRAMES {
            let Some(frame) = next() else { break };
            if buf.len() + frame.len() > GATHER {
                break;
            }
            buf.extend_from_slice(frame);
            lens[n] = frame.len();
            n += 1;
        }
        let sent = send(fd, buf);
        written(sent, &lens[..n])
    })
}

/// How far a `send` of frames of `lens` bytes got.
fn written(sent: io::Result<usize>, lens: &[usize]) -> Written {
    let total: usize = lens.iter().sum();
    let Ok(mut n) = sent else {
        // Full (`EAGAIN`) or failed: the connection's task writes it, and meets any error.
        return Written {
            blocked: true,
            ..Written::default()
        };
    };
    crate::observe::counters::bytes_out(n);
    let blocked = n < total;
    let mut messages = 0;
    for len in lens {
        if n < *len {
            break;
        }
        n -= len;
        messages += 1;
    }
    Written {
        messages,
        partial: if blocked { n } else { 0 },
        blocked,
    }
}

/// One non-blocking `send` on the connection's socket.
#[allow(unsafe_code)]
fn send(fd: i32, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice of `buf.len()` bytes for the whole call, and `send`
    // only reads it. The descriptor is the connection's socket, open for as long as its
    // subscription's direct delivery is installed: the connection ends direct delivery
    // (under the inbox lock the pacer writes under) before it drops the socket.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_sink_kind_unpacks_to_what_it_packed() {
        for format in [ENVELOPES, PAYLOADS] {
            for shared in [
                SharedFraming::PLAIN,
                SharedFraming::deflated(15, 64),
                SharedFraming::deflated(9, 0),
                SharedFraming::deflated(12, 4095),
            ] {
                let kind = sink_kind(format, shared).unwrap();
                assert_eq!(unpack(kind), (format, shared));
            }
        }
        assert_eq!(
            sink_kind(ENVELOPES, SharedFraming::deflated(15, 4096)),
            None
        );
        assert_eq!(sink_kind(2, SharedFraming::PLAIN), None);
    }

    #[test]
    fn written_counts_whole_frames_and_the_partial_rest() {
        let lens = [10, 20, 30];
        let w = |n| written(Ok(n), &lens);
        assert_eq!(
            w(60),
            Written {
                messages: 3,
                partial: 0,
                blocked: false
            }
        );
        assert_eq!(
            w(35),
            Written {
                messages: 2,
                partial: 5,
                blocked: true
            }
        );
        assert_eq!(
            w(10),
            Written {
                messages: 1,
                partial: 0,
                blocked: true
            }
        );
        assert_eq!(
            w(0),
            Written {
                messages: 0,
                partial: 0,
                blocked: true
            }
        );
        let err = written(Err(io::ErrorKind::WouldBlock.into()), &lens);
        assert_eq!(
            err,
            Written {
                messages: 0,
                partial: 0,
                blocked: true
            }
        );
    }
}
