"""Tunables of the tiered cache, read from settings when the cache is first used."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

# Longest an L1 entry may live: the backstop for a lost invalidation message.
L1_TTL_CEILING_SECONDS = 5.0


@dataclass(frozen=True)
class CacheConfig:
    """How the tiers behave; see the "Multi-level cache" section of the settings."""

    l1_max_entries: int = 10_000
    l1_ttl: float = L1_TTL_CEILING_SECONDS
    lease_seconds: float = 2.0
    wait_seconds: float = 3.0
    retry_after_error_seconds: float = 1.0
    early_refresh_beta: float = 1.0
    invalidation_memory_seconds: int = 300
    channel: str = "cache:invalidate"
    prefix: str = "hs:c:"
    # Replicas that must confirm an invalidation (WAIT) before its record is deleted, and
    # how long to wait for them; 0: the master's answer is enough.
    replicas_to_confirm: int = 0
    replica_confirm_ms: int = 30

    @classmethod
    def from_settings(cls) -> CacheConfig:
        """Return the configuration in the settings (defaults for what is unset)."""
        return cls(
            l1_max_entries=settings.CACHE_L1_MAX_ENTRIES,
            l1_ttl=min(float(settings.CACHE_L1_TTL_SECONDS), L1_TTL_CEILING_SECONDS),
            lease_seconds=settings.CACHE_LEASE_SECONDS,
            wait_seconds=settings.CACHE_LEASE_SECONDS * 1.5,
            retry_after_error_seconds=settings.CACHE_REDIS_RETRY_SECONDS,
            early_refresh_beta=settings.CACHE_EARLY_REFRESH_BETA,
            channel=settings.CACHE_INVALIDATION_CHANNEL,
            replicas_to_confirm=settings.CACHE_INVALIDATION_REPLICAS,
            replica_confirm_ms=settings.CACHE_INVALIDATION_REPLICA_WAIT_MS,
        )
