"""The ``mde_file_alerts_lookup`` alert action, also an Enterprise Security adaptive response action.

splunkd runs ``bin/mde_file_alerts_action.py --execute`` with a JSON payload on stdin: the
search's results as a gzip CSV file (``results_file``), a session key and splunkd's address, and
the action's parameters (``configuration``: account, hash_field, index). The action looks up
every distinct SHA-1 found in the chosen field of those results with the same client, call
budget and mapping as ``| mdefilealerts``, and indexes:

- every alert, exactly as Defender sent it (``_raw``), with the sourcetype and source the mapping
  gives (``ms:defender:atp:alerts``, ``mde_file_alerts://<account>/api/files/<sha1>/alerts``), so
  the app's search-time CIM fields apply as they do for any indexed alert;
- one summary event per run (sourcetype ``mde_file_alerts:action``): what was asked, each hash's
  status, what was written, and whether the run succeeded.

A hash that fails never costs the others their events. splunkd writes what the script prints on
stderr into splunkd.log (``sendmodalert``), so every problem is one line there, prefixed with its
level, never a traceback; the detail goes to the app log. Enterprise Security's Adaptive Response
Action Center reads ``<action>_modalert.log`` (the common action model), so each run also leaves
its invocation and outcome there.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import logging.handlers
import os
import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import IO, Any

from mde_file_alerts import cim
from mde_file_alerts.account import Secret
from mde_file_alerts.clock import Clock, SystemClock
from mde_file_alerts.errors import ConfigurationError, MdeError
from mde_file_alerts.hashes import HashInput, parse_hashes, split_hash_values
from mde_file_alerts.logging_setup import RedactingFilter, configure_logging, log_file_path
from mde_file_alerts.lookups import HashLookup, LookupResult
from mde_file_alerts.mapping import LookupContext, account_context, events_for_outcome
from mde_file_alerts.notices import ERROR, INFO, WARN, NoticeBoard
from mde_file_alerts.outcome import HashOutcome, HashStatus
from mde_file_alerts.runtime import connector_for_search
from mde_file_alerts.splunk.ingest import IndexEvent, IndexWriter, ReceivingSplunkd
from mde_file_alerts.validation import AlertValidator, ValidationMode
from mde_file_alerts.version import app_version

logger = logging.getLogger(__name__)

ACTION_NAME = "mde_file_alerts_lookup"
SUMMARY_SOURCETYPE = "mde_file_alerts:action"
#: Deliberately not under ``mde_file_alerts://``: props.conf's alert settings match that prefix.
SUMMARY_SOURCE = "mde_file_alerts_action"
DEFAULT_INDEX = "main"
#: The overall lookup deadline; alert_actions.conf's maxtime (5 minutes) leaves a minute to index.
LOOKUP_TIMEOUT_SECONDS = 240.0
#: Per-hash entries in the summary event (the rest are counted); the app log has every hash.
MAX_HASHES_IN_SUMMARY = 100
MAX_INVALID_IN_SUMMARY = 20
#: Characters of a value that is not a hash kept in the summary (a field can hold any text).
MAX_SHOWN_VALUE = 100
#: Lines per kind of per-hash problem on stderr, then one "... and N more" line.
STDERR_LINES_PER_KIND = 5

EXIT_OK = 0
#: A failure nobody foresaw; the app log has the traceback under the reference printed.
EXIT_UNEXPECTED = 1
#: Not run as splunkd runs alert actions (arguments, payload).
EXIT_USAGE = 2
#: The action could not do its work: settings, account, permission, sign-in, results file.
EXIT_NOT_RUN = 3
#: The lookups ran, but splunkd did not index every event.
EXIT_NOT_WRITTEN = 4

SUCCESS = "success"
FAILURE = "failure"

# Splunk's rule for index names; "_" names are Splunk's own indexes, never a target for alerts.
_INDEX_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,79}")
# Per-hash statuses reported on stderr as problems, with the plural used once lines are summed up.
_STDERR_PROBLEMS: Mapping[HashStatus, str] = {
    HashStatus.THROTTLED: "hashes not looked up because Defender throttled the calls",
    HashStatus.NOT_LOOKED_UP: "hashes not looked up before the deadline or within the call budget",
    HashStatus.ERROR: "hashes whose lookup failed",
}
# Each hash's entry in the summary: its status record from ``events_for_outcome``, under plain
# names (the record's account and retrieval time are said once for the whole run).
_SUMMARY_HASH_FIELDS = (
    ("hash", cim.STATUS_FOR),
    ("status", cim.STATUS_VALUE),
    ("alert_count", cim.STATUS_ALERT_COUNT),
    ("rejected_count", cim.STATUS_REJECTED_COUNT),
    ("message", cim.STATUS_MESSAGE),
    ("correlation_id", cim.STATUS_CORRELATION_ID),
)


# --- the payload ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionPayload:
    """What splunkd hands the action on stdin, checked; the session key stays wrapped."""

    server_uri: str
    session_key: Secret
    results_file: str
    hash_field: str
    index: str
    account: str | None = None
    sid: str = ""
    search_name: str = ""
    app: str = ""
    owner: str = ""
    #: Set for per-result alerting (Enterprise Security sends one result per invocation then).
    result_id: str | None = None

    @classmethod
    def from_json(cls, data: bytes) -> ActionPayload:
        """Parse and check the payload; a ConfigurationError names what is missing or wrong."""
        try:
            document = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ConfigurationError(
                "The alert action's input is not the JSON payload splunkd sends (payload_format = json)."
            ) from None
        if not isinstance(document, dict):
            raise ConfigurationError("The alert action's payload is not a JSON object.")
        configuration = document.get("configuration")
        settings: Mapping[str, Any] = configuration if isinstance(configuration, dict) else {}
        hash_field = _text(settings.get("hash_field"))
        if not hash_field:
            raise ConfigurationError(
                "The alert action has no hash field: set 'Hash field' (param.hash_field) to the name of "
                "the result field that holds the SHA-1 hashes."
            )
        index = _text(settings.get("index")) or DEFAULT_INDEX
        if not _INDEX_NAME.fullmatch(index) or "kvstore" in index:
            raise ConfigurationError(
                f"The alert action's index {index!r} is not a valid index name: lower-case letters, "
                "digits, '_' and '-', not starting with '_' or '-'."
            )
        results_file = _text(document.get("results_file"))
        if not results_file:
            raise ConfigurationError("splunkd gave the alert action no results file (results_file).")
        result_id = document.get("result_id")
        return cls(
            server_uri=_text(document.get("server_uri")),
            session_key=Secret(_text(document.get("session_key"))),
            results_file=results_file,
            hash_field=hash_field,
            index=index,
            account=_text(settings.get("account")) or None,
            sid=_text(document.get("sid")),
            search_name=_text(document.get("search_name")),
            app=_text(document.get("app")),
            owner=_text(document.get("owner")),
            result_id=None if result_id is None or result_id == "" else str(result_id),
        )

    @property
    def action_mode(self) -> str:
        """The common action model's word for how the action was started."""
        return "saved" if "scheduler" in self.sid else "adhoc"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value).strip())


# --- the results file -----------------------------------------------------------------------------


@dataclass
class ResultHashes:
    """The values of the hash field in the triggering results, in order."""

    rows: int = 0
    rows_without_value: int = 0
    values: list[str] = field(default_factory=list)


def read_result_hashes(path: str, hash_field: str) -> ResultHashes:
    """Every value of ``hash_field`` (multivalue fields too) in splunkd's gzip CSV of results."""
    found = ResultHashes()
    # Field values can be far larger than the csv module's 128 KB default (whole _raw events).
    csv.field_size_limit(max(csv.field_size_limit(), 10 * 1024 * 1024))
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as stream:
            reader = csv.DictReader(stream)
            if reader.fieldnames is None:
                return found  # no results at all, not even a header
            if hash_field not in reader.fieldnames:
                shown = [name for name in reader.fieldnames if not name.startswith("__mv_")]
                raise ConfigurationError(
                    f"The search results have no field {hash_field!r}, so there are no hashes to look up; "
                    f"set 'Hash field' to one of: {', '.join(shown[:20])}"
                    f"{' ...' if len(shown) > 20 else ''}."
                )
            for row in reader:
                found.rows += 1
                values = _field_values(row, hash_field)
                if values:
                    found.values.extend(values)
                else:
                    found.rows_without_value += 1
    except (OSError, EOFError, csv.Error, UnicodeDecodeError) as error:
        raise ConfigurationError(
            f"Could not read the search results file of this alert ({type(error).__name__}).",
            detail=f"{path}: {error}",
        ) from None
    return found


def _field_values(row: Mapping[str, str | None], name: str) -> list[str]:
    """One row's values of a field: splunkd writes a multivalue as ``$a$;$b$`` in ``__mv_<name>``."""
    encoded = row.get(f"__mv_{name}") or ""
    texts = _multivalues(encoded) if encoded else [row.get(name) or ""]
    return [value for text in texts for value in split_hash_values(text)]


def _multivalues(encoded: str) -> list[str]:
    values: list[str] = []
    current: list[str] = []
    inside = False
    position = 0
    while position < len(encoded):
        character = encoded[position]
        if character == "$":
            if inside and encoded[position + 1 : position + 2] == "$":
                current.append("$")  # "$$" is a literal dollar inside a value
                position += 2
                continue
            if inside:
                values.append("".join(current))
                current = []
            inside = not inside
        elif inside:
            current.append(character)
        position += 1
    return values


# --- one run --------------------------------------------------------------------------------------


@dataclass
class RunReport:
    """Everything the summary event, stderr and the exit code are made from."""

    payload: ActionPayload
    started_at: float
    hashes: ResultHashes = field(default_factory=ResultHashes)
    distinct: list[HashInput] = field(default_factory=list)
    account: str | None = None
    statuses: Counter[str] = field(default_factory=Counter)
    hash_records: list[dict[str, Any]] = field(default_factory=list)
    hashes_not_listed: int = 0
    alerts: int = 0
    files_with_alerts: int = 0
    #: Set when the action could not do its work (or stopped before the end).
    failure: str | None = None
    write_problems: list[str] = field(default_factory=list)
    events_written: int = 0
    events_not_written: int = 0

    @property
    def valid(self) -> list[HashInput]:
        return [query for query in self.distinct if query.is_sha1]

    @property
    def invalid(self) -> list[HashInput]:
        return [query for query in self.distinct if not query.is_sha1]

    @property
    def reported(self) -> int:
        """Hashes with an outcome (looked up, or given up on by the client before the deadline)."""
        return sum(self.statuses.values())

    @property
    def action_status(self) -> str:
        return FAILURE if self.failure or self.events_not_written else SUCCESS

    @property
    def exit_code(self) -> int:
        if self.failure:
            return EXIT_NOT_RUN
        return EXIT_NOT_WRITTEN if self.events_not_written else EXIT_OK

    def add(
        self, outcome: HashOutcome, status_record: Mapping[str, Any], alert_count: int, *, cache: str
    ) -> None:
        self.statuses[outcome.status.value] += 1
        self.alerts += alert_count
        self.files_with_alerts += 1 if alert_count else 0
        if len(self.hash_records) < MAX_HASHES_IN_SUMMARY:
            entry = {name: status_record[key] for name, key in _SUMMARY_HASH_FIELDS if key in status_record}
            entry["cache"] = cache
            self.hash_records.append(entry)
        else:
            self.hashes_not_listed += 1

    def signature(self) -> str:
        """One sentence for the whole run: the summary's signature, the last stderr line."""
        payload = self.payload
        if self.failure:
            if self.reported:
                return (
                    f"The Defender lookup stopped after {self.reported} of {len(self.valid)} files: "
                    f"{self.failure}"
                )
            return f"The Defender lookup did not run: {self.failure}"
        if not self.valid:
            sentence = (
                f"No SHA-1 hash in field {payload.hash_field!r} of {_count(self.hashes.rows, 'result')}, "
                "so nothing was looked up."
            )
        else:
            sentence = (
                f"{_count(self.alerts, 'Defender alert')} for {self.files_with_alerts} of "
                f"{_count(len(self.valid), 'file')} (field {payload.hash_field!r}, "
                f"{_count(self.hashes.rows, 'result')}) sent to index {payload.index!r}."
            )
        if self.invalid:
            skipped = _count(len(self.invalid), "value")
            sentence += f" {skipped} in the field {_were(self.invalid)} not SHA-1 and skipped."
        if self.events_not_written:
            total = self.events_written + self.events_not_written
            sentence += f" splunkd indexed only {self.events_written} of {_count(total, 'event')}."
        return sentence


class AlertAction:
    """One invocation: read the results, look the hashes up, index alerts and the summary."""

    def __init__(
        self,
        payload: ActionPayload,
        *,
        stderr: IO[str],
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._payload = payload
        self._stderr = stderr
        self._environ = os.environ if environ is None else environ
        self._clock = clock or SystemClock()
        self._board = NoticeBoard(self._say, per_kind=STDERR_LINES_PER_KIND)

    def run(self) -> RunReport:
        payload = self._payload
        report = RunReport(payload, started_at=self._clock.time())
        invocations = InvocationLog.open(payload)
        invocations.record("Invoking modular action", status="")
        logger.info(
            "alert action started search_name=%r sid=%s hash_field=%r index=%s account=%r",
            payload.search_name,
            payload.sid,
            payload.hash_field,
            payload.index,
            payload.account,
        )
        try:
            splunkd = ReceivingSplunkd(payload.server_uri, payload.session_key.reveal())
        except ConfigurationError as error:
            # Without splunkd there is nowhere to put events, not even the summary.
            report.failure = error.user_message
            self._finish(report, invocations)
            return report
        writer = IndexWriter(splunkd, payload.index)
        try:
            self._look_up(report, writer)
        except MdeError as error:
            logger.warning("alert action stopped: %s", error)
            report.failure = error.user_message
        except Exception:  # the edge: the summary and a clean line still get out
            reference = uuid.uuid4().hex[:12]
            logger.exception("unexpected failure, reference %s", reference)
            report.failure = (
                f"The alert action failed unexpectedly (reference {reference}); "
                "the details are in ta_mde_file_alerts.log."
            )
        writer.flush()
        report.events_written = writer.report.written
        report.events_not_written = writer.report.not_written
        report.write_problems = list(writer.report.problems)
        summary = IndexEvent(
            raw=_compact_json(summary_event(report, self._clock.time())),
            source=SUMMARY_SOURCE,
            sourcetype=SUMMARY_SOURCETYPE,
        )
        writer.write(summary)
        report.events_not_written = writer.report.not_written
        report.write_problems = list(writer.report.problems)
        self._finish(report, invocations)
        return report

    def _look_up(self, report: RunReport, writer: IndexWriter) -> None:
        payload = self._payload
        report.hashes = read_result_hashes(payload.results_file, payload.hash_field)
        report.distinct = parse_hashes(report.hashes.values)
        if report.invalid:
            self._board.post(WARN, _invalid_sentence(report.invalid))
        if not report.valid:
            return
        connect = connector_for_search(payload.server_uri, payload.session_key.reveal(), self._environ)
        connection = connect(payload.account)
        report.account = connection.account.name
        context = account_context(
            connection.account, retrieved_at=self._clock.time(), app_version=app_version()
        )
        validator = AlertValidator(ValidationMode.WARN)
        # The command's own path: fresh answers from the result cache, Defender only for the rest,
        # every call within the shared budget, new answers written back to the cache.
        lookup = HashLookup(
            connection,
            use_cache=connection.uses_cache,
            clock=self._clock,
            warn=lambda text: self._board.post(WARN, text),
        )
        try:
            for result in lookup.lookup(report.valid, timeout=LOOKUP_TIMEOUT_SECONDS):
                self._index(
                    report, writer, result, replace(context, retrieved_at=result.retrieved_at), validator
                )
        finally:
            fallback = connection.budget_fallback_reason
            if fallback:
                self._board.post(
                    WARN,
                    "The call budget in the KV store could not be used, so this run counted its Defender "
                    f"calls on this host only: {fallback}",
                )

    def _index(
        self,
        report: RunReport,
        writer: IndexWriter,
        result: LookupResult,
        context: LookupContext,
        validator: AlertValidator,
    ) -> None:
        outcome = result.outcome
        produced = events_for_outcome(outcome, context, validator)
        for event in produced.events:
            writer.add(
                IndexEvent(
                    raw=str(event[cim.RAW]),
                    source=str(event[cim.SOURCE]),
                    sourcetype=str(event[cim.SOURCETYPE]),
                    host=_optional_text(event.get(cim.HOST)),
                )
            )
        report.add(outcome, produced.status, len(produced.events), cache=result.cache)
        if outcome.status in _STDERR_PROBLEMS:
            self._board.post(
                WARN,
                produced.message,
                kind=outcome.status.value,
                plural_label=_STDERR_PROBLEMS[outcome.status],
            )

    def _finish(self, report: RunReport, invocations: InvocationLog) -> None:
        self._board.summarise()
        # The run's failure is in its signature, the last line; what splunkd refused is not.
        for problem in report.write_problems:
            self._say(ERROR, problem)
        signature = report.signature()
        self._say(INFO if report.action_status == SUCCESS else ERROR, signature)
        logger.info(
            "alert action finished status=%s hashes=%d reported=%d alerts=%d written=%d not_written=%d: %s",
            report.action_status,
            len(report.valid),
            report.reported,
            report.alerts,
            report.events_written,
            report.events_not_written,
            signature,
        )
        invocations.record(
            signature,
            status=report.action_status,
            duration=f"{self._clock.time() - report.started_at:.3f}",
            index=self._payload.index,
            alerts=str(report.alerts),
        )

    def _say(self, level: str, text: str) -> None:
        _say(self._stderr, level, text)


def summary_event(report: RunReport, now: float) -> dict[str, Any]:
    """The run's status event; ``time`` comes first so splunkd's timestamp extraction finds it."""
    payload = report.payload
    event: dict[str, Any] = {
        "time": _iso_utc(now),
        "action_name": ACTION_NAME,
        "action_mode": payload.action_mode,
        "action_status": report.action_status,
        "signature": report.signature(),
        "search_name": payload.search_name,
        "sid": payload.sid,
        "orig_sid": payload.sid,
    }
    if payload.result_id is not None:
        event["orig_rid"] = payload.result_id
    event.update(
        {
            "app": payload.app,
            "user": payload.owner,
            "account": report.account or payload.account,
            "index": payload.index,
            "hash_field": payload.hash_field,
            "result_count": report.hashes.rows,
            "results_without_hash": report.hashes.rows_without_value,
            "hash_count": len(report.valid),
            "invalid_count": len(report.invalid),
            "status_counts": dict(sorted(report.statuses.items())),
            "alert_count": report.alerts,
            "events_written": report.events_written,
            "events_not_written": report.events_not_written or None,
            "duration": round(now - report.started_at, 3),
            "app_version": app_version(),
            "hashes": report.hash_records,
            "hashes_not_listed": report.hashes_not_listed,
            "invalid_values": [
                {
                    "value": query.original.strip()[:MAX_SHOWN_VALUE],
                    "kind": query.kind.value if query.kind else "unknown",
                }
                for query in report.invalid[:MAX_INVALID_IN_SUMMARY]
            ],
        }
    )
    if report.failure:
        event["failure"] = report.failure
    return {key: value for key, value in event.items() if value is not None}


def _were(items: Sequence[object]) -> str:
    return "was" if len(items) == 1 else "were"


def _invalid_sentence(invalid: Sequence[HashInput]) -> str:
    # "an MD5" -> "MD5": the kind's own label, without its article.
    kinds = Counter(query.kind.label.split(" ", 1)[1] if query.kind else "other" for query in invalid)
    detail = ", ".join(f"{number} {kind}" for kind, number in sorted(kinds.items()))
    verb, past = ("is", "was") if len(invalid) == 1 else ("are", "were")
    return (
        f"{_count(len(invalid), 'value')} in the hash field {verb} not SHA-1 ({detail}) and {past} "
        "not looked up: Defender's file alerts API accepts SHA-1 only."
    )


# --- Enterprise Security's view of the run ------------------------------------------------------------


class InvocationLog:
    """``<action>_modalert.log``: the common action model's invocation records.

    Splunk's Common Information Model app sends ``*_modalert.log`` to the ``cim_modactions``
    index, where Enterprise Security's Adaptive Response Action Center finds each invocation and
    whether it succeeded. Lines follow the model's ``sendmodaction`` key="value" form.
    """

    def __init__(self, payload: ActionPayload, target: logging.Logger | None) -> None:
        self._payload = payload
        self._logger = target

    @classmethod
    def open(cls, payload: ActionPayload) -> InvocationLog:
        app_log = log_file_path()
        if app_log is None:
            return cls(payload, None)
        target = logging.getLogger(f"{ACTION_NAME}_modalert")
        target.propagate = False
        target.setLevel(logging.INFO)
        if not target.handlers:
            handler = logging.handlers.RotatingFileHandler(
                app_log.parent / f"{ACTION_NAME}_modalert.log",
                maxBytes=10 * 1024 * 1024,
                backupCount=5,
                encoding="utf-8",
                delay=True,
            )
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s pid=%(process)d %(message)s"))
            handler.addFilter(RedactingFilter())
            target.addHandler(handler)
        return cls(payload, target)

    def record(self, signature: str, *, status: str, **extra: str) -> None:
        if self._logger is None:
            return
        payload = self._payload
        fields = {
            "signature": signature,
            "action_name": ACTION_NAME,
            "search_name": payload.search_name,
            "sid": payload.sid,
            "orig_sid": payload.sid,
            "rid": payload.result_id or "0",
            "app": payload.app,
            "user": payload.owner,
            "action_mode": payload.action_mode,
            "action_status": status,
            **extra,
        }
        line = " ".join(f'{key}="{_quoted(value)}"' for key, value in fields.items() if value)
        level = logging.ERROR if status == FAILURE else logging.INFO
        self._logger.log(level, "sendmodaction - %s", line)


def _quoted(value: str) -> str:
    return " ".join(value.replace("\\", "\\\\").replace('"', '\\"').split())


# --- the script's entry point ---------------------------------------------------------------------------


def main(
    argv: Sequence[str],
    stdin: IO[bytes],
    stderr: IO[str],
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> int:
    """What ``bin/mde_file_alerts_action.py`` does; returns the exit code."""
    configure_logging()
    if "--execute" not in argv:
        _say(
            stderr,
            ERROR,
            f"This is the {ACTION_NAME} alert action: splunkd runs it with --execute and its JSON payload "
            "on stdin; trigger it from an alert or with | sendalert.",
        )
        return EXIT_USAGE
    try:
        payload = ActionPayload.from_json(stdin.read())
    except ConfigurationError as error:
        logger.error("alert action not run: %s", error)
        _say(stderr, ERROR, error.user_message)
        return EXIT_USAGE
    try:
        report = AlertAction(payload, stderr=stderr, environ=environ, clock=clock).run()
    except Exception:  # the last edge: splunkd.log gets a sentence, the app log the traceback
        reference = uuid.uuid4().hex[:12]
        logger.exception("unexpected failure, reference %s", reference)
        _say(
            stderr,
            ERROR,
            f"The alert action failed unexpectedly (reference {reference}); "
            "the details are in ta_mde_file_alerts.log.",
        )
        return EXIT_UNEXPECTED
    return report.exit_code


def _say(stderr: IO[str], level: str, text: str) -> None:
    # splunkd turns each stderr line into one splunkd.log entry at the level it starts with.
    stderr.write(f"{level} {' '.join(text.split())}\n")
    stderr.flush()


# --- small helpers ------------------------------------------------------------------------------------------


def _optional_text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _count(number: int, singular: str) -> str:
    return f"{number} {singular if number == 1 else singular + 's'}"
