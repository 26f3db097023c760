"""The Lua scripts behind every decision: one atomic EVALSHA per request.

Both take the time from Redis (``TIME``) unless the caller passes one, so that every
application server agrees on the clock. Times are integer microseconds. Both return
``{allowed, remaining, retry_after_us, reset_after_us}`` and leave every key they write
with a TTL.
"""

from __future__ import annotations

# GCRA: the key holds the theoretical arrival time (TAT) of the next request. A request
# at ``now`` is admitted when ``max(tat, now) + T - burst * T <= now``; only admitted
# requests move the TAT, so refused retries never push the block further out.
# ARGV: emission interval T (us), burst, now (us, or "" for the server clock).
GCRA = """
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
  math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
"""

# Sliding-window log: a sorted set of admitted requests scored by time. Each member is
# the time plus a random suffix from the caller, so requests in the same microsecond
# are all counted; refused requests are not recorded.
# ARGV: window (us), limit, member suffix, now (us, or "" for the server clock).
SLIDING_WINDOW = """
local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, string.format('%.0f', now) .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(window / 1000)))
  return {1, limit - count - 1, 0, window}
end
local freeing = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
return {0, 0, tonumber(freeing[2]) + window - now, tonumber(newest[2]) + window - now}
"""
