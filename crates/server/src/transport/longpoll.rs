//! Long-polling: `GET /ch/NAME?transport=longpoll&since=CURSOR` (or `/sub?…`). If
//! anything is newer than the cursor, answered at once (as a poll would be); otherwise
//! held until a message arrives, the timeout passes (`limits.longpoll_timeout_ms`,
//! default 30 s; answered with no messages and the same cursor) or the server shuts down
//! (answered at once the same way, so the client re-polls another node). No state is kept
//! between requests: the cursor in the URL is all a node needs, so every request may use
//! a new TCP connection and land on any node. Bodies are the poll bodies
//! ([`super::poll`], `format=compact` included). While held, the request counts as a subscriber, but not in
//! presence (it would join and leave on every cycle).

use std::future::poll_fn;
use std::task::Poll;

use axum::response::Response;
use switchboard_hub::SubscribeOptions;
use switchboard_timer::WheelTimer;
use tokio::time::Instant;

use crate::error::ServerError;
use crate::observe::counters::Transport;
use crate::state::AppState;
use crate::transport::poll::{Answer, MAX_BATCH};
use crate::transport::{Feed, FeedEvent, Target};

/// Answers a long-poll.
///
/// Shutdown and the backend's disconnect reach a held request through its subscriptions:
/// the hub closes them (as for SSE and native WebSocket), so the request waits on its
/// feed and its timeout only. The timeout is served by the registry's shared coarse
/// wheel, so it may end up to one wheel resolution (half a second) late.
pub async fn respond(
    state: &AppState,
    targets: &[Target],
    native: bool,
    compact: bool,
    user: Option<String>,
) -> Result<Response, ServerError> {
    // Counted open (`switchboard_connections`) while the request is held.
    let client = state.clients.register_hub_kicked(user, Transport::Longpoll);
    // The hub registers each subscription for live delivery before reading the gap, so
    // nothing published between "is there news?" and "wait for news" goes unseen.
    let mut feed = Feed::open_with(
        state,
        targets,
        &client,
        SubscribeOptions::without_presence(),
    )
    .await?;
    let mut answer = Answer::new(native).compact(compact);
    for s in feed.subscriptions() {
        answer.position(s.channel(), s.position());
    }
    collect_ready(&mut feed, &mut answer);
    // After subscribing: a shutdown that began meanwhile may have swept the hub before
    // these subscriptions were there, so it is answered now rather than waited out.
    if answer.is_empty() && !state.shutdown.is_triggered() {
        let at = Instant::now() + state.config.limits.longpoll_timeout();
        // Cancelled when dropped: most long-polls are answered long before their timeout.
        let mut timer = WheelTimer::new(state.clients.wheel().clone());
        loop {
            let ev = poll_fn(|cx| match feed.poll_next(cx) {
                Poll::Ready(ev) => Poll::Ready(Some(ev)),
                Poll::Pending => timer.poll_until(at, cx).map(|()| None),
            })
            .await;
            match ev {
                Some(FeedEvent::Message(m)) => {
                    answer.message(&m);
                    collect_ready(&mut feed, &mut answer);
                    if !answer.is_empty() {
                        break;
                    }
                    // A join/leave event only: keep waiting.
                }
                Some(FeedEvent::Closed { .. }) | None => break,
            }
        }
    }
    Ok(answer.into_response())
}

fn collect_ready(feed: &mut Feed, answer: &mut Answer) {
    while answer.len() < MAX_BATCH {
        match feed.try_next() {
            Some(FeedEvent::Message(m)) => answer.message(&m),
            Some(FeedEvent::Closed { .. }) | None => return,
        }
    }
    // Full: if anything else is ready, say so (it is not lost: the next request asks
    // from the cursor of the last message delivered here).
    if matches!(feed.try_next(), Some(FeedEvent::Message(_))) {
        answer.set_more();
    }
}
