"""The app's identity is declared once (default/app.conf) and every other file agrees with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mde_file_alerts import APP_NAME, app_version
from tests.support.conf import read_conf

ROOT = Path(__file__).resolve().parents[2]


def test_top_level_app_conf_is_the_default_app_conf() -> None:
    top_level = ROOT / "app.conf"
    assert top_level.is_symlink(), "app.conf must be a link to default/app.conf, not a second copy"
    assert top_level.resolve() == (ROOT / "default" / "app.conf").resolve()


def test_every_declared_version_agrees_with_default_app_conf() -> None:
    conf = read_conf(ROOT / "default" / "app.conf")
    version = conf["launcher"]["version"]
    manifest = json.loads((ROOT / "app.manifest").read_text())
    package = json.loads((ROOT / "package.json").read_text())

    assert conf["id"]["version"] == version
    assert manifest["info"]["id"]["version"] == version
    assert package["version"] == version
    assert app_version() == version


def test_app_identity_is_consistent() -> None:
    conf = read_conf(ROOT / "default" / "app.conf")
    manifest = json.loads((ROOT / "app.manifest").read_text())
    assert conf["id"]["name"] == conf["package"]["id"] == APP_NAME
    assert manifest["info"]["id"]["name"] == APP_NAME
    assert conf["install"]["is_configured"] == "false"


def test_package_json_offers_every_developer_task() -> None:
    scripts = json.loads((ROOT / "package.json").read_text())["scripts"]
    for task in ("build", "test", "package", "inspect", "demo", "bench"):
        assert scripts[task] == f"python3 dev/tasks.py {task}"


def test_default_meta_gives_write_to_admin_and_sc_admin() -> None:
    meta = read_conf(ROOT / "metadata" / "default.meta")
    assert meta[""]["access"].replace(" ", "") == "read:[*],write:[admin,sc_admin]"
    assert meta["commands"]["export"] == "system"


@pytest.mark.parametrize(
    "module",
    ["splunklib.searchcommands", "splunklib.client", "msal", "requests", "jsonschema", "mde_file_alerts"],
)
def test_lib_imports_with_nothing_but_the_standard_library_and_lib(module: str) -> None:
    """Given only the stdlib and lib/ on sys.path (isolated, no site), the module imports."""
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'lib')!r}); import {module}"
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", code], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
