"""Turn Defender alerts into Splunk events: pure functions, no I/O, used by every front end.

``map_alert`` maps one alert; ``map_alerts`` validates and maps a response's alerts;
``events_for_outcome`` does that for one hash's lookup outcome and adds the per-hash status
record. The search command and the CLI both call ``events_for_outcome``, so they emit the same.

Event values are ``str``, ``int``/``float`` or ``list[str]`` (multivalue: de-duplicated, in
order of appearance). Fields without a value (``None``, ``""``, ``[]``) are left out. Field names
come from ``cim``; see its docstring for the naming rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import quote, urlencode, urlsplit

from mde_file_alerts import cim
from mde_file_alerts.timestamps import parse_date_time
from mde_file_alerts.validation import INVALID, AlertValidator, ValidationMode, ValidationResult

if TYPE_CHECKING:
    from mde_file_alerts.account import Account
    from mde_file_alerts.client import HashOutcome

Scalar = Union[str, int, float]

# _time comes from the first of these that holds a valid timestamp (then the retrieval time).
_TIME_KEYS = (
    ("alertCreationTime", cim.TIME_SOURCE_ALERT_CREATION),
    ("firstEventTime", cim.TIME_SOURCE_FIRST_EVENT),
    ("lastUpdateTime", cim.TIME_SOURCE_LAST_UPDATE),
)

# Alert keys copied as they are into flattened fields.
_SCALAR_FIELDS = (
    ("status", cim.STATUS),
    ("classification", cim.CLASSIFICATION),
    ("determination", cim.DETERMINATION),
    ("category", cim.CATEGORY),
    ("detectionSource", cim.DETECTION_SOURCE),
    ("detectorId", cim.DETECTOR_ID),
    ("threatName", cim.THREAT_NAME),
    ("threatFamilyName", cim.THREAT_FAMILY_NAME),
    ("investigationId", cim.INVESTIGATION_ID),
    ("investigationState", cim.INVESTIGATION_STATE),
    ("incidentId", cim.INCIDENT_ID),
    ("assignedTo", cim.ASSIGNED_TO),
    ("rbacGroupName", cim.RBAC_GROUP_NAME),
    ("machineId", cim.MACHINE_ID),
    ("computerDnsName", cim.COMPUTER_DNS_NAME),
    ("alertCreationTime", cim.ALERT_CREATION_TIME),
    ("firstEventTime", cim.FIRST_EVENT_TIME),
    ("lastEventTime", cim.LAST_EVENT_TIME),
    ("lastUpdateTime", cim.LAST_UPDATE_TIME),
    ("resolvedTime", cim.RESOLVED_TIME),
)

# Evidence keys summarised as multivalue fields (one value per distinct evidence value).
_EVIDENCE_FIELDS = (
    ("entityType", cim.EVIDENCE_ENTITY_TYPES),
    ("fileName", cim.EVIDENCE_FILE_NAMES),
    ("processCommandLine", cim.EVIDENCE_PROCESS_COMMAND_LINES),
    ("ipAddress", cim.EVIDENCE_IPS),
    ("url", cim.EVIDENCE_URLS),
    ("detectionStatus", cim.EVIDENCE_DETECTION_STATUSES),
)


@dataclass(frozen=True)
class LookupContext:
    """Where alerts came from: attached to every event as provenance."""

    queried_hash: str
    account: str
    cloud: str
    api_host: str
    portal_host: str
    retrieved_at: float
    app_version: str
    #: The SHA-256 the user gave, when the client resolved it to ``queried_hash``.
    sha256: str | None = None


@dataclass
class MappedAlerts:
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Alerts left out (strict mode), with the reasons; never dropped silently.
    rejected: list[ValidationResult] = field(default_factory=list)


@dataclass
class OutcomeEvents:
    """Everything one hash's lookup produces for a front end."""

    events: list[dict[str, Any]]
    rejected: list[ValidationResult]
    #: One record naming the hash and its outcome (``mde_status_for``, ``status``, ``message``...).
    status: dict[str, Any]

    @property
    def message(self) -> str:
        return str(self.status[cim.STATUS_MESSAGE])


# --- one alert -------------------------------------------------------------------------------------


def map_alert(
    alert: Mapping[str, Any], context: LookupContext, validation: ValidationResult
) -> dict[str, Any]:
    """The event for one alert, as every front end emits it.

    A value that ``validation`` says is not an alert at all keeps only ``_raw``, the Splunk
    metadata and the provenance (with its reasons): nothing is read from it as if it were one.
    """
    if not validation.is_alert:
        return _event_for_non_alert(alert, context, validation)
    event: dict[str, Any] = {}
    event_time, time_source = _event_time(alert, context)
    tenant = _text(alert.get("aadTenantId"))
    device = _text(alert.get("computerDnsName")) or _text(alert.get("machineId"))
    title = _text(alert.get("title"))
    description = _text(alert.get("description"))
    severity = _text(alert.get("severity"))
    user_name, user_domain = _related_user(alert)
    evidence = _objects(alert.get("evidence"))
    matching_files = _files_matching(evidence + _objects(alert.get("alertFiles")), context)

    _put(event, cim.TIME, event_time)
    _put(event, cim.RAW, _compact_json(alert))
    _put_metadata(event, context, cim.SOURCETYPE_ALERT)
    _put(event, cim.APP, cim.APP_VALUE)
    _put(event, cim.TYPE, cim.TYPE_VALUE)
    _put(event, cim.VENDOR, cim.VENDOR_VALUE)
    _put(event, cim.VENDOR_PRODUCT, cim.VENDOR_PRODUCT_VALUE)
    _put(event, cim.VENDOR_ACCOUNT, tenant)
    _put(event, cim.ID, _text(alert.get("id")))
    _put(event, cim.SIGNATURE, title)
    _put(event, cim.SUBJECT, title)
    _put(event, cim.BODY, description)
    _put(event, cim.DESCRIPTION, description)
    _put(event, cim.SIGNATURE_ID, _text(alert.get("threatName")) or _text(alert.get("threatFamilyName")))
    _put(event, cim.SEVERITY, _cim_severity(severity))
    _put(event, cim.SEVERITY_ID, cim.SEVERITY_IDS.get(severity or ""))
    _put(event, cim.SRC, device)
    _put(event, cim.DEST, device)
    _put(event, cim.USER, user_name)
    _put(event, cim.USER_NAME, user_name)
    _put(event, cim.MITRE_TECHNIQUE_ID, _techniques(alert.get("mitreTechniques")))
    _put(event, cim.FILE_HASH, context.queried_hash.lower())
    _put(event, cim.FILE_NAME, _multivalue(item.get("fileName") for item in matching_files))
    _put(event, cim.FILE_PATH, _multivalue(_full_path(item) for item in matching_files))
    _put(event, cim.ALERT_URL, _alert_url(context.portal_host, _text(alert.get("id")), tenant))

    for key, name in _SCALAR_FIELDS:
        _put(event, name, _scalar(alert.get(key)))
    _put(event, cim.TIME_SOURCE, time_source)
    _put(event, cim.RELATED_USER_DOMAIN, user_domain)
    _put(
        event,
        cim.LOGGED_ON_USERS,
        _multivalue(_account(item) for item in _objects(alert.get("loggedOnUsers"))),
    )
    _put(event, cim.COMMENT_COUNT, len(_objects(alert.get("comments"))))

    _put(event, cim.EVIDENCE_COUNT, len(evidence))
    for key, name in _EVIDENCE_FIELDS:
        _put(event, name, _multivalue(item.get(key) for item in evidence))
    _put(event, cim.EVIDENCE_SHA1, _multivalue(_lower(item.get("sha1")) for item in evidence))
    _put(event, cim.EVIDENCE_SHA256, _multivalue(_lower(item.get("sha256")) for item in evidence))
    _put(event, cim.EVIDENCE_USERS, _multivalue(_account(item) for item in evidence))

    _put_provenance(event, context, validation)
    return event


def _event_for_non_alert(value: Any, context: LookupContext, validation: ValidationResult) -> dict[str, Any]:
    event: dict[str, Any] = {}
    _put(event, cim.TIME, context.retrieved_at)
    _put(event, cim.RAW, _compact_json(value))
    _put_metadata(event, context, cim.SOURCETYPE_NOT_AN_ALERT)
    _put(event, cim.TIME_SOURCE, cim.TIME_SOURCE_RETRIEVED)
    _put_provenance(event, context, validation)
    return event


def _put_metadata(event: dict[str, Any], context: LookupContext, sourcetype: str) -> None:
    # One source per account and hash, shaped like the API path that returned the alert: it names
    # the query, lets props.conf recognise our events, and stays low in cardinality.
    source = cim.SOURCE_SCHEME + quote(context.account or "-", safe="")
    if context.queried_hash:
        source += f"/api/files/{quote(context.queried_hash.lower(), safe='')}/alerts"
    _put(event, cim.SOURCE, source)
    _put(event, cim.SOURCETYPE, sourcetype)
    # The service the event was read from; the device is in src/dest (a device as host would
    # make every alert look like that machine's own log).
    _put(event, cim.HOST, urlsplit(context.api_host).hostname or context.api_host)


def _put_provenance(event: dict[str, Any], context: LookupContext, validation: ValidationResult) -> None:
    _put(event, cim.QUERIED_HASH, context.queried_hash.lower())
    _put(event, cim.QUERIED_SHA256, _lower(context.sha256))
    _put(event, cim.ACCOUNT, context.account)
    _put(event, cim.CLOUD, context.cloud)
    _put(event, cim.API_HOST, context.api_host)
    _put(event, cim.RETRIEVED_AT, _iso_utc(context.retrieved_at))
    _put(event, cim.SCHEMA, validation.status)
    _put(event, cim.SCHEMA_ERRORS, list(validation.errors))
    _put(event, cim.UNKNOWN_KEYS, list(validation.unknown_keys))
    _put(event, cim.APP_VERSION, context.app_version)


# --- many alerts, and one hash's outcome ---------------------------------------------------------------


def map_alerts(alerts: Iterable[Any], context: LookupContext, validator: AlertValidator) -> MappedAlerts:
    """Validate and map alerts in order; strict mode leaves invalid ones out and lists them."""
    mapped = MappedAlerts()
    for alert in alerts:
        validation = validator.validate(alert)
        if validator.mode is ValidationMode.STRICT and validation.status == INVALID:
            mapped.rejected.append(validation)
        elif isinstance(alert, Mapping):
            mapped.events.append(map_alert(alert, context, validation))
        else:
            mapped.events.append(_event_for_non_alert(alert, context, validation))
    return mapped


def account_context(account: Account, *, retrieved_at: float, app_version: str) -> LookupContext:
    """The account's part of a LookupContext; ``events_for_outcome`` fills in the hash."""
    return LookupContext(
        queried_hash="",
        account=account.name,
        cloud=account.cloud,
        api_host=account.api_base_url,
        portal_host=account.endpoints.portal_host,
        retrieved_at=retrieved_at,
        app_version=app_version,
    )


def events_for_outcome(
    outcome: HashOutcome, context: LookupContext, validator: AlertValidator
) -> OutcomeEvents:
    """The events and the status record for one hash, the same for every front end.

    ``context`` describes the account (see ``account_context``); the queried hash and the
    SHA-256 it was resolved from are taken from ``outcome``.
    """
    context = replace(context, queried_hash=outcome.sha1 or outcome.query.value, sha256=outcome.sha256)
    mapped = map_alerts(outcome.alerts, context, validator)
    invalid = sum(1 for event in mapped.events if event.get(cim.SCHEMA) == INVALID)
    status: dict[str, Any] = {}
    _put(status, cim.STATUS_FOR, outcome.query.value)
    _put(status, cim.STATUS_VALUE, outcome.status.value)
    _put(status, cim.STATUS_MESSAGE, _outcome_message(outcome, context, mapped, invalid))
    _put(status, cim.STATUS_SHA1, outcome.sha1)
    _put(status, cim.STATUS_SHA256, outcome.sha256)
    _put(status, cim.STATUS_ALERT_COUNT, len(mapped.events))
    _put(status, cim.STATUS_REJECTED_COUNT, len(mapped.rejected))
    _put(status, cim.STATUS_CORRELATION_ID, outcome.correlation_id)
    _put(status, cim.ACCOUNT, context.account)
    _put(status, cim.RETRIEVED_AT, _iso_utc(context.retrieved_at))
    return OutcomeEvents(mapped.events, mapped.rejected, status)


def _outcome_message(outcome: HashOutcome, context: LookupContext, mapped: MappedAlerts, invalid: int) -> str:
    if outcome.message:
        return outcome.message
    count = len(mapped.events) + len(mapped.rejected)
    sentences = [f"{_count(count, 'Defender alert')} for file {context.queried_hash}."]
    if invalid:
        sentences.append(
            f"{_count(invalid, 'of them', 'of them')} failed schema validation (see {cim.SCHEMA_ERRORS})."
        )
    if mapped.rejected:
        first = mapped.rejected[0].errors[0] if mapped.rejected[0].errors else "no detail"
        left_out = _count(len(mapped.rejected), "was", "were")
        sentences.append(f"{left_out} left out by validate=strict; first problem: {first}")
    return " ".join(sentences)


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else (plural or singular + 's')}"


# --- field helpers -----------------------------------------------------------------------------------------


def _put(event: dict[str, Any], name: str, value: Scalar | list[str] | None) -> None:
    if value is None or value == "" or value == []:
        return
    event[name] = value


def _compact_json(value: Any) -> str:
    # Exactly what Defender sent, key order kept, so spath and the add-on's extractions work.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text(value: Any) -> str | None:
    """A JSON value as one string; containers (a schema violation) as their JSON text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return _compact_json(value)


def _scalar(value: Any) -> Scalar | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return _text(value)


def _lower(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def _multivalue(values: Iterable[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        text = _text(value)
        if text:
            seen[text] = None
    return list(seen)


def _objects(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a JSON list; anything else (null, a wrong type) counts as empty."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event_time(alert: Mapping[str, Any], context: LookupContext) -> tuple[float, str]:
    for key, source in _TIME_KEYS:
        value = alert.get(key)
        parsed = parse_date_time(value) if isinstance(value, str) else None
        if parsed is not None:
            return parsed, source
    return context.retrieved_at, cim.TIME_SOURCE_RETRIEVED


def _cim_severity(severity: str | None) -> str | None:
    if severity is None:
        return None
    return cim.SEVERITIES.get(severity, severity.lower())


def _related_user(alert: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(user name, domain) from relatedUser, or from the 2017-2019 alertUser."""
    user = alert.get("relatedUser")
    if isinstance(user, Mapping):
        return _text(user.get("userName")), _text(user.get("domainName"))
    if isinstance(user, str):  # the documented (but not observed) string form
        return user or None, None
    legacy = alert.get("alertUser")
    if isinstance(legacy, Mapping):
        return _text(legacy.get("accountName")), _text(legacy.get("domainName"))
    return None, None


def _techniques(value: Any) -> list[str]:
    if isinstance(value, str):  # the documented (but not observed) comma-separated form
        return _multivalue(part.strip() for part in value.split(","))
    return _multivalue(value if isinstance(value, list) else ())


def _account(item: Mapping[str, Any]) -> str | None:
    """``DOMAIN\\name`` for an account (evidence, logged-on user), else its UPN."""
    name = _text(item.get("accountName"))
    if not name:
        return _text(item.get("userPrincipalName"))
    domain = _text(item.get("domainName"))
    return f"{domain}\\{name}" if domain else name


def _files_matching(items: Iterable[Mapping[str, Any]], context: LookupContext) -> list[Mapping[str, Any]]:
    """Evidence (File, Process, ...) and 2017-2019 alertFiles that are the queried file, by hash."""
    sha1 = context.queried_hash.lower()
    sha256 = (context.sha256 or "").lower()
    return [
        item
        for item in items
        if (sha1 and _lower(item.get("sha1")) == sha1) or (sha256 and _lower(item.get("sha256")) == sha256)
    ]


def _full_path(item: Mapping[str, Any]) -> str | None:
    """CIM's file_path is the whole path; Defender's filePath is the directory only."""
    directory = _text(item.get("filePath"))
    name = _text(item.get("fileName"))
    if not directory or not name:
        return directory
    if directory.endswith(("\\", "/")):
        return directory + name
    separator = "/" if directory.startswith("/") else "\\"
    return f"{directory}{separator}{name}"


def _alert_url(portal_host: str, alert_id: str | None, tenant: str | None) -> str | None:
    """The alert's page in the cloud's Defender portal, as Microsoft links it (alertWebUrl)."""
    if not portal_host or not alert_id:
        return None
    url = f"{portal_host.rstrip('/')}/alerts/{quote(alert_id, safe='')}"
    # tid selects the tenant, so the link also works for people signed in to several tenants.
    return f"{url}?{urlencode({'tid': tenant})}" if tenant else url
