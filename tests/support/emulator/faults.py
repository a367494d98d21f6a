"""Faults a test can inject, and the queue that hands them out in order.

A fault replaces (or degrades) the normal answer to one request. Each kind is a small value
object; ``apply`` receives a function producing the normal reply so that faults which only
change the delivery (a delay) or spoil the content (truncation, a paging loop) reuse it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Union

from tests.support.emulator.replies import HTML, Reply, error_envelope, serialise

# Error codes Defender (or the gateway in front of it) uses with each status.
STATUS_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

# Where a fault can apply: Defender's API calls, the token endpoint, or OIDC discovery.
TARGETS = ("api", "token", "discovery")

NormalReply = Callable[[], Reply]


@dataclass(frozen=True)
class ErrorStatus:
    """Answer with ``status`` and a body that is Microsoft's envelope, an HTML page, or nothing."""

    status: int
    body: str = "envelope"
    retry_after: int | None = None

    def __post_init__(self) -> None:
        if self.body not in ("envelope", "html", "empty"):
            raise ValueError(f"body must be 'envelope', 'html' or 'empty', not {self.body!r}")

    def apply(self, normal: NormalReply, url: str) -> Reply:
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        if self.body == "envelope":
            code = STATUS_CODES.get(self.status, "InternalServerError")
            return error_envelope(self.status, code, f"Injected {self.status} {code}.", **headers)
        if self.body == "html":
            return Reply(self.status, payload=_html_page(self.status), content_type=HTML, headers=headers)
        return Reply(self.status, payload=b"", headers=headers)


@dataclass(frozen=True)
class ConnectionReset:
    """Close the connection without answering (the client sees a reset)."""

    def apply(self, normal: NormalReply, url: str) -> Reply:
        return Reply(0, reset=True)


@dataclass(frozen=True)
class SlowResponse:
    """Answer normally after ``seconds`` of the emulator's real time, before any byte is sent."""

    seconds: float

    def apply(self, normal: NormalReply, url: str) -> Reply:
        reply = normal()
        reply.delay = self.seconds
        return reply


@dataclass(frozen=True)
class MalformedJson:
    """The normal answer cut off half-way through its JSON."""

    def apply(self, normal: NormalReply, url: str) -> Reply:
        reply = normal()
        whole = reply.body()
        reply.payload = whole[: max(1, len(whole) // 2)]
        return reply


@dataclass(frozen=True)
class UnexpectedJson:
    """A 200 with well-formed JSON that is not the expected envelope (a list, ``{"foo": 1}``...)."""

    document: Any

    def apply(self, normal: NormalReply, url: str) -> Reply:
        return Reply(200, payload=serialise(self.document))


@dataclass(frozen=True)
class HtmlPage:
    """A proxy's HTML page (a login or block page) with ``status``, 200 by default."""

    status: int = 200

    def apply(self, normal: NormalReply, url: str) -> Reply:
        return Reply(self.status, payload=_html_page(self.status), content_type=HTML)


@dataclass(frozen=True)
class NextLinkLoop:
    """The normal answer, with an ``@odata.nextLink`` pointing at the URL just requested."""

    def apply(self, normal: NormalReply, url: str) -> Reply:
        reply = normal()
        if isinstance(reply.document, dict) and "value" in reply.document:
            reply.document = {**reply.document, "@odata.nextLink": url}
        return reply


Fault = Union[
    ErrorStatus, ConnectionReset, SlowResponse, MalformedJson, UnexpectedJson, HtmlPage, NextLinkLoop
]


def _html_page(status: int) -> bytes:
    return (
        "<!DOCTYPE html>\n<html><head><title>Web Gateway</title></head>"
        f"<body><h1>Request blocked ({status})</h1>"
        "<p>Your request was stopped by the corporate web gateway.</p></body></html>\n"
    ).encode()


@dataclass
class _Pending:
    fault: Fault
    sha1: str | None
    target: str
    remaining: int | None


class FaultQueue:
    """Injected faults, consumed first-in first-out among those matching a request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []

    def add(self, fault: Fault | int, *, sha1: str | None, times: int | None, target: str) -> None:
        if isinstance(fault, int):
            fault = ErrorStatus(fault)
        if target not in TARGETS:
            raise ValueError(f"a fault applies to one of {', '.join(TARGETS)}, not {target!r}")
        if sha1 is not None and target != "api":
            raise ValueError("only Defender API faults can be tied to a hash")
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 (or None for every call), not {times}")
        with self._lock:
            self._pending.append(_Pending(fault, None if sha1 is None else sha1.lower(), target, times))

    def take(self, target: str, ids: frozenset[str]) -> Fault | None:
        """The first fault for ``target`` that is unscoped or scoped to one of ``ids``."""
        with self._lock:
            for pending in self._pending:
                if pending.target != target or (pending.sha1 is not None and pending.sha1 not in ids):
                    continue
                if pending.remaining is not None:
                    pending.remaining -= 1
                    if pending.remaining == 0:
                        self._pending.remove(pending)
                return pending.fault
        return None

    def pending(self) -> list[tuple[Fault, str | None, int | None]]:
        with self._lock:
            return [(item.fault, item.sha1, item.remaining) for item in self._pending]

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
