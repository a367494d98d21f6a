"""How every benchmark prints its figures: one line each, with its target when it has one.

    lookup_bench  cold lookups: wall / theoretical floor = 1.04  [target <= 1.15: met]

bench/run.py counts the ``[target ...: met]`` and ``[target ...: MISSED]`` lines of every run for
its closing summary line, and a benchmark exits non-zero when one of its targets is missed.
"""

from __future__ import annotations

import platform
import sys

MET = "met"
MISSED = "MISSED"


class Figures:
    """Prints figures for one benchmark and remembers whether every target was met."""

    def __init__(self, bench: str) -> None:
        self.bench = bench
        self.missed: list[str] = []
        print(f"{bench} on Python {platform.python_version()} ({sys.executable})", flush=True)

    def note(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def info(self, label: str, value: float, unit: str = "", digits: int = 2) -> None:
        print(f"  {label}: {value:,.{digits}f}{unit}", flush=True)

    def at_most(self, label: str, value: float, limit: float, unit: str = "", digits: int = 2) -> None:
        self._target(label, value, unit, digits, f"<= {limit:,.{digits}f}{unit}", value <= limit)

    def at_least(self, label: str, value: float, limit: float, unit: str = "", digits: int = 2) -> None:
        self._target(label, value, unit, digits, f">= {limit:,.{digits}f}{unit}", value >= limit)

    def exactly(self, label: str, value: int, expected: int) -> None:
        print(
            f"  {label}: {value:,}  [target = {expected:,}: {MET if value == expected else MISSED}]",
            flush=True,
        )
        if value != expected:
            self.missed.append(label)

    def _target(self, label: str, value: float, unit: str, digits: int, target: str, met: bool) -> None:
        print(
            f"  {label}: {value:,.{digits}f}{unit}  [target {target}: {MET if met else MISSED}]", flush=True
        )
        if not met:
            self.missed.append(label)

    def exit_code(self) -> int:
        if self.missed:
            print(f"  missed: {', '.join(self.missed)}", flush=True)
            return 1
        return 0
