"""Run bin/mde_file_alerts_action.py as splunkd runs an alert action, against the emulator and a fake splunkd.

splunkd starts ``python bin/mde_file_alerts_action.py --execute``, writes the JSON payload on
stdin and logs each stderr line into splunkd.log. The script is a subprocess of the Python that
runs pytest (so both test Pythons cover it) and runs in virtual time (tests/support/virtual_time):
Retry-After and backoff sleeps cost nothing. What it indexed is read back from the fake splunkd's
``POST /services/receivers/simple``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.action.results import write_results
from tests.support.emulator import DefenderEmulator
from tests.support.splunkd import FakeSplunkd, ReceivedEvent, account_stanza_for

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bin" / "mde_file_alerts_action.py"
VIRTUAL_TIME = ROOT / "tests" / "support" / "virtual_time"
ANALYST_ROLE = "mde_file_alerts_analyst"
#: The role an alert's owner needs: the app's lookups, and receivers/simple (edit_tcp) to index.
ALERT_OWNER_ROLE = "mde_alert_owner"
ALERT_SOURCETYPE = "ms:defender:atp:alerts"
SUMMARY_SOURCETYPE = "mde_file_alerts:action"
SCRIPT_TIMEOUT = 60


@dataclass
class ActionRun:
    exit_code: int
    stderr: str
    log_text: str
    modalert_text: str
    indexed: list[ReceivedEvent]
    virtual_sleeps: list[float] = field(default_factory=list)

    @property
    def alerts(self) -> list[ReceivedEvent]:
        return [event for event in self.indexed if event.sourcetype == ALERT_SOURCETYPE]

    @property
    def summaries(self) -> list[ReceivedEvent]:
        return [event for event in self.indexed if event.sourcetype == SUMMARY_SOURCETYPE]

    @property
    def summary(self) -> dict[str, Any]:
        assert len(self.summaries) == 1, self.summaries
        document: dict[str, Any] = self.summaries[0].json
        return document

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()

    @property
    def everything_visible(self) -> str:
        """splunkd.log (stderr), the app log, the modalert log and every indexed event."""
        indexed = "\n".join(f"{event.source} {event.raw}" for event in self.indexed)
        return "\n".join((self.stderr, self.log_text, self.modalert_text, indexed))

    def assert_clean_stderr(self) -> None:
        """Each stderr line is one leveled sentence, as splunkd expects; never a traceback or path."""
        assert "Traceback" not in self.stderr
        for line in self.stderr_lines:
            assert line.split(" ", 1)[0] in ("INFO", "WARN", "ERROR"), line
            assert ".py" not in line, f"a file path reached splunkd.log: {line}"


@dataclass
class ActionHarness:
    """Builds the payload and the results file, runs the script, collects what it left behind."""

    workdir: Path
    emulator: DefenderEmulator
    splunkd: FakeSplunkd
    owner: str = "owner"
    account_file: Path | None = None

    def run(
        self,
        rows: Sequence[Mapping[str, object]],
        *,
        hash_field: str = "file_hash",
        index: str = "main",
        account: str = "",
        argv: Sequence[str] = ("--execute",),
        payload_changes: Mapping[str, Any] | None = None,
        stdin: bytes | None = None,
    ) -> ActionRun:
        results = write_results(self.workdir / "results.csv.gz", rows)
        changes = dict(payload_changes or {})
        payload: dict[str, Any] = {
            "app": "search",
            "owner": self.owner,
            "results_file": str(results),
            "results_link": "https://splunk.example.com/app/search/search?sid=scheduler_x",
            "server_host": "sh-01",
            "server_uri": changes.pop("server_uri", None) or self.splunkd.uri,
            "session_key": changes.pop("session_key", None) or self.splunkd.session_key_for(self.owner),
            "sid": "scheduler__owner__search__RMD5a1b2c3_at_1700000000_7",
            "search_name": "Endpoint - Files seen on many hosts - Rule",
            "configuration": {"account": account, "hash_field": hash_field, "index": index},
            "result": dict(rows[0]) if rows else {},
        }
        payload.update(changes)
        splunk_home = self.workdir / "splunk"
        log_dir = splunk_home / "var" / "log" / "splunk"
        report = self.workdir / "virtual-time.json"
        env = dict(os.environ)
        for name in ("MDE_FILE_ALERTS_ACCOUNT_FILE", "MDE_FILE_ALERTS_LOG_FILE"):
            env.pop(name, None)
        env.update(
            {
                "SPLUNK_HOME": str(splunk_home),
                "PYTHONPATH": str(VIRTUAL_TIME),
                "VIRTUAL_TIME_REPORT": str(report),
                "MDE_FILE_ALERTS_STATE_DIR": str(self.workdir / "state"),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        if self.account_file is not None:
            env["MDE_FILE_ALERTS_ACCOUNT_FILE"] = str(self.account_file)
        before = len(self.splunkd.received)
        completed = subprocess.run(
            [sys.executable, str(SCRIPT), *argv],
            input=json.dumps(payload).encode() if stdin is None else stdin,
            capture_output=True,
            env=env,
            cwd=self.workdir,
            timeout=SCRIPT_TIMEOUT,
            check=False,
        )
        return ActionRun(
            exit_code=completed.returncode,
            stderr=completed.stderr.decode("utf-8", "replace"),
            log_text=_read(log_dir / "ta_mde_file_alerts.log"),
            modalert_text=_read(log_dir / "mde_file_alerts_lookup_modalert.log"),
            indexed=self.splunkd.received[before:],
            virtual_sleeps=json.loads(report.read_text())["sleeps"] if report.exists() else [],
        )


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def fake_splunkd(emulator: DefenderEmulator, **overrides: Any) -> FakeSplunkd:
    settings: dict[str, Any] = {
        "users": {"owner": [ALERT_OWNER_ROLE], "analyst": [ANALYST_ROLE], "intern": ["user"]},
        "roles": {ALERT_OWNER_ROLE: ([ANALYST_ROLE], ["edit_tcp"])},
        "accounts": {"prod": account_stanza_for(emulator)},
        "passwords": {"prod": emulator.client_secret},
        "indexes": ("main", "mde"),
    }
    settings.update(overrides)
    return FakeSplunkd(**settings)


@pytest.fixture
def action(tmp_path: Path, emulator: DefenderEmulator) -> Iterator[ActionHarness]:
    """The action inside Splunk: the account and its token come through the app's token broker."""
    with fake_splunkd(emulator) as splunkd:
        yield ActionHarness(tmp_path, emulator, splunkd)
