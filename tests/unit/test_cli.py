"""``python -m mde_file_alerts map|lookup``, run as a subprocess the way scripts and SOAR run it."""

from __future__ import annotations

import calendar
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts import cim
from mde_file_alerts.clouds import get_cloud
from mde_file_alerts.mapping import LookupContext, map_alert
from mde_file_alerts.validation import AlertValidator
from mde_file_alerts.version import app_version
from tests.support.emulator import DefenderEmulator

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
FILES = json.loads((FIXTURES / "defender" / "files.json").read_text(encoding="utf-8"))
DEMO_SHA1 = "6532ec91d513acc05f43ee0aa3002599729fd3e1"
JP_SHA1 = "84abd80a4572c04c3a8a44ec5da93a3988a63fac"
NO_ALERTS_SHA1 = "32f220fcfff4fe90b95b9ada3cd0148d673cf1b0"
UNKNOWN_SHA1 = "0000000000000000000000000000000000000001"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def run(
    *arguments: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    environment = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "LANG", "LC_ALL")
    }
    # Each run gets its own call-budget directory, so no test spends another's budget.
    state = tempfile.mkdtemp(prefix="mde-cli-state-")
    environment.update(
        {"PYTHONPATH": "lib", "PYTHONDONTWRITEBYTECODE": "1", "MDE_FILE_ALERTS_STATE_DIR": state},
        **(env or {}),
    )
    return subprocess.run(
        [sys.executable, "-m", "mde_file_alerts", *arguments],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=environment,
        timeout=60,
        check=False,
    )


def lines(output: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.decode("utf-8").splitlines()]


def fixture_bytes(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def fixture(relative: str) -> Any:
    return json.loads(fixture_bytes(relative))


def epoch(iso_utc: str) -> float:
    parsed = datetime.strptime(iso_utc, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(parsed.timetuple()) + parsed.microsecond / 1e6


def expected_event(alert: Any, emitted: dict[str, Any], *, portal_host: str) -> dict[str, Any]:
    """What map_alert gives for ``alert`` in the context the CLI reported in ``emitted``."""
    context = LookupContext(
        queried_hash=emitted.get(cim.QUERIED_HASH, ""),
        account=emitted.get(cim.ACCOUNT, ""),
        cloud=emitted[cim.CLOUD],
        api_host=emitted[cim.API_HOST],
        portal_host=portal_host,
        retrieved_at=epoch(emitted[cim.RETRIEVED_AT]),
        app_version=app_version(),
        sha256=emitted.get(cim.QUERIED_SHA256),
    )
    return map_alert(alert, context, AlertValidator().validate(alert))


def assert_clean_failure(result: subprocess.CompletedProcess[bytes], code: int, message: str) -> None:
    assert result.returncode == code
    assert result.stdout == b""
    stderr = result.stderr.decode("utf-8")
    assert message in stderr
    assert "Traceback" not in stderr


# --- map ----------------------------------------------------------------------------------------------

ALERTS = ["demo-process-injection-high.json", "jp-invoice-chain-high.json", "legacy-2018-malware.json"]


def envelope(*names: str) -> dict[str, Any]:
    return {
        "@odata.context": "https://api.security.microsoft.com/api/$metadata#Alerts",
        "value": [fixture(f"alerts/{name}") for name in names],
    }


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda: envelope(*ALERTS), id="envelope"),
        pytest.param(lambda: envelope(*ALERTS)["value"], id="bare-list"),
    ],
)
def test_map_writes_exactly_what_map_alert_produces_one_line_each(shape: Any) -> None:
    result = run(
        "map", "--hash", DEMO_SHA1.upper(), "--account", "contoso-prod", stdin=json.dumps(shape()).encode()
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    events = lines(result.stdout)
    assert [event[cim.ID] for event in events] == [fixture(f"alerts/{name}")["id"] for name in ALERTS]
    for name, event in zip(ALERTS, events):
        assert event == expected_event(
            fixture(f"alerts/{name}"), event, portal_host="https://security.microsoft.com"
        )
    assert events[0][cim.SOURCE] == f"mde_file_alerts://contoso-prod/api/files/{DEMO_SHA1}/alerts"
    assert events[0][cim.TIME] == float("1704787921.8830652")


def test_map_takes_one_alert_and_writes_non_ascii_as_utf_8_whatever_the_locale() -> None:
    result = run(
        "map",
        "--hash",
        JP_SHA1,
        stdin=fixture_bytes("alerts/jp-invoice-dropper-low.json"),
        env={"LC_ALL": "C"},
    )

    assert result.returncode == 0, result.stderr
    (event,) = lines(result.stdout)
    assert event[cim.FILE_NAME] == ["請求書_2024年3月.exe"]
    assert "請求書_2024年3月.exe".encode() in result.stdout
    assert cim.ACCOUNT not in event


def test_map_uses_the_cloud_s_portal_for_links() -> None:
    gcc_high = get_cloud("gcc_high")
    result = run("map", "--cloud", "gcc_high", stdin=fixture_bytes("alerts/demo-c2-beacon-medium.json"))

    (event,) = lines(result.stdout)
    assert event[cim.ALERT_URL].startswith(f"{gcc_high.portal_host}/alerts/")
    assert event[cim.API_HOST] == gcc_high.api_host
    assert event == expected_event(
        fixture("alerts/demo-c2-beacon-medium.json"), event, portal_host=gcc_high.portal_host
    )


def test_map_accepts_a_byte_order_mark() -> None:
    result = run("map", stdin=b"\xef\xbb\xbf" + fixture_bytes("alerts/demo-c2-beacon-medium.json"))

    assert result.returncode == 0, result.stderr
    assert len(lines(result.stdout)) == 1


def test_map_warns_about_invalid_alerts_but_emits_them() -> None:
    document = {"value": [fixture("alerts/demo-c2-beacon-medium.json"), fixture("invalid/wrong-types.json")]}

    result = run("map", stdin=json.dumps(document).encode())

    assert result.returncode == 0
    assert [event[cim.SCHEMA] for event in lines(result.stdout)] == ["valid", "invalid"]
    assert result.stderr.decode() == (
        "python3 -m mde_file_alerts: 1 of 2 alerts failed schema validation; "
        "see mde_schema_errors in their events.\n"
    )


def test_map_strict_leaves_invalid_alerts_out_says_why_and_exits_1() -> None:
    document = {
        "value": [
            fixture("alerts/demo-c2-beacon-medium.json"),
            fixture("invalid/wrong-types.json"),
            fixture("invalid/m365-incidents-api-alert.json"),
        ]
    }

    result = run("map", "--validate", "strict", stdin=json.dumps(document).encode())

    assert result.returncode == 1
    assert [event[cim.ID] for event in lines(result.stdout)] == ["da638413011456210987_1175064329"]
    stderr = result.stderr.decode().splitlines()
    assert len(stderr) == 2
    assert stderr[0].startswith(
        "python3 -m mde_file_alerts: Left out by --validate strict: incidentId: '4213'"
    )
    assert (
        "; It looks like an alert from the Microsoft 365 Defender incidents API (it has alertId" in stderr[1]
    )


def test_map_off_skips_the_schema() -> None:
    result = run("map", "--validate", "off", stdin=fixture_bytes("invalid/wrong-types.json"))

    assert result.returncode == 0
    (event,) = lines(result.stdout)
    assert event[cim.SCHEMA] == "skipped"


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"", "The input is empty; expected a Defender response (JSON) on stdin."),
        (b"  \n", "The input is empty"),
        (b"<html>Bad gateway</html>", "The input is not JSON: Expecting value at line 1, column 1."),
        (b'{"value": [{"id": "da1"', "The input is not JSON: Expecting ',' delimiter at line 1, column 24."),
        (b'{"value": [] \xff}', "The input is not UTF-8 text (byte 13)."),
        (b"42", "The input is a JSON number, not a Defender response"),
        (b'"da638412947218830652_-1893455270"', "The input is a JSON string, not a Defender response"),
        (b"null", "The input is JSON null, not a Defender response"),
        (b'{"value": {"id": "da1"}}', 'The input\'s "value" is not a list of alerts.'),
        (
            b'{"error": {"code": "Forbidden", "message": "Missing application roles.", "target": "c0ffee"}}',
            "The input is a Defender error response, not alerts: Forbidden: Missing application roles.",
        ),
    ],
)
def test_map_refuses_garbage_with_one_sentence_exit_2_and_nothing_on_stdout(
    stdin: bytes, message: str
) -> None:
    assert_clean_failure(run("map", stdin=stdin), 2, message)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["map", "--validate", "loose"], "argument --validate: invalid choice: 'loose'"),
        (["map", "--hash", MD5], f"--hash: '{MD5}' looks like an MD5"),
        (["map", "--cloud", "moon"], "Unknown cloud 'moon'"),
        (["lookup", DEMO_SHA1], "the following arguments are required: --account-file"),
        (
            ["lookup", "--account-file", "x.json", "--timeout", "-3", DEMO_SHA1],
            "not a positive number of seconds",
        ),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_2(arguments: list[str], message: str) -> None:
    assert_clean_failure(
        run(*arguments, stdin=fixture_bytes("alerts/demo-c2-beacon-medium.json")), 2, message
    )


# --- lookup ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[DefenderEmulator]:
    with DefenderEmulator() as emu:
        yield emu


@pytest.fixture
def account_file(emulator: DefenderEmulator, tmp_path: Path) -> Path:
    emulator.reset()
    return emulator.write_account_file(tmp_path / "account.json")


def by_hash(records: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Split the output into (status record, the events printed before it) per hash."""
    groups: list[tuple[str, list[dict[str, Any]]]] = []
    pending: list[dict[str, Any]] = []
    for record in records:
        if cim.STATUS_FOR in record:
            groups.append((record[cim.STATUS_FOR], pending))
            pending = []
        else:
            pending.append(record)
    assert pending == [], "events after the last status record"
    return groups


def test_lookup_prints_each_hash_s_events_then_its_status(
    emulator: DefenderEmulator, account_file: Path
) -> None:
    result = run("lookup", "--account-file", str(account_file), DEMO_SHA1, f"{JP_SHA1},{NO_ALERTS_SHA1}")

    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    records = lines(result.stdout)
    groups = by_hash(records)
    assert [sha1 for sha1, _ in groups] == [DEMO_SHA1, JP_SHA1, NO_ALERTS_SHA1]
    for sha1, events in groups:
        names = FILES[sha1]["alerts"]
        assert [event[cim.ID] for event in events] == [fixture(f"alerts/{name}")["id"] for name in names]
        for name, event in zip(names, events):
            assert event[cim.QUERIED_HASH] == sha1
            assert event[cim.ACCOUNT] == "emulator"
            assert event == expected_event(
                fixture(f"alerts/{name}"), event, portal_host="https://security.microsoft.com"
            )
    statuses = [record for record in records if cim.STATUS_FOR in record]
    assert [(status[cim.STATUS_VALUE], status[cim.STATUS_ALERT_COUNT]) for status in statuses] == [
        ("found", 5),
        ("found", 2),
        ("not_found", 0),
    ]
    assert statuses[0][cim.STATUS_MESSAGE] == f"5 Defender alerts for file {DEMO_SHA1}."
    assert statuses[2][cim.STATUS_MESSAGE] == f"No Defender alerts for file {NO_ALERTS_SHA1}."


def test_lookup_exits_1_when_a_hash_got_no_answer(emulator: DefenderEmulator, account_file: Path) -> None:
    result = run("lookup", "--account-file", str(account_file), UNKNOWN_SHA1, MD5)

    assert result.returncode == 1
    statuses = lines(result.stdout)
    assert [(status[cim.STATUS_FOR], status[cim.STATUS_VALUE]) for status in statuses] == [
        (UNKNOWN_SHA1, "not_found"),
        (MD5, "invalid_hash"),
    ]
    assert "looks like an MD5" in statuses[1][cim.STATUS_MESSAGE]
    assert [request.path for request in emulator.api_requests] == [f"/api/files/{UNKNOWN_SHA1}/alerts"]


def test_lookup_stops_at_a_fatal_error_and_still_gives_every_hash_a_status(
    emulator: DefenderEmulator, account_file: Path
) -> None:
    emulator.inject(403, times=None)

    result = run("lookup", "--account-file", str(account_file), DEMO_SHA1, JP_SHA1)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr.decode()
    assert "Defender for Endpoint denied access" in result.stderr.decode()
    statuses = lines(result.stdout)
    assert [status[cim.STATUS_FOR] for status in statuses] == [DEMO_SHA1, JP_SHA1]
    assert {status[cim.STATUS_VALUE] for status in statuses} == {"not_looked_up"}


def test_lookup_with_a_wrong_secret_says_so_without_showing_it(
    emulator: DefenderEmulator, account_file: Path, tmp_path: Path
) -> None:
    secret = "Wr0ng~secret.value-that-must-not-leak"
    wrong = emulator.write_account_file(tmp_path / "wrong.json", client_secret=secret)

    result = run("lookup", "--account-file", str(wrong), DEMO_SHA1)

    assert result.returncode == 1
    assert "AADSTS" in result.stderr.decode()
    assert secret.encode() not in result.stdout + result.stderr
    assert [status[cim.STATUS_VALUE] for status in lines(result.stdout)] == ["not_looked_up"]


def test_lookup_with_a_broken_account_file_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "account.json"
    broken.write_text('{"name": "x", "tenant_id": "not-a-guid"}', encoding="utf-8")

    result = run("lookup", "--account-file", str(broken), DEMO_SHA1)

    assert result.returncode == 2
    assert result.stdout == b""
    assert "account.json" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def test_lookup_strict_reports_left_out_alerts_in_the_status(
    emulator: DefenderEmulator, account_file: Path
) -> None:
    odd_sha1 = "1111111111111111111111111111111111111111"
    emulator.add_file(
        odd_sha1, [fixture("alerts/demo-c2-beacon-medium.json"), fixture("invalid/wrong-types.json")]
    )

    result = run("lookup", "--account-file", str(account_file), "--validate", "strict", odd_sha1)

    assert result.returncode == 0
    event, status = lines(result.stdout)
    assert event[cim.ID] == "da638413011456210987_1175064329"
    assert status[cim.STATUS_REJECTED_COUNT] == 1
    assert "1 was left out by validate=strict" in status[cim.STATUS_MESSAGE]
