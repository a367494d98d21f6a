"""The app's actions: ``test connectivity`` and ``get file alerts``.

Both call the library's ``DefenderClient`` and report failures as ``ActionFailure`` carrying the
library error's ``user_message``: one sentence with the HTTP status, Microsoft's error code and
correlation id, never a traceback or a secret. "No alerts" is a success with a zero count.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from soar_sdk.abstract import SOARClient
from soar_sdk.exceptions import ActionFailure
from soar_sdk.logging import getLogger
from soar_sdk.params import Param, Params

from mde_file_alerts.client import HashOutcome, HashStatus
from mde_file_alerts.clock import Deadline, SystemClock
from mde_file_alerts.errors import MdeError
from mde_file_alerts.mapping import OutcomeEvents, account_context, events_for_outcome
from mde_file_alerts.validation import AlertValidator
from mde_file_alerts.version import app_version

from .asset import Asset
from .connection import Connection, connect
from .outputs import SEVERITIES, FileAlertsOutput, FileAlertsSummary, alert_output, severity_summary

logger = getLogger()

#: SHA-1 of the empty file: asking for its alerts is the cheapest call that needs Alert.Read.All.
CONNECTIVITY_PROBE_SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
#: Statuses that are an answer from Defender; every other one fails the action.
SUCCESSFUL = (HashStatus.FOUND, HashStatus.NOT_FOUND)


class GetFileAlertsParams(Params):
    hash: str = Param(
        description=(
            "SHA-1 of the file (40 hex characters). An MD5 is refused; a SHA-256 only with "
            "resolve_sha256 enabled"
        ),
        primary=True,
        cef_types=["sha1", "hash"],
    )
    resolve_sha256: bool = Param(
        description=(
            "Accept a SHA-256 and resolve it to the file's SHA-1 first (one extra API call per hash)"
        ),
        required=False,
        default=False,
    )


def check_connectivity(soar: SOARClient[FileAlertsSummary], asset: Asset) -> None:
    """Sign in to Entra ID and ask Defender for the alerts of one file, to prove access."""
    with _reported_failures():
        connection = connect(asset, soar.get_asset_id())
        logger.progress("Requesting an access token from Entra ID")
        connection.client.check_access()
        logger.progress("Calling the Defender for Endpoint file alerts API")
        deadline = Deadline(SystemClock(), connection.lookup_timeout)
        connection.client.file_alerts(CONNECTIVITY_PROBE_SHA1, deadline=deadline)
    logger.progress(f"Signed in and read file alerts at {connection.account.api_base_url}")


def get_file_alerts(
    params: GetFileAlertsParams, soar: SOARClient[FileAlertsSummary], asset: Asset
) -> FileAlertsOutput:
    """Get the Defender for Endpoint alerts for a file, by its SHA-1."""
    with _reported_failures():
        connection = connect(asset, soar.get_asset_id())
        outcome = _lookup(connection, params.hash, params.resolve_sha256)
        mapped = _mapped(connection, outcome)
    if outcome.status not in SUCCESSFUL:
        raise ActionFailure(mapped.message)
    alerts = [alert_output(event) for event in mapped.events]
    summary = severity_summary(alerts)
    soar.set_summary(summary)
    soar.set_message(_summary_message(mapped.message, summary))
    return FileAlertsOutput(
        queried_hash=outcome.query.value,
        sha1=outcome.sha1,
        sha256=outcome.sha256,
        status=outcome.status.value,
        alert_count=len(alerts),
        message=mapped.message,
        correlation_id=outcome.correlation_id,
        alerts=alerts,
    )


def _lookup(connection: Connection, value: str, resolve_sha256: bool) -> HashOutcome:
    # One input gives exactly one outcome; a fatal error (sign-in, permission) is raised instead.
    (outcome,) = connection.client.lookup(
        [value], timeout=connection.lookup_timeout, resolve_sha256=resolve_sha256
    )
    return outcome


def _mapped(connection: Connection, outcome: HashOutcome) -> OutcomeEvents:
    context = account_context(connection.account, retrieved_at=time.time(), app_version=app_version())
    return events_for_outcome(outcome, context, AlertValidator())


def _summary_message(sentence: str, summary: FileAlertsSummary) -> str:
    if not summary.total_alerts:
        return sentence
    counts = ", ".join(
        f"{getattr(summary, severity)} {severity}" for severity in SEVERITIES if getattr(summary, severity)
    )
    return f"{sentence} By severity: {counts}."


@contextmanager
def _reported_failures() -> Iterator[None]:
    """Library errors become ``ActionFailure`` with their one-sentence ``user_message``.

    The fuller form (method, URL, error detail) goes to the debug log. Anything else is a bug: its
    traceback goes to the debug log only, since the SDK would put it into the action's message.
    """
    try:
        yield
    except MdeError as error:
        logger.debug(f"Defender lookup failed: {error}")
        raise ActionFailure(error.user_message) from None
    except Exception as error:
        logger.exception("The action failed unexpectedly")
        raise ActionFailure(
            f"The action failed unexpectedly ({type(error).__name__}); the SOAR debug log has the details."
        ) from None
