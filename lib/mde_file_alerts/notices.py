"""Messages for the person running a search: one clear sentence each, never a flood.

A correlation search over thousands of hashes must not bury its page under thousands of
"no alerts" lines, so each kind of message is shown for the first few hashes and then summed up
once ("... and 312 more hashes with no alerts").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

INFO = "INFO"
WARN = "WARN"
ERROR = "ERROR"

DEFAULT_MESSAGES_PER_KIND = 20


class MessageSink(Protocol):
    """Where messages go: the search UI (inspector messages), stderr for the CLI, a test list."""

    def __call__(self, level: str, text: str) -> None: ...


@dataclass
class NoticeBoard:
    """Sends at most ``per_kind`` messages of each kind and counts the rest for ``summarise()``."""

    sink: MessageSink
    per_kind: int = DEFAULT_MESSAGES_PER_KIND
    _shown: Counter[str] = field(default_factory=Counter)
    _held_back: Counter[str] = field(default_factory=Counter)
    _levels: dict[str, str] = field(default_factory=dict)
    _plural_labels: dict[str, str] = field(default_factory=dict)

    def post(self, level: str, text: str, *, kind: str | None = None, plural_label: str = "") -> None:
        """Show ``text`` unless ``per_kind`` messages of ``kind`` were shown already."""
        if kind is None:
            self.sink(level, text)
            return
        self._levels[kind] = level
        self._plural_labels[kind] = plural_label or kind
        if self._shown[kind] < self.per_kind:
            self._shown[kind] += 1
            self.sink(level, text)
        else:
            self._held_back[kind] += 1

    def summarise(self) -> None:
        """One closing line per kind whose messages were held back."""
        for kind, count in self._held_back.items():
            self.sink(self._levels[kind], f"... and {count} more {self._plural_labels[kind]}.")
        self._held_back.clear()
