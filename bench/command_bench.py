"""The search command as splunkd runs it: warm reruns, memory, and cold start.

Run through ``python3 dev/tasks.py bench`` (or directly: ``python bench/command_bench.py``).
Each figure comes from bin/mdefilealerts.py run as a subprocess speaking the chunked protocol,
against the Defender emulator (its own process) and, inside "Splunk", the fake splunkd of the
tests with its KV store and token broker.

3. Warm rerun: ``... | mdefilealerts field=sha1`` over 10,000 events with 10,000 distinct hashes,
   every one in the result cache: 0 Defender calls, 0 token requests (and no token broker
   request), and wall time at most 3x that of the same search with the lookup step removed
   (bench/passthrough_command.py: the same events through a splunklib streaming command that
   passes them on).
4. Peak memory (maximum resident set size) of ``| mdefilealerts hash=...`` returning 10,000
   alerts (100 files with 100 alerts each): at most 200 MB.
5. Cold start, process spawn to getinfo reply, of bin/mdefilealerts.py: at most 1.5x that of a
   bare splunklib generating command (bench/bare_command.py); medians of alternating runs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lib"), str(ROOT), str(ROOT / "bench")]

from emulator_process import EmulatorProcess  # noqa: E402
from figures import Figures  # noqa: E402

from mde_file_alerts.cache import DEFAULT_TTL_FOUND  # noqa: E402
from mde_file_alerts.hashes import parse_hash  # noqa: E402
from mde_file_alerts.outcome import HashOutcome, HashStatus  # noqa: E402
from mde_file_alerts.splunk.kv_cache import KvResultCache  # noqa: E402
from mde_file_alerts.splunk.kvstore import CACHE_COLLECTION, KvStoreCollection  # noqa: E402
from tests.support.chunked import (  # noqa: E402
    SearchInfo,
    encode_chunk,
    encode_records,
    parse_records,
    read_chunk,
)
from tests.support.emulator.catalog import load_alert  # noqa: E402
from tests.support.fake_kvstore import FakeKvStore  # noqa: E402
from tests.support.splunkd import FakeSplunkd  # noqa: E402

COMMAND = ROOT / "bin" / "mdefilealerts.py"
BARE = ROOT / "bench" / "bare_command.py"
PASSTHROUGH = ROOT / "bench" / "passthrough_command.py"
ANALYST_ROLE = "mde_file_alerts_analyst"

WARM_HASHES = 10_000
WARM_FOUND_EVERY = 10  # one file in ten has an alert
EVENTS_PER_CHUNK = 2_000
MEMORY_FILES, ALERTS_PER_FILE = 100, 100
COLD_START_RUNS = 15
LATENCY = 0.015

TARGET_WARM_RATIO = 3.0
TARGET_PEAK_MB = 200.0
TARGET_COLD_START_RATIO = 1.5


@dataclass
class Run:
    wall: float
    records: int
    peak_mb: float
    messages: list[Any]


def run_command(
    script: Path,
    args: list[str],
    workdir: Path,
    env: dict[str, str],
    chunks: list[list[dict[str, Any]]] | None = None,
    splunkd: tuple[str, str] | None = None,
) -> Run:
    """One run as splunkd drives it; generating when ``chunks`` is None. Peak memory from wait4."""
    info = SearchInfo(args=args, dispatch_dir=workdir / "dispatch")
    if splunkd is not None:
        info.splunkd_uri, info.session_key = splunkd
    info.dispatch_dir.mkdir(parents=True, exist_ok=True)
    transcript = bytearray()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=str(info.dispatch_dir),
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(encode_chunk({"action": "getinfo", "preview": False, "searchinfo": info.to_json()}))
    process.stdin.flush()
    read_chunk(process.stdout, transcript)
    replies = []
    requests = (
        [(True, b"")]
        if chunks is None
        else [(i == len(chunks) - 1, encode_records(c)) for i, c in enumerate(chunks)]
    )
    while requests:
        finished, body = requests[0] if chunks is not None else (True, b"")
        if chunks is not None:
            requests.pop(0)
        process.stdin.write(encode_chunk({"action": "execute", "finished": finished}, body))
        process.stdin.flush()
        reply = read_chunk(process.stdout, transcript)
        if reply is None:
            break
        replies.append(reply)
        if reply.metadata.get("finished"):
            break
    process.stdin.close()
    process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{script.name} {' '.join(args)} exited with status {status}")
    records = sum(len(parse_records(reply.body)) for reply in replies)
    messages = [message for reply in replies for message in reply.messages]
    return Run(wall, records, usage.ru_maxrss / 1024, messages)


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda run: run.wall)[len(runs) // 2]


def cold_start(script: Path, args: list[str], workdir: Path, env: dict[str, str]) -> float:
    """Seconds from spawning the command to its getinfo reply."""
    info = SearchInfo(args=args, dispatch_dir=workdir / "dispatch")
    info.dispatch_dir.mkdir(parents=True, exist_ok=True)
    request = encode_chunk({"action": "getinfo", "preview": False, "searchinfo": info.to_json()})
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=str(info.dispatch_dir),
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(request)
    process.stdin.flush()
    reply = read_chunk(process.stdout, bytearray())
    elapsed = time.perf_counter() - started
    process.kill()
    process.wait()
    if reply is None:
        raise SystemExit(f"{script.name} gave no getinfo reply")
    return elapsed


def command_environment(workdir: Path, account_file: Path | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MDE_FILE_ALERTS_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            # Bytecode is cached outside the app (never in lib/), as a search head has it after its
            # first search: every command then pays for running its imports, not for compiling them.
            "PYTHONPYCACHEPREFIX": str(workdir.parent / "pycache"),
            "SPLUNK_HOME": str(workdir / "splunk"),
            "MDE_FILE_ALERTS_STATE_DIR": str(workdir / "state"),
        }
    )
    if account_file is not None:
        env["MDE_FILE_ALERTS_ACCOUNT_FILE"] = str(account_file)
    return env


def index_kv_keys(store: FakeKvStore) -> None:
    """Answer ``{"_key": {"$in": [...]}}`` queries from the documents' keys, as the KV store does.

    The real KV store finds documents by ``_key`` through its primary index; the test fake scans
    every document for every query, which would make this benchmark measure the fake.
    """
    scan = store.query

    def query(app: str, name: str, owner: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        wanted = json.loads(params.get("query") or "{}")
        keys = wanted.get("_key", {}).get("$in") if isinstance(wanted.get("_key"), dict) else None
        if set(wanted) != {"_key"} or not isinstance(keys, list) or params.get("sort") or params.get("skip"):
            return scan(app, name, owner, params)
        documents = store.collection(app, name).documents
        found = [documents.get((owner, key)) for key in keys]
        return [dict(document) for document in found if document is not None]

    store.query = query  # type: ignore[method-assign]


def warm_cache(splunkd: FakeSplunkd, account: dict[str, Any], hashes: list[str]) -> None:
    """Fill the KV store cache the way a cold run does (KvResultCache.put_many), in one go."""
    alert = load_alert("demo-process-injection-high.json")
    cache = KvResultCache(
        KvStoreCollection(splunkd.uri, splunkd.system_key, CACHE_COLLECTION),
        tenant_id=account["tenant_id"],
        cloud=account.get("cloud", "commercial"),
        ttl_found=DEFAULT_TTL_FOUND,
    )
    outcomes = [
        HashOutcome(parse_hash(sha1), HashStatus.FOUND, alerts=[alert], sha1=sha1)
        if index % WARM_FOUND_EVERY == 0
        else HashOutcome(parse_hash(sha1), HashStatus.NOT_FOUND, sha1=sha1)
        for index, sha1 in enumerate(hashes)
    ]
    cache.put_many(outcomes)


def endpoint_events(hashes: list[str]) -> list[list[dict[str, Any]]]:
    events = [
        {
            "_time": str(1_717_000_000 + index),
            "_raw": f"<Event><EventID>1</EventID><Image>C:\\Tools\\tool{index}.exe</Image>"
            f"<Hashes>SHA1={sha1}</Hashes></Event>",
            "host": f"ws-{index % 500:04}",
            "sourcetype": "XmlWinEventLog",
            "Image": f"C:\\Tools\\tool{index}.exe",
            "User": f"CORP\\user{index % 97}",
            "sha1": sha1,
        }
        for index, sha1 in enumerate(hashes)
    ]
    return [events[start : start + EVENTS_PER_CHUNK] for start in range(0, len(events), EVENTS_PER_CHUNK)]


def main() -> int:
    figures = Figures("command_bench")
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        with EmulatorProcess(
            workdir / "account.json",
            time_scale=1.0,
            latency=LATENCY,
            files=MEMORY_FILES,
            alerts_per_file=ALERTS_PER_FILE,
        ) as emulator:
            warm_rerun(figures, emulator, workdir / "warm")
            peak_memory(figures, emulator, workdir / "memory")
        cold_starts(figures, workdir / "cold")
    return figures.exit_code()


def warm_rerun(figures: Figures, emulator: EmulatorProcess, workdir: Path) -> None:
    account = emulator.account
    settings = {
        key: account[key] for key in ("tenant_id", "client_id", "api_host", "authority_host", "ca_bundle")
    }
    hashes = [f"{0xC0 << 152 | index:040x}" for index in range(WARM_HASHES)]
    chunks = endpoint_events(hashes)
    env = command_environment(workdir)
    with FakeSplunkd(
        users={"analyst": [ANALYST_ROLE]},
        accounts={"bench": settings},
        passwords={"bench": account["client_secret"]},
    ) as splunkd:
        index_kv_keys(splunkd.kvstore)
        warm_cache(splunkd, account, hashes)
        emulator.reset()
        session = (splunkd.uri, splunkd.session_key_for("analyst"))
        brokered_before = len(splunkd.requests_to("mde_file_alerts/token"))
        # One run each first, so that both start from cached bytecode; then the median of three.
        passthrough = median_run(
            [run_command(PASSTHROUGH, ["field=sha1"], workdir, env, chunks) for _ in range(4)][1:]
        )
        warm = median_run(
            [run_command(COMMAND, ["field=sha1"], workdir, env, chunks, splunkd=session) for _ in range(4)][
                1:
            ]
        )
        brokered = len(splunkd.requests_to("mde_file_alerts/token")) - brokered_before
    stats = emulator.stats()
    figures.note(
        f"{WARM_HASHES:,} events with distinct hashes, all cached, in chunks of {EVENTS_PER_CHUNK:,}"
    )
    if warm.records != WARM_HASHES or warm.messages:
        raise SystemExit(f"warm rerun: {warm.records} records, messages {warm.messages}")
    figures.exactly("warm rerun: Defender calls", stats.api_calls, 0)
    figures.exactly("warm rerun: token requests (Entra ID)", stats.token_requests, 0)
    figures.exactly("warm rerun: token broker requests", brokered, 0)
    figures.info("warm rerun: wall time", warm.wall, " s")
    figures.info("same search without the lookup step: wall time", passthrough.wall, " s")
    figures.at_most("warm rerun / without the lookup step", warm.wall / passthrough.wall, TARGET_WARM_RATIO)


def peak_memory(figures: Figures, emulator: EmulatorProcess, workdir: Path) -> None:
    emulator.reset()
    env = command_environment(workdir, emulator.account_file)
    run = run_command(COMMAND, [f'hash="{",".join(emulator.bulk_sha1s)}"'], workdir, env)
    if run.records != MEMORY_FILES * ALERTS_PER_FILE:
        raise SystemExit(f"memory run: {run.records} records, messages {run.messages}")
    figures.note(
        f"| mdefilealerts hash=<{MEMORY_FILES} files> returning {run.records:,} alerts in {run.wall:.1f} s"
    )
    figures.at_most("peak memory of the command process", run.peak_mb, TARGET_PEAK_MB, " MB", 0)


def cold_starts(figures: Figures, workdir: Path) -> None:
    env = command_environment(workdir)
    ours, bare = [], []
    cold_start(COMMAND, ["hash=6532ec91d513acc05f43ee0aa3002599729fd3e1"], workdir, env)  # bytecode cached
    cold_start(BARE, ["text=hello"], workdir, env)
    for _ in range(COLD_START_RUNS):
        ours.append(cold_start(COMMAND, ["hash=6532ec91d513acc05f43ee0aa3002599729fd3e1"], workdir, env))
        bare.append(cold_start(BARE, ["text=hello"], workdir, env))
    ours_median, bare_median = statistics.median(ours), statistics.median(bare)
    figures.info("cold start to getinfo reply, mdefilealerts (median)", ours_median * 1000, " ms", 0)
    figures.info("cold start to getinfo reply, bare splunklib command (median)", bare_median * 1000, " ms", 0)
    figures.at_most("cold start ratio", ours_median / bare_median, TARGET_COLD_START_RATIO)


if __name__ == "__main__":
    sys.exit(main())
