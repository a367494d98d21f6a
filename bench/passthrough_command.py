#!/usr/bin/env python
"""The baseline of the warm-rerun benchmark: a splunklib streaming command that passes events through.

It is the enrichment search with the lookup step removed: the same interpreter start, protocol,
CSV parsing and writing, and nothing else.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from splunklib.searchcommands import Configuration, Option, StreamingCommand, dispatch


@Configuration(distributed=False)
class PassthroughCommand(StreamingCommand):  # type: ignore[misc]  # splunklib is untyped
    """Usage: ... | passthrough field=<field>"""

    field = Option(doc="Accepted like mdefilealerts' field=, and not used.", require=True)

    def stream(self, records):  # type: ignore[no-untyped-def]
        yield from records


dispatch(PassthroughCommand, sys.argv, sys.stdin, sys.stdout, __name__)
