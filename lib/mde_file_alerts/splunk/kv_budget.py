"""Defender's call budget shared by every search on every search-head-cluster member, in the KV store.

Defender allows 100 calls a minute and 1,500 an hour per (tenant, application), counted over
everything that uses the app registration. Searches run as separate processes, on several
search heads at once, and the KV store is the one store they all share (splunkd replicates it
across the cluster), so the budget lives in the ``mde_file_alerts_budget`` collection.

The algorithm: numbered call slots, each claimed by an insert that only one process can win.

1. Every granted call is one document ``{"_key": "<budget>-<n>", "key": "<budget>", "seq": n,
   "t": <epoch seconds>}``. ``<budget>`` is a digest of the (tenant, application) key; ``n`` numbers
   the budget's calls 1, 2, 3, ... without gaps.
2. To make a call, a process brings its record of the budget up to date (one query for the slots
   after the last one it knows; on first use, the newest ``max(limit)`` slots) and takes the next
   number ``n``. For every window (``limit`` calls per ``seconds``), call ``n`` may be made now only
   if call ``n - limit`` was made at least ``seconds`` ago; if not, it waits (``clock.sleep``) until
   that call leaves the window, when the deadline allows, and looks again.
3. It then inserts the document of slot ``n`` under that slot's own ``_key``. The KV store refuses
   a second document with the same ``_key`` (HTTP 409), so of every process that wants slot ``n``
   exactly one gets it; the others read the slots they missed and try ``n + 1``, which the
   window check may refuse.

Why no window ever holds more than ``limit`` calls: slot ``n`` is claimed only after slot ``n - 1``
was seen, so slot times grow with slot numbers, and slot ``n`` is granted only when slot
``n - limit`` is at least ``seconds`` old. Any ``limit + 1`` calls therefore span at least
``seconds``. A process reading a lagging replica only gets its insert refused, never a slot twice.

Why not "insert a reservation stamped now, then count the reservations before it": a reservation
stamped early but stored late (a slow request, a paused process) lands in front of one that was
already counted and granted, and both go through. With numbered slots the store's unique key
decides every race, and no process ever has to undo anything.

Housekeeping: whoever claims every 100th slot deletes that budget's slots more than ``max(limit)``
below it, which no window check can need again. Slot times come from the members' clocks, which
Splunk requires to be in sync on a search head cluster; a member whose clock is off by some
seconds shifts the windows by as much.

When the KV store cannot be used (down, still starting, no permission), the limiter logs one
warning and uses its ``fallback`` (the host-local FileRateLimiter) for the rest of the process.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from mde_file_alerts.clock import Clock, Deadline, SystemClock
from mde_file_alerts.ratelimit import DEFENDER_WINDOWS, RateLimiter
from mde_file_alerts.splunk.kvstore import KvStoreCollection, KvStoreConflict, KvStoreError

logger = logging.getLogger(__name__)

#: The claimant of every slot numbered a multiple of this deletes the slots no window can need.
PRUNE_EVERY = 100
# After a refused insert whose slot this process then cannot read (a lagging replica), it waits
# this long before looking again instead of asking in a tight loop.
_LAGGING_REPLICA_PAUSE = 0.05
# A slot this close to leaving its window counts as gone, so float rounding of "now + wait" never
# causes a second, near-zero wait.
_EPSILON = 1e-6


class _Attempt(NamedTuple):
    granted: bool
    #: Seconds to wait before trying again (when not granted).
    wait: float


class KvRateLimiter:
    """``RateLimiter`` whose call log is the KV store, shared by the whole search head cluster."""

    def __init__(
        self,
        collection: KvStoreCollection,
        key: str,
        *,
        windows: Sequence[tuple[int, float]] = DEFENDER_WINDOWS,
        clock: Clock | None = None,
        fallback: RateLimiter,
    ) -> None:
        if not windows:
            raise ValueError("a rate limiter needs at least one (calls, seconds) window")
        for calls, seconds in windows:
            if calls < 1 or not seconds > 0:
                raise ValueError(
                    f"window ({calls}, {seconds}) must allow at least one call per positive period"
                )
        self._windows = tuple((int(calls), float(seconds)) for calls, seconds in windows)
        self._largest_limit = max(calls for calls, _ in self._windows)
        self._collection = collection
        self._clock = clock or SystemClock()
        self._fallback = fallback
        # The key holds tenant and client ids; the documents carry only a digest of it.
        self.budget_id = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        self._lock = threading.Lock()
        # This process's record of the newest slots: number -> time the call was granted.
        self._slots: dict[int, float] = {}
        self._latest = 0
        self._synced = False
        self._fallback_reason: str | None = None

    @property
    def fallback_reason(self) -> str | None:
        """Why the host-local fallback is in use (None while the KV store serves the budget)."""
        with self._lock:
            return self._fallback_reason

    def acquire(self, deadline: Deadline) -> bool:
        """Claim one call slot now, or wait (without holding anything) until the windows allow one.

        Returns False at once, without waiting, when the earliest slot comes after the deadline.
        """
        while True:
            with self._lock:
                attempt = None if self._fallback_reason else self._attempt_or_fall_back()
            if attempt is None:
                return self._fallback.acquire(deadline)
            if attempt.granted:
                return True
            if not deadline.allows(attempt.wait):
                logger.debug("shared call budget full for %.1f s more, beyond the deadline", attempt.wait)
                return False
            logger.debug("shared call budget full; waiting %.3f s", attempt.wait)
            self._clock.sleep(attempt.wait)

    # --- one attempt (under the lock) ----------------------------------------------------------------

    def _attempt_or_fall_back(self) -> _Attempt | None:
        try:
            return self._attempt()
        except KvStoreError as error:
            self._fallback_reason = error.user_message
            logger.warning(
                "The call budget shared through the KV store cannot be used (%s); from now on this "
                "process counts Defender calls on this host only, not across the search head cluster.",
                error,
            )
            return None

    def _attempt(self) -> _Attempt:
        while True:
            self._catch_up()
            now = self._clock.time()
            slot = self._latest + 1
            wait = self._wait_before(slot, now)
            if wait > 0:
                return _Attempt(granted=False, wait=wait)
            document = {"_key": self._slot_key(slot), "key": self.budget_id, "seq": slot, "t": now}
            try:
                self._collection.insert(document)
            except KvStoreConflict:
                # Another process took this slot first. Its document tells us about it even when
                # the query behind it missed it; a slot we cannot read yet means a lagging replica.
                if not self._learn_taken_slot(slot, now):
                    return _Attempt(granted=False, wait=_LAGGING_REPLICA_PAUSE)
                continue
            self._record(slot, now)
            if slot % PRUNE_EVERY == 0:
                self._prune_below(slot)
            return _Attempt(granted=True, wait=0.0)

    def _wait_before(self, slot: int, now: float) -> float:
        """Seconds until every window lets slot ``slot`` be used (0 when it can be used now)."""
        wait = 0.0
        for limit, seconds in self._windows:
            # A slot missing from the record is older than every window (pruned) or never existed.
            granted_at = self._slots.get(slot - limit)
            if granted_at is None:
                continue
            if granted_at > now:
                # A clock was set back, or runs ahead on another member. Counting the call as made
                # now, and remembering that, keeps the wait within one window length.
                granted_at = self._slots[slot - limit] = now
            leaves_at = granted_at + seconds
            if leaves_at - now > _EPSILON:
                wait = max(wait, leaves_at - now)
        return wait

    # --- the record of slots ---------------------------------------------------------------------

    def _catch_up(self) -> None:
        """Read the slots this process has not seen yet (the newest ones, on first use)."""
        if self._synced:
            documents = self._collection.query(
                {"key": self.budget_id, "seq": {"$gt": self._latest}}, sort="seq:1", fields=("seq", "t")
            )
        else:
            documents = self._collection.query(
                {"key": self.budget_id}, sort="seq:-1", limit=self._largest_limit, fields=("seq", "t")
            )
        for document in documents:
            slot = _slot_of(document)
            if slot is not None:
                self._record(*slot)
        self._synced = True

    def _learn_taken_slot(self, slot: int, now: float) -> bool:
        document = self._collection.get(self._slot_key(slot))
        if document is None:
            return False
        read = _slot_of(document)
        # An unreadable document still occupies the slot: count it as a call made just now.
        self._record(slot, read[1] if read is not None and read[0] == slot else now)
        return True

    def _record(self, slot: int, granted_at: float) -> None:
        self._slots[slot] = granted_at
        if slot > self._latest:
            self._latest = slot
            oldest_needed = slot - self._largest_limit
            for old in [number for number in self._slots if number <= oldest_needed]:
                del self._slots[old]

    def _prune_below(self, slot: int) -> None:
        try:
            self._collection.delete({"key": self.budget_id, "seq": {"$lt": slot - self._largest_limit}})
        except KvStoreError as error:
            # Only housekeeping: the next claimant of a hundredth slot tries again.
            logger.debug("could not delete old call budget slots: %s", error)

    def _slot_key(self, slot: int) -> str:
        return f"{self.budget_id}-{slot}"


def _slot_of(document: Mapping[str, Any]) -> tuple[int, float] | None:
    """(slot number, time) of a budget document; None for anything not written by this limiter."""
    seq, stamp = document.get("seq"), document.get("t")
    if isinstance(seq, bool) or isinstance(stamp, bool):
        return None
    if not isinstance(seq, (int, float)) or not isinstance(stamp, (int, float)):
        return None
    if not math.isfinite(seq) or seq != int(seq) or seq < 1 or not math.isfinite(stamp):
        return None
    return int(seq), float(stamp)
