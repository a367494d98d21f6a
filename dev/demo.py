"""The README's main job: run ``| mdefilealerts`` against the built-in Defender emulator.

No Microsoft tenant and no Splunk needed: the emulator plays Entra ID and Defender over real HTTPS
on 127.0.0.1, and the command runs as splunkd runs it (a subprocess speaking the chunked
protocol), with its account taken from a local account file.

Usage: python3 dev/tasks.py demo [HASH ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lib"), str(ROOT)]

from tests.support.chunked import CommandRun, SearchInfo, run_generating_command  # noqa: E402
from tests.support.emulator import DefenderEmulator  # noqa: E402

DEMO_HASHES = [
    "6532ec91d513acc05f43ee0aa3002599729fd3e1",  # a file with several alerts
    "32f220fcfff4fe90b95b9ada3cd0148d673cf1b0",  # a file Defender knows, with no alerts
    "84abd80a4572c04c3a8a44ec5da93a3988a63fac",  # another file with alerts
    "d41d8cd98f00b204e9800998ecf8427e",  # an MD5: refused with the reason
    "not-a-hash",
]
COLUMNS = (
    ("_time", 19),
    ("severity", 13),
    ("signature", 40),
    ("dest", 24),
    ("user", 12),
    ("mitre_technique_id", 20),
    ("file_name", 22),
)


def main(hashes: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="mde-demo-") as scratch, DefenderEmulator() as emulator:
        account_file = emulator.write_account_file(Path(scratch) / "account.json")
        env = dict(os.environ)
        env["MDE_FILE_ALERTS_ACCOUNT_FILE"] = str(account_file)
        env["MDE_FILE_ALERTS_STATE_DIR"] = str(Path(scratch) / "state")
        env["MDE_FILE_ALERTS_LOG_FILE"] = str(Path(scratch) / "ta_mde_file_alerts.log")
        search = f'hash="{",".join(hashes)}"'
        print(f"| mdefilealerts {search}    (Defender emulator at {emulator.base_url})\n")
        run = run_generating_command(
            ROOT / "bin" / "mdefilealerts.py",
            SearchInfo(args=[search], dispatch_dir=Path(scratch) / "dispatch"),
            env=env,
        )
        print_table(run)
        print_messages(run)
        print(f"\n{len(run.records)} events, command exit code {run.exit_code}")
        return 0 if run.exit_code == 0 else 1


def print_table(run: CommandRun) -> None:
    print("  ".join(name.ljust(width) for name, width in COLUMNS))
    print("  ".join("-" * width for _, width in COLUMNS))
    for record in run.records:
        cells = []
        for name, width in COLUMNS:
            value = record.get(name, "")
            if name == "_time" and value:
                value = _format_time(value)
            text = ", ".join(value) if isinstance(value, list) else str(value)
            cells.append(_fit(text, width))
        print("  ".join(cells))


def print_messages(run: CommandRun) -> None:
    if run.messages:
        print("\nMessages shown in the search UI:")
    for level, text in run.messages:
        print(f"  {level:5} {text}")


def _fit(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


def _format_time(epoch: str) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(float(epoch), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or DEMO_HASHES))
