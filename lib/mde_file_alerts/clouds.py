"""Which sign-in authority, API host, token scope and portal belong to each Microsoft cloud.

Getting one of these wrong fails late and obscurely (a token for the wrong audience gets 403, a
government tenant cannot sign in at the commercial authority), so the values live in one table
that follows Microsoft's published list exactly. Every commercial host, regional or legacy,
takes a token for the legacy resource ``https://api.securitycenter.microsoft.com``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mde_file_alerts.errors import ConfigurationError


@dataclass(frozen=True)
class CloudEndpoints:
    """Base URLs (scheme and host, no trailing slash) and the token scope of one cloud."""

    name: str
    authority_host: str
    api_host: str
    scope: str
    portal_host: str


_COMMERCIAL_AUTHORITY = "https://login.microsoftonline.com"
_COMMERCIAL_SCOPE = "https://api.securitycenter.microsoft.com/.default"
_COMMERCIAL_PORTAL = "https://security.microsoft.com"
_GOVERNMENT_AUTHORITY = "https://login.microsoftonline.us"
_GOVERNMENT_API = "https://api-gov.securitycenter.microsoft.us"

_REGIONS = ("us", "eu", "uk", "au", "swa", "ina", "aea")
_LEGACY_REGIONS = ("us", "eu", "uk", "au")


def _commercial(name: str, api_host: str) -> CloudEndpoints:
    return CloudEndpoints(name, _COMMERCIAL_AUTHORITY, api_host, _COMMERCIAL_SCOPE, _COMMERCIAL_PORTAL)


def _build_table() -> dict[str, CloudEndpoints]:
    table = {
        "commercial": _commercial("commercial", "https://api.security.microsoft.com"),
        "commercial_legacy": _commercial("commercial_legacy", "https://api.securitycenter.microsoft.com"),
    }
    for region in _REGIONS:
        table[region] = _commercial(region, f"https://{region}.api.security.microsoft.com")
    for region in _LEGACY_REGIONS:
        name = f"{region}_legacy"
        table[name] = _commercial(name, f"https://api-{region}.securitycenter.microsoft.com")
    table["gcc"] = CloudEndpoints(
        "gcc",
        _COMMERCIAL_AUTHORITY,
        "https://api-gcc.securitycenter.microsoft.us",
        "https://api-gcc.securitycenter.microsoft.us/.default",
        _COMMERCIAL_PORTAL,
    )
    table["gcc_high"] = CloudEndpoints(
        "gcc_high",
        _GOVERNMENT_AUTHORITY,
        _GOVERNMENT_API,
        f"{_GOVERNMENT_API}/.default",
        "https://security.microsoft.us",
    )
    table["dod"] = CloudEndpoints(
        "dod",
        _GOVERNMENT_AUTHORITY,
        _GOVERNMENT_API,
        f"{_GOVERNMENT_API}/.default",
        "https://security.apps.mil",
    )
    return table


#: Every known cloud by its setting name (read-only).
CLOUDS: Mapping[str, CloudEndpoints] = MappingProxyType(_build_table())

DEFAULT_CLOUD = "commercial"


def get_cloud(name: str) -> CloudEndpoints:
    """The endpoints of a cloud; names are case-insensitive and ``-`` may stand for ``_``."""
    key = name.strip().lower().replace("-", "_")
    try:
        return CLOUDS[key]
    except KeyError:
        shown = name if len(name) <= 40 else name[:39] + "…"
        raise ConfigurationError(f"Unknown cloud {shown!r}; use one of: {', '.join(CLOUDS)}.") from None
