"""Run bin/mdefilealerts.py as splunkd does, against the Defender emulator and a fake splunkd.

The command is a subprocess of the Python running pytest, so the suite's two runs (3.9 and
3.13) cover both interpreters. Commands run in virtual time (tests/support/virtual_time): their
sleeps for Retry-After and backoff advance their own clock instead of waiting.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.chunked import CommandRun, SearchInfo, run_generating_command, run_streaming_command
from tests.support.emulator import DefenderEmulator
from tests.support.splunkd import FakeSplunkd

ROOT = Path(__file__).resolve().parents[2]
COMMAND = ROOT / "bin" / "mdefilealerts.py"
VIRTUAL_TIME = ROOT / "tests" / "support" / "virtual_time"
ANALYST_ROLE = "mde_file_alerts_analyst"


@dataclass
class CommandResult:
    run: CommandRun
    log_text: str
    virtual_sleeps: list[float] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.run.records

    @property
    def warnings(self) -> list[str]:
        return self.run.messages_at("WARN")

    @property
    def errors(self) -> list[str]:
        return self.run.messages_at("ERROR")

    @property
    def everything_visible(self) -> str:
        """Replies, messages, stderr (search.log) and the app log: where no secret may appear."""
        return self.run.visible_text + "\n" + self.log_text

    def assert_clean_exit(self) -> None:
        assert self.run.exit_code == 0, self.run.stderr
        assert "Traceback" not in self.everything_visible.replace(self.log_text, "")
        for _, text in self.run.messages:
            assert ".py" not in text, f"a file path reached the user: {text}"


@dataclass
class CommandHarness:
    """Runs the command with a chosen account source and collects what it left behind."""

    workdir: Path
    emulator: DefenderEmulator
    splunkd: FakeSplunkd | None = None
    user: str = "analyst"
    account_file: Path | None = None
    #: A fixed splunkd address and key, for a splunkd that is no longer there.
    stale_splunkd: tuple[str, str] | None = None

    def run(self, *args: str, maxresultrows: int = 50_000) -> CommandResult:
        """``| mdefilealerts <args>`` as the first command (generating)."""
        searchinfo = self._searchinfo(args, maxresultrows)
        return self._result(run_generating_command(COMMAND, searchinfo, env=self._environment()))

    def enrich(
        self, chunks: list[list[dict[str, Any]]], *args: str, maxresultrows: int = 50_000
    ) -> CommandResult:
        """``<search> | mdefilealerts <args>``: the search's events arrive in ``chunks`` (streaming)."""
        searchinfo = self._searchinfo(args, maxresultrows)
        return self._result(run_streaming_command(COMMAND, searchinfo, chunks, env=self._environment()))

    @property
    def _log_file(self) -> Path:
        return self.workdir / "splunk" / "var" / "log" / "splunk" / "ta_mde_file_alerts.log"

    @property
    def _report(self) -> Path:
        return self.workdir / "virtual-time.json"

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("MDE_FILE_ALERTS_ACCOUNT_FILE", None)
        env.pop("MDE_FILE_ALERTS_LOG_FILE", None)
        env.update(
            {
                "SPLUNK_HOME": str(self.workdir / "splunk"),
                "PYTHONPATH": str(VIRTUAL_TIME),
                "VIRTUAL_TIME_REPORT": str(self._report),
                "MDE_FILE_ALERTS_STATE_DIR": str(self.workdir / "state"),
            }
        )
        if self.account_file is not None:
            env["MDE_FILE_ALERTS_ACCOUNT_FILE"] = str(self.account_file)
        return env

    def _searchinfo(self, args: tuple[str, ...], maxresultrows: int) -> SearchInfo:
        searchinfo = SearchInfo(
            args=list(args),
            dispatch_dir=self.workdir / "dispatch",
            maxresultrows=maxresultrows,
            username=self.user,
        )
        if self.splunkd is not None:
            searchinfo.splunkd_uri = self.splunkd.uri
            searchinfo.session_key = self.splunkd.session_key_for(self.user)
        elif self.stale_splunkd is not None:
            searchinfo.splunkd_uri, searchinfo.session_key = self.stale_splunkd
        return searchinfo

    def _result(self, run: CommandRun) -> CommandResult:
        log_text = self._log_file.read_text(encoding="utf-8") if self._log_file.exists() else ""
        sleeps = json.loads(self._report.read_text())["sleeps"] if self._report.exists() else []
        return CommandResult(run, log_text, sleeps)


@pytest.fixture
def local(tmp_path: Path, emulator: DefenderEmulator) -> CommandHarness:
    """The command with an account file (runs outside Splunk)."""
    account_file = emulator.write_account_file(tmp_path / "account.json")
    return CommandHarness(tmp_path, emulator, account_file=account_file)
