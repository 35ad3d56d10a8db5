"""``preservation stores check``: probe each store and compare it with its settings.

Probing writes, reads back and deletes one small object per store (see
``Store.probe``). The bucket's own state (versioning, Object Lock) is then compared
with what the configuration asks for, and every contradiction is listed. Nothing
raises for an unreachable or misconfigured store: the result says so.
"""

from __future__ import annotations

from preservation.config import Config, LocalStoreSettings, S3StoreSettings
from preservation.errors import PreservationError
from preservation.storage.base import Capabilities, ProbeResult
from preservation.storage.registry import open_store


def contradictions(settings: LocalStoreSettings | S3StoreSettings, caps: Capabilities) -> list[str]:
    """Where the store's reported state contradicts its configuration."""
    problems: list[str] = []
    if not isinstance(settings, S3StoreSettings):
        return problems
    if settings.object_lock_mode:
        wanted = f"object_lock_mode = {settings.object_lock_mode!r}"
        if caps.object_lock is None:
            problems.append(
                f"{wanted} is configured but the bucket's Object Lock state could not be read"
            )
        elif not caps.object_lock:
            problems.append(
                f"{wanted} is configured but bucket {settings.bucket!r} does not have Object Lock"
                " enabled (it can only be enabled when the bucket is created, or by AWS support)"
            )
        elif caps.versioning is False:
            problems.append(
                f"{wanted} is configured but bucket {settings.bucket!r} has versioning off"
                " (Object Lock needs versioning)"
            )
    return problems


def check_store(config: Config, name: str) -> ProbeResult:
    """Probe one store; never raises for store trouble (it is reported in ``problems``)."""
    settings = config.store_settings(name)
    try:
        store = open_store(config, name)
    except PreservationError as e:
        return ProbeResult(name, False, False, None, [f"{e.code}: {e.message}"])
    result = store.probe()
    if result.capabilities is not None:
        result.problems.extend(contradictions(settings, result.capabilities))
    return result


def check_stores(config: Config, names: list[str] | None = None) -> list[ProbeResult]:
    """Probe the named stores (all when ``names`` is None), in the order asked.

    An unknown store name raises ConfigError before any store is contacted.
    """
    selected = list(config.settings.stores) if names is None else list(names)
    for name in selected:
        config.store_settings(name)  # unknown names fail before any I/O
    return [check_store(config, name) for name in selected]
