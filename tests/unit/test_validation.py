"""Validation: readable problems, drift as unknown keys, non-alerts recognised, 0-7 fraction digits."""

from __future__ import annotations

import calendar
import copy
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts.validation import (
    INVALID,
    MAX_ERRORS,
    SKIPPED,
    VALID,
    AlertValidator,
    ValidationMode,
    ValidationResult,
    parse_date_time,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# 2024-01-09T08:12:01Z
BASE_EPOCH = calendar.timegm((2024, 1, 9, 8, 12, 1, 0, 0, 0))


def load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


@pytest.fixture
def alert() -> dict[str, Any]:
    document: dict[str, Any] = load("alerts/demo-process-injection-high.json")
    return document


# --- timestamps ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-09T08:12:01Z", BASE_EPOCH),
        ("2024-01-09T08:12:01.2Z", BASE_EPOCH + 0.2),
        ("2024-01-09T08:12:01.88Z", BASE_EPOCH + 0.88),
        ("2024-01-09T08:12:01.883Z", BASE_EPOCH + 0.883),
        ("2024-01-09T08:12:01.8830Z", BASE_EPOCH + 0.883),
        ("2024-01-09T08:12:01.88306Z", BASE_EPOCH + 0.88306),
        ("2024-01-09T08:12:01.883065Z", BASE_EPOCH + 0.883065),
        ("2024-01-09T08:12:01.8830652Z", float(f"{BASE_EPOCH}.8830652")),
        ("2024-01-09T10:12:01+02:00", BASE_EPOCH),
        ("2024-01-09T03:42:01.5-04:30", BASE_EPOCH + 0.5),
        ("2024-01-09t08:12:01z", BASE_EPOCH),
    ],
)
def test_timestamps_with_0_to_7_fraction_digits_and_offsets_parse_exactly(text: str, expected: float) -> None:
    assert parse_date_time(text) == pytest.approx(expected, abs=1e-7)


def test_the_seventh_fraction_digit_is_kept() -> None:
    with_seven = parse_date_time("2024-01-09T08:12:01.8830652Z")
    with_six = parse_date_time("2024-01-09T08:12:01.883065Z")

    assert with_seven is not None and with_six is not None
    assert with_seven - with_six == pytest.approx(2e-7, abs=1e-7)
    assert with_seven != with_six


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-09T08:12:01.88306521Z",  # 8 fraction digits
        "2024-01-09T08:12:01",  # no zone
        "2024-01-09 08:12:01Z",  # space instead of T
        "2024-02-30T08:12:01Z",  # no such day
        "2024-01-09T24:00:00Z",
        "2024-01-09T08:12:01+24:00",
        "2024-01-09T08:12:01.Z",
        "\uff12\uff10\uff12\uff14-01-09T08:12:01Z",  # full-width digits
        "2024-01-09",
        "",
    ],
)
def test_other_text_is_not_a_timestamp(text: str) -> None:
    assert parse_date_time(text) is None


@pytest.mark.parametrize("fraction", ["", ".2", ".29", ".290", ".2901", ".29011", ".290112", ".2901123"])
def test_every_time_field_accepts_0_to_7_fraction_digits(alert: dict[str, Any], fraction: str) -> None:
    stamp = f"2024-01-09T08:12:01{fraction}Z"
    for key in ("alertCreationTime", "firstEventTime", "lastEventTime", "lastUpdateTime", "resolvedTime"):
        alert[key] = stamp
    alert["evidence"][1]["processCreationTime"] = stamp
    alert["comments"] = [{"comment": "ok", "createdBy": "a@contoso.com", "createdTime": stamp}]

    assert AlertValidator().validate(alert).errors == ()


def test_a_malformed_timestamp_is_named_with_its_path(alert: dict[str, Any]) -> None:
    alert["evidence"][1]["processCreationTime"] = "yesterday"

    assert AlertValidator().validate(alert).errors == (
        "evidence[1].processCreationTime: 'yesterday' is not a 'date-time'",
    )


# --- readable problems ------------------------------------------------------------------------------


def test_wrong_types_are_reported_one_readable_sentence_each() -> None:
    result = AlertValidator().validate(load("invalid/wrong-types.json"))

    assert result.status == INVALID
    assert result.is_alert
    assert sorted(result.errors) == sorted(
        [
            "incidentId: '4213' is not of type 'integer', 'null'",
            "severity: 'Critical' is not one of ['UnSpecified', 'Informational', 'Low', 'Medium', 'High']",
            "lastEventTime: '2024-01-09 08:10:02Z' is not a 'date-time'",
            "mitreTechniques: 'T1059.001, T1105' is not of type 'array'",
            "relatedUser: 'CONTOSO\\\\amy.ross' is not of type 'object', 'null'",
            "comments[0].createdTime: 1704787921 is not of type 'string', 'null'",
            "evidence[0]: 'entityType' is a required property",
            "evidence[1].processId: '7312' is not of type 'integer', 'null'",
            "evidence[2].sha1: 123 is not of type 'string', 'null'",
        ]
    )


def test_a_huge_wrong_value_is_quoted_short(alert: dict[str, Any]) -> None:
    alert["mitreTechniques"] = {"T1055": "x" * 5000}

    (message,) = AlertValidator().validate(alert).errors

    assert message.startswith("mitreTechniques: {'T1055': 'xxx")
    assert message.endswith("… is not of type 'array'")
    assert len(message) < 120


def test_many_problems_are_summed_up_after_the_first_ones(alert: dict[str, Any]) -> None:
    alert["evidence"] = [{"entityType": index} for index in range(MAX_ERRORS + 5)]

    errors = AlertValidator().validate(alert).errors

    assert len(errors) == MAX_ERRORS + 1
    assert errors[0] == "evidence[0].entityType: 0 is not of type 'string'"
    assert errors[-1] == "... and 5 more problems."


# --- drift -------------------------------------------------------------------------------------------


def test_unknown_keys_anywhere_are_drift_not_errors(alert: dict[str, Any]) -> None:
    alert["alertPolicyId"] = "p-1"
    alert["evidence"][0]["verdict"] = "Malicious"
    alert["evidence"][3]["verdict"] = "Suspicious"
    alert["evidence"][2]["remediationStatus"] = None
    alert["relatedUser"]["userSid"] = "S-1-5-21-1"
    alert["loggedOnUsers"][0]["logonType"] = "Interactive"
    alert["comments"] = [{"comment": "x", "createdBy": "y", "createdTime": None, "createTime": None}]

    result = AlertValidator().validate(alert)

    assert result.status == VALID
    assert result.unknown_keys == (
        "relatedUser.userSid",
        "loggedOnUsers[].logonType",
        "comments[].createTime",
        "evidence[].verdict",
        "evidence[].remediationStatus",
        "alertPolicyId",
    )


def test_retired_keys_of_old_payloads_are_known() -> None:
    result = AlertValidator().validate(load("alerts/legacy-2018-malware.json"))

    assert result.unknown_keys == ()
    assert result.is_valid


# --- things that are not Defender for Endpoint alerts ------------------------------------------------------


@pytest.mark.parametrize("mode", list(ValidationMode))
@pytest.mark.parametrize(
    ("fixture", "lacks", "looks_like"),
    [
        (
            "invalid/m365-incidents-api-alert.json",
            "id, machineId, alertCreationTime",
            "It looks like an alert from the Microsoft 365 Defender incidents API "
            "(it has alertId, creationTime, devices, entities, lastUpdatedTime).",
        ),
        (
            "invalid/graph-alerts-v2.json",
            "machineId, alertCreationTime",
            "It looks like a Microsoft Graph alerts_v2 alert "
            "(it has @odata.type, alertWebUrl, createdDateTime, lastUpdateDateTime, tenantId).",
        ),
    ],
)
def test_alerts_from_other_microsoft_apis_are_not_alerts_in_every_mode(
    mode: ValidationMode, fixture: str, lacks: str, looks_like: str
) -> None:
    result = AlertValidator(mode).validate(load(fixture))

    assert not result.is_alert
    assert result.status == INVALID
    assert result.errors[:2] == (f"Not a Defender for Endpoint alert: it lacks {lacks}.", looks_like)
    assert result.unknown_keys == ()


def test_a_graph_alert_also_gets_its_other_problems_listed_unless_validation_is_off() -> None:
    graph_alert = load("invalid/graph-alerts-v2.json")

    warned = AlertValidator(ValidationMode.WARN).validate(graph_alert)
    off = AlertValidator(ValidationMode.OFF).validate(graph_alert)

    assert "incidentId: '4213' is not of type 'integer', 'null'" in warned.errors
    assert "severity: 'medium' is not one of ['UnSpecified', 'Informational', 'Low', 'Medium', 'High']" in (
        warned.errors
    )
    assert "evidence[0]: 'entityType' is a required property" in warned.errors
    # The missing core keys are named once, in the first sentence, not again one by one.
    assert not any(error.endswith("is a required property") and ":" not in error for error in warned.errors)
    assert len(off.errors) == 2


@pytest.mark.parametrize(
    ("value", "kind"),
    [([], "a list"), ("da638412947218830652_-1893455270", "a string"), (None, "null"), (4213, "a number")],
)
def test_a_value_that_is_not_an_object_is_not_an_alert(value: Any, kind: str) -> None:
    for mode in ValidationMode:
        result = AlertValidator(mode).validate(value)
        assert not result.is_alert
        assert result.errors == (f"Not a Defender for Endpoint alert: expected a JSON object, got {kind}.",)


# --- modes and sharing --------------------------------------------------------------------------------------


def test_off_skips_the_schema_for_real_alerts() -> None:
    result = AlertValidator(ValidationMode.OFF).validate(load("invalid/wrong-types.json"))

    assert result == ValidationResult(SKIPPED)
    assert result.is_alert and not result.is_valid


def test_strict_and_warn_judge_alike(alert: dict[str, Any]) -> None:
    broken = copy.deepcopy(alert)
    broken["severity"] = "Severe"

    for value in (alert, broken):
        assert AlertValidator(ValidationMode.STRICT).validate(value) == AlertValidator().validate(value)


def test_modes_are_given_by_name() -> None:
    assert AlertValidator("strict").mode is ValidationMode.STRICT  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'loose' is not a valid ValidationMode"):
        AlertValidator("loose")  # type: ignore[arg-type]


def test_the_compiled_schema_is_built_once_and_shared() -> None:
    assert AlertValidator()._schema is AlertValidator(ValidationMode.STRICT)._schema


def test_one_validator_gives_the_same_answers_from_many_threads() -> None:
    validator = AlertValidator()
    documents = [load(f"alerts/{path.name}") for path in sorted((FIXTURES / "alerts").glob("*.json"))]
    documents.append(load("invalid/wrong-types.json"))
    expected = [validator.validate(document) for document in documents]
    results: list[list[ValidationResult]] = []

    def validate_all() -> None:
        results.append(
            [validator.validate(document) for _ in range(5) for document in documents][: len(documents)]
        )

    threads = [threading.Thread(target=validate_all) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [expected] * 8
