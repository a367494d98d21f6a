"""The Defender for Endpoint side: the file alerts and file entity endpoints."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote

from tests.support.emulator.catalog import FileCatalog, KnownFile
from tests.support.emulator.limits import SlidingWindowLimiter, retry_after_header
from tests.support.emulator.replies import Reply, error_envelope
from tests.support.emulator.tokens import TokenStore, audience_of

DEFENDER_SCOPE = "https://api.securitycenter.microsoft.com/.default"

# /api/files/{id}/alerts, /api/files/{id}, and the same under the versioned /api/v1.0 prefix.
_FILE_ROUTE = re.compile(r"^/api(?:/v1\.0)?/files/(?P<id>[^/]+)(?P<alerts>/alerts)?/?$", re.IGNORECASE)
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass
class DefenderSettings:
    """Behaviour a test may change while the emulator runs."""

    api_scope: str = DEFENDER_SCOPE
    page_size: int | None = None
    unknown_file_status: int = 200


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    url: str


class Defender:
    def __init__(
        self,
        catalog: FileCatalog,
        tokens: TokenStore,
        limiter: SlidingWindowLimiter | None,
        settings: DefenderSettings,
        *,
        base_url: Callable[[], str],
    ) -> None:
        self.catalog = catalog
        self._tokens = tokens
        self._limiter = limiter
        self._settings = settings
        self._base_url = base_url
        self._lock = threading.Lock()
        self._throttled = 0

    @property
    def throttled_count(self) -> int:
        with self._lock:
            return self._throttled

    def reset(self) -> None:
        with self._lock:
            self._throttled = 0
        if self._limiter is not None:
            self._limiter.reset()

    @staticmethod
    def file_id(path: str) -> str | None:
        match = _FILE_ROUTE.match(path)
        return None if match is None else unquote(match.group("id"))

    def resource_ids(self, path: str) -> frozenset[str]:
        """Every name of the file a request is about, so a fault set for a SHA-1 matches its SHA-256 too."""
        file_id = self.file_id(path)
        if file_id is None:
            return frozenset()
        known = self.catalog.find(file_id)
        names = {file_id.lower()}
        if known is not None:
            names.add(known.sha1)
            if known.sha256:
                names.add(known.sha256)
        return frozenset(names)

    def handle(self, request: ApiRequest) -> Reply:
        if request.method != "GET":
            # A real 405 from the service came without a body.
            return Reply(405, payload=b"", headers={"Allow": "GET"})
        refusal = self._admit(request.headers)
        if refusal is not None:
            return refusal
        match = _FILE_ROUTE.match(request.path)
        if match is None:
            return error_envelope(404, "NotFound", f"No resource was found at '{request.path}'.")
        file_id = unquote(match.group("id"))
        if not (_SHA1.match(file_id) or _SHA256.match(file_id)):
            return error_envelope(400, "InvalidHashValue", f"The hash value '{file_id}' is not valid.")
        known = self.catalog.find(file_id)
        if match.group("alerts"):
            return self._alerts(request, file_id, known)
        return self._entity(file_id, known)

    def _admit(self, headers: dict[str, str]) -> Reply | None:
        """None when the bearer token is valid for this API and the caller is within its rate limits."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error_envelope(
                401, "Unauthorized", "Authorization header is missing or is not a Bearer token."
            )
        issued = self._tokens.find(token.strip())
        if issued is None:
            return error_envelope(401, "Unauthorized", "The access token is not valid.")
        if self._tokens.is_expired(issued):
            return error_envelope(401, "Unauthorized", "The access token has expired.")
        expected = audience_of(self._settings.api_scope)
        if issued.audience != expected:
            return error_envelope(
                403,
                "Forbidden",
                f"The access token is for the audience '{issued.audience}'; this API accepts '{expected}'.",
            )
        if self._limiter is None:
            return None
        wait = self._limiter.admit((issued.tenant_id, issued.client_id))
        if wait is None:
            return None
        with self._lock:
            self._throttled += 1
        seconds = retry_after_header(wait)
        return error_envelope(
            429,
            "TooManyRequests",
            f"Rate limit is exceeded. Try again in {seconds} seconds.",
            **{"Retry-After": seconds},
        )

    def _alerts(self, request: ApiRequest, file_id: str, known: KnownFile | None) -> Reply:
        base = self._base_url()
        if known is None and self._settings.unknown_file_status == 404:
            return error_envelope(404, "NotFound", f"File {file_id} was not found.")
        # The alerts API takes a SHA-1 only; asked with a SHA-256 it finds nothing.
        alerts: list[Any] = [] if known is None or _SHA256.match(file_id) else list(known.alerts)
        document: dict[str, Any] = {"@odata.context": f"{base}/api/$metadata#Alerts"}
        page_size = self._settings.page_size
        if page_size is None:
            document["value"] = alerts
            return Reply(200, document)
        offset = _skip_token(request.query)
        if offset is None:
            return error_envelope(400, "BadRequest", "The $skiptoken value is not valid.")
        document["value"] = alerts[offset : offset + page_size]
        if offset + page_size < len(alerts):
            document["@odata.nextLink"] = f"{base}{request.path}?$skiptoken={offset + page_size}"
        return Reply(200, document)

    def _entity(self, file_id: str, known: KnownFile | None) -> Reply:
        if known is None:
            return error_envelope(404, "NotFound", f"File {file_id} was not found.")
        document = {"@odata.context": f"{self._base_url()}/api/$metadata#Files/$entity", **known.entity()}
        return Reply(200, document)


def _skip_token(query: dict[str, list[str]]) -> int | None:
    values = query.get("$skiptoken")
    if not values:
        return 0
    return int(values[0]) if values[0].isdigit() else None
