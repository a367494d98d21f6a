"""A client-side call budget for Defender's per-(tenant, application) limits, shared by every process.

Defender allows 100 calls a minute and 1,500 an hour per application and tenant, and answers 429
beyond that. Several searches (each its own process) can run at once with the same account, so
the budget is kept in a small JSON file per (tenant, client) under a directory the caller picks,
as a sliding-window log of call timestamps, and every read-modify-write happens under an exclusive
OS lock. Waiting for the window to move happens outside the lock, so other processes are never
held up by one that waits.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Protocol

from mde_file_alerts.clock import Clock, Deadline, SystemClock
from mde_file_alerts.errors import ConfigurationError

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

logger = logging.getLogger("mde_file_alerts.ratelimit")

#: Defender's published limits: (calls, per seconds).
DEFENDER_WINDOWS: tuple[tuple[int, float], ...] = ((100, 60.0), (1500, 3600.0))

_STATE_VERSION = 1
# A call this close to leaving its window counts as gone; otherwise float rounding of
# "now + wait" can leave it a hair inside and cause a second, near-zero wait.
_EPSILON = 1e-6


class RateLimiter(Protocol):
    def acquire(self, deadline: Deadline) -> bool:
        """True: one call slot was granted and recorded. False: none can be had before the deadline
        (nothing recorded; returns without waiting past the deadline)."""


class UnlimitedRateLimiter:
    """For callers that opt out of client-side limiting (the service's 429s are then retried)."""

    def acquire(self, deadline: Deadline) -> bool:
        return True


def limiter_key(tenant_id: str, client_id: str) -> str:
    """The budget's identity: Microsoft counts calls per tenant and application."""
    return f"{tenant_id.strip().lower()}|{client_id.strip().lower()}"


class FileRateLimiter:
    """Sliding-window limits recorded in ``<directory>/<hash of key>.json`` under an OS file lock."""

    def __init__(
        self,
        directory: Path,
        key: str,
        *,
        windows: Sequence[tuple[int, float]] = DEFENDER_WINDOWS,
        clock: Clock | None = None,
    ) -> None:
        if not windows:
            raise ValueError("a rate limiter needs at least one (calls, seconds) window")
        for calls, seconds in windows:
            if calls < 1 or seconds <= 0:
                raise ValueError(
                    f"window ({calls}, {seconds}) must allow at least one call per positive period"
                )
        self._windows = tuple((int(calls), float(seconds)) for calls, seconds in windows)
        self._longest = max(seconds for _, seconds in self._windows)
        self._clock = clock or SystemClock()
        self.directory = Path(directory)
        # The key holds tenant and client ids; the file name carries only a digest of it.
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        self.state_path = self.directory / f"ratelimit-{digest}.json"
        self.lock_path = self.directory / f"ratelimit-{digest}.lock"

    def acquire(self, deadline: Deadline) -> bool:
        """Record one call now, or wait (never holding the lock) until the windows allow one.

        Returns False at once, without waiting, when the earliest slot comes after the deadline.
        """
        while True:
            with self._locked():
                now = self._clock.time()
                stored = self._read()
                calls = self._current(stored, now)
                wait = self._wait_needed(calls, now)
                if wait <= 0:
                    calls.append(now)
                    self._save(calls)
                    return True
                if calls != stored:
                    # Persist the clamping of future timestamps, or the next look would clamp them
                    # to the new "now" again and the wait would never end.
                    self._save(calls)
            if not deadline.allows(wait):
                logger.debug("call budget full for %.1f s more, beyond the deadline", wait)
                return False
            logger.debug("call budget full; waiting %.3f s", wait)
            self._clock.sleep(wait)

    def recorded_calls(self) -> list[float]:
        """The timestamps currently in the log (for diagnostics and tests)."""
        with self._locked():
            return self._current(self._read(), self._clock.time())

    # --- the windows ---------------------------------------------------------------------------

    def _wait_needed(self, calls: list[float], now: float) -> float:
        """Seconds until every window has room for one more call (0 when it has room now)."""
        wait = 0.0
        for limit, seconds in self._windows:
            in_window = [stamp for stamp in calls if now - stamp < seconds - _EPSILON]
            if len(in_window) >= limit:
                # The call that must leave for the count to drop below the limit.
                leaving = in_window[len(in_window) - limit]
                wait = max(wait, leaving + seconds - now)
        return wait

    # --- the state file ------------------------------------------------------------------------

    def _read(self) -> list[float]:
        """The stored timestamps as they are; a missing or corrupt file gives an empty log."""
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as error:
            raise self._unusable(error) from None
        try:
            document = json.loads(text)
            stamps = document["calls"] if isinstance(document, dict) else None
            if not isinstance(stamps, list) or not all(
                isinstance(stamp, (int, float)) and not isinstance(stamp, bool) for stamp in stamps
            ):
                raise ValueError("no list of call timestamps")
        except (ValueError, KeyError) as error:
            logger.warning(
                "Rate-limit state file %s is corrupt (%s); starting with an empty call log.",
                self.state_path,
                error,
            )
            return []
        return [float(stamp) for stamp in stamps]

    def _current(self, stored: list[float], now: float) -> list[float]:
        """The calls still inside the longest window, oldest first."""
        # A timestamp in the future means the wall clock was set back; counting it as "now" keeps
        # the wait bounded by the window length instead of by the size of the clock jump.
        calls = sorted(min(stamp, now) for stamp in stored)
        return [stamp for stamp in calls if now - stamp < self._longest - _EPSILON]

    def _save(self, calls: list[float]) -> None:
        document = json.dumps({"version": _STATE_VERSION, "calls": calls}, separators=(",", ":"))
        temporary: Path | None = None
        try:
            # Written beside the target and renamed over it, so a reader never sees half a file.
            with tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", dir=self.directory, prefix=".ratelimit-", suffix=".tmp", delete=False
            ) as handle:
                temporary = Path(handle.name)
                handle.write(document)
            temporary.replace(self.state_path)
        except OSError as error:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    temporary.unlink()
            raise self._unusable(error) from None

    # --- the lock ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock_file = self.lock_path.open("a+b")
        except OSError as error:
            raise self._unusable(error) from None
        with lock_file:
            _lock(lock_file)
            try:
                yield
            finally:
                _unlock(lock_file)

    def _unusable(self, error: OSError) -> ConfigurationError:
        return ConfigurationError(
            f"The rate-limit state directory {self.directory} cannot be used "
            f"({type(error).__name__}: {error.strerror or error}); check that it exists and is writable."
        )


if sys.platform == "win32":

    def _lock(lock_file: IO[bytes]) -> None:
        # msvcrt locks a byte range; LK_LOCK retries for about 10 s and then raises, so keep trying.
        lock_file.seek(0)
        while True:
            try:
                msvcrt.locking(lock_file.fileno(), msvcrt.LK_LOCK, 1)
                return
            except OSError as error:
                if error.errno != errno.EDEADLOCK:
                    raise

    def _unlock(lock_file: IO[bytes]) -> None:
        lock_file.seek(0)
        msvcrt.locking(lock_file.fileno(), msvcrt.LK_UNLCK, 1)

else:

    def _lock(lock_file: IO[bytes]) -> None:
        # flock locks belong to the open file, so two threads of one process exclude each other too.
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)

    def _unlock(lock_file: IO[bytes]) -> None:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
