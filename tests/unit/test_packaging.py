"""The package holds the app and nothing else, and its lib/ imports on a bare interpreter."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "TA-mde-file-alerts"


def load_tasks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mde_dev_tasks", ROOT / "dev" / "tasks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_tasks().build_package(tmp_path_factory.mktemp("dist"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def members(package: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(package) as archive:
        return archive.getmembers()


def test_the_archive_is_named_after_the_app_and_its_version(package: Path) -> None:
    from mde_file_alerts import app_version

    assert package.name == f"{APP_ID}-{app_version()}.tgz"


def test_every_member_lives_under_the_app_directory(members: list[tarfile.TarInfo]) -> None:
    assert all(m.name == APP_ID or m.name.startswith(f"{APP_ID}/") for m in members)


@pytest.mark.parametrize(
    "path",
    [
        "app.manifest",
        "README.md",
        "default/app.conf",
        "default/commands.conf",
        "default/searchbnf.conf",
        "metadata/default.meta",
        "bin/mdefilealerts.py",
        "lib/mde_file_alerts/schema/alert.schema.json",
        "lib/splunklib/searchcommands/__init__.py",
        "lib/splunk_sdk-3.0.1.dist-info/METADATA",
    ],
)
def test_the_app_files_are_inside(members: list[tarfile.TarInfo], path: str) -> None:
    assert f"{APP_ID}/{path}" in {m.name for m in members}


def test_nothing_but_app_files_is_inside(members: list[tarfile.TarInfo]) -> None:
    for member in members:
        parts = member.name.split("/")[1:]
        assert not any(part.startswith(".") for part in parts), member.name
        assert "__pycache__" not in parts and not member.name.endswith(".pyc"), member.name
        assert parts[:1] not in (["tests"], ["dev"], ["bench"], ["local"], ["dist"], ["build"]), member.name
        assert member.name not in (f"{APP_ID}/package.json", f"{APP_ID}/pyproject.toml", f"{APP_ID}/app.conf")
        assert not member.issym() and not member.islnk(), member.name


def test_only_bin_scripts_are_executable(members: list[tarfile.TarInfo]) -> None:
    for member in members:
        if member.isfile() and member.mode & 0o111:
            assert member.name.startswith(f"{APP_ID}/bin/"), member.name


def test_the_packaged_lib_imports_on_a_bare_interpreter(package: Path, tmp_path: Path) -> None:
    """Given only the stdlib and the packaged lib/ on sys.path (-I -S), everything imports."""
    with tarfile.open(package) as archive:
        archive.extractall(tmp_path, filter="data")
    lib = tmp_path / APP_ID / "lib"
    modules = ["splunklib.searchcommands", "splunklib.client", "msal", "requests", "jsonschema"]
    modules += ["mde_file_alerts.search", "mde_file_alerts.splunk.broker"]
    code = f"import sys; sys.path.insert(0, {str(lib)!r})\n" + "\n".join(f"import {m}" for m in modules)
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", code], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
