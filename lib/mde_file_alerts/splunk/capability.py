"""Who is calling, and whether they may run Defender lookups (the app's own capability).

``GET /services/authentication/current-context`` answers for the session key it is called with:
the user's name, roles and effective capabilities (inherited ones included).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mde_file_alerts.errors import CapabilityMissing, ConfigurationError
from mde_file_alerts.splunk.settings import ANALYST_ROLE, CAPABILITY
from mde_file_alerts.splunk.splunkd import Splunkd

CURRENT_CONTEXT_PATH = "/services/authentication/current-context"


@dataclass(frozen=True)
class CallerContext:
    """The Splunk user behind a session key."""

    username: str
    roles: tuple[str, ...]
    capabilities: frozenset[str]

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> CallerContext:
        return cls(
            username=str(content.get("username") or ""),
            roles=tuple(str(role) for role in _as_list(content.get("roles"))),
            capabilities=frozenset(str(capability) for capability in _as_list(content.get("capabilities"))),
        )

    def has(self, capability: str) -> bool:
        return capability in self.capabilities


def current_context(splunkd: Splunkd) -> CallerContext:
    """The user of ``splunkd``'s session key; a ConfigurationError when splunkd cannot say."""
    response = splunkd.get(CURRENT_CONTEXT_PATH)
    entries = response.entries() if response.ok else []
    content = entries[0].get("content") if entries else None
    if isinstance(content, dict):
        return CallerContext.from_content(content)
    reason = (
        "splunkd did not accept the session key (expired or invalid)"
        if response.status == 401
        else f"splunkd answered HTTP {response.status}"
    )
    raise ConfigurationError(
        f"Could not find out which Splunk user runs this search: {reason}.",
        method="GET",
        url=splunkd.uri + CURRENT_CONTEXT_PATH,
        status=response.status,
    )


def require_capability(caller: CallerContext, capability: str = CAPABILITY) -> None:
    """Raise CapabilityMissing, in one sentence that says how to get access, unless the caller may."""
    if caller.has(capability):
        return
    raise CapabilityMissing(capability_missing_message(caller.username, capability))


def capability_missing_message(username: str, capability: str = CAPABILITY) -> str:
    who = f"The Splunk user {username!r}" if username else "This Splunk user"
    return (
        f"{who} lacks the capability {capability!r} needed to query Microsoft Defender for Endpoint: "
        f"ask a Splunk admin for the role {ANALYST_ROLE!r}, which grants it."
    )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value:
        return [value]
    return []
