//! An idle [`Connection`] reduced to what it needs to go on: its configuration, its
//! clock and its role. A driver that keeps many idle connections (a server's parked
//! WebSockets) holds this instead of the whole state machine: 48 bytes against 96, with
//! nothing received in part, nothing queued and no compression, so nothing is lost.

use std::sync::Arc;

use super::Connection;
use crate::clock::Clock;
use crate::config::{Config, Role};

/// See the module docs. [`IdleConnection::resume`] gives the connection back.
#[derive(Debug)]
pub struct IdleConnection {
    config: Arc<Config>,
    clock: Clock,
    role: Role,
}

impl Connection {
    /// This connection as an [`IdleConnection`], when it is idle: open (no close sent or
    /// received, no fault, no timeout), between frames with every event taken, nothing
    /// queued to send and no permessage-deflate. Otherwise the connection itself,
    /// unchanged (but for its receiver's memory, released as by
    /// [`Connection::release_idle_memory`]).
    #[allow(clippy::result_large_err)] // It comes back as it was, by value.
    pub fn into_idle(mut self) -> Result<IdleConnection, Self> {
        self.rx.release_if_idle();
        let idle = self.deflate.is_none()
            && self.rx.is_empty()
            && self.out.is_empty()
            && !(self.close_sent
                || self.close_received
                || self.failed
                || self.input_failed
                || self.timed_out);
        if !idle {
            return Err(self);
        }
        Ok(IdleConnection {
            config: self.config,
            clock: self.clock,
            role: self.role,
        })
    }
}

impl IdleConnection {
    /// The connection again, as it was.
    pub fn resume(self) -> Connection {
        Connection::open(self.role, self.config, None, self.clock)
    }

    pub fn role(&self) -> Role {
        self.role
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, Instant};

    use super::*;
    use crate::connection::{Event, State};
    use crate::frame::{encode_frame, FrameHeader, OpCode};

    fn server(now: Instant) -> Connection {
        let config = Config {
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(60)),
            ..Config::default()
        };
        Connection::new(Role::Server, config, None, now)
    }

    fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        let header = FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: Some([1, 2, 3, 4]),
            payload_len: payload.len() as u64,
        };
        encode_frame(&mut out, header, payload);
        out.to_vec()
    }

    #[test]
    fn an_idle_connection_keeps_its_clock_and_goes_on() {
        let t0 = Instant::now();
        let mut c = server(t0);
        let t1 = t0 + Duration::from_secs(5);
        c.handle_input(&masked(OpCode::Text, b"hi"), t1);
        assert_eq!(c.poll_event(), Some(Event::Text("hi".into())));
        let deadline = c.poll_timeout();
        let idle = c.into_idle().unwrap();
        assert!(std::mem::size_of::<IdleConnection>() <= 48);
        assert_eq!(idle.role(), Role::Server);
        let mut c = idle.resume();
        assert_eq!(c.state(), State::Open);
        // The ping is due 30 s after the last input, as before.
        assert_eq!(c.poll_timeout(), deadline);
        c.handle_timeout(t1 + Duration::from_secs(30));
        assert!(c.pending_bytes() > 0, "a ping is queued");
    }

    #[test]
    fn a_busy_connection_stays_whole() {
        let t0 = Instant::now();
        // Output queued.
        let mut c = server(t0);
        c.send_text("x").unwrap();
        let mut c = c.into_idle().unwrap_err();
        assert!(c.pending_bytes() > 0);
        // A frame received in part.
        c.advance_transmit(c.pending_bytes());
        let frame = masked(OpCode::Binary, b"abcdef");
        c.handle_input(&frame[..4], t0);
        let mut c = c.into_idle().unwrap_err();
        c.handle_input(&frame[4..], t0);
        assert_eq!(c.poll_event(), Some(Event::Binary((&b"abcdef"[..]).into())));
        // An event not taken.
        c.handle_input(&masked(OpCode::Text, b"y"), t0);
        let mut c = c.into_idle().unwrap_err();
        assert_eq!(c.poll_event(), Some(Event::Text("y".into())));
        // Closing.
        c.close(crate::CloseCode::NORMAL, "").unwrap();
        c.advance_transmit(c.pending_bytes());
        let c = c.into_idle().unwrap_err();
        assert!(matches!(c.state(), State::Closing { .. }));
        // With deflate negotiated.
        let c = Connection::new(
            Role::Server,
            Config::default(),
            Some(crate::DeflateParams::default()),
            t0,
        );
        assert!(c.into_idle().is_err());
    }
}
