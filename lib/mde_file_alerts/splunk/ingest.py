"""Put events into an index through splunkd's ``POST /services/receivers/simple``.

An alert action already holds what this needs: splunkd's address and a session key. No HTTP
Event Collector token or input has to be set up first. Each request carries one ``source``,
``sourcetype`` and ``host`` (query arguments) and a body of events, one per line; splunkd breaks
the body into events and parses timestamps by the props.conf settings of that source and
sourcetype, as for any other input. Events must therefore be single lines (compact JSON is).

Requests are bounded in size, so a run with thousands of alerts never builds one huge body.
A request that fails is reported (a sentence naming the index, never the session key) and, for
answers that would repeat (the session, the permission, the index), the remaining events are
counted as not written instead of being sent into the same refusal again.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from splunklib import binding

from mde_file_alerts.errors import ConfigurationError
from mde_file_alerts.splunk.splunkd import Splunkd, SplunkdResponse

logger = logging.getLogger(__name__)

RECEIVER_PATH = "/services/receivers/simple"
#: Upper bound of one request body; events are a few KB each, so this is hundreds per request.
DEFAULT_MAX_BATCH_BYTES = 1024 * 1024
_LINE_BREAKS = ("\r", "\n")
# Statuses that every further request of this run would get as well.
_REPEATING_STATUSES = frozenset({400, 401, 403, 404})


@dataclass(frozen=True)
class IndexEvent:
    """One event to index: its text and the metadata splunkd should give it."""

    raw: str
    source: str
    sourcetype: str
    #: None: splunkd's own host name.
    host: str | None = None

    def __post_init__(self) -> None:
        if any(character in self.raw for character in _LINE_BREAKS):
            raise ValueError("an event sent to receivers/simple must be a single line")

    @property
    def metadata(self) -> tuple[str, str, str | None]:
        return (self.source, self.sourcetype, self.host)


class Receiver(Protocol):
    """What sends one request body to splunkd (``ReceivingSplunkd``; a recorder in unit tests)."""

    def post_raw(self, path: str, body: bytes, query: Mapping[str, str]) -> SplunkdResponse: ...


class ReceivingSplunkd(Splunkd):
    """``Splunkd`` plus the one call whose body is data rather than a form: receivers/simple."""

    def post_raw(self, path: str, body: bytes, query: Mapping[str, str]) -> SplunkdResponse:
        segment = binding.UrlEncoded(path, skip_encode=True)
        try:
            # With a body, splunklib sends it unchanged and puts the keyword arguments in the URL.
            response = self._context.post(segment, body=body, output_mode="json", **query)
            return SplunkdResponse(int(response.status), response.body.read())
        except binding.HTTPError as error:
            return SplunkdResponse(int(error.status), bytes(error.body or b""))
        except (OSError, http.client.HTTPException) as error:
            raise ConfigurationError(
                f"Could not reach splunkd at {self.uri} ({type(error).__name__}); "
                "check that splunkd is running.",
                method="POST",
                url=self.uri + self.absolute_path(path),
            ) from None


@dataclass
class IngestReport:
    """What reached the index, what did not, and why (one sentence per failed request)."""

    written: int = 0
    not_written: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.not_written == 0


class IndexWriter:
    """Collects events and sends them in bounded requests, one per run of equal metadata.

    ``add`` sends a request whenever the metadata changes or the next event would make the body
    larger than ``max_batch_bytes``; ``flush`` sends what is left. Events are sent in the order
    they were added.
    """

    def __init__(
        self, receiver: Receiver, index: str, *, max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    ) -> None:
        if max_batch_bytes < 1:
            raise ValueError(f"max_batch_bytes must be positive, not {max_batch_bytes}")
        self._receiver = receiver
        self.index = index
        self._max_batch_bytes = max_batch_bytes
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._metadata: tuple[str, str, str | None] | None = None
        #: Set when splunkd refused in a way every further request would be refused too.
        self._refusal: str | None = None
        self.report = IngestReport()

    def add(self, event: IndexEvent) -> None:
        line = event.raw.encode("utf-8")
        size = len(line) + (1 if self._batch else 0)
        if self._batch and (
            event.metadata != self._metadata or self._batch_bytes + size > self._max_batch_bytes
        ):
            self.flush()
            size = len(line)
        self._metadata = event.metadata
        self._batch.append(line)
        self._batch_bytes += size

    def write(self, event: IndexEvent) -> bool:
        """Send ``event`` on its own, now (after what was collected); True when it was indexed."""
        self.flush()
        written_before = self.report.written
        self.add(event)
        self.flush()
        return self.report.written > written_before

    def flush(self) -> None:
        if not self._batch or self._metadata is None:
            return
        lines, metadata = self._batch, self._metadata
        self._batch, self._batch_bytes = [], 0
        if self._refusal is not None:
            self.report.not_written += len(lines)
            return
        self._send(lines, metadata)

    def _send(self, lines: list[bytes], metadata: tuple[str, str, str | None]) -> None:
        source, sourcetype, host = metadata
        query = {"index": self.index, "source": source, "sourcetype": sourcetype}
        if host:
            query["host"] = host
        what = f"{_count(len(lines), 'event')} (sourcetype {sourcetype}) to index {self.index!r}"
        try:
            response = self._receiver.post_raw(RECEIVER_PATH, b"\n".join(lines), query)
        except ConfigurationError as error:
            self._refuse(lines, f"Could not write {what}: {error.user_message}")
            logger.error("receivers/simple failed: %s", error)
            return
        if response.ok:
            self.report.written += len(lines)
            logger.debug("indexed %s source=%s", what, source)
            return
        sentence = f"splunkd did not index {what}: {_reason(response, self.index)}"
        logger.error("%s (HTTP %s)", sentence, response.status)
        if response.status in _REPEATING_STATUSES:
            self._refuse(lines, sentence)
        else:
            self.report.not_written += len(lines)
            self.report.problems.append(sentence)

    def _refuse(self, lines: list[bytes], sentence: str) -> None:
        self._refusal = sentence
        self.report.not_written += len(lines)
        self.report.problems.append(sentence)


def _reason(response: SplunkdResponse, index: str) -> str:
    said = "; ".join(message.rstrip(".") for message in response.messages)
    if response.status == 401:
        reason = "it did not accept the session key (expired or invalid)"
    elif response.status == 403:
        reason = (
            "the owner of the search lacks the permission to send data (receivers/simple needs "
            "the edit_tcp capability)"
        )
    elif response.status in (400, 404):
        reason = f"it refused the request (does the index {index!r} exist on this instance?)"
    else:
        reason = f"it answered HTTP {response.status}"
    return f"{reason}; splunkd said: {said}." if said else f"{reason}."


def _count(number: int, singular: str) -> str:
    return f"{number} {singular if number == 1 else singular + 's'}"
