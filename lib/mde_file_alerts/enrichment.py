"""What ``... | mdefilealerts field=<hash field>`` adds to events: pure functions, no I/O.

An event's hash field is read the way endpoint data holds hashes: a plain value, a multivalue
field, or Sysmon's ``Hashes`` text (``SHA1=...,MD5=...,SHA256=...,IMPHASH=...``). The SHA-1 is
taken from it (a SHA-256 when the search resolves those), so ``field=Hashes`` works as it is.

Every event then gets the same summary fields (names in ``cim``): the lookup's status and one
sentence about it, alert counts, the highest severity of all and of the open alerts, and
multivalue ids, titles, statuses, MITRE techniques and devices. Every summary field is always set
(``None`` when empty), so a value an event already carried under that name never survives
looking like a fresh answer. With ``expand=true`` an event becomes one row per alert instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mde_file_alerts import cim
from mde_file_alerts.hashes import HashInput, HashKind, parse_hash
from mde_file_alerts.outcome import HashOutcome, HashStatus
from mde_file_alerts.timestamps import parse_date_time

#: The summary fields in the order they are added to an event.
SUMMARY_FIELDS: tuple[str, ...] = (
    cim.STATUS,
    cim.LOOKUP_MESSAGE,
    cim.STATUS_ALERT_COUNT,
    cim.OPEN_ALERT_COUNT,
    cim.MAX_SEVERITY,
    cim.MAX_OPEN_SEVERITY,
    cim.ALERT_IDS,
    cim.ALERT_TITLES,
    cim.ALERT_STATUSES,
    cim.ALERT_TECHNIQUES,
    cim.ALERT_DEVICES,
    cim.LAST_ALERT_TIME,
    cim.QUERIED_HASH,
    cim.STATUS_SHA1,
    cim.ACCOUNT,
    cim.RETRIEVED_AT,
    cim.CACHE,
)

#: An alert's own fields that stay the event's in an expanded row: Splunk's metadata describes
#: the event that was enriched, not the alert.
EVENT_OWNED_FIELDS = frozenset({cim.TIME, cim.RAW, cim.HOST, cim.SOURCE, cim.SOURCETYPE})

# Sysmon and other EDR data label each hash: "SHA1=<hex>,MD5=<hex>,SHA256=<hex>,IMPHASH=<hex>".
_LABELLED = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*=")
_SEPARATORS = re.compile(r"[,;\s]+")
_PLAIN_SHA1 = re.compile(r"[0-9A-Fa-f]{40}")
_WRAPPERS = "\"'`[](){}<>"
# Defender severity → rank; a severity Defender may add later ranks below every known one.
_SEVERITY_RANK = cim.SEVERITY_IDS
_UNKNOWN_RANK = -1
# The statuses whose answer says how many alerts the file has.
_ANSWERED = frozenset({HashStatus.FOUND, HashStatus.NOT_FOUND})


@dataclass(frozen=True)
class HashChoice:
    """The hash an event's field yields, or why it yields none."""

    query: HashInput | None
    #: Why no usable hash was found (set exactly when ``query`` is None).
    problem: str | None = None
    #: Something the user should know although a hash was found (several SHA-1 values).
    note: str | None = None


def choose_hash(value: Any, field: str, *, resolve_sha256: bool = False) -> HashChoice:
    """The SHA-1 (or, with ``resolve_sha256``, SHA-256) an event's ``field`` holds."""
    if isinstance(value, str) and _PLAIN_SHA1.fullmatch(value):
        # The common case, and per event: a bare SHA-1 needs none of parse_hash's explanations.
        return HashChoice(HashInput(value, value.lower(), HashKind.SHA1, None))
    candidates = [parse_hash(text) for text in _hash_texts(value)]
    if not candidates:
        return HashChoice(None, f"The event has no value in field {field!r} to look up.")
    sha1s = _distinct(candidate for candidate in candidates if candidate.is_sha1)
    if sha1s:
        note = None
        if len(sha1s) > 1:
            note = (
                f"Field {field!r} holds {len(sha1s)} different SHA-1 values; the first was looked up "
                f"(use | mvexpand {field} before this command to look up each)."
            )
        return HashChoice(sha1s[0], note=note)
    if resolve_sha256:
        sha256s = _distinct(candidate for candidate in candidates if candidate.is_sha256)
        if sha256s:
            return HashChoice(sha256s[0])
    return HashChoice(None, candidates[0].problem)


def _hash_texts(value: Any) -> list[str]:
    values: Iterable[Any] = value if isinstance(value, (list, tuple)) else (value,)
    texts = []
    for item in values:
        if item is None:
            continue
        for token in _SEPARATORS.split(str(item)):
            cleaned = _LABELLED.sub("", token.strip(_WRAPPERS), count=1).strip(_WRAPPERS)
            if cleaned:
                texts.append(cleaned)
    return texts


def _distinct(queries: Iterable[HashInput]) -> list[HashInput]:
    seen: dict[str, HashInput] = {}
    for query in queries:
        seen.setdefault(query.value, query)
    return list(seen.values())


# --- summary fields ----------------------------------------------------------------------------------


def summary_fields(
    outcome: HashOutcome,
    cache: str,
    *,
    retrieved_at: float | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    """Every summary field for one hash's outcome (``None`` where there is nothing to say)."""
    alerts = [alert for alert in outcome.alerts if isinstance(alert, Mapping)]
    open_alerts = [alert for alert in alerts if not _is_resolved(alert)]
    message = outcome.message or _found_message(outcome, alerts, open_alerts)
    summary = dict.fromkeys(SUMMARY_FIELDS)
    summary.update(
        {
            cim.STATUS: outcome.status.value,
            cim.LOOKUP_MESSAGE: message,
            cim.STATUS_ALERT_COUNT: len(outcome.alerts),
            cim.OPEN_ALERT_COUNT: len(open_alerts),
            cim.MAX_SEVERITY: _highest_severity(alerts),
            cim.MAX_OPEN_SEVERITY: _highest_severity(open_alerts),
            cim.ALERT_IDS: _multivalue(alert.get("id") for alert in alerts),
            cim.ALERT_TITLES: _multivalue(alert.get("title") for alert in alerts),
            cim.ALERT_STATUSES: _multivalue(alert.get("status") for alert in alerts),
            cim.ALERT_TECHNIQUES: _multivalue(
                technique for alert in alerts for technique in _techniques(alert.get("mitreTechniques"))
            ),
            cim.ALERT_DEVICES: _multivalue(
                alert.get("computerDnsName") or alert.get("machineId") for alert in alerts
            ),
            cim.LAST_ALERT_TIME: _last_creation_time(alerts),
            cim.QUERIED_HASH: outcome.query.value if outcome.query.problem is None else None,
            cim.STATUS_SHA1: outcome.sha1,
            cim.ACCOUNT: account,
            cim.RETRIEVED_AT: _iso_utc(retrieved_at) if retrieved_at is not None else None,
            cim.CACHE: cache,
        }
    )
    if outcome.status not in _ANSWERED:
        # Nothing is known about the file's alerts: no count at all rather than a misleading 0.
        summary[cim.STATUS_ALERT_COUNT] = summary[cim.OPEN_ALERT_COUNT] = None
    return summary


def unusable_value_fields(problem: str) -> dict[str, Any]:
    """The summary of an event whose field holds no usable hash: it is marked, never dropped."""
    summary = dict.fromkeys(SUMMARY_FIELDS)
    summary[cim.STATUS] = HashStatus.INVALID_HASH.value
    summary[cim.LOOKUP_MESSAGE] = problem
    summary[cim.CACHE] = cim.CACHE_BYPASS_VALUE
    return summary


def _found_message(
    outcome: HashOutcome, alerts: Sequence[Mapping[str, Any]], open_alerts: Sequence[Mapping[str, Any]]
) -> str:
    count = len(outcome.alerts)
    sentence = f"{count} Defender alert{'' if count == 1 else 's'} for file {outcome.sha1}"
    details = [f"{len(open_alerts)} open"]
    highest = _highest_severity(alerts)
    if highest:
        details.append(f"highest severity {highest}")
    return f"{sentence} ({', '.join(details)})."


def _is_resolved(alert: Mapping[str, Any]) -> bool:
    status = alert.get("status")
    return isinstance(status, str) and status.strip().lower() == cim.RESOLVED_STATUS_VALUE.lower()


def _highest_severity(alerts: Iterable[Mapping[str, Any]]) -> str | None:
    best: tuple[int, str] | None = None
    for alert in alerts:
        severity = alert.get("severity")
        if not isinstance(severity, str) or not severity.strip():
            continue
        rank = _SEVERITY_RANK.get(severity, _UNKNOWN_RANK)
        if best is None or rank > best[0]:
            best = (rank, cim.SEVERITIES.get(severity, severity.strip().lower()))
    return best[1] if best else None


def _techniques(value: Any) -> list[Any]:
    if isinstance(value, str):  # the documented (but not observed) comma-separated form
        return [part.strip() for part in value.split(",")]
    return value if isinstance(value, list) else []


def _multivalue(values: Iterable[Any]) -> list[str] | None:
    seen: dict[str, None] = {}
    for value in values:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            seen[str(value)] = None
    return list(seen) or None


def _last_creation_time(alerts: Iterable[Mapping[str, Any]]) -> str | None:
    times = [
        parsed
        for alert in alerts
        if isinstance(alert.get("alertCreationTime"), str)
        for parsed in (parse_date_time(alert["alertCreationTime"]),)
        if parsed is not None
    ]
    return _iso_utc(max(times)) if times else None


def _iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- expand=true ---------------------------------------------------------------------------------------


def expanded_rows(
    event: Mapping[str, Any], alert_events: Sequence[Mapping[str, Any]], cache: str
) -> list[dict[str, Any]]:
    """One row per alert: the event's fields, then the alert's (Splunk's metadata stays the event's)."""
    rows = []
    for alert_event in alert_events:
        row = dict(event)
        row.update((name, value) for name, value in alert_event.items() if name not in EVENT_OWNED_FIELDS)
        row[cim.CACHE] = cache
        rows.append(row)
    return rows
