"""Cold lookups of many hashes: how close to the theoretical floor, and how much faster than the naive way.

Run through ``python3 dev/tasks.py bench`` (or directly: ``python bench/lookup_bench.py``).

Against the Defender emulator (in its own process) answering every call after LATENCY seconds,
with Defender's real limits (100 calls a minute, 1,500 an hour) shrunk by TIME_SCALE on both
sides (the emulator's windows and the client's call budget), N unique hashes nobody looked up yet:

1. The app's way (lookups.HashLookup over DefenderClient: 4 workers, the shared file budget, the
   result cache): wall time ÷ the theoretical floor, the earliest time N calls of LATENCY can be
   done by 4 workers within the limits. Target: at most 1.15, with no 429 from the emulator.
2. The way connectors for this API do it today: one hash after another, a fresh token for each,
   no cache, honouring Retry-After. The speed-up of 1. over 2. is reported.

Sign-in is done before 1. is timed (it is a one-time cost, not part of the floor); 2. pays for
its tokens because asking for a fresh one every time is what it does.
"""

from __future__ import annotations

import heapq
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lib"), str(ROOT / "bench")]

import requests  # noqa: E402
from emulator_process import EmulatorProcess  # noqa: E402
from figures import Figures  # noqa: E402

from mde_file_alerts.account import load_account_file  # noqa: E402
from mde_file_alerts.cache import MemoryCache  # noqa: E402
from mde_file_alerts.client import DefenderClient  # noqa: E402
from mde_file_alerts.lookups import HashLookup  # noqa: E402
from mde_file_alerts.ratelimit import DEFENDER_WINDOWS, FileRateLimiter, limiter_key  # noqa: E402
from mde_file_alerts.runtime import Connection, budget_windows  # noqa: E402

HASHES = 300
LATENCY = 0.015
TIME_SCALE = 0.01
WORKERS = 4
TARGET_FLOOR_RATIO = 1.15


def scaled(windows: Sequence[tuple[int, float]]) -> tuple[tuple[int, float], ...]:
    return tuple((calls, seconds * TIME_SCALE) for calls, seconds in windows)


def theoretical_floor(
    calls: int, latency: float, workers: int, windows: Sequence[tuple[int, float]]
) -> float:
    """The earliest all ``calls`` can be done: each starts when a worker is free and every window has
    room (at most ``limit`` starts in any ``seconds``), and takes ``latency``. Greedy is optimal here."""
    free_at = [0.0] * workers
    starts: list[float] = []
    for _ in range(calls):
        start = heapq.heappop(free_at)
        for limit, seconds in windows:
            if len(starts) >= limit:
                start = max(start, starts[-limit] + seconds)
        starts.append(start)
        heapq.heappush(free_at, start + latency)
    return max(free_at)


def app_lookup(emulator: EmulatorProcess, hashes: list[str], state: Path) -> float:
    account = load_account_file(emulator.account_file)
    limiter = FileRateLimiter(
        state,
        limiter_key(account.tenant_id, account.client_id),
        windows=scaled(budget_windows(DEFENDER_WINDOWS)),
    )
    client = DefenderClient(account, rate_limiter=limiter, max_workers=WORKERS)
    client.check_access()
    lookup = HashLookup(Connection(account, limiter, MemoryCache()), client_factory=lambda _c, _k: client)
    started = time.perf_counter()
    statuses = {result.outcome.status.value for result in lookup.lookup(hashes, timeout=600)}
    wall = time.perf_counter() - started
    if statuses != {"not_found"}:
        raise SystemExit(f"the app's lookups did not all succeed: {sorted(statuses)}")
    return wall


def naive_lookup(emulator: EmulatorProcess, hashes: list[str]) -> float:
    account = emulator.account
    token_url = f"{account['authority_host']}/{account['tenant_id']}/oauth2/v2.0/token"
    form = {
        "client_id": account["client_id"],
        "client_secret": account["client_secret"],
        "grant_type": "client_credentials",
        "scope": "https://api.securitycenter.microsoft.com/.default",
    }
    verify = account["ca_bundle"]
    started = time.perf_counter()
    for sha1 in hashes:
        token = requests.post(token_url, data=form, verify=verify, timeout=30).json()["access_token"]
        while True:
            response = requests.get(
                f"{account['api_host']}/api/files/{sha1}/alerts",
                headers={"Authorization": f"Bearer {token}"},
                verify=verify,
                timeout=30,
            )
            if response.status_code != 429:
                response.raise_for_status()
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
    return time.perf_counter() - started


def main() -> int:
    figures = Figures("lookup_bench")
    hashes = [f"{index:040x}" for index in range(1, HASHES + 1)]
    floor = theoretical_floor(HASHES, LATENCY, WORKERS, scaled(DEFENDER_WINDOWS))
    figures.note(
        f"{HASHES} unique hashes, {LATENCY * 1000:.0f} ms per call, {WORKERS} workers, limits x{TIME_SCALE}"
    )
    with (
        tempfile.TemporaryDirectory() as directory,
        EmulatorProcess(Path(directory) / "account.json", time_scale=TIME_SCALE, latency=LATENCY) as emulator,
    ):
        app = app_lookup(emulator, hashes, Path(directory) / "budget")
        app_stats = emulator.stats()
        emulator.reset()
        naive = naive_lookup(emulator, hashes)
        naive_stats = emulator.stats()
    figures.info("theoretical floor", floor, " s")
    figures.info("app: wall time", app, " s")
    figures.at_most("app: wall / theoretical floor", app / floor, TARGET_FLOOR_RATIO)
    figures.exactly("app: 429 answers received", app_stats.throttled, 0)
    figures.info("app: Defender calls", app_stats.api_calls, "", 0)
    figures.info("naive (serial, fresh token each, no cache): wall time", naive, " s")
    figures.info("naive: token requests", naive_stats.token_requests, "", 0)
    figures.info("naive: 429 answers received", naive_stats.throttled, "", 0)
    figures.info("speed-up of the app over the naive way", naive / app, "x", 1)
    return figures.exit_code()


if __name__ == "__main__":
    sys.exit(main())
