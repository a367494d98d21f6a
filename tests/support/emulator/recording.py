"""What the emulator received, for tests to assert on."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


@dataclass
class RecordedRequest:
    """One request. Header names are lower-case; ``status`` is None for a reset connection."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    timestamp: float
    endpoint: str  # "discovery", "token", "api" or "other"
    file_id: str | None = None
    status: int | None = None
    fault: Any = field(default=None)

    @property
    def form(self) -> dict[str, str]:
        """The body as a form (token requests), first value of each field."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: values[0] for key, values in parsed.items()}


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[RecordedRequest] = []

    def append(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
