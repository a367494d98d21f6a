#!/usr/bin/env python3
"""Developer tasks for TA-mde-file-alerts; the scripts of package.json call this file.

Usage: python3 dev/tasks.py <task> [args]

    setup      create the virtual environments under .venv/ (test Pythons 3.9 and 3.13, tools)
    build      install the pinned third-party libraries into lib/ (pure Python only)
    lint       ruff check and ruff format --check
    typecheck  mypy over lib/mde_file_alerts and bin/
    pytest     the test suite under Python 3.9 and 3.13 (extra args go to pytest)
    package    write dist/TA-mde-file-alerts-<version>.tgz
    inspect    Splunk AppInspect (cloud tags) on the package; fails on any failure/error/future failure
    test       all of the above (and soar), ending with one summary line
    demo       run | mdefilealerts against the built-in Defender emulator and print the events
    soar       the Splunk SOAR app in soar/ (its own 3.13 venv; typecheck, tests, package)
    bench      the benchmarks in bench/ (not part of `test`)
    set-version X.Y.Z   write the version into default/app.conf, app.manifest and package.json

Only the standard library is used here, so any Python 3 runs it.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
APP_ID = "TA-mde-file-alerts"
VENVS = ROOT / ".venv"
BUILD = ROOT / "build"
DIST = ROOT / "dist"
LIB = ROOT / "lib"
OWN_PACKAGE = "mde_file_alerts"

# The Pythons Splunk runs app code with: 3.9 (Splunk 9.3-10.0) and 3.13 (Splunk 10.2+).
TEST_PYTHONS = {"py39": "3.9.18", "py313": "3.13.0"}
TOOLS_PYTHON = "3.13.0"

# What goes into the package: the app's own top-level entries, nothing else.
PACKAGED_TOP_LEVEL = (
    "app.manifest", "README.md", "README", "appserver", "bin", "default", "lib", "metadata", "static",
)  # fmt: skip
# Inside those, never: caches, pip's console scripts, our build inputs.
EXCLUDED_FROM_PACKAGE = ("lib/bin", "lib/requirements.txt", "lib/README.md")

# Third-party test suites and benchmarks are not needed at run time and only add files to review.
PRUNED_FROM_LIB = ("jsonschema/tests", "jsonschema/benchmarks")

LINTED_PATHS = ("lib/mde_file_alerts", "bin", "tests", "dev", "bench", "soar")


def run(*command: str | Path, env: dict[str, str] | None = None, check: bool = True) -> int:
    printable = " ".join(str(part) for part in command)
    print(f"$ {printable}", flush=True)
    completed = subprocess.run([str(part) for part in command], cwd=ROOT, env=env)
    if check and completed.returncode != 0:
        raise SystemExit(f"failed ({completed.returncode}): {printable}")
    return completed.returncode


def python_for(version: str) -> Path:
    """The interpreter for an exact version: $MDE_PYTHON_<major>_<minor>, else pyenv's."""
    major_minor = "_".join(version.split(".")[:2])
    override = os.environ.get(f"MDE_PYTHON_{major_minor}")
    if override:
        return Path(override)
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidate = Path(pyenv_root) / "versions" / version / "bin" / "python"
    if not candidate.exists():
        raise SystemExit(f"Python {version} not found at {candidate}; set MDE_PYTHON_{major_minor}.")
    return candidate


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def quiet_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: no bytecode caches written into the app."""
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _stamp_matches(stamp: Path, *inputs: Path) -> bool:
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in inputs)).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return True
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text("")  # written with the digest only after the step succeeds
    return False


def _write_stamp(stamp: Path, *inputs: Path) -> None:
    stamp.write_text(hashlib.sha256(b"".join(path.read_bytes() for path in inputs)).hexdigest())


def _ensure_venv(name: str, base_python: Path, requirements: Path) -> None:
    stamp = VENVS / f"{name}.stamp"
    if venv_python(name).exists() and _stamp_matches(stamp, requirements):
        return
    if not venv_python(name).exists():
        run(base_python, "-m", "venv", VENVS / name)
    run(venv_python(name), "-m", "pip", "install", "-q", "-r", requirements, env=quiet_env())
    _write_stamp(stamp, requirements)


def task_setup() -> None:
    for name, version in TEST_PYTHONS.items():
        _ensure_venv(name, python_for(version), ROOT / "dev" / "requirements-test.txt")
    _ensure_venv("tools", python_for(TOOLS_PYTHON), ROOT / "dev" / "requirements-tools.txt")


def task_build() -> None:
    requirements = LIB / "requirements.txt"
    stamp = BUILD / "lib.stamp"
    if _stamp_matches(stamp, requirements) and (LIB / "splunklib").is_dir():
        print("lib/ is up to date")
        return
    for entry in LIB.iterdir():
        if entry.name not in (OWN_PACKAGE, "requirements.txt", "README.md"):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    # pip on 3.9 with an exact interpreter version, because environment markers and wheel tags
    # follow the interpreter that runs pip; "py"/"none"/"any" admits pure-Python wheels only.
    run(
        python_for(TEST_PYTHONS["py39"]), "-m", "pip", "install", "-q",
        "--target", LIB, "--no-deps", "--no-compile", "--only-binary=:all:",
        "--python-version", TEST_PYTHONS["py39"], "--implementation", "py", "--abi", "none",
        "--platform", "any", "--ignore-requires-python", "-r", requirements,
        env=quiet_env(),
    )  # fmt: skip
    for unneeded in ("bin", *PRUNED_FROM_LIB):
        shutil.rmtree(LIB / unneeded, ignore_errors=True)
    for cache in LIB.rglob("__pycache__"):
        shutil.rmtree(cache)
    compiled = [path for path in LIB.rglob("*") if path.suffix in (".so", ".pyd", ".dylib")]
    if compiled:
        raise SystemExit(f"compiled modules found in lib/: {compiled}")
    _write_stamp(stamp, requirements)


def task_lint() -> None:
    tools = VENVS / "tools" / "bin"
    run(tools / "ruff", "check", *LINTED_PATHS)
    run(tools / "ruff", "format", "--check", *LINTED_PATHS)


def task_typecheck() -> None:
    # Only our package on the search path: the vendored third-party sources in lib/ are not ours
    # to type-check, and requests must resolve to its stubs.
    search_path = BUILD / "typecheck-path"
    search_path.mkdir(parents=True, exist_ok=True)
    link = search_path / OWN_PACKAGE
    if not link.is_symlink():
        link.symlink_to(LIB / OWN_PACKAGE, target_is_directory=True)
    bin_scripts = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "bin").glob("*.py"))
    run(
        VENVS / "tools" / "bin" / "mypy", link.relative_to(ROOT), *bin_scripts,
        env=quiet_env(MYPYPATH=str(search_path)),
    )  # fmt: skip


def task_pytest(*pytest_args: str) -> dict[str, int]:
    """Run the suite under each test Python; return the combined counts."""
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    failed_runs = []
    for name in TEST_PYTHONS:
        report = BUILD / f"junit-{name}.xml"
        code = run(
            venv_python(name), "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}",
            *pytest_args, env=quiet_env(), check=False,
        )  # fmt: skip
        counts = _junit_counts(report)
        for key in totals:
            totals[key] += counts[key]
        if code != 0:
            failed_runs.append(f"{name} (exit {code})")
    if failed_runs:
        print(f"summary: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
        raise SystemExit(f"pytest failed under {', '.join(failed_runs)}")
    return totals


def _junit_counts(report: Path) -> dict[str, int]:
    if not report.exists():
        return {"passed": 0, "failed": 0, "skipped": 0}
    suites = ElementTree.parse(report).getroot()
    total = failed = skipped = 0
    for suite in suites.iter("testsuite"):
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return {"passed": total - failed - skipped, "failed": failed, "skipped": skipped}


def app_version() -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "default" / "app.conf", encoding="utf-8")
    return parser.get("launcher", "version")


def _packaged_files() -> Iterator[Path]:
    for top in PACKAGED_TOP_LEVEL:
        path = ROOT / top
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and _belongs_in_package(p))


def _belongs_in_package(path: Path) -> bool:
    relative = path.relative_to(ROOT)
    if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
        return False
    if path.suffix in (".pyc", ".pyo"):
        return False
    return not any(relative.as_posix().startswith(excluded) for excluded in EXCLUDED_FROM_PACKAGE)


def task_package() -> Path:
    if not (LIB / "splunklib").is_dir():
        raise SystemExit("lib/ is not built: run `python3 dev/tasks.py build` first")
    archive = build_package(DIST)
    print(f"wrote {archive.relative_to(ROOT)}")
    return archive


def build_package(destination: Path) -> Path:
    """Write the app archive into ``destination``: app files only, normalised owners and modes."""
    destination.mkdir(parents=True, exist_ok=True)
    archive = destination / f"{APP_ID}-{app_version()}.tgz"

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        executable = info.isdir() or (info.name.startswith(f"{APP_ID}/bin/") and info.name.endswith(".py"))
        info.mode = 0o755 if executable else 0o644
        return info

    with tarfile.open(archive, "w:gz") as tar:
        added_dirs: set[str] = set()
        for path in _packaged_files():
            relative = path.relative_to(ROOT)
            for parent in reversed(list(relative.parents)[:-1]):
                if parent.as_posix() not in added_dirs:
                    added_dirs.add(parent.as_posix())
                    tar.add(ROOT / parent, f"{APP_ID}/{parent.as_posix()}", recursive=False, filter=normalise)
            tar.add(path, f"{APP_ID}/{relative.as_posix()}", recursive=False, filter=normalise)
    return archive


def task_inspect() -> None:
    archive = DIST / f"{APP_ID}-{app_version()}.tgz"
    if not archive.exists():
        archive = task_package()
    report = BUILD / "appinspect.json"
    run(
        VENVS / "tools" / "bin" / "splunk-appinspect", "inspect", archive, "--mode", "precert",
        "--included-tags", "cloud", "--skip-trusted-libraries-update", "--output-file", report,
        env=quiet_env(),
    )  # fmt: skip
    result = json.loads(report.read_text())["reports"][0]
    summary = result["summary"]
    print("appinspect summary: " + ", ".join(f"{key}={value}" for key, value in sorted(summary.items())))
    blocking = ("failure", "error", "future_failure")
    for group in result.get("groups", []):
        for check in group.get("checks", []):
            if check.get("result") in (*blocking, "warning"):
                messages = "; ".join(m.get("message", "") for m in check.get("messages", []))
                print(f"  {check['result'].upper()}: {check['name']}: {messages[:600]}")
    if any(summary.get(key, 0) for key in blocking):
        raise SystemExit("AppInspect found failures, errors or future failures")


def task_test(*pytest_args: str) -> None:
    task_setup()
    task_build()
    task_lint()
    task_typecheck()
    totals = task_pytest(*pytest_args)
    task_soar()
    for key, value in _junit_counts(BUILD / "junit-soar.xml").items():
        totals[key] += value
    task_package()
    task_inspect()
    print(f"summary: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")


def task_demo(*args: str) -> None:
    task_setup()
    task_build()
    run(venv_python("py313"), ROOT / "dev" / "demo.py", *args, env=quiet_env())


def task_bench(*args: str) -> None:
    task_setup()
    task_build()
    run(venv_python("py313"), ROOT / "bench" / "run.py", *args, env=quiet_env())


def task_soar() -> None:
    """The Splunk SOAR app in soar/: its own Python 3.13 venv, mypy, tests, package (soar/README.md)."""
    run(sys.executable, ROOT / "soar" / "tasks.py", "test", env=quiet_env())


def task_set_version(version: str) -> None:
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise SystemExit("version must look like 1.2.3")
    app_conf = ROOT / "default" / "app.conf"
    app_conf.write_text(re.sub(r"(?m)^version = .*$", f"version = {version}", app_conf.read_text()))
    for name, keys in (("app.manifest", ("info", "id")), ("package.json", ())):
        path = ROOT / name
        document = json.loads(path.read_text())
        target = document
        for key in keys:
            target = target[key]
        target["version"] = version
        path.write_text(json.dumps(document, indent=2) + "\n")
    # The SOAR app's version follows the Splunk app's; its lock records it too.
    soar_project = ROOT / "soar" / "pyproject.toml"
    soar_project.write_text(
        re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', soar_project.read_text())
    )
    print("now run `.venv/soar-uv/bin/uv lock` in soar/ so its lock records the new version")


TASKS: dict[str, Callable[..., object]] = {
    "setup": task_setup,
    "build": task_build,
    "lint": task_lint,
    "typecheck": task_typecheck,
    "pytest": task_pytest,
    "package": task_package,
    "inspect": task_inspect,
    "test": task_test,
    "demo": task_demo,
    "bench": task_bench,
    "soar": task_soar,
    "set-version": task_set_version,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TASKS:
        print(__doc__)
        return 2
    TASKS[argv[0]](*argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
