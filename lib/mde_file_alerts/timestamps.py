"""Defender's timestamps as epoch seconds, without the JSON Schema library.

The search command's summary fields need a time from cached alerts; importing it from here
rather than from ``validation`` keeps jsonschema out of a search answered from the cache.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime

# Defender writes UTC with 0 to 7 fraction digits (…57.7220239Z, …59.2Z, …11Z); RFC 3339 offsets
# and lower-case t/z are accepted too. [0-9], not \d, which would admit non-ASCII digits.
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,7}))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_date_time(text: str) -> float | None:
    """Epoch seconds of a Defender timestamp, keeping every fraction digit a float can hold.

    ``None`` when the text is not such a timestamp (wrong shape, or a date like February 30).
    The validator's ``date-time`` format and the mapping's ``_time`` both use this, so whatever
    passes validation can be turned into a time.
    """
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = match.group(8)
    if zone not in ("Z", "z"):
        offset_hours, offset_minutes = int(zone[1:3]), int(zone[4:6])
        if offset_hours > 23 or offset_minutes > 59:
            return None
        offset = offset_hours * 3600 + offset_minutes * 60
        seconds -= offset if zone[0] == "+" else -offset
    fraction = match.group(7) or "0"
    # One decimal-to-float conversion of the exact value: adding a separately rounded fraction
    # to the seconds would round twice and could lose the last digit Defender sent.
    return float(f"{seconds}.{fraction}") if seconds >= 0 else seconds + float(f"0.{fraction}")
