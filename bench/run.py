"""Run every bench/*_bench.py and print its figures (``python3 dev/tasks.py bench``).

Each benchmark runs in its own process, once per Python that Splunk runs app code with (the
test virtual environments under .venv/ when they exist, else this interpreter), because the
figures differ between 3.9 and 3.13. Benchmarks are not part of the test suite.

Every figure is printed on its own line as the benchmark prints it; a figure with a target ends
in ``[target ...: met]`` or ``[target ...: MISSED]`` (bench/figures.py). The last line sums up
the whole run, and the exit status is non-zero when a target was missed or a benchmark failed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = (ROOT / ".venv" / "py39" / "bin" / "python", ROOT / ".venv" / "py313" / "bin" / "python")
MET = ": met]"
MISSED = ": MISSED]"


def interpreters() -> list[str]:
    found = [str(python) for python in PYTHONS if python.exists()]
    return found or [sys.executable]


def python_version(python: str) -> str:
    if python == sys.executable:
        return platform.python_version()
    completed = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.stdout.strip() or python


def run_one(python: str, bench: Path, environment: dict[str, str]) -> tuple[int, int, int]:
    """Run one benchmark, echoing its lines; (exit status, targets met, targets missed)."""
    met = missed = 0
    with subprocess.Popen(
        [python, str(bench)], cwd=ROOT, env=environment, stdout=subprocess.PIPE, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            met += line.rstrip().endswith(MET)
            missed += line.rstrip().endswith(MISSED)
    return process.returncode, met, missed


def main(arguments: list[str]) -> int:
    names = set(arguments)
    benches = [
        path for path in sorted(Path(__file__).parent.glob("*_bench.py")) if not names or path.stem in names
    ]
    if not benches:
        print(f"no benchmark matches {', '.join(sorted(names))}", file=sys.stderr)
        return 2
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    failed: list[str] = []
    met = missed = 0
    pythons = interpreters()
    for bench in benches:
        for python in pythons:
            status, bench_met, bench_missed = run_one(python, bench, environment)
            met, missed = met + bench_met, missed + bench_missed
            if status != 0:
                failed.append(f"{bench.stem} on {python_version(python)}")
            print(flush=True)
    versions = ", ".join(python_version(python) for python in pythons)
    verdict = f"FAILED ({'; '.join(failed)})" if failed else "all targets met"
    print(
        f"summary: {met} targets met, {missed} missed; {len(benches)} benchmarks on Python {versions}; "
        f"{time.monotonic() - started:.0f} s; {verdict}",
        flush=True,
    )
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
