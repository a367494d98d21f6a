"""The splunkd side of the app: account settings, the caller's capability and the token broker.

The search command calls ``connect_through_broker(splunkd_uri, session_key, account)``: it checks
the caller's capability and returns the account (without credentials) and a token source backed
by the app's token broker (``bin/mde_file_alerts_token.py``), which alone reads the secret.

The names below are loaded on first use (PEP 562): importing a submodule such as ``kv_cache``
must not pull in the broker's client, and with it msal and requests, when a search is answered
from the cache alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mde_file_alerts.splunk.broker_client import (
        BrokerClient,
        BrokeredAccount,
        BrokeredTokenSource,
        connect_through_broker,
    )
    from mde_file_alerts.splunk.capability import CallerContext
    from mde_file_alerts.splunk.settings import ANALYST_ROLE, CAPABILITY, AppSettings

_SUBMODULE_OF = {
    "ANALYST_ROLE": "settings",
    "CAPABILITY": "settings",
    "AppSettings": "settings",
    "BrokerClient": "broker_client",
    "BrokeredAccount": "broker_client",
    "BrokeredTokenSource": "broker_client",
    "CallerContext": "capability",
    "connect_through_broker": "broker_client",
}

__all__ = [
    "ANALYST_ROLE",
    "CAPABILITY",
    "AppSettings",
    "BrokerClient",
    "BrokeredAccount",
    "BrokeredTokenSource",
    "CallerContext",
    "connect_through_broker",
]


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE_OF.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
