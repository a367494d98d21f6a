"""Access tokens the emulated Entra ID issued: opaque strings remembered with their claims."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from tests.support.emulator.limits import WallClock


@dataclass(frozen=True)
class IssuedToken:
    tenant_id: str
    client_id: str
    audience: str
    expires_at: float


class TokenStore:
    def __init__(self, clock: WallClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, *, tenant_id: str, client_id: str, audience: str, lifetime: float) -> str:
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = IssuedToken(tenant_id, client_id, audience, self._clock.time() + lifetime)
        return token

    def find(self, token: str) -> IssuedToken | None:
        with self._lock:
            return self._tokens.get(token)

    def is_expired(self, issued: IssuedToken) -> bool:
        return self._clock.time() >= issued.expires_at

    def expire_all(self) -> None:
        """Every token issued so far is expired from now on (new ones are not)."""
        with self._lock:
            now = self._clock.time()
            self._tokens = {
                token: IssuedToken(
                    issued.tenant_id, issued.client_id, issued.audience, min(issued.expires_at, now)
                )
                for token, issued in self._tokens.items()
            }

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._tokens)


def audience_of(scope: str) -> str:
    """``https://api.securitycenter.microsoft.com/.default`` is a token for that resource."""
    return scope[: -len("/.default")] if scope.endswith("/.default") else scope
