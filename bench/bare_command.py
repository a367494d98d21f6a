#!/usr/bin/env python
"""The baseline of the cold-start benchmark: the least a splunklib generating command can be."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from splunklib.searchcommands import Configuration, GeneratingCommand, Option, dispatch


@Configuration()
class BareCommand(GeneratingCommand):  # type: ignore[misc]  # splunklib is untyped
    """Usage: | bare text=<text>"""

    text = Option(doc="Echoed back in one event.", require=True)

    def generate(self):  # type: ignore[no-untyped-def]
        yield {"_raw": self.text}


dispatch(BareCommand, sys.argv, sys.stdin, sys.stdout, __name__)
