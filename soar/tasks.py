#!/usr/bin/env python3
"""Developer tasks for the Splunk SOAR app in soar/ (the Splunk app's dev/tasks.py runs ``test``).

Usage: python3 soar/tasks.py <task>

    setup      .venv/soar exactly as soar/uv.lock pins it (Python 3.13, SOAR SDK, the mde-file-alerts
               wheel built from lib/, pytest), and the wheelhouse of the dependencies to bundle
    typecheck  mypy --strict over soar/src, soar/package.py and tests/soar
    pytest     tests/soar in .venv/soar (extra args go to pytest); JUnit report in build/junit-soar.xml
    package    the SOAR app package dist/<name>-<version>.tgz, built offline from the wheelhouse
    test       all of the above, in that order

Only ``setup`` needs the network, and only the package registry (PyPI): uv downloads what the lock
pins (once; uv's cache serves later runs) and the wheelhouse gets the wheels the package bundles.
Only the standard library is used here, so any Python 3 runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

SOAR = Path(__file__).resolve().parent
ROOT = SOAR.parent
VENVS = ROOT / ".venv"
SOAR_VENV = VENVS / "soar"
UV_VENV = VENVS / "soar-uv"
BUILD = ROOT / "build"
WHEELHOUSE = BUILD / "soar" / "wheelhouse"
PYTHON_VERSION = "3.13.0"


def run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    printable = " ".join(str(part) for part in command)
    print(f"$ {printable}", flush=True)
    # Our own fixed commands with paths under this repository; no shell, no user input.
    completed = subprocess.run([str(part) for part in command], cwd=ROOT, env=env, check=False)  # noqa: S603
    if completed.returncode != 0:
        raise SystemExit(f"failed ({completed.returncode}): {printable}")


def base_python() -> Path:
    """Python 3.13 for the venv: $MDE_PYTHON_3_13, else pyenv's (as dev/tasks.py finds it)."""
    override = os.environ.get("MDE_PYTHON_3_13")
    if override:
        return Path(override)
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidate = Path(pyenv_root) / "versions" / PYTHON_VERSION / "bin" / "python"
    if not candidate.exists():
        raise SystemExit(f"Python {PYTHON_VERSION} not found at {candidate}; set MDE_PYTHON_3_13.")
    return candidate


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def uv_env() -> dict[str, str]:
    # uv must neither download a Python (no network but the registry) nor pick another one.
    return child_env(
        UV_PYTHON_DOWNLOADS="never",
        UV_PYTHON=str(base_python()),
        UV_PROJECT_ENVIRONMENT=str(SOAR_VENV),
        UV_NO_PROGRESS="1",
    )


def venv_bin(venv: Path, name: str) -> Path:
    return venv / "bin" / name


def task_setup() -> None:
    if not venv_bin(UV_VENV, "python").exists():
        run(base_python(), "-m", "venv", UV_VENV)
    run(
        venv_bin(UV_VENV, "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "-r",
        SOAR / "requirements-uv.txt",
        env=child_env(),
    )
    # --frozen: install exactly uv.lock; --reinstall-package: rebuild the wheel from lib/ as it is
    # now (uv would otherwise reuse a wheel built from an older lib/).
    run(
        venv_bin(UV_VENV, "uv"), "sync", "--quiet", "--frozen", "--project", SOAR,
        "--reinstall-package", "mde-file-alerts", env=uv_env(),
    )  # fmt: skip
    run(
        venv_bin(SOAR_VENV, "python"),
        SOAR / "package.py",
        "--fetch-only",
        "--wheelhouse",
        WHEELHOUSE,
        env=child_env(),
    )


def task_typecheck() -> None:
    checked = (SOAR / "src", SOAR / "package.py", ROOT / "tests" / "soar")
    run(venv_bin(SOAR_VENV, "mypy"), "--config-file", SOAR / "pyproject.toml", *checked, env=child_env())


def task_pytest(*pytest_args: str) -> None:
    # pythonpath=. instead of the Splunk suite's "lib" and ".": mde_file_alerts must come from the
    # installed wheel, as on SOAR, not from lib/.
    run(
        venv_bin(SOAR_VENV, "python"), "-m", "pytest", "-p", "no:cacheprovider", "-o", "pythonpath=.",
        f"--junitxml={BUILD / 'junit-soar.xml'}", "tests/soar", *pytest_args, env=child_env(),
    )  # fmt: skip


def task_package() -> None:
    run(venv_bin(SOAR_VENV, "python"), SOAR / "package.py", "--wheelhouse", WHEELHOUSE, env=child_env())


def task_test(*pytest_args: str) -> None:
    task_setup()
    task_typecheck()
    task_pytest(*pytest_args)
    task_package()


TASKS: dict[str, Callable[..., None]] = {
    "setup": task_setup,
    "typecheck": task_typecheck,
    "pytest": task_pytest,
    "package": task_package,
    "test": task_test,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TASKS:
        print(__doc__)
        return 2
    TASKS[argv[0]](*argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
