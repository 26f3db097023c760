"""Lua run atomically inside Redis for the cache's conditional writes.

Layout per logical key ``K`` (``user:42``), under the prefix ``hs:c:``:

- ``K`` — the cached value: ``<generation>|<json>``, with the TTL of the data set;
- ``K:lease`` — the token of the one caller allowed to fill ``K`` now (single flight);
- ``K:inv`` — the Redis time (µs) of the last invalidation, kept a few minutes;
- ``gen`` — the generation: a value stored under another generation is a miss.

Invalidation deletes the value and the lease, so a fill whose lease was taken before
the invalidation finds its token gone and is refused. A bulk warm takes no lease; it
is refused when ``K:inv`` is later than the Redis time read before its database query.
"""

from __future__ import annotations

# Redis time in microseconds as a decimal string (exact; Lua numbers are doubles).
_NOW_US = "local t = redis.call('TIME') local now = t[1] .. string.rep('0', 6 - #t[2]) .. t[2]"

# Make sure the generation exists (a fresh one, never reused: the Redis time), return it.
_ENSURE_GENERATION = (
    """
local gen = redis.call('GET', KEYS[1])
if not gen then
"""
    + _NOW_US
    + """
  gen = now
  redis.call('SET', KEYS[1], gen)
end
"""
)

# KEYS: gen, lease.  ARGV: token, lease ms.  Returns {acquired (0/1), generation}.
ACQUIRE_LEASE = (
    _ENSURE_GENERATION
    + """
local ok = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])
if ok then return {1, gen} end
return {0, gen}
"""
)

# KEYS: gen, lease, value.  ARGV: token, generation, payload, ttl s.
# Returns 1 stored, 0 refused (lease lost or generation moved).
FILL = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[3], ARGV[2] .. '|' .. ARGV[3], 'EX', ARGV[4])
return 1
"""

# KEYS: lease.  ARGV: token.  Give a lease back without storing (nothing to cache).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# KEYS: value, lease, inv.  ARGV: message, channel, inv ttl s.
INVALIDATE = (
    _NOW_US
    + """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], now, 'EX', ARGV[3])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
"""
)

# KEYS: gen, value, inv.  ARGV: generation, read-start time µs, payload, ttl s.
# Returns 1 stored, 0 already cached under this generation (never overwritten),
# -1 generation moved, -2 invalidated after the rows were read.
WARM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local inv = redis.call('GET', KEYS[3])
if inv and tonumber(inv) >= tonumber(ARGV[2]) then return -2 end
local current = redis.call('GET', KEYS[2])
if current and string.sub(current, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then return 0 end
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. ARGV[3], 'EX', ARGV[4])
return 1
"""

# On a Redis Cluster, where each key has its generation.  KEYS: gen, value, inv.
# ARGV: read-start time µs, payload, ttl s.  Returns as WARM.
CLUSTER_WARM = (
    _ENSURE_GENERATION
    + """
local inv = redis.call('GET', KEYS[3])
if inv and tonumber(inv) >= tonumber(ARGV[1]) then return -2 end
local current = redis.call('GET', KEYS[2])
if current and string.sub(current, 1, #gen + 1) == gen .. '|' then return 0 end
redis.call('SET', KEYS[2], gen .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1
"""
)

# KEYS: gen.  Returns {generation, Redis time µs}: where a bulk warm starts reading.
WARM_START = (
    _ENSURE_GENERATION
    + _NOW_US
    + """
return {gen, now}
"""
)
