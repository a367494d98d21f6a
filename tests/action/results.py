"""Write a search's results the way splunkd hands them to an alert action: a gzip CSV file.

The CSV is the one splunkd sends a search command (every field with its ``__mv_<field>``
companion; a list value is a multivalue), gzip-compressed as in the payload's ``results_file``.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.chunked import encode_records


def write_results(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    """``rows``: one mapping per result, a value either a string or a list of strings (multivalue)."""
    path.write_bytes(gzip.compress(encode_records([dict(row) for row in rows])))
    return path
