"""The app's name and version, read from ``default/app.conf`` (the single source of truth)."""

from __future__ import annotations

import configparser
import functools
from pathlib import Path

APP_NAME = "TA-mde-file-alerts"

# lib/mde_file_alerts/version.py -> the app directory is two levels above the package.
_APP_CONF = Path(__file__).resolve().parents[2] / "default" / "app.conf"


@functools.cache
def app_version() -> str:
    """Return the app version; ``0.0.0`` when the package runs outside the app (e.g. a wheel)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(_APP_CONF.read_text(encoding="utf-8"))
    except OSError:
        return _installed_distribution_version()
    return parser.get("launcher", "version", fallback=None) or _installed_distribution_version()


def _installed_distribution_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("mde-file-alerts")
    except metadata.PackageNotFoundError:
        return "0.0.0"
