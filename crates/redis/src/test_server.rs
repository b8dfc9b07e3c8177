//! A throwaway `redis-server` for tests: started on a free loopback port without
//! persistence, stopped (by its PID) when dropped. Needs `redis-server` on the `PATH`
//! (Debian: `apt-get install redis-server`). And [`Gate`], a loopback TCP proxy in front
//! of it whose connections a test can cut, as a network partition would cut one node;
//! [`publish_when_back`], a publish retried while Redis comes back. And
//! [`RedisCluster`], a throwaway Redis Cluster of three primaries (and optionally a
//! replica each) made with `redis-cli --cluster create`.

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
    /// connections; another port is tried when the server exits at once (its port was
    /// taken meanwhile).
    ///
    /// # Panics
    /// If `redis-server` cannot be started, with what to install.
    pub fn start() -> RedisServer {
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free loopback port");
            let dir = std::env::temp_dir()
                .join(format!("switchboard-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            if let Some(child) = try_spawn(port, &dir, &[]) {
                return RedisServer { child, port, dir };
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("redis-server did not start on any of 10 free ports");
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
        self.child = spawn(self.port, &self.dir, &[]);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(port: u16, dir: &Path, extra: &[&str]) -> Child {
    try_spawn(port, dir, extra)
        .unwrap_or_else(|| panic!("redis-server did not start on port {port}"))
}

/// Starts `redis-server` on `port` and waits (at most 10 s) until it accepts
/// connections; `None` if it exits first: a port chosen free can be taken before the
/// server binds it (by an outgoing connection's ephemeral port, say), and the caller
/// then tries another.
fn try_spawn(port: u16, dir: &Path, extra: &[&str]) -> Option<Child> {
    let mut child = Command::new("redis-server")
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
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if !matches!(child.try_wait(), Ok(None)) || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child)
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

/// A running Redis Cluster of the caller's own: three primaries, and with
/// [`RedisCluster::with_replicas`] one replica each, every node a `redis-server` on a free
/// loopback port in its own temporary directory, stopped (by its PID) when dropped.
/// `cluster-node-timeout` is 1 s, so a replica takes over a few seconds after its
/// primary dies. Needs `redis-server` and `redis-cli` on the `PATH`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<ClusterNode>,
    dir: PathBuf,
}

#[derive(Debug)]
struct ClusterNode {
    child: Child,
    port: u16,
    alive: bool,
}

/// How long a node may be silent before the others count it failed, in ms.
const NODE_TIMEOUT_MS: &str = "1000";

impl RedisCluster {
    /// Three primaries, no replica; waits (at most 30 s) until every slot is served.
    ///
    /// # Panics
    /// If the cluster cannot be made, with the reason.
    pub fn start() -> RedisCluster {
        RedisCluster::make(0)
    }

    /// Three primaries and one replica of each, replicating.
    ///
    /// # Panics
    /// If the cluster cannot be made, with the reason.
    pub fn with_replicas() -> RedisCluster {
        RedisCluster::make(1)
    }

    fn make(replicas: usize) -> RedisCluster {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchboard-redis-cluster-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let mut nodes: Vec<ClusterNode> = Vec::new();
        while nodes.len() < 3 * (1 + replicas) {
            let port = free_cluster_port();
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("a temporary directory");
            let Some(mut child) = try_spawn(
                port,
                &node_dir,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    NODE_TIMEOUT_MS,
                    // A replica may always take over, however long it was cut off.
                    "--cluster-replica-validity-factor",
                    "0",
                ],
            ) else {
                continue;
            };
            // Another server may answer on a port taken meanwhile: this one then exits.
            std::thread::sleep(Duration::from_millis(200));
            if matches!(child.try_wait(), Ok(None)) {
                nodes.push(ClusterNode {
                    child,
                    port,
                    alive: true,
                });
            }
        }
        let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
        let cluster = RedisCluster { nodes, dir };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let mut creating = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli must be installed (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(60);
        let created = loop {
            if let Ok(Some(status)) = creating.try_wait() {
                break status.success();
            }
            if Instant::now() > deadline {
                let _ = creating.kill();
                let _ = creating.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            created,
            "redis-cli --cluster create failed on ports {ports:?}"
        );
        cluster.wait_until(
            Duration::from_secs(30),
            "every slot served and every replica in sync",
            |c| {
                c.live_ports().all(|p| {
                    cli(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
                        && (replicas == 0 || {
                            let role = cli(p, &["INFO", "replication"]);
                            role.contains("role:master") || role.contains("master_link_status:up")
                        })
                }) && c.primaries().len() == 3
            },
        );
        cluster
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,.../`: every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}/", seeds.join(","))
    }

    fn live_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes.iter().filter(|n| n.alive).map(|n| n.port)
    }

    /// The ports of the primaries that serve slots, as a live node sees them.
    ///
    /// # Panics
    /// If no node is alive.
    pub fn primaries(&self) -> Vec<u16> {
        let port = self.live_ports().next().expect("a live node");
        let mut out: Vec<u16> = cli(port, &["CLUSTER", "NODES"])
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let serving =
                    f.len() > 8 && f[2].split(',').any(|x| x == "master") && !f[2].contains("fail");
                serving
                    .then(|| {
                        f[1].split(['@', ','])
                            .next()?
                            .rsplit_once(':')?
                            .1
                            .parse()
                            .ok()
                    })
                    .flatten()
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The port of the primary that serves `key`'s slot.
    ///
    /// # Panics
    /// If no node is alive or the answers do not parse.
    pub fn primary_of(&self, key: &str) -> u16 {
        self.serving(key)
            .unwrap_or_else(|| panic!("no primary serves the slot of {key}"))
    }

    /// The port of the primary that serves `key`'s slot, if one does (none while a
    /// failover is under way).
    fn serving(&self, key: &str) -> Option<u16> {
        let port = self.live_ports().next().expect("a live node");
        let slot: u16 = cli(port, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("a slot");
        for line in cli(port, &["CLUSTER", "NODES"]).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].split(',').any(|x| x == "master") || f[2].contains("fail") {
                continue;
            }
            let serves = f[8..].iter().any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if lo <= slot && slot <= hi)
            });
            if serves {
                return f[1]
                    .split(['@', ','])
                    .next()
                    .and_then(|a| a.rsplit_once(':'))
                    .and_then(|(_, p)| p.parse().ok());
            }
        }
        None
    }

    /// Channel names `PREFIX0`, `PREFIX1`, …, one served by each primary (their keys
    /// `sb:{NAME}:…` live on three different shards), so that a test uses every shard.
    ///
    /// # Panics
    /// If the cluster does not have three primaries serving slots.
    pub fn channels_on_every_shard(&self, prefix: &str) -> Vec<String> {
        let primaries = self.primaries();
        assert_eq!(primaries.len(), 3, "{primaries:?}");
        let mut shards = Vec::new();
        let mut names = Vec::new();
        for i in 0.. {
            let name = format!("{prefix}{i}");
            let shard = self.primary_of(&format!("sb:{{{name}}}:m"));
            if !shards.contains(&shard) {
                shards.push(shard);
                names.push(name);
            }
            if names.len() == primaries.len() {
                break;
            }
        }
        names
    }

    /// Runs `redis-cli ARGS...` on the primary that serves `key`'s slot; its output.
    ///
    /// # Panics
    /// If no primary serves the slot.
    pub fn cli_on_primary_of(&self, key: &str, args: &[&str]) -> String {
        cli(self.primary_of(key), args)
    }

    /// Moves `key`'s slot, with its keys, to another primary, as `redis-cli --cluster
    /// reshard` does for each slot: `IMPORTING` on the target, `MIGRATING` on the source,
    /// `MIGRATE` of every key, then `SETSLOT … NODE` on every primary. Returns the port
    /// of its new primary.
    ///
    /// # Panics
    /// If the cluster has one primary only, or a step fails.
    pub fn move_slot_of(&self, key: &str) -> u16 {
        let from = self.primary_of(key);
        let to = *self
            .primaries()
            .iter()
            .find(|p| **p != from)
            .expect("another primary");
        let slot = cli(from, &["CLUSTER", "KEYSLOT", key]).trim().to_owned();
        let id = |port: u16| cli(port, &["CLUSTER", "MYID"]).trim().to_owned();
        let (from_id, to_id) = (id(from), id(to));
        let ok = |out: String, step: &str| {
            assert!(
                out.trim() == "OK",
                "moving slot {slot}: {step} answered {out:?}"
            );
        };
        ok(
            cli(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]),
            "IMPORTING",
        );
        ok(
            cli(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]),
            "MIGRATING",
        );
        loop {
            let keys = cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "100"]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let port = to.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().copied());
            ok(cli(from, &args), "MIGRATE");
        }
        for port in [to, from] {
            ok(
                cli(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]),
                "SETSLOT NODE",
            );
        }
        for port in self.primaries() {
            if port != to && port != from {
                let _ = cli(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
            }
        }
        self.wait_until(Duration::from_secs(10), "the slot moved", |c| {
            c.serving(key) == Some(to)
        });
        to
    }

    /// Kills the primary that serves `key`'s slot (`kill -9`) and waits (at most 30 s)
    /// until its replica took over and every slot is served again; returns the new
    /// primary's port.
    ///
    /// # Panics
    /// Without replicas, or when no replica takes over in time.
    pub fn kill_primary_of(&mut self, key: &str) -> u16 {
        let old = self.primary_of(key);
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == old)
            .expect("one of ours");
        let _ = node.child.kill();
        let _ = node.child.wait();
        node.alive = false;
        self.wait_until(Duration::from_secs(30), "a replica took over", |c| {
            c.live_ports()
                .all(|p| cli(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
                && c.serving(key).is_some_and(|p| p != old)
        });
        self.primary_of(key)
    }

    fn wait_until(&self, within: Duration, what: &str, done: impl Fn(&RedisCluster) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "Redis Cluster: not {what} in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-cli -p PORT ARGS...`'s output (empty if it failed).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A free loopback port whose cluster bus port (port + 10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().expect("bound").port();
        let bus_free = port
            .checked_add(10_000)
            .is_some_and(|bus| TcpListener::bind(("127.0.0.1", bus)).is_ok());
        if bus_free {
            return port;
        }
    }
}
