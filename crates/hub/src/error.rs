//! The hub's errors. [`HubError`] is what hub operations return (each variant maps to one
//! HTTP status / command error code in the server); [`RecvError`] is what a subscription
//! reports instead of a message; [`BrokerError`] is a broker's failure.

use std::fmt;

use switchboard_proto::Cursor;

/// Why a channel name was refused (the client's fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelNameError {
    /// The name is empty.
    Empty,
    /// Longer than the configured maximum (bytes).
    TooLong {
        /// The configured maximum.
        max: usize,
    },
    /// A byte outside `A-Z a-z 0-9 _ - . : @ = ~` at this index.
    BadChar {
        /// Byte index of the first refused byte.
        index: usize,
    },
    /// A `:` with nothing before it (the namespace is empty).
    EmptyNamespace,
    /// A `:` with nothing after it.
    EmptyName,
}

impl fmt::Display for ChannelNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelNameError::Empty => f.write_str("channel name is empty"),
            ChannelNameError::TooLong { max } => write!(f, "channel name longer than {max} bytes"),
            ChannelNameError::BadChar { index } => write!(
                f,
                "channel name has a character outside [A-Za-z0-9_.:@=~-] at byte {index}"
            ),
            ChannelNameError::EmptyNamespace => {
                f.write_str("channel namespace before ':' is empty")
            }
            ChannelNameError::EmptyName => f.write_str("channel name after ':' is empty"),
        }
    }
}

/// A broker failure. Transient ones ([`BrokerError::Unavailable`]) are worth retrying.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker cannot be reached now (connection lost, timeout).
    Unavailable(String),
    /// The broker answered something unexpected.
    Internal(String),
    /// The broker holds as many channels as it may (`limit`): the operation would have
    /// made one more.
    TooManyChannels {
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerError::Unavailable(e) => write!(f, "broker unavailable: {e}"),
            BrokerError::Internal(e) => write!(f, "broker error: {e}"),
            BrokerError::TooManyChannels { limit } => {
                write!(f, "the server holds its most channels ({limit}) already")
            }
        }
    }
}

impl std::error::Error for BrokerError {}

/// Errors of hub operations. The suggested HTTP status follows each variant.
///
/// A cursor that can no longer be continued is not an error: history reads answer
/// [`crate::HistoryAnswer::Reset`] and subscriptions deliver a `reset` message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubError {
    /// The channel name is malformed (HTTP 400).
    InvalidChannel(ChannelNameError),
    /// The channel's namespace is not configured (HTTP 404).
    UnknownNamespace(String),
    /// Clients may not publish to this namespace (HTTP 403).
    PublishNotAllowed,
    /// Clients may not subscribe to this namespace (HTTP 403).
    SubscribeNotAllowed,
    /// Presence is not enabled for this namespace (HTTP 403).
    PresenceDisabled,
    /// The payload exceeds the namespace's `max_message_size` (HTTP 413).
    MessageTooLarge {
        /// Payload size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not what its kind promises (JSON invalid, text not UTF-8) (HTTP 400).
    InvalidPayload(&'static str),
    /// An idempotency key that is empty or longer than `max` bytes (HTTP 400).
    InvalidIdempotencyKey {
        /// The longest key taken.
        max: usize,
    },
    /// The broker failed; the operation did not happen or its outcome is unknown (HTTP 503).
    Broker(BrokerError),
    /// The operation would make one channel more than `limit` live ones (HTTP 503): on
    /// this node (its subscribed channels) or in its in-memory broker (channel logs).
    TooManyChannels {
        /// The limit.
        limit: usize,
    },
    /// The hub is shutting down (HTTP 503).
    Shutdown,
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::InvalidChannel(e) => write!(f, "invalid channel: {e}"),
            HubError::UnknownNamespace(ns) => write!(f, "unknown namespace `{ns}`"),
            HubError::PublishNotAllowed => f.write_str("publishing is not allowed on this channel"),
            HubError::SubscribeNotAllowed => {
                f.write_str("subscribing is not allowed on this channel")
            }
            HubError::PresenceDisabled => f.write_str("presence is not enabled on this channel"),
            HubError::MessageTooLarge { size, max } => {
                write!(
                    f,
                    "message of {size} bytes exceeds the limit of {max} bytes"
                )
            }
            HubError::InvalidPayload(why) => write!(f, "invalid payload: {why}"),
            HubError::InvalidIdempotencyKey { max } => {
                write!(f, "an idempotency key must be 1 to {max} bytes")
            }
            HubError::Broker(e) => e.fmt(f),
            HubError::TooManyChannels { limit } => {
                write!(
                    f,
                    "the server holds its most live channels ({limit}) already"
                )
            }
            HubError::Shutdown => f.write_str("the hub is shutting down"),
        }
    }
}

impl std::error::Error for HubError {}

impl From<BrokerError> for HubError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::TooManyChannels { limit } => HubError::TooManyChannels { limit },
            e => HubError::Broker(e),
        }
    }
}

impl From<ChannelNameError> for HubError {
    fn from(e: ChannelNameError) -> Self {
        HubError::InvalidChannel(e)
    }
}

/// Why a subscription ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Its queue overflowed under [`crate::SlowConsumerPolicy::Close`].
    SlowConsumer,
    /// [`crate::Hub::disconnect`] (or `disconnect_user`) closed it.
    Disconnected,
    /// [`crate::Hub::shutdown`] closed it.
    Shutdown,
    /// Catching up from history failed because the broker is unavailable.
    BrokerUnavailable,
}

/// What [`crate::Subscription::recv`] reports instead of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// `missed` queued events were dropped ([`crate::SlowConsumerPolicy::DropOldest`]).
    /// Informational: the subscription now refills the gap from history (or delivers a
    /// `reset` message if history no longer has it) and continues.
    Lagged {
        /// How many queued events were dropped.
        missed: u64,
    },
    /// The subscription is over. Everything up to `resume_from` was delivered; a new
    /// subscription with `since = resume_from` continues without loss (or is told `reset`).
    Closed {
        /// Why.
        reason: CloseReason,
        /// The cursor of the last message delivered.
        resume_from: Cursor,
    },
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged { missed } => write!(f, "subscriber lagged, {missed} events dropped"),
            RecvError::Closed {
                reason,
                resume_from,
            } => {
                write!(
                    f,
                    "subscription closed ({reason:?}), resume from {resume_from}"
                )
            }
        }
    }
}

impl std::error::Error for RecvError {}
