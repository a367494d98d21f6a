#!/usr/bin/env python
"""Splunk search command ``| mdefilealerts``: Defender for Endpoint alerts for files, as events."""

import sys
from pathlib import Path

# The app's own lib/ (our package and the vendored libraries), found relative to this file.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from splunklib.searchcommands import Configuration, GeneratingCommand, Option, dispatch, validators

from mde_file_alerts.logging_setup import configure_logging
from mde_file_alerts.notices import NoticeBoard
from mde_file_alerts.runtime import connector_for_search
from mde_file_alerts.search import MAX_TIMEOUT_SECONDS, SearchRequest, file_alert_records
from mde_file_alerts.validation import ValidationMode


@Configuration()
class MdeFileAlertsCommand(GeneratingCommand):  # type: ignore[misc]  # splunklib is untyped
    """Returns the Microsoft Defender for Endpoint alerts raised for files, one event per alert.

    Usage: | mdefilealerts hash=<sha1>[,<sha1>...] [account=<name>] [validate=warn|strict|off]
           [timeout=<seconds>] [resolve_sha256=<bool>]
    """

    hash = Option(
        doc="One or more SHA-1 hashes separated by commas, spaces, semicolons or new lines.",
        require=True,
    )
    account = Option(doc="The configured Defender account to use; the default account when omitted.")
    validate = Option(
        doc="Alerts that fail schema validation: warn (keep and describe), strict (leave out), off.",
        default="warn",
        validate=validators.Set("warn", "strict", "off"),
    )
    timeout = Option(
        doc=f"Overall deadline in seconds (1 to {MAX_TIMEOUT_SECONDS}, default 300).",
        default=300,
        validate=validators.Integer(1, MAX_TIMEOUT_SECONDS),
    )
    resolve_sha256 = Option(
        doc="Turn SHA-256 values into their SHA-1 first (one extra Defender call each).",
        default=False,
        validate=validators.Boolean(),
    )

    def generate(self):  # type: ignore[no-untyped-def]
        configure_logging()
        searchinfo = self.metadata.searchinfo
        request = SearchRequest(
            hash_text=self.hash,
            account_name=self.account or None,
            validate=ValidationMode(self.validate),
            timeout=float(self.timeout),
            resolve_sha256=bool(self.resolve_sha256),
        )
        board = NoticeBoard(self.post_message)
        connect = connector_for_search(searchinfo.splunkd_uri, searchinfo.session_key)
        for record in file_alert_records(request, connect, board):
            yield self.gen_record(**record)

    def post_message(self, level: str, text: str) -> None:
        # The text is passed as an argument, not as the format string: hash values may hold braces.
        self._record_writer.write_message(level, "{}", text)


dispatch(MdeFileAlertsCommand, sys.argv, sys.stdin, sys.stdout, __name__)
