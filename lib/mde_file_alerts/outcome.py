"""What happened to one requested hash: a status, the alerts or the error, and one sentence about it.

Front ends report every hash, so every status but ``found`` has a message that names the hash as
the user gave it and says what to expect (or do) next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mde_file_alerts.errors import BudgetExhausted, DeadlineExceeded, MdeError, NotFound, Throttled
from mde_file_alerts.hashes import HashInput, quote_value


class HashStatus(str, Enum):
    FOUND = "found"
    #: Looked up; Defender has no alerts for the file (or does not know it).
    NOT_FOUND = "not_found"
    INVALID_HASH = "invalid_hash"
    THROTTLED = "throttled"
    ERROR = "error"
    #: The call budget or the deadline ran out before this hash could be looked up.
    NOT_LOOKED_UP = "not_looked_up"


def status_for(error: MdeError) -> HashStatus:
    """The status a lookup ends with when it fails with ``error`` (fatal errors never get here)."""
    if isinstance(error, (BudgetExhausted, DeadlineExceeded)):
        return HashStatus.NOT_LOOKED_UP
    if isinstance(error, Throttled):
        return HashStatus.THROTTLED
    if isinstance(error, NotFound):
        return HashStatus.NOT_FOUND
    return HashStatus.ERROR


@dataclass
class HashOutcome:
    """The result for one distinct requested value."""

    query: HashInput
    status: HashStatus
    alerts: list[dict[str, Any]] = field(default_factory=list)
    error: MdeError | None = None
    #: The SHA-1 that was looked up (resolved from ``sha256`` when that was asked for).
    sha1: str | None = None
    sha256: str | None = None
    correlation_id: str | None = None
    #: Seconds spent on this hash, waiting for the budget and retries included.
    duration: float = 0.0
    #: Defender API calls made for this hash (retries and pages included; token requests not).
    calls: int = 0

    @property
    def message(self) -> str | None:
        """One sentence naming the hash for every status except ``found``."""
        if self.status is HashStatus.FOUND:
            return None
        if self.status is HashStatus.INVALID_HASH:
            return self.query.problem or f"{self._named} is not a SHA-1 hash."
        if self.status is HashStatus.NOT_FOUND:
            return self._not_found_message()
        if self.status is HashStatus.THROTTLED:
            return self._throttled_message()
        if self.status is HashStatus.NOT_LOOKED_UP:
            reason = self.error.user_message if self.error else DeadlineExceeded.default_message
            return f"File {self._named} was not looked up: {_after_prefix(reason)}"
        reason = self.error.user_message if self.error else MdeError.default_message
        return f"The Defender lookup of file {self._named} failed: {reason}"

    @property
    def _named(self) -> str:
        return quote_value(self.query.original.strip()) if self.query.problem else self.query.value

    def _not_found_message(self) -> str:
        if self.sha256 and not self.sha1:
            return (
                f"Defender for Endpoint does not know a file with SHA-256 {self.sha256}, "
                "so it has no alerts for it."
            )
        if self.sha256:
            return f"No Defender alerts for file {self.sha1} (resolved from SHA-256 {self.sha256})."
        return f"No Defender alerts for file {self.sha1 or self._named}."

    def _throttled_message(self) -> str:
        retry_after = self.error.retry_after if isinstance(self.error, Throttled) else None
        when = (
            f"it asked to retry after {retry_after:.0f} seconds, which is beyond this lookup's deadline "
            "or the longest wait allowed"
            if retry_after
            else "the retries ran out"
        )
        return (
            f"Defender for Endpoint throttled the lookup of file {self._named} (rate limit reached); "
            f"{when}. Look it up again later."
        )


def _after_prefix(sentence: str) -> str:
    # The limit errors' own sentences start with "Not looked up: ", which the outcome says already.
    prefix = "Not looked up: "
    return sentence[len(prefix) :] if sentence.startswith(prefix) else sentence
