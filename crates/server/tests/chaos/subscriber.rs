//! One chaos subscriber: subscribes with the Rust client over its transport from its own
//! last cursor, writes down every message and `reset` it receives (with the times that
//! bound when the server decided a `reset`), and comes back after every end of its
//! connection, whoever caused it. The cursor it resumes from is its own record of the
//! last message or `reset` it received, not the client's: a poll answer's cursor runs
//! ahead of messages the client has parsed but not yet handed out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use switchboard_client::{Client, Cursor, Event, ReceivedData, ReceivedEnvelope, Transport};
use tokio::sync::{mpsc, watch};

use crate::publisher::Progress;

/// One thing a subscriber received.
#[derive(Clone, Debug)]
pub(crate) enum Received {
    Message {
        cursor: Cursor,
        seq: u64,
        /// The payload named this subscriber's channel.
        right_channel: bool,
    },
    /// A `reset` to `cursor`, decided by the server between `lo` and `hi`: `lo` is when
    /// the request that brought it started (the subscription for streaming transports,
    /// the poll for polling ones), `hi` when it arrived.
    Reset {
        cursor: Cursor,
        lo: Instant,
        hi: Instant,
    },
    /// An envelope the test cannot read (no cursor, a payload not its own).
    Unreadable(String),
}

/// A subscriber's history, shared with the test.
#[derive(Debug)]
pub(crate) struct Log {
    pub(crate) transport: Transport,
    pub(crate) channel: String,
    /// Where it started (the channel's first message, which it does not receive).
    pub(crate) start: Cursor,
    /// The last message or `reset` received.
    pub(crate) position: Cursor,
    pub(crate) received: Vec<Received>,
    pub(crate) subscribes: u64,
    pub(crate) failed_subscribes: u64,
    /// Connections that ended other than by this subscriber's own close.
    pub(crate) ended: u64,
}

/// A running subscriber.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) log: Arc<Mutex<Log>>,
    /// Closes the current connection cleanly and stays away until this many more messages
    /// were published on its channel (0: resumes at once).
    pub(crate) leave: mpsc::Sender<u64>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub(crate) fn spawn(
        client: Client,
        transport: Transport,
        channel: String,
        start: Cursor,
        published: watch::Receiver<Progress>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let log = Arc::new(Mutex::new(Log {
            transport,
            channel,
            start,
            position: start,
            received: Vec::new(),
            subscribes: 0,
            failed_subscribes: 0,
            ended: 0,
        }));
        let (leave, leaves) = mpsc::channel(1);
        let task = tokio::spawn(run(client, log.clone(), leaves, published, stop));
        Self { log, leave, task }
    }
}

async fn run(
    client: Client,
    log: Arc<Mutex<Log>>,
    mut leaves: mpsc::Receiver<u64>,
    mut published: watch::Receiver<Progress>,
    mut stop: watch::Receiver<bool>,
) {
    let (transport, channel) = {
        let l = log.lock().unwrap();
        (l.transport, l.channel.clone())
    };
    let polling = matches!(transport, Transport::Poll | Transport::LongPoll);
    loop {
        if *stop.borrow() {
            return;
        }
        let lo = Instant::now();
        let since = log.lock().unwrap().position;
        let subscribed = tokio::time::timeout(
            Duration::from_secs(5),
            client.subscribe(transport, &[(channel.as_str(), Some(since))]),
        )
        .await;
        let Ok(Ok(mut sub)) = subscribed else {
            log.lock().unwrap().failed_subscribes += 1;
            let pause = rand::rng().random_range(20..100);
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(Duration::from_millis(pause)) => continue,
            }
        };
        log.lock().unwrap().subscribes += 1;
        let away = loop {
            let call = Instant::now();
            tokio::select! {
                _ = stop.changed() => return,
                away = leaves.recv() => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), sub.close()).await;
                    match away {
                        Some(away) => break away,
                        None => return,
                    }
                }
                next = sub.next() => match next {
                    Ok(env) => record(&log, env, if polling { call } else { lo }),
                    Err(_) => {
                        log.lock().unwrap().ended += 1;
                        break 0;
                    }
                },
            }
        };
        // Away in messages, not seconds: how many a given time brings depends on how busy
        // the machine is.
        let back = published.borrow().acked + away;
        let pause = rand::rng().random_range(0..30);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::timeout(
                Duration::from_secs(10),
                published.wait_for(|p| p.done || p.acked >= back),
            ) => {}
        }
        // A short random pause even after an end the subscriber did not choose, so a
        // server refusing every attempt is not hammered in a tight loop.
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(Duration::from_millis(pause)) => {}
        }
    }
}

fn record(log: &Mutex<Log>, env: ReceivedEnvelope, lo: Instant) {
    let hi = Instant::now();
    let mut l = log.lock().unwrap();
    let entry = match (env.event, env.cursor) {
        (Event::Message, Some(cursor)) => match payload(&env.data) {
            Some((ch, seq)) => Received::Message {
                cursor,
                seq,
                right_channel: ch == l.channel,
            },
            None => Received::Unreadable(format!("{env:?}")),
        },
        (Event::Reset, Some(cursor)) => Received::Reset { cursor, lo, hi },
        (Event::Message | Event::Reset, None) => Received::Unreadable(format!("{env:?}")),
        _ => return,
    };
    if let Received::Message { cursor, .. } | Received::Reset { cursor, .. } = &entry {
        l.position = *cursor;
    }
    l.received.push(entry);
}

/// `{"ch": NAME, "seq": N}` as the publisher wrote it.
fn payload(data: &ReceivedData) -> Option<(String, u64)> {
    #[derive(serde::Deserialize)]
    struct Payload {
        ch: String,
        seq: u64,
    }
    let ReceivedData::Json(text) = data else {
        return None;
    };
    let p: Payload = serde_json::from_str(text).ok()?;
    Some((p.ch, p.seq))
}
