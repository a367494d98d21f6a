"""Where the app's own log goes: ``$SPLUNK_HOME/var/log/splunk/ta_mde_file_alerts.log``.

Splunk indexes ``var/log/splunk/*.log`` into ``_internal`` by itself, so admins find the lookup
lines (hash, status, duration, correlation id) with ``index=_internal
source=*ta_mde_file_alerts.log``. The file rotates so a busy search head never fills its disk.
A redaction filter is the last line of defence: nothing in this package logs secrets, but a
third-party library at DEBUG might, so bearer tokens and secret-looking form fields are masked.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path

LOGGER_NAME = "mde_file_alerts"
LOG_FILE_NAME = "ta_mde_file_alerts.log"
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5
LOG_FORMAT = "%(asctime)s %(levelname)s pid=%(process)d %(name)s - %(message)s"

_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*"),
    re.compile(
        r"(?i)((?:client_secret|client_assertion|access_token|refresh_token|password)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',}]+"
    ),
)


class RedactingFilter(logging.Filter):
    """Masks bearer tokens and secret-looking ``key=value`` pairs in every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1********", text)
    return text


def log_file_path() -> Path | None:
    """The log file inside Splunk, or ``$MDE_FILE_ALERTS_LOG_FILE`` for local runs; else none."""
    explicit = os.environ.get("MDE_FILE_ALERTS_LOG_FILE")
    if explicit:
        return Path(explicit)
    splunk_home = os.environ.get("SPLUNK_HOME")
    if splunk_home:
        return Path(splunk_home) / "var" / "log" / "splunk" / LOG_FILE_NAME
    return None


def configure_logging(level: str | int | None = None) -> logging.Logger:
    """Attach the rotating file handler to the package logger once per process."""
    logger = logging.getLogger(LOGGER_NAME)
    resolved_level = level or os.environ.get("MDE_FILE_ALERTS_LOG_LEVEL") or "INFO"
    logger.setLevel(resolved_level if isinstance(resolved_level, int) else resolved_level.upper())
    if any(
        isinstance(handler.filters[0] if handler.filters else None, RedactingFilter)
        for handler in logger.handlers
    ):
        return logger
    path = log_file_path()
    handler: logging.Handler
    if path is None:
        handler = logging.NullHandler()
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8", delay=True
        )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    # splunklib sends its own logger to stderr (search.log); ours stays in its own file.
    logger.propagate = False
    return logger
