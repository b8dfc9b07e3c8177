//! The cutting relay: a loopback TCP relay between the subscribers and the server, so
//! the test can end any subscriber connection the ways a network or a client does,
//! without the client library's help. The subscribers connect to the relay; the relay
//! connects to the server for each of them and copies bytes both ways until told to
//! [`Cut`] (or either side closes, which it passes on as the same kind of close).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How a relayed connection is ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// A clean close (FIN) towards both peers.
    Fin,
    /// A reset (`SO_LINGER` 0) towards both peers.
    Rst,
    /// Passes on only the first half of the next bytes the server sends (the middle of
    /// a frame, an event or an answer), then resets both peers.
    MidRead,
}

/// Counts of what the relay did, for the test's report.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) accepted: AtomicU64,
    pub(crate) fin: AtomicU64,
    pub(crate) rst: AtomicU64,
    pub(crate) mid_read: AtomicU64,
    /// The server could not be reached (restarting, or, rarely, a loopback port still in
    /// TIME_WAIT from an earlier connection): the subscriber was reset at once.
    pub(crate) refused: AtomicU64,
}

type Live = Arc<Mutex<HashMap<u64, mpsc::Sender<Cut>>>>;

/// A running relay in front of `upstream`.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    pub(crate) counts: Arc<Counts>,
    live: Live,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub(crate) fn start(upstream: SocketAddr) -> Self {
        let listener = crate::listen("127.0.0.1:0".parse().unwrap());
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let live: Live = Arc::default();
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            live.clone(),
            counts.clone(),
        ));
        Self {
            addr,
            counts,
            live,
            accept,
        }
    }

    /// Ends one relayed connection chosen at random (`false` when none is open).
    pub(crate) fn cut_random(&self, cut: Cut) -> bool {
        let live = self.live.lock().unwrap();
        if live.is_empty() {
            return false;
        }
        let i = rand::rng().random_range(0..live.len());
        let sent = live
            .values()
            .nth(i)
            .is_some_and(|tx| tx.try_send(cut).is_ok());
        drop(live);
        if sent {
            let c = match cut {
                Cut::Fin => &self.counts.fin,
                Cut::Rst => &self.counts.rst,
                Cut::MidRead => &self.counts.mid_read,
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Relays still running end with their first failed read or write.
        for (_, tx) in self.live.lock().unwrap().drain() {
            let _ = tx.try_send(Cut::Rst);
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, live: Live, counts: Arc<Counts>) {
    let next_id = AtomicU64::new(0);
    loop {
        let Ok((down, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        counts.accepted.fetch_add(1, Ordering::Relaxed);
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(1);
        live.lock().unwrap().insert(id, tx);
        let (live, counts) = (live.clone(), counts.clone());
        tokio::spawn(async move {
            relay(down, upstream, rx, &counts).await;
            live.lock().unwrap().remove(&id);
        });
    }
}

/// How a relay ended, and so how both sockets are closed.
enum End {
    Fin,
    Rst,
}

async fn relay(
    mut down: TcpStream,
    upstream: SocketAddr,
    mut cuts: mpsc::Receiver<Cut>,
    counts: &Counts,
) {
    let _ = down.set_nodelay(true);
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        close(down, &End::Rst).await;
        return;
    };
    let _ = up.set_nodelay(true);
    let end = {
        let (mut dr, mut dw) = down.split();
        let (mut ur, mut uw) = up.split();
        let mut to_server = vec![0u8; 4096];
        let mut to_client = vec![0u8; 8192];
        let mut mid_read = false;
        loop {
            tokio::select! {
                cut = cuts.recv() => match cut {
                    Some(Cut::Fin) | None => break End::Fin,
                    Some(Cut::Rst) => break End::Rst,
                    Some(Cut::MidRead) => mid_read = true,
                },
                r = dr.read(&mut to_server) => match r {
                    Ok(0) => break End::Fin,
                    Ok(n) => if uw.write_all(&to_server[..n]).await.is_err() { break End::Rst },
                    Err(_) => break End::Rst,
                },
                r = ur.read(&mut to_client) => match r {
                    Ok(0) => break End::Fin,
                    Ok(n) if mid_read => {
                        // Half of what the server just wrote: a frame, event or answer
                        // cut in its middle.
                        let _ = dw.write_all(&to_client[..n / 2]).await;
                        break End::Rst;
                    }
                    Ok(n) => if dw.write_all(&to_client[..n]).await.is_err() { break End::Rst },
                    Err(_) => break End::Rst,
                },
            }
        }
    };
    close(down, &end).await;
    close(up, &end).await;
}

async fn close(mut s: TcpStream, end: &End) {
    match end {
        // Linger 0: the close sends a reset (and does not block, the deprecation's concern).
        End::Rst => {
            let _ = s.set_zero_linger();
        }
        End::Fin => {
            let _ = tokio::time::timeout(Duration::from_secs(1), s.shutdown()).await;
        }
    }
}
