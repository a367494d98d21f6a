"""``python3 -m mde_file_alerts map|lookup``: the app's mapping and lookup outside Splunk.

``map`` turns a Defender response read on stdin into the events the search command would emit,
one JSON object per line. ``lookup`` asks Defender itself, using an account file, and prints the
same events plus one status object per hash. Both write JSON Lines on stdout and sentences on
stderr, and never a traceback.

Exit codes: 0 when everything asked for was answered (``map``: every alert emitted; ``lookup``:
every hash found or known to have no alerts), 1 when something was not (``map --validate strict``
left alerts out; ``lookup``: a hash was throttled, failed, invalid or not looked up), 2 for usage,
configuration or input errors (nothing is written on stdout then).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, NoReturn

from mde_file_alerts import cim
from mde_file_alerts.clouds import DEFAULT_CLOUD, get_cloud
from mde_file_alerts.errors import ConfigurationError, MdeError
from mde_file_alerts.hashes import parse_hash, parse_hashes, split_hash_values
from mde_file_alerts.mapping import (
    LookupContext,
    MappedAlerts,
    account_context,
    events_for_outcome,
    map_alerts,
)
from mde_file_alerts.validation import INVALID, AlertValidator, ValidationMode
from mde_file_alerts.version import app_version

PROGRAM = "python3 -m mde_file_alerts"

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2

# Statuses that answer the question "which alerts does Defender have for this file?".
_ANSWERED = ("found", "not_found")
# How many strict-mode rejections are spelled out on stderr before they are only counted.
_SHOWN_REJECTIONS = 5


class InputError(Exception):
    """The input is not a Defender response; the message says what it is instead."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        code: int = arguments.run(arguments)
    except ConfigurationError as error:
        return _fail(error.user_message, EXIT_USAGE)
    except InputError as error:
        return _fail(str(error), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("Interrupted.", EXIT_INCOMPLETE)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROGRAM, description="Microsoft Defender for Endpoint file alerts as Splunk events."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    map_parser = commands.add_parser(
        "map",
        help="map a Defender response read on stdin to events (JSON Lines)",
        description=(
            'Read a Defender response on stdin (the {"value": [...]} envelope, a bare list, or one '
            "alert) and write the events the search command would emit, one JSON object per line."
        ),
    )
    _add_validate(map_parser)
    map_parser.add_argument("--hash", metavar="SHA1", help="the SHA-1 the response was for (file fields)")
    map_parser.add_argument("--account", default="", metavar="NAME", help="account name for the provenance")
    map_parser.add_argument(
        "--cloud",
        default=DEFAULT_CLOUD,
        metavar="NAME",
        help=f"cloud for the portal links (default {DEFAULT_CLOUD})",
    )
    map_parser.set_defaults(run=_run_map)

    lookup_parser = commands.add_parser(
        "lookup",
        help="look hashes up in Defender and print their events and statuses (JSON Lines)",
        description="Ask Defender for the alerts of each SHA-1; print its events, then its status.",
    )
    lookup_parser.add_argument("--account-file", required=True, metavar="FILE", help="JSON account file")
    _add_validate(lookup_parser)
    lookup_parser.add_argument(
        "--timeout", type=_positive_seconds, metavar="SECONDS", help="overall deadline for all lookups"
    )
    lookup_parser.add_argument(
        "--resolve-sha256",
        action="store_true",
        help="resolve SHA-256 values to SHA-1 first (one extra call each)",
    )
    lookup_parser.add_argument(
        "hashes", nargs="+", metavar="HASH", help="SHA-1 values (commas also separate)"
    )
    lookup_parser.set_defaults(run=_run_lookup)
    return parser


def _add_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--validate",
        choices=[mode.value for mode in ValidationMode],
        default=ValidationMode.WARN.value,
        help="schema validation: warn (default) emits invalid alerts with their problems, "
        "strict leaves them out, off skips the schema",
    )


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


# --- map ----------------------------------------------------------------------------------------------


def _run_map(arguments: argparse.Namespace) -> int:
    queried_hash = ""
    if arguments.hash is not None:
        parsed = parse_hash(arguments.hash)
        if not parsed.is_sha1:
            return _fail(f"--hash: {parsed.problem}", EXIT_USAGE)
        queried_hash = parsed.value
    cloud = get_cloud(arguments.cloud)
    context = LookupContext(
        queried_hash=queried_hash,
        account=arguments.account,
        cloud=cloud.name,
        api_host=cloud.api_host,
        portal_host=cloud.portal_host,
        retrieved_at=time.time(),
        app_version=app_version(),
    )
    alerts = alerts_in(_read_json(sys.stdin.buffer.read()))
    mapped = map_alerts(alerts, context, AlertValidator(ValidationMode(arguments.validate)))
    # Everything is mapped before anything is written: a failure leaves stdout empty.
    _write_lines(mapped.events)
    _report_map_problems(mapped, len(alerts))
    return EXIT_INCOMPLETE if mapped.rejected else EXIT_OK


def _read_json(data: bytes) -> Any:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"The input is not UTF-8 text (byte {error.start}).") from None
    if not text.strip():
        raise InputError("The input is empty; expected a Defender response (JSON) on stdin.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"The input is not JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from None


def alerts_in(document: Any) -> list[Any]:
    """The alerts of a Defender response: the ``{"value": [...]}`` envelope, a bare list, or one alert.

    Raises InputError for what cannot be a response holding alerts; whether each alert really is
    one is for validation to say.
    """
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        raise InputError(
            f"The input is {_json_type(document)}, not a Defender response: "
            'expected {"value": [...]}, a list of alerts, or one alert.'
        )
    if "value" in document:
        if not isinstance(document["value"], list):
            raise InputError('The input\'s "value" is not a list of alerts.')
        return list(document["value"])
    error = document.get("error")
    if isinstance(error, dict) and len(document) == 1:
        raise InputError(
            "The input is a Defender error response, not alerts: "
            f"{error.get('code') or 'no code'}: {error.get('message') or 'no message'}"
        )
    return [document]


def _json_type(value: Any) -> str:
    if value is None:
        return "JSON null"
    if isinstance(value, bool):
        return "a JSON boolean"
    return "a JSON string" if isinstance(value, str) else "a JSON number"


def _report_map_problems(mapped: MappedAlerts, total: int) -> None:
    invalid = sum(1 for event in mapped.events if event.get(cim.SCHEMA) == INVALID)
    if invalid:
        _warn(
            f"{invalid} of {total} alerts failed schema validation; see {cim.SCHEMA_ERRORS} in their events."
        )
    for rejected in mapped.rejected[:_SHOWN_REJECTIONS]:
        _warn(f"Left out by --validate strict: {_sentence(rejected.errors)}")
    if len(mapped.rejected) > _SHOWN_REJECTIONS:
        _warn(f"... and {len(mapped.rejected) - _SHOWN_REJECTIONS} more left out by --validate strict.")


# --- lookup -----------------------------------------------------------------------------------------------


def _run_lookup(arguments: argparse.Namespace) -> int:
    # Imported here so that `map` works without the HTTP stack (requests, msal).
    from mde_file_alerts.client import DefenderClient
    from mde_file_alerts.runtime import connect_with_account_file

    # The same host-wide call budget as the search command, so scripts and searches never
    # provoke Defender's throttling together.
    connection = connect_with_account_file(arguments.account_file, None, os.environ)
    account = connection.account
    values = [value for argument in arguments.hashes for value in split_hash_values(argument)]
    if not values:
        return _fail("No hash given.", EXIT_USAGE)
    validator = AlertValidator(ValidationMode(arguments.validate))
    base = account_context(account, retrieved_at=time.time(), app_version=app_version())
    client = DefenderClient(account, rate_limiter=connection.rate_limiter)
    unanswered = {parsed.value: None for parsed in parse_hashes(values)}
    all_answered = True
    try:
        for outcome in client.lookup(
            values, timeout=arguments.timeout, resolve_sha256=arguments.resolve_sha256
        ):
            report = events_for_outcome(outcome, replace(base, retrieved_at=time.time()), validator)
            _write_lines([*report.events, report.status])
            unanswered.pop(outcome.query.value, None)
            all_answered = all_answered and outcome.status.value in _ANSWERED
    except ConfigurationError:
        raise
    except MdeError as error:
        # A fatal error (credentials, permissions) stops every further call: say so once, and
        # still give every hash its status line.
        _warn(error.user_message)
        _write_lines(_not_looked_up(unanswered, error) if unanswered else [])
        return EXIT_INCOMPLETE
    return EXIT_OK if all_answered else EXIT_INCOMPLETE


def _not_looked_up(hashes: Iterable[str], error: MdeError) -> list[dict[str, Any]]:
    message = f"Not looked up: {error.user_message}"
    return [
        {cim.STATUS_FOR: value, cim.STATUS_VALUE: "not_looked_up", cim.STATUS_MESSAGE: message}
        for value in hashes
    ]


# --- output -------------------------------------------------------------------------------------------------


def _write_lines(records: Iterable[dict[str, Any]]) -> None:
    text = "".join(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n" for record in records)
    # Bytes, not text: a C-locale stdout would fail on the first non-ASCII file name.
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def _warn(message: str) -> None:
    sys.stderr.write(f"{PROGRAM}: {message}\n")
    sys.stderr.flush()


def _sentence(problems: Iterable[str]) -> str:
    return "; ".join(problem.rstrip(".") for problem in problems) + "."


def _fail(message: str, code: int) -> int:
    _warn(message)
    return code
