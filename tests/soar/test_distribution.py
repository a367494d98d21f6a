"""The SOAR app runs on the ``mde-file-alerts`` wheel built from lib/, not on a copy or on lib/ itself."""

from __future__ import annotations

import configparser
import importlib.metadata
from pathlib import Path

import tomllib

import mde_file_alerts

ROOT = Path(__file__).resolve().parents[2]
LIB_PACKAGE = ROOT / "lib" / "mde_file_alerts"


def app_conf_version() -> str:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(ROOT / "default" / "app.conf", encoding="utf-8")
    return parser.get("launcher", "version")


def test_the_package_is_imported_from_the_installed_wheel_not_from_lib() -> None:
    installed = Path(mde_file_alerts.__file__).resolve().parent

    assert "site-packages" in installed.parts
    assert not installed.is_relative_to(ROOT / "lib")
    assert importlib.metadata.distribution("mde-file-alerts").locate_file("mde_file_alerts") == installed


def test_the_wheel_holds_exactly_lib_as_it_is_now() -> None:
    installed = Path(mde_file_alerts.__file__).resolve().parent

    def sources(package: Path) -> dict[str, bytes]:
        return {
            path.relative_to(package).as_posix(): path.read_bytes()
            for path in package.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        }

    from_lib = sources(LIB_PACKAGE)
    from_wheel = sources(installed)
    # The wheel adds only its PEP 561 marker; everything else is lib/mde_file_alerts, unchanged.
    assert set(from_wheel) - set(from_lib) == {"py.typed"}
    assert {name: data for name, data in from_wheel.items() if name != "py.typed"} == from_lib


def test_versions_follow_default_app_conf() -> None:
    with (ROOT / "soar" / "pyproject.toml").open("rb") as pyproject:
        soar_app_version = tomllib.load(pyproject)["project"]["version"]

    assert importlib.metadata.version("mde-file-alerts") == app_conf_version()
    # Outside the Splunk app there is no default/app.conf next to the package: the distribution's
    # version is what the library reports (and sends in its User-Agent).
    assert mde_file_alerts.app_version() == app_conf_version()
    assert soar_app_version == app_conf_version()
