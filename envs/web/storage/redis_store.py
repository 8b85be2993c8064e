"""``RedisStore``: the web store in one Redis server, shared by rollout workers across processes and nodes.

Same semantics as ``SqliteStore``: values stored once per content hash with a
reference count, a byte total, LRU eviction down to 90% of ``max_bytes``. Each
write, read and delete is one Lua script, so it is atomic among all clients and
costs one round trip. Layout under ``<namespace>:``: ``e:<key>`` (hash: content
hash, meta, created, used), ``b:<hash>`` (hash: data, refs), ``lru`` (sorted set
of keys by last use), ``bytes`` (the total). Scripts touch keys they compute, so
a single Redis server (or a replicated one) is required, not Redis Cluster.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator
from urllib.parse import urlsplit

from deepresearch.envs.web.storage.store import (
    DEFAULT_STORE_TIMEOUT_S,
    ENTRY_OVERHEAD_BYTES,
    LOW_WATER,
    TOUCH_RESOLUTION_S,
    Hit,
    StoredEntry,
    WebStore,
    check_max_bytes,
    decode_value,
    encode_value,
)

_LUA_COMMON = f"""
local prefix = ARGV[1]
local function entry_bytes(key, meta) return #key + #meta + {ENTRY_OVERHEAD_BYTES} end
local function release(hash)
    local blob = prefix .. 'b:' .. hash
    if redis.call('HINCRBY', blob, 'refs', -1) <= 0 then
        redis.call('DECRBY', prefix .. 'bytes', redis.call('HSTRLEN', blob, 'data'))
        redis.call('DEL', blob)
    end
end
local function remove(key)
    local entry = prefix .. 'e:' .. key
    local found = redis.call('HMGET', entry, 'hash', 'meta')
    redis.call('ZREM', prefix .. 'lru', key)
    if not found[1] then return 0 end
    release(found[1])
    redis.call('DECRBY', prefix .. 'bytes', entry_bytes(key, found[2]))
    redis.call('DEL', entry)
    return 1
end
local function evict(target)
    local evicted = 0
    local total = tonumber(redis.call('GET', prefix .. 'bytes') or '0')
    while total > target do
        local oldest = redis.call('ZRANGE', prefix .. 'lru', 0, 63)
        if #oldest == 0 then break end
        for _, key in ipairs(oldest) do
            evicted = evicted + remove(key)
            total = tonumber(redis.call('GET', prefix .. 'bytes') or '0')
            if total <= target then break end
        end
    end
    return evicted
end
"""

# ARGV: prefix, key, hash, data, meta, created, now, max_bytes, low-water bytes
_PUT = _LUA_COMMON + """
local key, hash = ARGV[2], ARGV[3]
local entry, blob = prefix .. 'e:' .. key, prefix .. 'b:' .. ARGV[3]
local old = redis.call('HMGET', entry, 'hash', 'meta')
if old[1] ~= hash then
    if redis.call('EXISTS', blob) == 0 then
        redis.call('HSET', blob, 'data', ARGV[4], 'refs', 0)
        redis.call('INCRBY', prefix .. 'bytes', #ARGV[4])
    end
    redis.call('HINCRBY', blob, 'refs', 1)
    if old[1] then release(old[1]) end
end
if old[2] then redis.call('DECRBY', prefix .. 'bytes', entry_bytes(key, old[2])) end
redis.call('HSET', entry, 'hash', hash, 'meta', ARGV[5], 'created', ARGV[6], 'used', ARGV[7])
redis.call('INCRBY', prefix .. 'bytes', entry_bytes(key, ARGV[5]))
redis.call('ZADD', prefix .. 'lru', ARGV[7], key)
if tonumber(redis.call('GET', prefix .. 'bytes')) > tonumber(ARGV[8]) then return evict(tonumber(ARGV[9])) end
return 0
"""

# ARGV: prefix, key, now, touch resolution
_GET = """
local prefix, key, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local entry = prefix .. 'e:' .. key
local found = redis.call('HMGET', entry, 'hash', 'meta', 'created', 'used')
if not found[1] then return false end
local data = redis.call('HGET', prefix .. 'b:' .. found[1], 'data')
if not data then return false end
if now - tonumber(found[4]) > tonumber(ARGV[4]) then
    redis.call('HSET', entry, 'used', ARGV[3])
    redis.call('ZADD', prefix .. 'lru', ARGV[3], key)
end
return {data, found[2], found[3]}
"""

_DELETE = _LUA_COMMON + "return remove(ARGV[2])"
_EVICT = _LUA_COMMON + "return evict(tonumber(ARGV[2]))"


def describe_redis_url(url: str) -> str:
    """``redis://host:port/db`` without user or password, for messages."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or "localhost"
    return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path or '/0'}"


class RedisStore(WebStore):
    def __init__(self, url: str, max_bytes: int, namespace: str, socket_timeout_s: float = DEFAULT_STORE_TIMEOUT_S) -> None:
        import redis

        self.max_bytes = check_max_bytes(max_bytes)
        self.location = f"{describe_redis_url(url)} [{namespace}]"
        self.prefix = f"{namespace}:"
        self._client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s, health_check_interval=30
        )
        try:
            self._client.ping()
        except redis.RedisError as error:
            raise ValueError(f"could not reach the Redis store at {self.location}: {type(error).__name__}") from None
        self._put = self._client.register_script(_PUT)
        self._get = self._client.register_script(_GET)
        self._delete = self._client.register_script(_DELETE)
        self._evict = self._client.register_script(_EVICT)

    def get(self, key: str) -> Hit | None:
        found = self._get(args=[self.prefix, key, repr(time.time()), TOUCH_RESOLUTION_S])
        if not found:
            return None
        data, meta, created = found
        return Hit(decode_value(data), json.loads(meta), float(created))

    def put(self, key: str, value: Any, meta: dict[str, Any], created: float | None = None) -> None:
        content_hash, data = encode_value(value)
        now = time.time()
        self._put(args=[
            self.prefix, key, content_hash, data, json.dumps(meta, sort_keys=True),
            repr(now if created is None else created), repr(now), self.max_bytes, int(self.max_bytes * LOW_WATER),
        ])

    def delete(self, key: str) -> bool:
        return bool(self._delete(args=[self.prefix, key]))

    def evict_to(self, max_bytes: int) -> int:
        return int(self._evict(args=[self.prefix, max_bytes]))

    def entries(self) -> Iterator[StoredEntry]:
        for raw_key, _ in self._client.zrange(f"{self.prefix}lru", 0, -1, withscores=True):
            found = self._client.hmget(f"{self.prefix}e:".encode() + raw_key, "hash", "meta", "created", "used")
            if found[0] is None:
                continue  # evicted meanwhile
            yield StoredEntry(raw_key.decode(), found[0].decode(), json.loads(found[1]), float(found[2]), float(found[3]))

    def value(self, content_hash: str) -> Any | None:
        data = self._client.hget(f"{self.prefix}b:{content_hash}", "data")
        return None if data is None else decode_value(data)

    def usage(self) -> dict[str, int]:
        pattern = "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in self.prefix) + "b:*"
        values = sum(1 for _ in self._client.scan_iter(match=pattern, count=1000))
        return {
            "entries": int(self._client.zcard(f"{self.prefix}lru")),
            "values": values,
            "bytes": int(self._client.get(f"{self.prefix}bytes") or 0),
            "max_bytes": self.max_bytes,
        }

    def close(self) -> None:
        self._client.close()
