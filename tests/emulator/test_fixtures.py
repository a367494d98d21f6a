"""The alert fixtures are realistic (the shape of real payloads) and consistent with files.json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.emulator import DEFAULT_TENANT_ID

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ALERTS_DIR = FIXTURES / "alerts"
INDEX = json.loads((FIXTURES / "defender" / "files.json").read_text(encoding="utf-8"))
ALERTS = {
    path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(ALERTS_DIR.glob("*.json"))
}
DEMO_SHA1 = "6532ec91d513acc05f43ee0aa3002599729fd3e1"

SHA1 = re.compile(r"^[0-9a-f]{40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.(?P<fraction>\d{1,7}))?Z$")
TIME_KEYS = ("alertCreationTime", "firstEventTime", "lastEventTime", "lastUpdateTime", "resolvedTime")


def file_evidence(alert: dict[str, Any]) -> list[dict[str, Any]]:
    """File evidence of today's payloads, or the alertFiles of 2018-era ones."""
    files = [item for item in alert.get("evidence") or [] if item["entityType"] == "File"]
    return files + list(alert.get("alertFiles") or [])


def all_alerts() -> list[dict[str, Any]]:
    return list(ALERTS.values())


def test_every_alert_fixture_is_served_for_some_file_and_every_listed_one_exists() -> None:
    listed = {name for entry in INDEX.values() for name in entry["alerts"]}
    assert listed == set(ALERTS)
    assert len(ALERTS) >= 12
    assert len(INDEX) >= 8


def test_index_keys_are_lower_case_sha1_with_a_sha256() -> None:
    for sha1, entry in INDEX.items():
        assert SHA1.match(sha1), sha1
        assert SHA256.match(entry["sha256"]), sha1


def test_one_file_is_known_to_defender_without_alerts_and_the_demo_hash_has_several() -> None:
    assert any(entry["alerts"] == [] for entry in INDEX.values())
    assert len(INDEX[DEMO_SHA1]["alerts"]) >= 3


@pytest.mark.parametrize("sha1", sorted(INDEX))
def test_a_served_alert_names_the_file_it_is_served_for_unless_it_has_no_evidence(sha1: str) -> None:
    entry = INDEX[sha1]
    for name in entry["alerts"]:
        alert = ALERTS[name]
        evidence_for_file = [item for item in file_evidence(alert) if item.get("sha1") == sha1]
        if alert.get("evidence") == []:
            continue
        assert evidence_for_file, f"{name} has no File evidence for {sha1}"
        for item in evidence_for_file:
            assert item["sha256"] in (None, entry["sha256"]), name


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_alert_has_the_reliable_core_in_the_real_types(name: str) -> None:
    alert = ALERTS[name]
    assert isinstance(alert["id"], str) and alert["id"]
    assert SHA1.match(alert["machineId"])
    assert alert["aadTenantId"] == DEFAULT_TENANT_ID
    assert alert["severity"] in ("UnSpecified", "Informational", "Low", "Medium", "High")
    assert alert["status"] in ("Unknown", "New", "InProgress", "Resolved")
    for key in ("incidentId", "investigationId"):
        assert alert[key] is None or isinstance(alert[key], int)
    for key in TIME_KEYS:
        if alert.get(key) is not None:
            assert TIMESTAMP.match(alert[key]), (key, alert[key])
    for comment in alert.get("comments", []):
        assert set(comment) == {"comment", "createdBy", "createdTime"}
    assert isinstance(alert.get("mitreTechniques", []), list)
    assert alert.get("relatedUser") is None or set(alert["relatedUser"]) == {"userName", "domainName"}


def test_the_fixtures_cover_the_variations_real_payloads_show() -> None:
    alerts = all_alerts()
    fractions = {
        len(match.group("fraction") or "")
        for alert in alerts
        for key in TIME_KEYS
        if alert.get(key) and (match := TIMESTAMP.match(alert[key]))
    }
    assert {0, 1, 2, 3, 7} <= fractions
    assert {alert["severity"] for alert in alerts} == {
        "UnSpecified",
        "Informational",
        "Low",
        "Medium",
        "High",
    }
    assert {"New", "InProgress", "Resolved"} <= {alert["status"] for alert in alerts}
    assert any(alert["id"].startswith("ar") for alert in alerts)
    assert any(re.match(r"^\d+_-?\d+$", alert["id"]) for alert in alerts), "a legacy id without prefix"
    assert any(alert.get("evidence") == [] for alert in alerts)
    assert any(alert.get("category") == "null" for alert in alerts)
    assert any(alert.get("mitreTechniques") == [] for alert in alerts)
    assert any("." in technique for alert in alerts for technique in alert.get("mitreTechniques", []))
    assert any("\n" in alert["description"] and "\u200b" in alert["description"] for alert in alerts)
    assert any(
        re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", json.dumps(alert, ensure_ascii=False)) for alert in alerts
    )
    assert any(re.search(r"[äöüÄÖÜß]", json.dumps(alert, ensure_ascii=False)) for alert in alerts)
    for key in (
        "incidentId",
        "investigationId",
        "assignedTo",
        "classification",
        "determination",
        "threatFamilyName",
        "resolvedTime",
        "computerDnsName",
        "rbacGroupName",
        "relatedUser",
    ):
        assert any(key in alert and alert[key] is None for alert in alerts), f"no alert with {key}: null"
    evidence_types = {item["entityType"] for alert in alerts for item in alert.get("evidence") or []}
    assert {"File", "Process", "User", "Ip", "Url"} <= evidence_types


def test_an_old_era_alert_has_retired_keys_and_lacks_newer_ones() -> None:
    old = [alert for alert in all_alerts() if alert["alertCreationTime"].startswith("2018")]
    assert old
    for alert in old:
        assert {"recommendedAction", "alertFiles"} <= set(alert)
        assert "detectorId" not in alert and "lastUpdateTime" not in alert


def test_process_evidence_carries_command_lines_and_parent_processes() -> None:
    processes = [
        item
        for alert in all_alerts()
        for item in alert.get("evidence") or []
        if item["entityType"] == "Process"
    ]
    assert any(item["processCommandLine"] and item["parentProcessFileName"] for item in processes)
    assert any(alert.get("loggedOnUsers") for alert in all_alerts())
