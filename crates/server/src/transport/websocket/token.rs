//! A `/ws` session's client token: the [`Identity`] its commands are checked with, and
//! its two deadlines. At `exp − min(30 s, a third of the token's life)` the session
//! pushes `{"event":"refresh"}`; a `refresh` command with a new token for the same user
//! sets new deadlines; without one, the connection is closed with 3000 at `exp +
//! auth.refresh_grace_ms`. Between `exp` and that close, commands that act on channels
//! are answered `token_expired`. A session without a token has no deadline. Both
//! deadlines are served by the shared timer wheel (up to one tick late).

use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use switchboard_timer::WheelTimer;
use tokio::time::Instant;

use crate::auth::Identity;
use crate::backend::Asker;
use crate::channel::Caller;
use crate::error::ServerError;
use crate::state::AppState;
use crate::transport::expiry::instant_of;

/// The refresh request comes at most this long before `exp`.
const ASK_AHEAD: Duration = Duration::from_secs(30);

/// A session's token and deadlines (see the module docs).
#[derive(Debug)]
pub struct SessionToken {
    identity: Option<Identity>,
    deadlines: Option<Deadlines>,
    timer: WheelTimer,
    grace: Duration,
    /// Asks the application's backend about subscribes (when it is configured to).
    asker: Option<Box<Asker>>,
}

#[derive(Debug, Clone, Copy)]
struct Deadlines {
    ask_at: Instant,
    close_at: Instant,
    asked: bool,
}

/// What a deadline asks of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Push `{"event":"refresh"}`.
    AskRefresh,
    /// Close with 3000: the token expired and no new one came.
    Expired,
}

impl SessionToken {
    /// The token state of a session opened with `identity` (`None`: no token yet).
    pub fn new(state: &AppState, identity: Option<Identity>, asker: Option<Asker>) -> Self {
        let grace = state
            .config
            .auth
            .as_ref()
            .map_or(Duration::ZERO, |a| a.refresh_grace());
        let mut token = Self {
            identity: None,
            deadlines: None,
            timer: WheelTimer::new(state.clients.wheel().clone()),
            grace,
            asker: asker.map(Box::new),
        };
        if let Some(identity) = identity {
            token.set(identity);
        }
        token
    }

    /// The session's identity, if it has a token.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// What asks the application's backend about this session's subscribes.
    pub fn asker(&self) -> Option<&Asker> {
        self.asker.as_deref()
    }

    /// The session as the channel policy sees it.
    pub fn caller(&self) -> Caller<'_> {
        Caller::new(self.identity.as_ref())
    }

    /// Takes `identity` (a `connect` or `refresh`) and its deadlines.
    pub fn set(&mut self, identity: Identity) {
        self.deadlines = identity.expires.map(|exp| {
            let now = SystemTime::now();
            let life = exp.duration_since(now).unwrap_or(Duration::ZERO);
            let ask = exp.checked_sub(ASK_AHEAD.min(life / 3)).unwrap_or(now);
            Deadlines {
                ask_at: instant_of(ask),
                close_at: instant_of(exp)
                    .checked_add(self.grace)
                    .unwrap_or_else(|| instant_of(exp)),
                asked: false,
            }
        });
        self.identity = Some(identity);
    }

    /// `token_expired` once the token's `exp` has passed (the session is then waiting
    /// for a refresh); `Ok` without a token.
    pub fn fresh(&self) -> Result<(), ServerError> {
        match self.identity.as_ref().and_then(|i| i.expires) {
            Some(exp) if exp <= SystemTime::now() => Err(ServerError::TokenExpired),
            _ => Ok(()),
        }
    }

    /// Whether a deadline is pending (only then is [`SessionToken::due`] worth polling).
    pub fn has_deadline(&self) -> bool {
        self.deadlines.is_some()
    }

    /// The next deadline's demand, once it comes (never without a deadline).
    pub async fn due(&mut self) -> Due {
        poll_fn(|cx| {
            let Some(d) = &mut self.deadlines else {
                return Poll::Pending;
            };
            let at = if d.asked { d.close_at } else { d.ask_at };
            if self.timer.poll_until(at, cx).is_pending() {
                return Poll::Pending;
            }
            if d.asked {
                Poll::Ready(Due::Expired)
            } else {
                d.asked = true;
                Poll::Ready(Due::AskRefresh)
            }
        })
        .await
    }
}
