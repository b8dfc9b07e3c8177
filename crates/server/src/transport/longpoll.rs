//! Long-polling: `GET /ch/NAME?transport=longpoll&since=CURSOR` (or `/sub?…`). If
//! anything is newer than the cursor, answered at once (as a poll would be); otherwise
//! held until a message arrives, the timeout passes (`limits.longpoll_timeout_ms`,
//! default 30 s; answered with no messages and the same cursor) or the server shuts down
//! (answered at once the same way, so the client re-polls another node). No state is kept
//! between requests: the cursor in the URL is all a node needs, so every request may use
//! a new TCP connection and land on any node. Bodies are the poll bodies
//! ([`super::poll`]).

use axum::response::Response;

use crate::error::ServerError;
use crate::state::AppState;
use crate::transport::poll::{Answer, MAX_BATCH};
use crate::transport::{Feed, Target};

/// Answers a long-poll.
pub async fn respond(
    state: &AppState,
    targets: &[Target],
    native: bool,
) -> Result<Response, ServerError> {
    let mut feed = Feed::open(state, targets)?;
    let mut answer = Answer::new(native);
    for s in feed.subscribers() {
        answer.position(s.channel(), s.cursor());
    }
    // Subscribing under the channel's log lock put the gap in the backlog, so nothing can
    // be published between "is there news?" and "wait for news" unseen.
    collect_ready(&mut feed, &mut answer);
    if answer.is_empty() {
        let timeout = state.config.limits.longpoll_timeout();
        tokio::select! {
            item = feed.next() => {
                answer.item(&item);
                collect_ready(&mut feed, &mut answer);
            }
            () = tokio::time::sleep(timeout) => {}
            () = state.shutdown.wait() => {}
        }
    }
    Ok(answer.into_response())
}

fn collect_ready(feed: &mut Feed, answer: &mut Answer) {
    while answer.len() < MAX_BATCH {
        match feed.try_next() {
            Some(item) => answer.item(&item),
            None => return,
        }
    }
    if feed.try_next().is_some() {
        // Not delivered: the client asks again from the cursor it gets.
        answer.set_more();
    }
}
