"""One search process, for the shared-budget tests: looks hashes up and prints one JSON line each.

    python -m tests.integration.lookup_process ACCOUNT_FILE --limiter-dir DIR --window CALLS SECONDS
        --timeout SECONDS HASH...

Without ``--limiter-dir`` the client has no client-side limit (the service's 429s pace it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mde_file_alerts.account import load_account_file
from mde_file_alerts.client import DefenderClient
from mde_file_alerts.ratelimit import FileRateLimiter, RateLimiter, UnlimitedRateLimiter, limiter_key


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lookup_process")
    parser.add_argument("account_file", type=Path)
    parser.add_argument("hashes", nargs="+")
    parser.add_argument("--limiter-dir", type=Path)
    parser.add_argument("--window", nargs=2, type=float, metavar=("CALLS", "SECONDS"), default=(100, 60.0))
    parser.add_argument("--timeout", type=float, default=30.0)
    arguments = parser.parse_args(argv)

    account = load_account_file(arguments.account_file)
    limiter: RateLimiter = UnlimitedRateLimiter()
    if arguments.limiter_dir is not None:
        calls, seconds = arguments.window
        limiter = FileRateLimiter(
            arguments.limiter_dir,
            limiter_key(account.tenant_id, account.client_id),
            windows=((int(calls), seconds),),
        )
    client = DefenderClient(account, rate_limiter=limiter, max_workers=2)
    for outcome in client.lookup(arguments.hashes, timeout=arguments.timeout):
        line = {
            "hash": outcome.query.value,
            "status": outcome.status.value,
            "error": type(outcome.error).__name__ if outcome.error else None,
            "calls": outcome.calls,
        }
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
