//! [`ParkedWebSocket`]: an idle [`WebSocket`] kept small while nothing happens on it (a
//! server's parked connections): the codec reduced to an
//! [`IdleConnection`](switchboard_ws::IdleConnection), no read or write state, and the
//! timer still registered, so that a deadline wakes whoever holds it.

use switchboard_ws::IdleConnection;

use super::{Timer, WebSocket};

/// See the module docs. [`WebSocket::park`] makes one, [`ParkedWebSocket::unpark`] gives
/// the connection back.
#[derive(Debug)]
pub struct ParkedWebSocket<S> {
    stream: S,
    conn: IdleConnection,
    timer: Timer,
    high_water: u32,
}

impl<S> WebSocket<S> {
    /// This connection as a [`ParkedWebSocket`], when it is idle: open, nothing received
    /// in part or not yet taken, nothing to write, no compression, the stream open both
    /// ways and no deadline passed since [`WebSocket::take_ticked`]. Otherwise the
    /// connection itself, unchanged.
    // The connection comes back as it was, by value: boxing it would allocate on every
    // connection that cannot park yet.
    #[allow(clippy::result_large_err)]
    pub fn park(self) -> Result<ParkedWebSocket<S>, Self> {
        if self.read_eof || self.done || self.ticked {
            return Err(self);
        }
        let Self {
            stream,
            conn,
            high_water,
            timer,
            ..
        } = self;
        match conn.into_idle() {
            Ok(conn) => Ok(ParkedWebSocket {
                stream,
                conn,
                timer,
                high_water,
            }),
            // Open both ways, no deadline untaken: as it was.
            Err(conn) => Err(Self::open(stream, conn, high_water, timer)),
        }
    }
}

impl<S> ParkedWebSocket<S> {
    /// The connection again, as it was.
    pub fn unpark(self) -> WebSocket<S> {
        WebSocket::open(self.stream, self.conn.resume(), self.high_water, self.timer)
    }

    /// The same over another stream: `f` turns the stream into the new one (a socket
    /// moved from one poller to another, say). When `f` fails, the connection is dropped
    /// and its error returned.
    pub fn try_map_stream<T, E>(
        self,
        f: impl FnOnce(S) -> Result<T, E>,
    ) -> Result<ParkedWebSocket<T>, E> {
        Ok(ParkedWebSocket {
            stream: f(self.stream)?,
            conn: self.conn,
            timer: self.timer,
            high_water: self.high_water,
        })
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}
