#!/usr/bin/env python
"""Splunk search command ``| mdefilealerts``: Defender for Endpoint alerts for files.

One command, two modes, chosen from the arguments splunkd sends in its getinfo request:
``hash=`` generates one event per alert (a generating command), ``field=`` enriches the events
of the search before it (a streaming command). For ``chunked = true`` commands splunkd takes a
command's kind only from its getinfo reply, never from commands.conf, so each search gets the
right kind. Both kinds answer ``type: stateful``: the command runs on the search head only, never
on indexers, because it holds the caller's session and calls an external API.
"""

import sys
from pathlib import Path

# The app's own lib/ (our package and the vendored libraries), found relative to this file.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from splunklib.searchcommands import (
    Configuration,
    GeneratingCommand,
    Option,
    StreamingCommand,
    dispatch,
    validators,
)

from mde_file_alerts import search
from mde_file_alerts.logging_setup import configure_logging
from mde_file_alerts.notices import NoticeBoard

ACCOUNT_DOC = "The configured Defender account to use; the default account when omitted."
VALIDATE_DOC = "Alerts that fail schema validation: warn (keep and describe), strict (leave out), off."
TIMEOUT_DOC = f"Seconds the search may wait for Defender (1 to {search.MAX_TIMEOUT_SECONDS}, default 300)."
SHA256_DOC = "Turn SHA-256 values into their SHA-1 first (one extra Defender call each)."
CACHE_DOC = "Use the result cache (default true); false asks Defender for every hash."


@Configuration()
class MdeFileAlertsCommand(GeneratingCommand):  # type: ignore[misc]  # splunklib is untyped
    """Returns the Microsoft Defender for Endpoint alerts raised for files, one event per alert.

    Usage: | mdefilealerts hash=<sha1>[,<sha1>...] [account=<name>] [validate=warn|strict|off]
           [timeout=<seconds>] [resolve_sha256=<bool>] [cache=<bool>]
    """

    hash = Option(
        doc="One or more SHA-1 hashes separated by commas, spaces, semicolons or new lines.", require=True
    )
    account = Option(doc=ACCOUNT_DOC)
    validate = Option(doc=VALIDATE_DOC, default="warn", validate=validators.Set(*search.VALIDATION_MODES))
    timeout = Option(doc=TIMEOUT_DOC, default=300, validate=validators.Integer(1, search.MAX_TIMEOUT_SECONDS))
    resolve_sha256 = Option(doc=SHA256_DOC, default=False, validate=validators.Boolean())
    cache = Option(doc=CACHE_DOC, default=True, validate=validators.Boolean())

    def prepare(self) -> None:
        # A page that asks for the next one ("finished": false) is part of the protocol; smaller
        # pages than splunkd allows keep the command's memory flat for searches with many alerts.
        writer = self._record_writer
        writer._maxresultrows = min(writer._maxresultrows, search.MAX_EVENTS_PER_PAGE)

    def generate(self):  # type: ignore[no-untyped-def]
        configure_logging()
        from mde_file_alerts.runtime import connector_for_search

        request = search.SearchRequest(
            hash_text=self.hash,
            account_name=self.account or None,
            validate=self.validate,
            timeout=float(self.timeout),
            resolve_sha256=bool(self.resolve_sha256),
            use_cache=bool(self.cache),
        )
        connect = connector_for_search(
            self.metadata.searchinfo.splunkd_uri, self.metadata.searchinfo.session_key
        )
        for record in search.file_alert_records(request, connect, NoticeBoard(self.post_message)):
            yield self.gen_record(**record)

    def post_message(self, level: str, text: str) -> None:
        # The text is passed as an argument, not as the format string: hash values may hold braces.
        self._record_writer.write_message(level, "{}", text)


@Configuration(distributed=False)
class MdeFileAlertsEnrichCommand(StreamingCommand):  # type: ignore[misc]  # splunklib is untyped
    """Adds Defender alert fields to each event by the file hash in one of its fields.

    Usage: ... | mdefilealerts field=<hash field> [expand=<bool>] [account=<name>]
           [validate=warn|strict|off] [timeout=<seconds>] [resolve_sha256=<bool>] [cache=<bool>]
    """

    field = Option(doc="The field holding each event's SHA-1 (or Sysmon's Hashes text).", require=True)
    expand = Option(doc="One row per alert instead of summary fields (default false).", default=False,
                    validate=validators.Boolean())  # fmt: skip
    account = Option(doc=ACCOUNT_DOC)
    validate = Option(doc=VALIDATE_DOC, default="warn", validate=validators.Set(*search.VALIDATION_MODES))
    timeout = Option(doc=TIMEOUT_DOC, default=300, validate=validators.Integer(1, search.MAX_TIMEOUT_SECONDS))
    resolve_sha256 = Option(doc=SHA256_DOC, default=False, validate=validators.Boolean())
    cache = Option(doc=CACHE_DOC, default=True, validate=validators.Boolean())

    enricher = None

    def stream(self, records):  # type: ignore[no-untyped-def]
        if self.enricher is None:
            configure_logging()
            from mde_file_alerts.runtime import connector_for_search

            request = search.EnrichRequest(
                field=self.field,
                expand=bool(self.expand),
                account_name=self.account or None,
                validate=self.validate,
                timeout=float(self.timeout),
                resolve_sha256=bool(self.resolve_sha256),
                use_cache=bool(self.cache),
            )
            info = self.metadata.searchinfo
            connect = connector_for_search(info.splunkd_uri, info.session_key)
            self.enricher = search.Enricher(request, connect, NoticeBoard(self.post_message))
        for row in self.enricher.enrich(records):
            yield self.gen_record(**row)
        if getattr(self.metadata, "finished", False):
            self.enricher.finish()

    def post_message(self, level: str, text: str) -> None:
        self._record_writer.write_message(level, "{}", text)


if __name__ == "__main__":
    # splunkd starts the script without arguments (SCP v2); more arguments mean the legacy protocol,
    # where there is no getinfo chunk to read the mode from.
    arguments, stdin = (
        (sys.argv[1:], sys.stdin) if len(sys.argv) > 1 else search.read_getinfo_args(sys.stdin.buffer)
    )
    command = MdeFileAlertsEnrichCommand if search.wants_enrichment(arguments) else MdeFileAlertsCommand
    dispatch(command, sys.argv, stdin, sys.stdout, __name__)
