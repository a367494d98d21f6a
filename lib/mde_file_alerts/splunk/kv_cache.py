"""The result cache in the KV store, shared by every search on every search-head-cluster member.

One document per (tenant, cloud, SHA-1) in the ``mde_file_alerts_cache`` collection. Its ``_key``
is ``sha256("<tenant id>|<cloud>|<sha1>")``: a search derives keys from its own account's tenant
only, so it never reads another tenant's results, and the cloud is part of the key because
Defender's commercial and government clouds are separate services.

Fields (typed in default/collections.conf): ``tenant_id``, ``cloud``, ``sha1``, ``status``
(``found`` or ``not_found``), ``alert_count``, ``alerts_json`` (the alerts exactly as Defender sent
them, as JSON text), ``fetched_at`` (epoch seconds), ``expires_at`` (``fetched_at`` plus the TTL in
force when written; the app's maintenance search deletes entries past it), ``correlation_id`` and
``version``. A read applies the TTLs in force at read time, so lowering a TTL takes effect at once.
A document that does not have exactly this shape (written by something else, edited by hand,
or from a future version) is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mde_file_alerts.cache import (
    CACHEABLE_STATUSES,
    DEFAULT_TTL_FOUND,
    DEFAULT_TTL_NOT_FOUND,
    CachedResult,
    CacheTtl,
    CacheUnavailable,
    cacheable,
)
from mde_file_alerts.clock import Clock, SystemClock
from mde_file_alerts.outcome import HashOutcome, HashStatus
from mde_file_alerts.splunk.kvstore import KvStoreCollection, KvStoreError

logger = logging.getLogger(__name__)

#: The document layout this code writes and reads; any other version is a miss.
DOCUMENT_VERSION = 1


def cache_key(tenant_id: str, cloud: str, sha1: str) -> str:
    """The ``_key`` of one cached result."""
    identity = f"{_tenant(tenant_id)}|{cloud.strip().lower()}|{sha1.strip().lower()}"
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


class KvResultCache:
    """``ResultCache`` on the KV store for one account's tenant and cloud."""

    def __init__(
        self,
        collection: KvStoreCollection,
        *,
        tenant_id: str,
        cloud: str,
        ttl_found: float = DEFAULT_TTL_FOUND,
        ttl_not_found: float = DEFAULT_TTL_NOT_FOUND,
        clock: Clock | None = None,
    ) -> None:
        self.collection = collection
        self.tenant_id = _tenant(tenant_id)
        self.cloud = cloud.strip().lower()
        self.ttl = CacheTtl(ttl_found, ttl_not_found)
        self._clock = clock or SystemClock()

    def get_many(self, sha1s: Sequence[str]) -> dict[str, CachedResult]:
        """The fresh entries among ``sha1s``, keyed by the values as given."""
        wanted: dict[str, list[str]] = {}
        for given in sha1s:
            wanted.setdefault(cache_key(self.tenant_id, self.cloud, given), []).append(given)
        if not wanted:
            return {}
        try:
            documents = self.collection.find_keys(list(wanted))
        except KvStoreError as error:
            raise _unavailable(error, "read") from error
        now = self._clock.time()
        found: dict[str, CachedResult] = {}
        unreadable = 0
        for document in documents:
            givens = wanted.get(str(document.get("_key")))
            if not givens:
                continue
            result = self._result(document, expected_sha1=givens[0].strip().lower())
            if result is None:
                unreadable += 1
            elif self.ttl.is_fresh(result.status, result.fetched_at, now):
                found.update(dict.fromkeys(givens, result))
        if unreadable:
            logger.warning(
                "%d cached result(s) in the KV store collection %s are not in this app's format; "
                "treated as misses.",
                unreadable,
                self.collection.name,
            )
        return found

    def put_many(self, outcomes: Sequence[HashOutcome]) -> None:
        """Store the ``found``/``not_found`` outcomes; any other outcome is left out."""
        now = self._clock.time()
        documents: dict[str, dict[str, Any]] = {}
        for outcome in outcomes:
            if outcome.sha1 and cacheable(outcome, self.ttl):
                document = self._document(outcome, outcome.sha1.strip().lower(), now)
                documents[document["_key"]] = document
        if not documents:
            return
        try:
            self.collection.batch_save(list(documents.values()))
        except KvStoreError as error:
            raise _unavailable(error, "written") from error

    # --- documents ---------------------------------------------------------------------------------

    def _document(self, outcome: HashOutcome, sha1: str, now: float) -> dict[str, Any]:
        document: dict[str, Any] = {
            "_key": cache_key(self.tenant_id, self.cloud, sha1),
            "tenant_id": self.tenant_id,
            "cloud": self.cloud,
            "sha1": sha1,
            "status": outcome.status.value,
            "alert_count": len(outcome.alerts),
            "alerts_json": json.dumps(outcome.alerts, separators=(",", ":"), ensure_ascii=False),
            "fetched_at": now,
            "expires_at": now + self.ttl.for_status(outcome.status),
            "version": DOCUMENT_VERSION,
        }
        if outcome.correlation_id:
            document["correlation_id"] = outcome.correlation_id
        return document

    def _result(self, document: Mapping[str, Any], *, expected_sha1: str) -> CachedResult | None:
        """The cached result a document holds, or None when it is not exactly what this code writes."""
        if (
            document.get("version") != DOCUMENT_VERSION
            or document.get("tenant_id") != self.tenant_id
            or document.get("cloud") != self.cloud
            or document.get("sha1") != expected_sha1
        ):
            return None
        try:
            status = HashStatus(document.get("status"))
        except ValueError:
            return None
        fetched_at = document.get("fetched_at")
        if (
            isinstance(fetched_at, bool)
            or not isinstance(fetched_at, (int, float))
            or not math.isfinite(fetched_at)
        ):
            return None
        alerts = _alerts(document.get("alerts_json"))
        # "found" always comes with alerts and "not_found" never does; anything else is not ours.
        if status not in CACHEABLE_STATUSES or alerts is None or (status is HashStatus.FOUND) != bool(alerts):
            return None
        correlation_id = document.get("correlation_id")
        return CachedResult(
            sha1=expected_sha1,
            status=status,
            alerts=alerts,
            fetched_at=float(fetched_at),
            correlation_id=correlation_id if isinstance(correlation_id, str) and correlation_id else None,
        )


def _alerts(text: Any) -> list[dict[str, Any]] | None:
    if not isinstance(text, str):
        return None
    try:
        alerts = json.loads(text)
    except ValueError:
        return None
    if not isinstance(alerts, list) or not all(isinstance(alert, dict) for alert in alerts):
        return None
    return alerts


def _tenant(tenant_id: str) -> str:
    return tenant_id.strip().lower()


def _unavailable(error: KvStoreError, action: str) -> CacheUnavailable:
    return CacheUnavailable(
        f"The result cache could not be {action} ({error.message.rstrip('.')}); "
        "the hashes are looked up in Defender instead.",
        method=error.method,
        url=error.url,
        status=error.status,
        detail=error.detail,
    )
