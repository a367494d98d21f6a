"""Throughput of alert validation and mapping, against plain json.loads of the same alerts.

Run through ``python3 dev/tasks.py bench`` (or directly: ``python bench/mapping_bench.py``).
The alerts are the realistic fixtures in tests/fixtures/alerts, repeated; every figure is the
best of several rounds, so a busy machine shows up as spread, not as a slower result.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from mde_file_alerts.mapping import LookupContext, map_alert, map_alerts  # noqa: E402
from mde_file_alerts.validation import AlertValidator, ValidationMode  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
REPEATS = 150
ROUNDS = 5


def load_texts() -> list[str]:
    """Each fixture alert as Defender sends it (compact JSON), repeated REPEATS times."""
    texts = []
    for path in sorted((FIXTURES / "alerts").glob("*.json")):
        alert = json.loads(path.read_text(encoding="utf-8"))
        texts.append(json.dumps(alert, ensure_ascii=False, separators=(",", ":")))
    return texts * REPEATS


def context() -> LookupContext:
    return LookupContext(
        queried_hash="6532ec91d513acc05f43ee0aa3002599729fd3e1",
        account="bench",
        cloud="commercial",
        api_host="https://api.security.microsoft.com",
        portal_host="https://security.microsoft.com",
        retrieved_at=time.time(),
        app_version="bench",
    )


def best_seconds(work: Callable[[], object]) -> float:
    timings = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> int:
    texts = load_texts()
    alerts = [json.loads(text) for text in texts]
    lookup = context()
    warn = AlertValidator(ValidationMode.WARN)
    off = AlertValidator(ValidationMode.OFF)
    validated = [warn.validate(alert) for alert in alerts]  # also builds the shared validator first

    cases: list[tuple[str, Callable[[], object]]] = [
        ("json.loads (baseline)", lambda: [json.loads(text) for text in texts]),
        ("validate (warn)", lambda: [warn.validate(alert) for alert in alerts]),
        ("map_alert only", lambda: [map_alert(a, lookup, v) for a, v in zip(alerts, validated)]),
        ("map_alerts, validate=off", lambda: map_alerts(alerts, lookup, off)),
        ("map_alerts, validate=warn", lambda: map_alerts(alerts, lookup, warn)),
        ("json.loads + map_alerts (warn)", lambda: map_alerts([json.loads(t) for t in texts], lookup, warn)),
    ]
    seconds = {name: best_seconds(work) for name, work in cases}
    baseline = seconds["json.loads (baseline)"]

    size = sum(len(text.encode("utf-8")) for text in texts) / len(texts)
    print(
        f"mapping_bench: Python {platform.python_version()}, {len(texts)} alerts "
        f"({len(texts) // REPEATS} fixtures x {REPEATS}, {size / 1024:.1f} KiB each on average), "
        f"best of {ROUNDS} rounds"
    )
    print(f"  {'case':<32} {'alerts/s':>12} {'us/alert':>10} {'x json.loads':>13}")
    for name, _ in cases:
        rate = len(texts) / seconds[name]
        print(
            f"  {name:<32} {rate:>12,.0f} {seconds[name] / len(texts) * 1e6:>10.1f} "
            f"{seconds[name] / baseline:>13.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
