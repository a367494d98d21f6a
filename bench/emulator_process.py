"""The Defender emulator in a process of its own, for benchmarks: ``EmulatorProcess`` starts and drives it.

In its own process the emulator's TLS and JSON work never competes for the interpreter lock
with the client being measured. It answers every API call after a fixed latency (the
emulator's SlowResponse fault, injected for every call), keeps Defender's rate limits shrunk by
``time_scale``, and takes one-line commands on stdin: ``stats`` (counters as one JSON line),
``reset`` (forget requests, throttling state and counters; the latency and extra files stay),
``quit``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class EmulatorStats:
    api_calls: int
    throttled: int
    token_requests: int


class EmulatorProcess:
    """``with EmulatorProcess(...) as emulator:``; ``account`` is an account file's contents for it."""

    def __init__(
        self,
        account_file: Path,
        *,
        time_scale: float,
        latency: float,
        files: int = 0,
        alerts_per_file: int = 0,
        python: str = sys.executable,
    ) -> None:
        self.account_file = account_file
        command = [
            python,
            str(Path(__file__).resolve()),
            str(account_file),
            str(time_scale),
            str(latency),
            str(files),
            str(alerts_per_file),
        ]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        ready = self._answer()
        self.base_url: str = ready["base_url"]
        self.bulk_sha1s: list[str] = ready["bulk_sha1s"]
        self.account: dict[str, Any] = json.loads(account_file.read_text(encoding="utf-8"))

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> EmulatorStats:
        return EmulatorStats(**self._ask("stats"))

    def reset(self) -> None:
        self._ask("reset")

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.write("quit\n")
            self._process.stdin.flush()
            self._process.wait(timeout=10)

    def _ask(self, command: str) -> Any:
        assert self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return self._answer()

    def _answer(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process ended")
        return json.loads(line)


def serve(account_file: Path, time_scale: float, latency: float, files: int, alerts_per_file: int) -> None:
    sys.path[:0] = [str(ROOT / "lib"), str(ROOT)]
    from tests.support.emulator import DefenderEmulator, SlowResponse
    from tests.support.emulator.catalog import load_alert

    alerts = [
        load_alert(path.name) for path in sorted((ROOT / "tests" / "fixtures" / "alerts").glob("*.json"))
    ]
    bulk_sha1s = [f"{0xB0 + index:040x}" for index in range(files)]

    def prepare(emulator: DefenderEmulator) -> None:
        if latency > 0:
            emulator.inject(SlowResponse(latency), times=None)
        for number, sha1 in enumerate(bulk_sha1s):
            emulator.add_file(
                sha1, [_variant(alerts[i % len(alerts)], number, i) for i in range(alerts_per_file)]
            )

    with DefenderEmulator(time_scale=time_scale) as emulator:
        emulator.write_account_file(account_file)
        prepare(emulator)
        print(json.dumps({"base_url": emulator.base_url, "bulk_sha1s": bulk_sha1s}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                counters = {
                    "api_calls": len(emulator.api_requests),
                    "throttled": emulator.throttled_count,
                    "token_requests": emulator.token_requests,
                }
                print(json.dumps(counters), flush=True)
            elif command == "reset":
                emulator.reset()
                prepare(emulator)
                print("{}", flush=True)
            elif command == "quit":
                break


def _variant(alert: dict[str, Any], file_number: int, index: int) -> dict[str, Any]:
    """A fixture alert with an id of its own, so 10,000 alerts are 10,000 different alerts."""
    return {**alert, "id": f"da{file_number:06d}{index:06d}_bench"}


if __name__ == "__main__":
    serve(Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
