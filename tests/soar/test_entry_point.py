"""The app as a program: ``python -m src.app action ...`` from soar/, the SDK's local runner.

It runs the real entry point in its own process (imports, relative imports, asset file with the
secret encrypted by the runner) and prints the action result, which is what is checked.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mde_file_alerts.logging_setup import LOGGER_NAME
from tests.soar.harness import asset_for, run_one
from tests.support.emulator import DefenderEmulator

SOAR_DIR = Path(__file__).resolve().parents[2] / "soar"
UNKNOWN_SHA1 = "0123456789abcdef0123456789abcdef01234567"


def run_program(tmp_path: Path, *arguments: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "src.app", *arguments],
        cwd=SOAR_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "MDE_FILE_ALERTS_STATE_DIR": str(tmp_path / "state"),
        },
        check=False,
    )
    return completed.stdout + completed.stderr


def test_the_program_runs_get_file_alerts_and_prints_the_result(
    emulator: DefenderEmulator, tmp_path: Path
) -> None:
    asset_file = tmp_path / "asset.json"
    asset_file.write_text(json.dumps(asset_for(emulator)))
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps({"hash": UNKNOWN_SHA1}))

    output = run_program(tmp_path, "action", "get-file-alerts", "-a", str(asset_file), "-p", str(params_file))

    assert "Action success: True" in output
    assert f"Result message: No Defender alerts for file {UNKNOWN_SHA1}." in output
    # The library's one line per lookup reaches SOAR's log once.
    assert output.count(f"lookup hash={UNKNOWN_SHA1}") == 1
    assert emulator.client_secret not in output
    assert "Traceback" not in output


def test_the_program_reports_a_failed_connectivity_test_as_a_result(
    emulator: DefenderEmulator, tmp_path: Path
) -> None:
    asset_file = tmp_path / "asset.json"
    asset_file.write_text(json.dumps(asset_for(emulator, client_secret="Wr0ng8Q~" + "z" * 32)))

    output = run_program(tmp_path, "action", "test_connectivity", "-a", str(asset_file))

    assert "Action success: False" in output
    assert "AADSTS7000215" in output
    assert "Traceback" not in output


def test_library_log_lines_reach_soars_log_redacted(
    emulator: DefenderEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    run_one("get_file_alerts", asset_for(emulator), {"hash": UNKNOWN_SHA1})
    logging.getLogger(LOGGER_NAME).warning("Authorization: Bearer eyJ0eXAi.payload.signature")

    printed = capsys.readouterr().out
    assert f"lookup hash={UNKNOWN_SHA1} sha1={UNKNOWN_SHA1} status=not_found" in printed
    assert "eyJ0eXAi" not in printed and "Bearer ********" in printed
