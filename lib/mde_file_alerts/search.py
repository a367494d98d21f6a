"""What ``| mdefilealerts`` does between its options and its records, in both of its modes.

- ``| mdefilealerts hash=<sha1>,...`` generates one event per Defender alert (``file_alert_records``).
- ``... | mdefilealerts field=<hash field>`` enriches the events it is given (``Enricher``): every
  distinct hash is looked up once per search, and every event gets the summary fields of
  ``enrichment``, or with ``expand=true`` one row per alert.

The bin/ file only parses options and hands records to splunklib; everything here is plain
Python that tests and other front ends can drive without splunkd. This is also the edge where
errors are caught: a domain error becomes its one-sentence ``user_message``, anything unexpected
becomes a sentence with a reference into the app log, never a traceback.

Importing this module is cheap on purpose: splunkd starts the command to ask for its settings
(getinfo) before every search, so the HTTP stack, the schema validator and the KV store client
are imported only when records are really produced.
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Optional

from mde_file_alerts import cim
from mde_file_alerts.clock import Clock, SystemClock
from mde_file_alerts.errors import MdeError
from mde_file_alerts.notices import ERROR, INFO, WARN, NoticeBoard
from mde_file_alerts.outcome import HashOutcome, HashStatus

if TYPE_CHECKING:
    from mde_file_alerts.hashes import HashInput
    from mde_file_alerts.lookups import HashLookup, LookupResult
    from mde_file_alerts.mapping import LookupContext
    from mde_file_alerts.runtime import Connection
    from mde_file_alerts.validation import AlertValidator

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 300
#: At most this many events per reply in generating mode, whatever splunkd's maxresultrows allows:
#: alerts are large (their JSON is in _raw), and a reply is held in memory until it is sent.
MAX_EVENTS_PER_PAGE = 1_000
MAX_TIMEOUT_SECONDS = 3600
#: The option that switches the command to enrichment (``... | mdefilealerts field=<hash field>``).
ENRICHMENT_OPTION = "field"
#: validate= values (``validation.ValidationMode``, named here so that options need no import of it).
VALIDATION_MODES = ("warn", "strict", "off")

Connect = Callable[[Optional[str]], "Connection"]

# How each per-hash problem is shown: level, and the plural used when messages are summed up.
_OUTCOME_NOTICES: dict[HashStatus, tuple[str, str]] = {
    HashStatus.NOT_FOUND: (WARN, "hashes with no Defender alerts"),
    HashStatus.INVALID_HASH: (WARN, "values that are not SHA-1 hashes"),
    HashStatus.THROTTLED: (WARN, "hashes not looked up because Defender throttled the calls"),
    HashStatus.NOT_LOOKED_UP: (WARN, "hashes not looked up before the deadline or within the call budget"),
    HashStatus.ERROR: (ERROR, "hashes whose lookup failed"),
}
# In enrichment every event carries its hash's status and message, so only the statuses that mean
# "this search is incomplete" are also shown as messages.
_ENRICHMENT_NOTICES = frozenset({HashStatus.THROTTLED, HashStatus.NOT_LOOKED_UP, HashStatus.ERROR})


@dataclass(frozen=True)
class SearchRequest:
    """``| mdefilealerts hash=...``: the options, already type-checked by splunklib."""

    hash_text: str
    account_name: str | None = None
    validate: str = "warn"
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    resolve_sha256: bool = False
    use_cache: bool = True


@dataclass(frozen=True)
class EnrichRequest:
    """``... | mdefilealerts field=...``: the options, already type-checked by splunklib."""

    field: str
    expand: bool = False
    account_name: str | None = None
    validate: str = "warn"
    #: Seconds the whole search may spend waiting for Defender (all chunks of events together).
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    resolve_sha256: bool = False
    use_cache: bool = True


def wants_enrichment(args: Iterable[str]) -> bool:
    """Whether a command line (splunkd's ``searchinfo.args``) asks for enrichment mode."""
    return any(arg.split("=", 1)[0].strip() == ENRICHMENT_OPTION for arg in args if "=" in arg)


# --- choosing the mode ----------------------------------------------------------------------------------

# splunkd's chunk header: "chunked 1.0,<metadata bytes>,<body bytes>\n" (splunklib's own pattern).
_CHUNK_HEADER = re.compile(rb"chunked\s+1.0\s*,\s*(\d+)\s*,\s*(\d+)\s*\n")


class ReplayingReader:
    """A binary input that first gives back bytes already read, then reads on from ``source``.

    The command reads splunkd's getinfo chunk to choose its mode; splunklib must then read that
    same chunk again, exactly as splunkd sent it. Only ``read`` and ``readline`` are needed:
    those are all splunklib uses.
    """

    def __init__(self, consumed: bytes, source: BinaryIO) -> None:
        self._consumed = io.BytesIO(consumed)
        self._source = source

    def read(self, size: int = -1) -> bytes:
        data = self._consumed.read(size)
        if size < 0:
            return data + self._source.read()
        if len(data) < size:
            data += self._source.read(size - len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        line = self._consumed.readline(size)
        if line.endswith(b"\n") or (0 <= size <= len(line)):
            return line
        return line + self._source.readline(-1 if size < 0 else size - len(line))


def read_getinfo_args(source: BinaryIO) -> tuple[list[str], ReplayingReader]:
    """splunkd's command-line arguments from its first (getinfo) chunk, and the input to give splunklib.

    Whatever is not a well-formed getinfo chunk yields no arguments; splunklib then reads the same
    bytes and reports the problem as it always does.
    """
    header = source.readline()
    consumed = header
    args: list[str] = []
    match = _CHUNK_HEADER.fullmatch(header)
    if match is not None:
        metadata = _read_exactly(source, int(match.group(1)))
        body = _read_exactly(source, int(match.group(2)))
        consumed += metadata + body
        try:
            searchinfo = json.loads(metadata.decode("utf-8")).get("searchinfo") or {}
            found = searchinfo.get("args") if isinstance(searchinfo, dict) else None
        except (ValueError, UnicodeDecodeError, AttributeError):
            found = None
        if isinstance(found, list):
            args = [str(arg) for arg in found]
    return args, ReplayingReader(consumed, source)


def _read_exactly(source: BinaryIO, length: int) -> bytes:
    data = b""
    while len(data) < length:
        more = source.read(length - len(data))
        if not more:
            break
        data += more
    return data


# --- generating: | mdefilealerts hash=... -------------------------------------------------------------


def file_alert_records(
    request: SearchRequest,
    connect: Connect,
    board: NoticeBoard,
    *,
    clock: Clock | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one record per Defender alert; post one notice per hash that yielded none."""
    from mde_file_alerts.hashes import split_hash_values
    from mde_file_alerts.lookups import HashLookup
    from mde_file_alerts.mapping import events_for_outcome
    from mde_file_alerts.validation import AlertValidator, ValidationMode

    clock = clock or SystemClock()
    values = split_hash_values(request.hash_text)
    if not values:
        board.post(ERROR, "No hash given: use hash=<sha1>, several separated by commas.")
        return
    connection: Connection | None = None
    cache_problems: list[str] = []
    try:
        connection = connect(request.account_name)
        lookup = HashLookup(
            connection,
            use_cache=request.use_cache and connection.uses_cache,
            clock=clock,
            warn=cache_problems.append,
        )
        validator = AlertValidator(ValidationMode(request.validate))
        context = _account_context(connection, clock)
        results = lookup.lookup(values, timeout=request.timeout, resolve_sha256=request.resolve_sha256)
        for result in results:
            when = replace(context, retrieved_at=result.retrieved_at)
            report = events_for_outcome(result.outcome, when, validator)
            for event in report.events:
                event[cim.CACHE] = result.cache
                yield event
            _post_outcome(board, result, report.message, bool(report.rejected))
    except MdeError as error:
        logger.warning("search stopped: %s", error)
        board.post(ERROR, error.user_message)
    except Exception:  # the edge: nothing unexpected reaches the user as a traceback
        reference = uuid.uuid4().hex[:12]
        logger.exception("unexpected failure, reference %s", reference)
        board.post(ERROR, _unexpected_failure(reference))
    finally:
        _post_kvstore_problems(board, cache_problems, connection)
        board.summarise()


def _post_outcome(board: NoticeBoard, result: LookupResult, message: str, rejected: bool) -> None:
    outcome = result.outcome
    if outcome.status is not HashStatus.FOUND:
        level, plural = _OUTCOME_NOTICES.get(outcome.status, (WARN, "hashes not looked up"))
        board.post(level, message, kind=outcome.status.value, plural_label=plural)
    elif rejected:
        board.post(WARN, message, kind="strict", plural_label="files with alerts left out by validate=strict")


def _account_context(connection: Connection, clock: Clock) -> LookupContext:
    from mde_file_alerts.mapping import account_context
    from mde_file_alerts.version import app_version

    return account_context(connection.account, retrieved_at=clock.time(), app_version=app_version())


def _post_kvstore_problems(
    board: NoticeBoard, cache_problems: list[str], connection: Connection | None
) -> None:
    """One message for everything the KV store could not do in this search (cache, shared budget)."""
    budget = connection.budget_fallback_reason if connection is not None else None
    local_budget = "counted its Defender calls on this host only, not across the search heads"
    if cache_problems and budget:
        board.post(
            WARN,
            f"{cache_problems[0]} The call budget in the KV store could not be used either, so this search "
            f"{local_budget}.",
        )
    elif cache_problems:
        board.post(WARN, cache_problems[0])
    elif budget:
        board.post(
            WARN,
            f"The call budget in the KV store could not be used, so this search {local_budget}: {budget}",
        )


def _unexpected_failure(reference: str) -> str:
    return (
        f"The Defender lookup failed unexpectedly (reference {reference}); "
        "the details are in ta_mde_file_alerts.log."
    )


# --- enrichment: ... | mdefilealerts field=... ----------------------------------------------------------


@dataclass
class _Answer:
    """What every event with one hash gets: its summary fields, and its alerts' rows for expand=true."""

    summary: dict[str, Any]
    alert_rows: list[dict[str, Any]] = field(default_factory=list)
    cache: str = ""


class Enricher:
    """Enriches the events of one search, chunk by chunk, looking each distinct hash up once.

    splunkd hands a streaming command its events in chunks; the answers are kept for the whole
    search process (one small entry per distinct hash, plus its alerts' rows with expand=true),
    so a hash seen again in a later chunk costs nothing. ``finish()`` posts the closing messages.
    """

    def __init__(
        self, request: EnrichRequest, connect: Connect, board: NoticeBoard, *, clock: Clock | None = None
    ) -> None:
        self._request = request
        self._connect = connect
        self._board = board
        self._clock = clock or SystemClock()
        self._answers: dict[str, _Answer] = {}
        self._connection: Connection | None = None
        self._lookup: HashLookup | None = None
        self._validator: AlertValidator | None = None
        self._context: LookupContext | None = None
        #: The error that stopped all lookups (bad credentials, no capability...), once it happened.
        self._stopped: MdeError | None = None
        self._spent = 0.0
        self._unusable_events = 0
        self._multi_hash_events = 0
        self._cache_problems: list[str] = []

    def enrich(self, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The rows for one chunk of events, in order: every event is kept (or expanded), never dropped."""
        from mde_file_alerts.enrichment import choose_hash

        events = list(records)
        choices = [
            choose_hash(
                event.get(self._request.field),
                self._request.field,
                resolve_sha256=self._request.resolve_sha256,
            )
            for event in events
        ]
        new = {choice.query.value: choice.query for choice in choices if choice.query is not None}
        for known in self._answers.keys() & new.keys():
            del new[known]
        if new:
            self._look_up(list(new.values()))
        for event, choice in zip(events, choices):
            yield from self._rows(event, choice.query, choice.problem, choice.note)

    def finish(self) -> None:
        """After the last chunk: the messages that sum the search up."""
        if self._unusable_events:
            count = self._unusable_events
            self._board.post(
                WARN,
                f"{count} event{' has' if count == 1 else 's have'} no usable SHA-1 in field "
                f"{self._request.field!r}; they are marked mde_status=invalid_hash, with the reason in "
                "mde_message.",
            )
        if self._multi_hash_events:
            count = self._multi_hash_events
            self._board.post(
                INFO,
                f"{count} event{'' if count == 1 else 's'} held several SHA-1 values in field "
                f"{self._request.field!r}; the first of each was looked up (see mde_message).",
            )
        _post_kvstore_problems(self._board, self._cache_problems, self._connection)
        self._board.summarise()

    # --- rows ---------------------------------------------------------------------------------------

    def _rows(
        self, event: dict[str, Any], query: HashInput | None, problem: str | None, note: str | None
    ) -> Iterator[dict[str, Any]]:
        from mde_file_alerts.enrichment import expanded_rows, unusable_value_fields

        if query is None:
            self._unusable_events += 1
            event.update(unusable_value_fields(problem or "The value is not a SHA-1 hash."))
            yield event
            return
        answer = self._answers[query.value]
        if note:
            self._multi_hash_events += 1
        if self._request.expand and answer.alert_rows:
            yield from expanded_rows(event, answer.alert_rows, answer.cache)
            return
        event.update(answer.summary)
        if note:
            event[cim.LOOKUP_MESSAGE] = f"{answer.summary[cim.LOOKUP_MESSAGE]} {note}"
        yield event

    # --- lookups ------------------------------------------------------------------------------------

    def _look_up(self, queries: list[HashInput]) -> None:
        started = self._clock.monotonic()
        try:
            if self._stopped is None:
                lookup = self._hash_lookup()
                remaining = max(self._request.timeout - self._spent, 0.0)
                results = lookup.lookup(
                    queries, timeout=remaining, resolve_sha256=self._request.resolve_sha256
                )
                for result in results:
                    self._remember(result)
        except MdeError as error:
            logger.warning("lookups stopped: %s", error)
            self._stopped = error
            self._board.post(ERROR, error.user_message)
        except Exception:  # the edge: nothing unexpected reaches the user as a traceback
            reference = uuid.uuid4().hex[:12]
            logger.exception("unexpected failure, reference %s", reference)
            self._stopped = MdeError(_unexpected_failure(reference))
            self._board.post(ERROR, self._stopped.message)
        finally:
            self._spent += self._clock.monotonic() - started
        for query in queries:
            if query.value not in self._answers:
                # Never answered: the search was stopped before this hash (or in an earlier chunk).
                failed = HashOutcome(query, HashStatus.ERROR, error=self._stopped)
                self._answers[query.value] = self._answer_for(failed, cim.CACHE_BYPASS_VALUE, None)

    def _hash_lookup(self) -> HashLookup:
        if self._lookup is None:
            from mde_file_alerts.lookups import HashLookup

            connection = self._connect(self._request.account_name)
            self._connection = connection
            if self._request.expand:
                # Only rows for alerts need mapping and its schema validator.
                from mde_file_alerts.validation import AlertValidator, ValidationMode

                self._validator = AlertValidator(ValidationMode(self._request.validate))
                self._context = _account_context(connection, self._clock)
            self._lookup = HashLookup(
                connection,
                use_cache=self._request.use_cache and connection.uses_cache,
                clock=self._clock,
                warn=self._cache_problems.append,
            )
        return self._lookup

    def _remember(self, result: LookupResult) -> None:
        outcome = result.outcome
        answer = self._answer_for(outcome, result.cache, result.retrieved_at)
        self._answers[outcome.query.value] = answer
        if outcome.status in _ENRICHMENT_NOTICES:
            level, plural = _OUTCOME_NOTICES[outcome.status]
            self._board.post(
                level, answer.summary[cim.LOOKUP_MESSAGE], kind=outcome.status.value, plural_label=plural
            )

    def _answer_for(self, outcome: HashOutcome, cache: str, retrieved_at: float | None) -> _Answer:
        from mde_file_alerts.enrichment import summary_fields

        account = self._connection.account.name if self._connection is not None else None
        summary = summary_fields(outcome, cache, retrieved_at=retrieved_at, account=account)
        answer = _Answer(summary, cache=cache)
        if outcome.alerts and self._validator and self._context and retrieved_at:
            from mde_file_alerts.mapping import events_for_outcome

            report = events_for_outcome(
                outcome, replace(self._context, retrieved_at=retrieved_at), self._validator
            )
            answer.alert_rows = report.events
            if report.rejected:
                self._board.post(
                    WARN,
                    report.message,
                    kind="strict",
                    plural_label="files with alerts left out by validate=strict",
                )
        return answer
