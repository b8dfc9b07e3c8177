//! The Lua scripts that make each log operation atomic in Redis. Keys and entry formats
//! are described in `entry`. Time comes from Redis (`TIME`), so every node agrees on ages.
//!
//! A channel's hash is created on first use with the epoch the caller proposes (a random
//! one); if the hash is lost (the key expired, or Redis lost its data), the next use
//! creates a new epoch and old cursors are answered with `reset`. On a Redis Cluster the
//! hash also names the primary that last wrote it, and a channel touched first on
//! another primary (its replica took over after a failover, or its slot moved) starts a
//! new epoch too: the new primary may lack the last messages the old one acknowledged,
//! and reusing their offsets would make subscribers skip the new messages silently.
//!
//! The hash's `b` is the running byte count of the log as `history_bytes` counts it: each
//! entry's payload plus a constant the caller gives (the hub's
//! `STORED_MESSAGE_COST`). Every append adds to it and every entry trimmed takes its
//! share back, so trimming by size needs no scan of the list.

/// Functions both log scripts start with: `cost` is what an entry counts for in `b`,
/// `pop` drops the oldest entry and takes its cost off `b`, `trim_age` drops entries
/// older than `max_age` ms from the front of the log, `now_ms` is Redis's clock,
/// `epoch_of` reads (or creates) the channel's epoch, and on a cluster starts a new one
/// when the channel was last written by another primary (`n` in the hash: the cluster
/// node id of the primary that wrote it; a failover or a slot move changes it), `node_id`
/// is that id on a cluster and empty on one server.
const HELPERS: &str = r"
local function cost(e, each)
  local i = string.find(e, ':', 1, true) or 0
  return #e - i - 1 + each
end
local function pop(meta, log, each)
  local e = redis.call('LPOP', log)
  if not e then return false end
  if redis.call('HINCRBY', meta, 'b', -cost(e, each)) < 0 then
    redis.call('HSET', meta, 'b', 0)
  end
  return true
end
local function trim_age(meta, log, now, max_age, each)
  if max_age <= 0 then return end
  while true do
    local e = redis.call('LINDEX', log, 0)
    if not e then return end
    local t = tonumber(string.match(e, '^(%d+):'))
    if t and now - t > max_age then pop(meta, log, each) else return end
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function epoch_of(meta, log, proposed, fresh_ttl, me)
  local epoch = redis.call('HGET', meta, 'e')
  if epoch and me ~= '' and redis.call('HGET', meta, 'n') ~= me then
    -- Last written on another primary of this slot: replication is asynchronous, so
    -- this one may lack the tail that one acknowledged and pushed on the feed, and its
    -- next offsets would repeat ones already seen. A new epoch; the log is kept.
    epoch = proposed
    redis.call('HSET', meta, 'e', epoch, 'h', redis.call('LLEN', log), 'n', me)
  end
  if not epoch then
    epoch = proposed
    redis.call('HSET', meta, 'e', epoch, 'h', 0, 'b', 0)
    if me ~= '' then redis.call('HSET', meta, 'n', me) end
    redis.call('DEL', log)
    if fresh_ttl > 0 then redis.call('PEXPIRE', meta, fresh_ttl) end
  end
  return epoch
end
local function node_id(on_cluster)
  if on_cluster == '1' then return redis.call('CLUSTER', 'MYID') end
  return ''
end
";

/// KEYS: meta, log, feed, and the idempotency key's key when there is one. ARGV:
/// proposed epoch, kind letter, payload, max_len, max_age ms (0: none), expiry ms (0:
/// none, and an expiry set by a read is removed), idempotency window ms (0: no key),
/// max_bytes, the constant each entry counts besides its payload, the command that
/// publishes on the feed (`PUBLISH`, or `SPUBLISH` on a cluster: the feed channel has
/// the channel's hash tag, so it is in the script's slot), `1` on a cluster (else `0`).
/// Returns `{epoch, offset, duplicate}`.
///
/// Looks the idempotency key up, appends, trims (by count, bytes and age, the oldest
/// first), publishes the feed message, all in one step: offsets and live delivery follow
/// one order, and a key given to two nodes at once stores one message (the second finds
/// the key and answers the first's cursor, `duplicate` 1, storing and publishing
/// nothing).
pub(crate) fn publish() -> String {
    format!(
        "{HELPERS}{}",
        r"
local window = tonumber(ARGV[7])
if window > 0 then
  local seen = redis.call('GET', KEYS[4])
  if seen then
    local e, h = string.match(seen, '^(%x+):(%d+)$')
    if e then return {e, tonumber(h), 1} end
  end
end
local now = now_ms()
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[1], 0, node_id(ARGV[11]))
local head = redis.call('HINCRBY', KEYS[1], 'h', 1)
local entry = now .. ':' .. ARGV[2] .. ARGV[3]
local max_len = tonumber(ARGV[4])
local max_bytes = tonumber(ARGV[8])
local each = tonumber(ARGV[9])
if max_len > 0 then
  local len = redis.call('RPUSH', KEYS[2], entry)
  local bytes = redis.call('HINCRBY', KEYS[1], 'b', #ARGV[3] + each)
  while len > 0 and (len > max_len or bytes > max_bytes) do
    pop(KEYS[1], KEYS[2], each)
    len = len - 1
    bytes = tonumber(redis.call('HGET', KEYS[1], 'b'))
  end
  trim_age(KEYS[1], KEYS[2], now, tonumber(ARGV[5]), each)
else
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'b', 0)
end
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
if window > 0 then
  redis.call('SET', KEYS[4], epoch .. ':' .. head, 'PX', window)
end
redis.call(ARGV[10], KEYS[3], 'm' .. epoch .. ':' .. head .. ':' .. entry)
return {epoch, head, 0}
"
    )
}

/// KEYS: meta, log. ARGV: proposed epoch, since epoch (empty: no cursor), since offset,
/// limit (-1: none), max_age ms (0: none), expiry ms of a channel nothing was published
/// to (a channel only ever read, e.g. polled under a mistyped name, must not stay
/// forever; each read renews it, so the epoch a poller was given stays while it polls),
/// the constant each entry counts besides its payload, `1` on a cluster (else `0`).
///
/// Returns `{epoch, head, first, status, entries...}`: `first` is the offset of the first
/// entry returned; `status` is a bit set, 1: `limit` cut the entries, 2: the cursor
/// cannot be continued (other epoch, ahead of the head, or before what is retained), and
/// the entries are then everything still held, from the oldest (`first - 1` is the
/// earliest continuable position). A reset and what is held come from one atomic read.
pub(crate) fn history() -> String {
    format!(
        "{HELPERS}{}",
        r"
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[6]), node_id(ARGV[8]))
trim_age(KEYS[1], KEYS[2], now_ms(), tonumber(ARGV[5]), tonumber(ARGV[7]))
local head = tonumber(redis.call('HGET', KEYS[1], 'h'))
if head == 0 and tonumber(ARGV[6]) > 0 then
  -- Nothing published yet: the cursor this read hands out stays valid for the next
  -- publish as long as someone reads the channel at least once per expiry.
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
end
local len = redis.call('LLEN', KEYS[2])
local first = head - len + 1
local limit = tonumber(ARGV[4])
local start, take
local status = 0
if ARGV[2] == '' then
  take = len
  if limit >= 0 and take > limit then take = limit end
  start = len - take
else
  local since = tonumber(ARGV[3])
  if ARGV[2] ~= epoch or since > head or since < first - 1 then
    status = 2
    start = 0
  else
    start = since - first + 1
  end
  local available = len - start
  take = available
  if limit >= 0 and take > limit then take = limit end
  if take < available then status = status + 1 end
end
local out = {epoch, head, first + start, status}
if take > 0 then
  local items = redis.call('LRANGE', KEYS[2], start, start + take - 1)
  for i = 1, #items do out[#out + 1] = items[i] end
end
return out
"
    )
}

/// KEYS: presence. ARGV: client id. Removes the entry; returns it, or nil.
pub(crate) const PRESENCE_REMOVE: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then redis.call('HDEL', KEYS[1], ARGV[1]) end
return v
";

/// KEYS: presence. ARGV: client id, the value read. Removes the entry only if it still
/// holds that value (a node that died: the entry is not rewritten meanwhile by a node
/// that came back); returns 1 if it did, so one node announces its `leave`.
pub(crate) const PRESENCE_DROP: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
";

/// KEYS: every node's deadline (sorted set, ms by Redis's clock). ARGV: node id, TTL ms.
/// Moves the node's deadline to now + TTL; returns the ids whose deadline has passed (at
/// most 16 per call), the nodes to reap. Passed means before now, not at now: Redis
/// keeps a key through the millisecond of its expiry, and the heartbeat key written just
/// before the deadline may expire in the deadline's millisecond (see `presence`).
pub(crate) const NODE_BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, 16)
";
