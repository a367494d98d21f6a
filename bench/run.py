"""Run every bench/*_bench.py and print its figures (``python3 dev/tasks.py bench``).

Each benchmark runs in its own process, once per Python that Splunk runs app code with (the
test virtual environments under .venv/ when they exist, else this interpreter), because the
figures differ between 3.9 and 3.13. Benchmarks are not part of the test suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = (ROOT / ".venv" / "py39" / "bin" / "python", ROOT / ".venv" / "py313" / "bin" / "python")


def interpreters() -> list[str]:
    found = [str(python) for python in PYTHONS if python.exists()]
    return found or [sys.executable]


def main(arguments: list[str]) -> int:
    names = set(arguments)
    benches = [
        path for path in sorted(Path(__file__).parent.glob("*_bench.py")) if not names or path.stem in names
    ]
    if not benches:
        print(f"no benchmark matches {', '.join(sorted(names))}", file=sys.stderr)
        return 2
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    failed = []
    for bench in benches:
        for python in interpreters():
            completed = subprocess.run([python, str(bench)], cwd=ROOT, env=environment, check=False)
            if completed.returncode != 0:
                failed.append(f"{bench.name} ({python})")
            print()
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
