"""What a route hands back to the HTTP layer, before encoding."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

ODATA_JSON = (
    "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
)
PLAIN_JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"


@dataclass
class Reply:
    """A response to send. ``document`` is serialised at send time unless ``payload`` is set.

    ``delay`` and ``reset`` are how faults change the delivery rather than the content.
    """

    status: int
    document: Any = None
    payload: bytes | None = None
    content_type: str = ODATA_JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False

    def body(self) -> bytes:
        if self.payload is not None:
            return self.payload
        if self.document is None:
            return b""
        return serialise(self.document)


def serialise(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def correlation_id() -> str:
    return str(uuid.uuid4())


def error_envelope(status: int, code: str, message: str, **headers: str) -> Reply:
    """Defender's OData error: every one carries a fresh correlation id in ``target``."""
    document = {"error": {"code": code, "message": message, "target": correlation_id()}}
    return Reply(status, document, headers=dict(headers))
