"""``make_web_backend``: a ``WebBackend`` from a ``WebConfig`` and/or its fields as keyword arguments."""

from __future__ import annotations

from dataclasses import replace

from deepresearch.envs.web.backend.web_backend import WebBackend
from deepresearch.envs.web.config import WebConfig
from deepresearch.envs.web.pages.fetch import PageFetcher
from deepresearch.envs.web.pages.safety import UrlPolicy
from deepresearch.envs.web.providers.search_apis import make_provider, provider_name
from deepresearch.envs.web.snapshots.snapshot import Snapshot
from deepresearch.envs.web.storage.cache import WebCache, default_cache_path


def make_web_backend(config: WebConfig | None = None, **overrides) -> WebBackend:
    """Build the provider (not when replaying without a live fallback: no key or network is needed then),
    the URL policy, the cache and the snapshot the config asks for."""
    if config is None:
        config = WebConfig(**overrides)
    elif overrides:
        config = replace(config, **overrides)
    offline = config.web_mode == "replay" and not config.replay_fallback_live
    provider = None
    if not offline:
        provider = make_provider(
            config.provider,
            base_url=config.provider_base_url,
            timeout_s=config.search_timeout_s,
            retry=config.retry,
            rate_per_s=config.rate_per_s,
            burst=config.burst,
        )
    policy = UrlPolicy(allow_private=config.allow_private, allowlist=config.allowlist)
    cache = None
    if config.use_cache and not offline:
        cache = WebCache(config.cache_path or default_cache_path(), config.cache_ttl_s, config.cache_max_bytes, config.store_timeout_s)
    snapshot = None
    if config.web_mode != "live":
        snapshot = Snapshot(config.snapshot_path, config.snapshot_max_bytes, config.store_timeout_s, replay=config.web_mode == "replay")
    return WebBackend(
        provider, PageFetcher(policy, config.fetch), cache, config, snapshot, provider_name=provider_name(config.provider)
    )
