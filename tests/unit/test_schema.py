"""The alert JSON Schema describes Defender's alert entity as the API really returns it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mde_file_alerts.validation import SCHEMA_PATH, AlertValidator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ALERT_FILES = sorted((FIXTURES / "alerts").glob("*.json"))

# The alert table of the reference (mde-api.md, "The alert entity"), property by property.
DOCUMENTED_PROPERTIES = [
    "id",
    "incidentId",
    "investigationId",
    "assignedTo",
    "severity",
    "status",
    "classification",
    "determination",
    "investigationState",
    "detectionSource",
    "category",
    "detectorId",
    "threatFamilyName",
    "threatName",
    "title",
    "description",
    "alertCreationTime",
    "firstEventTime",
    "lastEventTime",
    "lastUpdateTime",
    "resolvedTime",
    "machineId",
    "computerDnsName",
    "rbacGroupName",
    "aadTenantId",
    "mitreTechniques",
    "relatedUser",
    "loggedOnUsers",
    "comments",
    "evidence",
    "domains",
]
DOCUMENTED_EVIDENCE_KEYS = [
    "entityType",
    "evidenceCreationTime",
    "sha1",
    "sha256",
    "fileName",
    "filePath",
    "processId",
    "processCommandLine",
    "processCreationTime",
    "parentProcessId",
    "parentProcessCreationTime",
    "parentProcessFileName",
    "parentProcessFilePath",
    "ipAddress",
    "url",
    "registryKey",
    "registryHive",
    "registryValueType",
    "registryValue",
    "registryValueName",
    "accountName",
    "domainName",
    "userSid",
    "aadUserId",
    "userPrincipalName",
    "detectionStatus",
]
RETIRED_KEYS = ("recommendedAction", "actorName", "alertUser", "alertFiles", "alertDomains", "alertIps")
# Documented as "or null" (and seen null in real payloads).
NULLABLE_PROPERTIES = [
    "incidentId",
    "investigationId",
    "assignedTo",
    "classification",
    "determination",
    "investigationState",
    "threatFamilyName",
    "threatName",
    "firstEventTime",
    "lastEventTime",
    "lastUpdateTime",
    "resolvedTime",
    "computerDnsName",
    "rbacGroupName",
    "relatedUser",
]
REQUIRED_CORE = ("id", "title", "severity", "status", "machineId", "alertCreationTime")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return document


def load_alert(path: Path) -> dict[str, Any]:
    alert: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return alert


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema with its path, e.g. ``properties.evidence.items``."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}" if path else key)


def test_the_schema_is_a_valid_draft_2020_12_schema(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", ALERT_FILES, ids=[path.stem for path in ALERT_FILES])
def test_every_realistic_alert_is_valid_and_has_no_unknown_keys(path: Path) -> None:
    result = AlertValidator().validate(load_alert(path))

    assert result.errors == ()
    assert result.unknown_keys == ()
    assert result.is_valid


def test_every_documented_property_and_evidence_key_is_declared(schema: dict[str, Any]) -> None:
    properties = schema["properties"]
    evidence_keys = properties["evidence"]["items"]["properties"]

    assert [name for name in DOCUMENTED_PROPERTIES if name not in properties] == []
    assert [name for name in DOCUMENTED_EVIDENCE_KEYS if name not in evidence_keys] == []


def test_retired_keys_are_declared_as_deprecated_so_old_payloads_are_not_drift(
    schema: dict[str, Any],
) -> None:
    for name in RETIRED_KEYS:
        assert schema["properties"][name].get("deprecated") is True, name


def test_only_the_core_every_era_carries_is_required(schema: dict[str, Any]) -> None:
    assert tuple(schema["required"]) == REQUIRED_CORE
    for path in ALERT_FILES:  # old and new payloads alike carry the whole core
        assert [key for key in REQUIRED_CORE if key not in load_alert(path)] == [], path.name


def test_enums_are_used_only_for_the_closed_sets(schema: dict[str, Any]) -> None:
    enum_paths = sorted(path for path, node in walk(schema) if "enum" in node)

    assert enum_paths == ["properties.severity", "properties.status"]


def test_extra_keys_are_never_forbidden_and_no_ref_is_used(schema: dict[str, Any]) -> None:
    # No "$ref": the validator keeps no resolver state, so one instance serves every thread.
    for path, node in walk(schema):
        assert node.get("additionalProperties", True) is not False, path
        assert node.get("unevaluatedProperties", True) is not False, path
        assert "$ref" not in node and "$dynamicRef" not in node, path


@pytest.mark.parametrize("name", NULLABLE_PROPERTIES)
def test_properties_that_real_data_leaves_null_accept_null(name: str) -> None:
    alert = load_alert(FIXTURES / "alerts" / "demo-process-injection-high.json")
    alert[name] = None

    assert AlertValidator().validate(alert).errors == ()


def test_every_evidence_key_but_entity_type_accepts_null() -> None:
    alert = load_alert(FIXTURES / "alerts" / "demo-process-injection-high.json")
    alert["evidence"] = [{key: None for key in DOCUMENTED_EVIDENCE_KEYS} | {"entityType": "File"}]
    without_type = copy.deepcopy(alert)
    without_type["evidence"][0]["entityType"] = None

    assert AlertValidator().validate(alert).errors == ()
    assert AlertValidator().validate(without_type).errors == (
        "evidence[0].entityType: None is not of type 'string'",
    )


@pytest.mark.parametrize("key", REQUIRED_CORE)
def test_an_alert_without_one_core_key_is_not_an_alert(key: str) -> None:
    alert = load_alert(FIXTURES / "alerts" / "demo-c2-beacon-medium.json")
    del alert[key]

    result = AlertValidator().validate(alert)

    assert not result.is_alert
    assert result.errors[0] == f"Not a Defender for Endpoint alert: it lacks {key}."
