//! A throwaway `redis-server` for tests: started on a free loopback port without
//! persistence, stopped (by its PID) when dropped. Needs `redis-server` on the `PATH`
//! (Debian: `apt-get install redis-server`). And [`Gate`], a loopback TCP proxy in front
//! of it whose connections a test can cut, as a network partition would cut one node;
//! [`publish_when_back`], a publish retried while Redis comes back.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` of the caller's own.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one on a free port of 127.0.0.1 and waits (at most 10 s) until it accepts
    /// connections.
    ///
    /// # Panics
    /// If `redis-server` cannot be started, with what to install.
    pub fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let dir =
            std::env::temp_dir().join(format!("switchboard-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let child = spawn(port, &dir);
        RedisServer { child, port, dir }
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (it can be started again with [`RedisServer::restart_empty`]).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server and starts an empty one on the same port: all data is lost, as
    /// when a Redis without persistence restarts.
    pub fn restart_empty(&mut self) {
        self.stop();
        self.child = spawn(self.port, &self.dir);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(port: u16, dir: &Path) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A TCP proxy on a free port of 127.0.0.1 to a local port, whose connections a test can
/// cut: [`Gate::cut`] drops every proxied connection and refuses new ones (accepted, then
/// closed) until [`Gate::restore`]. Runs on the caller's tokio runtime; dropping it stops
/// it.
#[derive(Debug)]
pub struct Gate {
    port: u16,
    shared: std::sync::Arc<GateShared>,
    accepting: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct GateShared {
    closed: std::sync::atomic::AtomicBool,
    links: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl GateShared {
    fn drop_links(&self) {
        for link in self
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            link.abort();
        }
    }
}

impl Gate {
    /// Starts proxying to `127.0.0.1:target`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(target: u16) -> Gate {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let port = listener.local_addr().expect("bound").port();
        let shared = std::sync::Arc::new(GateShared::default());
        let state = shared.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if state.closed.load(Ordering::SeqCst) {
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                state
                    .links
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(link);
            }
        });
        Gate {
            port,
            shared,
            accepting,
        }
    }

    /// `redis://127.0.0.1:PORT/` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Drops every proxied connection and refuses new ones.
    pub fn cut(&self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.drop_links();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.shared
            .closed
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.accepting.abort();
        self.shared.drop_links();
    }
}

/// Publishes `payload` on `hub` until its Redis answers again (after a restart or a cut),
/// retrying every 50 ms for at most 20 s.
///
/// # Panics
/// On any other error, or when Redis is not back in time.
pub async fn publish_when_back(
    hub: &switchboard_hub::Hub,
    channel: &str,
    payload: switchboard_hub::Payload,
) -> switchboard_hub::Cursor {
    use switchboard_hub::{BrokerError, HubError};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match hub.publish(channel, payload.clone()).await {
            Ok(c) => return c,
            Err(HubError::Broker(BrokerError::Unavailable(_))) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("publish on {channel}: {e}"),
        }
    }
}
