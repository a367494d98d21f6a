"""splunkd gives each event sent to receivers/simple the time props.conf finds in its text.

receivers/simple takes raw text, no time argument: an indexed alert's _time is what splunkd
extracts by TIME_PREFIX / MAX_TIMESTAMP_LOOKAHEAD / TIME_FORMAT for its source, and the summary's
by the settings of its sourcetype. These tests apply those settings to exactly the text the
action sends and compare with the _time the mapping gives the same alert (to the precision the
format keeps). They run once props.conf has the settings (asked of the props.conf owner).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts import cim
from mde_file_alerts.account import Secret
from mde_file_alerts.alert_action import (
    SUMMARY_SOURCETYPE,
    ActionPayload,
    RunReport,
    summary_event,
)
from mde_file_alerts.mapping import LookupContext, map_alerts
from mde_file_alerts.validation import AlertValidator
from tests.support.conf import read_conf

ROOT = Path(__file__).resolve().parents[2]
ALERTS = sorted((ROOT / "tests" / "fixtures" / "alerts").glob("*.json"))
PROPS = read_conf(ROOT / "default" / "props.conf")
ALERT_STANZA = PROPS.get("source::mde_file_alerts://...", {})
SUMMARY_STANZA = PROPS.get(SUMMARY_SOURCETYPE, {})


def splunk_time(raw: str, stanza: dict[str, str]) -> float:
    """The time splunkd extracts from ``raw``: after TIME_PREFIX, within the lookahead, by TIME_FORMAT."""
    prefix = re.search(stanza["TIME_PREFIX"], raw)
    assert prefix is not None, f"TIME_PREFIX does not match: {raw[:120]}"
    text = raw[prefix.end() : prefix.end() + int(stanza.get("MAX_TIMESTAMP_LOOKAHEAD", "128"))]
    # Splunk's %<n>N is n sub-second digits; Python's %f takes up to six.
    python_format = re.sub(r"%\d*N", "%f", stanza["TIME_FORMAT"])
    # splunkd reads the format from the start of the text and ignores what follows.
    for end in range(len(text), 0, -1):
        try:
            parsed = datetime.strptime(text[:end], python_format)
        except ValueError:
            continue
        assert stanza.get("TZ") == "UTC", "Defender's times are UTC; the stanza must say so"
        return parsed.replace(tzinfo=timezone.utc).timestamp()
    raise AssertionError(f"TIME_FORMAT {stanza['TIME_FORMAT']!r} does not parse {text!r}")


def precision(stanza: dict[str, str]) -> float:
    digits = re.search(r"%(\d*)N", stanza["TIME_FORMAT"])
    return 1.0 if digits is None else 10.0 ** -int(digits.group(1) or "3")


@pytest.mark.skipif("TIME_PREFIX" not in ALERT_STANZA, reason="props.conf has no alert TIME_PREFIX yet")
@pytest.mark.parametrize("path", ALERTS, ids=[path.stem for path in ALERTS])
def test_each_indexed_alert_gets_the_time_the_search_command_gives_it(path: Path) -> None:
    alert: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    context = LookupContext("0" * 40, "prod", "commercial", "https://api", "https://portal", 1.0, "0.1.0")
    event = map_alerts([alert], context, AlertValidator()).events[0]

    extracted = splunk_time(event[cim.RAW], ALERT_STANZA)

    assert abs(extracted - event[cim.TIME]) < precision(ALERT_STANZA)


@pytest.mark.skipif("TIME_PREFIX" not in SUMMARY_STANZA, reason="props.conf has no summary TIME_PREFIX yet")
def test_the_summary_gets_the_time_it_was_written() -> None:
    payload = ActionPayload("https://127.0.0.1:8089", Secret("key"), "/results.csv.gz", "file_hash", "main")
    now = 1_717_171_717.123456
    raw = json.dumps(summary_event(RunReport(payload, started_at=now - 5), now), separators=(",", ":"))

    assert abs(splunk_time(raw, SUMMARY_STANZA) - now) < precision(SUMMARY_STANZA)
