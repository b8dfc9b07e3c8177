//! Redis calls the broker's modules share: a redis-crate error as a [`BrokerError`], a
//! publish on a feed (a channel's, or the control feed), the items of a `SCAN`.

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisError};
use switchboard_hub::BrokerError;

use crate::entry::key;

/// Connection trouble is [`BrokerError::Unavailable`] (HTTP 503); anything else is
/// [`BrokerError::Internal`].
pub(crate) fn error(e: &RedisError) -> BrokerError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        BrokerError::Unavailable(e.to_string())
    } else {
        BrokerError::Internal(e.to_string())
    }
}

/// Publishes `data` on the feed of `channel` (a channel's, or `control::CHANNEL`);
/// resolves with how many subscribed connections (nodes) Redis handed it to.
pub(crate) async fn feed_publish(
    conn: &mut ConnectionManager,
    channel: &str,
    data: &[u8],
) -> Result<usize, BrokerError> {
    let n: i64 = conn
        .publish(key(channel, 'f'), data)
        .await
        .map_err(|e| error(&e))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The next item of a redis-crate async iterator.
pub(crate) async fn futures_next<T: redis::FromRedisValue + Unpin + Send>(
    it: &mut redis::AsyncIter<'_, T>,
) -> Option<T> {
    loop {
        match it.next_item().await {
            Some(Ok(v)) => return Some(v),
            // A key that does not decode is not one of ours.
            Some(Err(_)) => continue,
            None => return None,
        }
    }
}
