"""What ``| mdefilealerts`` does between its options and its records.

The bin/ file only parses options and hands records to splunklib; everything here is plain
Python that the tests and other front ends can drive without splunkd. This is also the edge
where errors are caught: a domain error becomes its one-sentence ``user_message``, anything
unexpected becomes a sentence with a reference into the app log, never a traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

from mde_file_alerts.client import DefenderClient, HashOutcome, HashStatus
from mde_file_alerts.clock import Clock, SystemClock
from mde_file_alerts.errors import MdeError
from mde_file_alerts.hashes import split_hash_values
from mde_file_alerts.mapping import LookupContext, account_context, events_for_outcome
from mde_file_alerts.notices import ERROR, WARN, NoticeBoard
from mde_file_alerts.runtime import Connection
from mde_file_alerts.validation import AlertValidator, ValidationMode
from mde_file_alerts.version import app_version

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 300
MAX_TIMEOUT_SECONDS = 3600

# How each per-hash problem is shown: level, and the plural used when messages are summed up.
_OUTCOME_NOTICES: dict[HashStatus, tuple[str, str]] = {
    HashStatus.NOT_FOUND: (WARN, "hashes with no Defender alerts"),
    HashStatus.INVALID_HASH: (WARN, "values that are not SHA-1 hashes"),
    HashStatus.THROTTLED: (WARN, "hashes not looked up because Defender throttled the calls"),
    HashStatus.NOT_LOOKED_UP: (WARN, "hashes not looked up before the deadline"),
    HashStatus.ERROR: (ERROR, "hashes whose lookup failed"),
}


@dataclass(frozen=True)
class SearchRequest:
    """The command's options, already type-checked by splunklib."""

    hash_text: str
    account_name: str | None = None
    validate: ValidationMode = ValidationMode.WARN
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    resolve_sha256: bool = False


def file_alert_records(
    request: SearchRequest,
    connect: Callable[[str | None], Connection],
    board: NoticeBoard,
    *,
    clock: Clock | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one record per Defender alert; post one notice per hash that yielded none."""
    clock = clock or SystemClock()
    values = split_hash_values(request.hash_text)
    if not values:
        board.post(ERROR, "No hash given: use hash=<sha1>, several separated by commas.")
        return
    try:
        connection = connect(request.account_name)
        client = DefenderClient(
            connection.account,
            token_source=connection.token_source,
            rate_limiter=connection.rate_limiter,
            clock=clock,
        )
        validator = AlertValidator(request.validate)
        context = account_context(connection.account, retrieved_at=clock.time(), app_version=app_version())
        for outcome in client.lookup(values, timeout=request.timeout, resolve_sha256=request.resolve_sha256):
            yield from _records_for(outcome, context, validator, board)
    except MdeError as error:
        logger.warning("search stopped: %s", error)
        board.post(ERROR, error.user_message)
    except Exception:  # the edge: nothing unexpected reaches the user as a traceback
        reference = uuid.uuid4().hex[:12]
        logger.exception("unexpected failure, reference %s", reference)
        board.post(
            ERROR,
            f"The Defender lookup failed unexpectedly (reference {reference}); "
            "the details are in ta_mde_file_alerts.log.",
        )
    finally:
        board.summarise()


def _records_for(
    outcome: HashOutcome, context: LookupContext, validator: AlertValidator, board: NoticeBoard
) -> Iterator[dict[str, Any]]:
    report = events_for_outcome(outcome, context, validator)
    yield from report.events
    if outcome.status is not HashStatus.FOUND:
        level, plural = _OUTCOME_NOTICES.get(outcome.status, (WARN, "hashes not looked up"))
        board.post(level, report.message, kind=outcome.status.value, plural_label=plural)
    elif report.rejected:
        board.post(
            WARN, report.message, kind="strict", plural_label="files with alerts left out by validate=strict"
        )
