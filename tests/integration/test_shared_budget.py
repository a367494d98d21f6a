"""The call budget shared by several real search processes against one emulator.

The windows are scaled down to 10 calls per hour on both sides (client limiter and emulator), so
the hour never has to pass: calls beyond the tenth cannot be granted before any deadline, and
neither side ever waits. Each process is ``tests.integration.lookup_process``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.emulator import DefenderEmulator

ROOT = Path(__file__).resolve().parents[2]
CALLS_PER_HOUR = 10
PROCESSES = 3
HASHES_PER_PROCESS = 6


@pytest.fixture
def limited_emulator() -> Iterator[DefenderEmulator]:
    # Real wall clock: the processes and the emulator must agree on time, and nothing waits.
    with DefenderEmulator(rate_limits=((CALLS_PER_HOUR, 3600.0),)) as emu:
        yield emu


def run_processes(account_file: Path, extra_arguments: list[str]) -> list[dict[str, object]]:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), str(ROOT)])}
    processes = []
    for number in range(PROCESSES):
        hashes = [f"{number:02x}{index:038x}" for index in range(HASHES_PER_PROCESS)]
        command = [sys.executable, "-m", "tests.integration.lookup_process", str(account_file), *hashes]
        processes.append(
            subprocess.Popen(
                [*command, *extra_arguments],
                cwd=ROOT,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outcomes = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        outcomes.extend(json.loads(line) for line in stdout.splitlines())
    return outcomes


def test_the_limiter_keeps_every_process_within_defenders_limit(
    limited_emulator: DefenderEmulator, tmp_path: Path
) -> None:
    account_file = limited_emulator.write_account_file(tmp_path / "account.json")
    limiter_arguments = ["--limiter-dir", str(tmp_path / "budget"), "--window", str(CALLS_PER_HOUR), "3600"]

    outcomes = run_processes(account_file, [*limiter_arguments, "--timeout", "60"])

    assert len(outcomes) == PROCESSES * HASHES_PER_PROCESS
    statuses = Counter(outcome["status"] for outcome in outcomes)
    assert statuses == {
        "not_found": CALLS_PER_HOUR,
        "not_looked_up": PROCESSES * HASHES_PER_PROCESS - CALLS_PER_HOUR,
    }
    assert {outcome["error"] for outcome in outcomes if outcome["status"] == "not_looked_up"} == {
        "BudgetExhausted"
    }
    # No 429 ever reached any process: the emulator never had to throttle.
    assert limited_emulator.throttled_count == 0
    assert [request.status for request in limited_emulator.api_requests] == [200] * CALLS_PER_HOUR


def test_without_the_limiter_the_services_429s_are_handled(
    limited_emulator: DefenderEmulator, tmp_path: Path
) -> None:
    account_file = limited_emulator.write_account_file(tmp_path / "account.json")

    outcomes = run_processes(account_file, ["--timeout", "60"])

    statuses = Counter(outcome["status"] for outcome in outcomes)
    over_the_limit = PROCESSES * HASHES_PER_PROCESS - CALLS_PER_HOUR
    assert statuses == {"not_found": CALLS_PER_HOUR, "throttled": over_the_limit}
    assert {outcome["error"] for outcome in outcomes if outcome["status"] == "throttled"} == {"Throttled"}
    # Each throttled hash was asked once: a Retry-After of about an hour is not retried early.
    assert limited_emulator.throttled_count == over_the_limit
