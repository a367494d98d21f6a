"""Run the emulator on its own: ``python -m tests.support.emulator --account-file emulator.json``.

Prints the base URL and the demo SHA-1s, writes an account file pointing at it, and serves until
Ctrl-C. Run it from the repository root so that ``tests`` is importable.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

from tests.support.emulator.limits import DEFENDER_RATE_LIMITS
from tests.support.emulator.server import DefenderEmulator


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.support.emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--account-file", type=Path, help="write an account file for this emulator here")
    parser.add_argument(
        "--auth", choices=("secret", "certificate"), default="secret", help="credential in the account file"
    )
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="shrink the rate-limit windows (0.01: 0.6 s)"
    )
    parser.add_argument("--no-rate-limits", action="store_true", help="never answer 429")
    parser.add_argument("--page-size", type=int, help="split alerts into pages of this many")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, stop: threading.Event | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    emulator = DefenderEmulator(
        port=arguments.port,
        time_scale=arguments.time_scale,
        rate_limits=None if arguments.no_rate_limits else DEFENDER_RATE_LIMITS,
        page_size=arguments.page_size,
    )
    with emulator:
        print(f"Defender emulator listening on {emulator.base_url}", flush=True)
        print(f"  CA bundle:    {emulator.ca_bundle}", flush=True)
        if arguments.account_file is not None:
            emulator.write_account_file(arguments.account_file, arguments.auth)
            print(f"  account file: {arguments.account_file}", flush=True)
        for known in sorted(emulator.known_files(), key=lambda known: -len(known.alerts)):
            print(f"  {known.sha1}  {len(known.alerts)} alert(s)", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            (stop or threading.Event()).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
