"""What ``get file alerts`` returns, with the contains types later playbook blocks chain on.

The values come from ``mde_file_alerts.mapping.events_for_outcome``, the mapping the Splunk search
command uses too; this module only picks event fields (named by ``cim``) into SOAR data paths.
One data item per looked-up hash: ``action_result.data.*.alerts.*`` holds its alerts, so "no alerts"
is an item with ``alert_count`` 0 rather than no data at all.

Fields are ``Optional[...]``, not ``X | None``: the SDK turns annotations into data paths and
understands only ``typing.Optional`` there.
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from soar_sdk.action_results import ActionOutput, OutputField

from mde_file_alerts import cim

ALERT_ID = "defender atp alert id"
DEVICE_ID = "defender atp device id"
SHA1 = ["sha1", "hash"]
SHA256 = ["sha256", "hash"]

_EXAMPLE_SHA1 = "6532ec91d513acc05f43ee0aa3002599729fd3e1"
_EXAMPLE_SHA256 = "43788a2067c4aa5eb5b9cc2fd6149309fca757550d94b890c393e386c49a3fc4"

#: CIM severities in the order summaries list them.
SEVERITIES = ("high", "medium", "low", "informational", "unknown")


class DefenderAlert(ActionOutput):
    """One Defender alert about the file."""

    alert_id: Optional[str] = OutputField(
        cef_types=[ALERT_ID], example_values=["da638412947218830652_-1893455270"]
    )
    title: Optional[str] = OutputField(example_values=["Process injection into a trusted system process"])
    description: Optional[str]
    severity: Optional[str] = OutputField(
        example_values=["high", "medium", "low", "informational", "unknown"]
    )
    severity_id: Optional[int] = OutputField(example_values=[4, 3, 2, 1, 0])
    status: Optional[str] = OutputField(example_values=["New", "InProgress", "Resolved"])
    classification: Optional[str]
    determination: Optional[str]
    category: Optional[str] = OutputField(example_values=["DefenseEvasion"])
    detection_source: Optional[str] = OutputField(example_values=["EDR", "WindowsDefenderAv"])
    threat_name: Optional[str]
    threat_family_name: Optional[str]
    incident_id: Optional[str] = OutputField(example_values=["4213"])
    investigation_id: Optional[str]
    investigation_state: Optional[str]
    assigned_to: Optional[str] = OutputField(cef_types=["email"])
    device_id: Optional[str] = OutputField(
        cef_types=[DEVICE_ID], example_values=["b9edaa0d8791a439bec840e1adb71ab3d74dd1b9"]
    )
    device_name: Optional[str] = OutputField(
        cef_types=["host name"], example_values=["ws-0142.corp.contoso.com"]
    )
    user_name: Optional[str] = OutputField(cef_types=["user name"], example_values=["amy.ross"])
    user_domain: Optional[str] = OutputField(cef_types=["domain"], example_values=["CONTOSO"])
    logged_on_users: list[str] = OutputField(cef_types=["user name"], example_values=["CONTOSO\\amy.ross"])
    file_sha1: Optional[str] = OutputField(cef_types=SHA1, example_values=[_EXAMPLE_SHA1])
    file_sha256: Optional[str] = OutputField(cef_types=SHA256, example_values=[_EXAMPLE_SHA256])
    file_names: list[str] = OutputField(cef_types=["file name"], example_values=["winupd_helper.exe"])
    file_paths: list[str] = OutputField(
        cef_types=["file path"],
        example_values=["C:\\Users\\amy.ross\\AppData\\Local\\Temp\\winupd_helper.exe"],
    )
    evidence_sha1: list[str] = OutputField(cef_types=SHA1)
    evidence_sha256: list[str] = OutputField(cef_types=SHA256)
    evidence_file_names: list[str] = OutputField(cef_types=["file name"])
    evidence_command_lines: list[str]
    evidence_ips: list[str] = OutputField(cef_types=["ip"], example_values=["203.0.113.47"])
    evidence_urls: list[str] = OutputField(cef_types=["url"])
    mitre_techniques: list[str] = OutputField(example_values=["T1055"])
    alert_url: Optional[str] = OutputField(cef_types=["url"])
    alert_creation_time: Optional[str] = OutputField(example_values=["2024-01-09T08:12:01.8830652Z"])
    first_event_time: Optional[str]
    last_event_time: Optional[str]
    last_update_time: Optional[str]
    resolved_time: Optional[str]
    #: "valid", or "invalid" when the alert does not match the schema (``schema_errors`` say why).
    schema_status: Optional[str] = OutputField(example_values=["valid", "invalid"])
    schema_errors: list[str]
    #: The alert exactly as Defender sent it, as JSON text.
    raw: Optional[str]


class FileAlertsOutput(ActionOutput):
    """The lookup of one hash and the alerts Defender has for that file."""

    queried_hash: str = OutputField(cef_types=["hash"], example_values=[_EXAMPLE_SHA1], column_name="Hash")
    sha1: Optional[str] = OutputField(cef_types=SHA1, example_values=[_EXAMPLE_SHA1])
    sha256: Optional[str] = OutputField(cef_types=SHA256, example_values=[_EXAMPLE_SHA256])
    status: str = OutputField(example_values=["found", "not_found"], column_name="Status")
    alert_count: int = OutputField(example_values=[5, 0], column_name="Alerts")
    message: str = OutputField(
        example_values=["5 Defender alerts for file 6532ec91d513acc05f43ee0aa3002599729fd3e1."],
        column_name="Message",
    )
    correlation_id: Optional[str]
    alerts: list[DefenderAlert]


class FileAlertsSummary(ActionOutput):
    """Alert counts by severity, for the run's summary line."""

    total_alerts: int = OutputField(example_values=[5])
    high: int = OutputField(example_values=[2])
    medium: int = OutputField(example_values=[1])
    low: int = OutputField(example_values=[1])
    informational: int = OutputField(example_values=[1])
    unknown: int = OutputField(example_values=[0])


def alert_output(event: Mapping[str, Any]) -> DefenderAlert:
    """The SOAR view of one mapped event (see ``mde_file_alerts.mapping.map_alert``)."""
    return DefenderAlert(
        alert_id=event.get(cim.ID),
        title=event.get(cim.SIGNATURE),
        description=event.get(cim.DESCRIPTION),
        severity=event.get(cim.SEVERITY),
        severity_id=event.get(cim.SEVERITY_ID),
        status=event.get(cim.STATUS),
        classification=event.get(cim.CLASSIFICATION),
        determination=event.get(cim.DETERMINATION),
        category=event.get(cim.CATEGORY),
        detection_source=event.get(cim.DETECTION_SOURCE),
        threat_name=event.get(cim.THREAT_NAME),
        threat_family_name=event.get(cim.THREAT_FAMILY_NAME),
        incident_id=_text(event.get(cim.INCIDENT_ID)),
        investigation_id=_text(event.get(cim.INVESTIGATION_ID)),
        investigation_state=event.get(cim.INVESTIGATION_STATE),
        assigned_to=event.get(cim.ASSIGNED_TO),
        device_id=event.get(cim.MACHINE_ID),
        device_name=event.get(cim.COMPUTER_DNS_NAME) or event.get(cim.DEST),
        user_name=event.get(cim.USER_NAME),
        user_domain=event.get(cim.RELATED_USER_DOMAIN),
        logged_on_users=_values(event.get(cim.LOGGED_ON_USERS)),
        file_sha1=event.get(cim.FILE_HASH) or event.get(cim.QUERIED_HASH),
        file_sha256=event.get(cim.QUERIED_SHA256),
        file_names=_values(event.get(cim.FILE_NAME)),
        file_paths=_values(event.get(cim.FILE_PATH)),
        evidence_sha1=_values(event.get(cim.EVIDENCE_SHA1)),
        evidence_sha256=_values(event.get(cim.EVIDENCE_SHA256)),
        evidence_file_names=_values(event.get(cim.EVIDENCE_FILE_NAMES)),
        evidence_command_lines=_values(event.get(cim.EVIDENCE_PROCESS_COMMAND_LINES)),
        evidence_ips=_values(event.get(cim.EVIDENCE_IPS)),
        evidence_urls=_values(event.get(cim.EVIDENCE_URLS)),
        mitre_techniques=_values(event.get(cim.MITRE_TECHNIQUE_ID)),
        alert_url=event.get(cim.ALERT_URL),
        alert_creation_time=event.get(cim.ALERT_CREATION_TIME),
        first_event_time=event.get(cim.FIRST_EVENT_TIME),
        last_event_time=event.get(cim.LAST_EVENT_TIME),
        last_update_time=event.get(cim.LAST_UPDATE_TIME),
        resolved_time=event.get(cim.RESOLVED_TIME),
        schema_status=event.get(cim.SCHEMA),
        schema_errors=_values(event.get(cim.SCHEMA_ERRORS)),
        raw=event.get(cim.RAW),
    )


def severity_summary(alerts: Iterable[DefenderAlert]) -> FileAlertsSummary:
    """Counts per CIM severity; an alert without one counts as ``unknown``."""
    counts = Counter(alert.severity if alert.severity in SEVERITIES else "unknown" for alert in alerts)
    return FileAlertsSummary(total_alerts=sum(counts.values()), **{name: counts[name] for name in SEVERITIES})


def _values(value: Any) -> list[str]:
    """A multivalue field as a list (the mapping leaves out empty ones and may give one string)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(item) for item in value]
    return [str(value)]


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)
