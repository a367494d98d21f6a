"""The call budget shared through the KV store: the windows, deadlines, several limiters, threads and
real processes racing for the last slots, a lagging replica, housekeeping, the host-local fallback,
and the [budget] settings. Time is a FakeClock (the processes use the real one but never wait)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts.clock import Deadline
from mde_file_alerts.ratelimit import DEFENDER_WINDOWS, limiter_key
from mde_file_alerts.splunk import kv_budget
from mde_file_alerts.splunk.kv_budget import KvRateLimiter
from mde_file_alerts.splunk.kvstore import BUDGET_COLLECTION, KvStoreCollection
from mde_file_alerts.splunk.settings import AppSettings
from tests.splunk.conftest import ANALYST, PLAIN_USER, USERS
from tests.support.conf import read_conf
from tests.support.fake_clock import FakeClock
from tests.support.splunkd import FakeSplunkd

ROOT = Path(__file__).resolve().parents[2]
TENANT = "8f3c2a71-5d4e-4b6a-9c1f-2e7d8a9b0c13"
CLIENT = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
KEY = limiter_key(TENANT, CLIENT)


@pytest.fixture
def splunkd() -> Iterator[FakeSplunkd]:
    with FakeSplunkd(users=USERS) as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class CountingFallback:
    """The host-local limiter's stand-in: grants everything and counts."""

    def __init__(self) -> None:
        self.calls = 0

    def acquire(self, deadline: Deadline) -> bool:
        self.calls += 1
        return True


def collection(splunkd: FakeSplunkd, user: str = ANALYST) -> KvStoreCollection:
    return KvStoreCollection(splunkd.uri, splunkd.session_key_for(user), BUDGET_COLLECTION)


def limiter(
    splunkd: FakeSplunkd,
    clock: FakeClock,
    windows: Sequence[tuple[int, float]] = ((5, 60.0),),
    *,
    store: KvStoreCollection | None = None,
    fallback: CountingFallback | None = None,
    key: str = KEY,
) -> KvRateLimiter:
    return KvRateLimiter(
        store or collection(splunkd),
        key,
        windows=windows,
        clock=clock,
        fallback=fallback or CountingFallback(),
    )


def unbounded(clock: FakeClock) -> Deadline:
    return Deadline(clock, None)


def slots(splunkd: FakeSplunkd) -> list[int]:
    return sorted(int(document["seq"]) for document in splunkd.kv_documents(BUDGET_COLLECTION))


# --- the windows --------------------------------------------------------------------------------


def test_a_window_grants_its_calls_then_waits_for_the_oldest_to_leave(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    budget = limiter(splunkd, clock)
    start = clock.time()

    for _ in range(5):
        assert budget.acquire(unbounded(clock))
        clock.advance(2.0)
    assert clock.sleeps == []

    assert budget.acquire(unbounded(clock))

    # Five calls took 10 s; the first leaves the minute 60 s after it was made.
    assert clock.sleeps == [pytest.approx(50.0)]
    assert clock.time() == pytest.approx(start + 60.0)
    assert slots(splunkd) == [1, 2, 3, 4, 5, 6]


def test_the_hour_window_holds_even_when_the_minute_has_room(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    budget = limiter(splunkd, clock, ((3, 60.0), (5, 3600.0)))

    for _ in range(5):
        assert budget.acquire(unbounded(clock))
        clock.advance(30.0)  # two a minute: the minute window never fills
    assert clock.sleeps == []

    assert budget.acquire(unbounded(clock))

    # Five calls took 150 s; the first leaves the hour at 3,600 s.
    assert clock.sleeps == [pytest.approx(3600.0 - 150.0)]


def test_the_default_windows_are_defenders(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    budget = KvRateLimiter(collection(splunkd), KEY, clock=clock, fallback=CountingFallback())

    assert budget._windows == DEFENDER_WINDOWS


def test_a_wait_beyond_the_deadline_is_refused_at_once_and_claims_nothing(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    budget = limiter(splunkd, clock, ((3, 60.0),))
    for _ in range(3):
        assert budget.acquire(unbounded(clock))

    assert not budget.acquire(Deadline(clock, 59.0))

    assert clock.sleeps == []
    assert slots(splunkd) == [1, 2, 3]
    assert budget.acquire(Deadline(clock, 60.0))
    assert clock.sleeps == [pytest.approx(60.0)]


@pytest.mark.parametrize("windows", [(), ((0, 60.0),), ((5, 0.0),)])
def test_windows_must_allow_calls(splunkd: FakeSplunkd, clock: FakeClock, windows: Any) -> None:
    with pytest.raises(ValueError):
        limiter(splunkd, clock, windows)


def test_the_documents_carry_a_digest_of_the_budget_key_not_the_tenant(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    budget = limiter(splunkd, clock)
    budget.acquire(unbounded(clock))

    (document,) = splunkd.kv_documents(BUDGET_COLLECTION)
    assert document == {
        "_key": f"{budget.budget_id}-1",
        "_user": "nobody",
        "key": budget.budget_id,
        "seq": 1,
        "t": clock.time(),
    }
    assert TENANT not in json.dumps(document) and CLIENT not in json.dumps(document)


# --- sharing ------------------------------------------------------------------------------------


def test_every_limiter_of_a_budget_sees_the_calls_of_the_others(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    limiters = [limiter(splunkd, clock) for _ in range(3)]

    for turn in range(5):
        assert limiters[turn % 3].acquire(unbounded(clock))
        clock.advance(1.0)
    assert not limiters[2].acquire(Deadline(clock, 50.0))
    assert limiters[1].acquire(unbounded(clock))

    assert clock.sleeps == [pytest.approx(55.0)]
    assert slots(splunkd) == [1, 2, 3, 4, 5, 6]


def test_budgets_of_other_accounts_do_not_count(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    other = limiter(splunkd, clock, key=limiter_key(TENANT, "another-app-registration"))
    for _ in range(5):
        assert other.acquire(unbounded(clock))

    budget = limiter(splunkd, clock)
    for _ in range(5):
        assert budget.acquire(unbounded(clock))
    assert clock.sleeps == []


def test_threads_with_their_own_limiters_never_get_more_than_the_limit(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    granted: list[bool] = []
    lock = threading.Lock()

    def search() -> None:
        budget = limiter(splunkd, clock, ((12, 3600.0),))
        for _ in range(6):
            result = budget.acquire(Deadline(clock, 10.0))
            with lock:
                granted.append(result)

    threads = [threading.Thread(target=search) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert granted.count(True) == 12
    assert len(granted) == 24
    assert slots(splunkd) == list(range(1, 13))


def test_real_processes_racing_for_one_budget_get_exactly_its_calls(splunkd: FakeSplunkd) -> None:
    """Four processes want 15 calls each from a budget of 30 an hour: exactly 30 go through."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), str(ROOT)]),
        "MDE_TEST_SESSION_KEY": splunkd.session_key_for(ANALYST),
    }
    command = [sys.executable, "-m", "tests.splunk.kv_budget_process", splunkd.uri, "30", "3600", "15"]
    processes = [
        subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    reports = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        reports.append(json.loads(stdout))

    assert sum(report["granted"] for report in reports) == 30
    assert {report["fallback"] for report in reports} == {None}
    assert slots(splunkd) == list(range(1, 31))


class PausingCollection(KvStoreCollection):
    """Runs ``before_insert`` once, between this limiter's window check and its insert."""

    before_insert: Any = None

    def insert(self, document: Mapping[str, Any]) -> str:
        hook, self.before_insert = self.before_insert, None
        if hook is not None:
            hook()
        return super().insert(document)


def test_a_slot_taken_between_the_check_and_the_insert_goes_to_one_limiter_only(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    """The race a timestamp-ranked reservation loses: both checked the same free slot."""
    slow_store = PausingCollection(splunkd.uri, splunkd.session_key_for(ANALYST), BUDGET_COLLECTION)
    slow = limiter(splunkd, clock, ((3, 60.0),), store=slow_store)
    fast = limiter(splunkd, clock, ((3, 60.0),))
    for _ in range(2):
        assert fast.acquire(unbounded(clock))
    slow_store.before_insert = lambda: fast.acquire(unbounded(clock))

    assert not slow.acquire(Deadline(clock, 30.0))

    assert slots(splunkd) == [1, 2, 3]
    assert clock.sleeps == []


class LaggingCollection(KvStoreCollection):
    """A member reading a replica that has not yet received the other members' newest slots."""

    lagging_reads = 0

    def query(self, query: Any = None, **options: Any) -> list[dict[str, Any]]:
        if self.lagging_reads:
            self.lagging_reads -= 1
            return []
        return super().query(query, **options)

    def get(self, key: str) -> dict[str, Any] | None:
        if self.lagging_reads:
            self.lagging_reads -= 1
            return None
        return super().get(key)


def test_a_lagging_replica_only_delays_a_claim(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    lagging_store = LaggingCollection(splunkd.uri, splunkd.session_key_for(ANALYST), BUDGET_COLLECTION)
    lagging = limiter(splunkd, clock, store=lagging_store)
    other = limiter(splunkd, clock)
    assert lagging.acquire(unbounded(clock))
    assert other.acquire(unbounded(clock))
    assert other.acquire(unbounded(clock))
    lagging_store.lagging_reads = 2  # misses slots 2 and 3 in its query and in its look at slot 2

    assert lagging.acquire(unbounded(clock))

    assert clock.sleeps == [pytest.approx(0.05)]
    assert slots(splunkd) == [1, 2, 3, 4]


def test_documents_that_are_not_slots_are_ignored(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    budget = limiter(splunkd, clock, ((2, 60.0),))
    collection(splunkd).batch_save(
        [
            {"key": budget.budget_id, "seq": "many", "t": clock.time()},
            {"key": budget.budget_id, "seq": 0, "t": clock.time()},
            {"key": budget.budget_id, "seq": 2.5, "t": clock.time()},
            {"key": budget.budget_id, "t": clock.time()},
        ]
    )

    assert budget.acquire(unbounded(clock))
    assert budget.acquire(unbounded(clock))
    assert clock.sleeps == []


def test_an_unreadable_document_in_the_next_slot_still_counts_as_a_call(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    budget = limiter(splunkd, clock, ((1, 60.0),))
    collection(splunkd).insert({"_key": f"{budget.budget_id}-1", "key": "someone else's", "seq": "?"})

    assert budget.acquire(unbounded(clock))

    assert clock.sleeps == [pytest.approx(60.0)]
    assert [document["_key"] for document in splunkd.kv_documents(BUDGET_COLLECTION)][
        -1
    ] == f"{budget.budget_id}-2"


def test_a_slot_stamped_by_a_clock_far_ahead_delays_by_one_window_at_most(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    budget = limiter(splunkd, clock, ((1, 60.0),))
    collection(splunkd).insert(
        {"_key": f"{budget.budget_id}-1", "key": budget.budget_id, "seq": 1, "t": clock.time() + 3600}
    )

    assert budget.acquire(unbounded(clock))

    assert clock.sleeps == [pytest.approx(60.0)]


def test_the_claimant_of_every_hundredth_slot_deletes_slots_no_window_needs(
    splunkd: FakeSplunkd, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kv_budget, "PRUNE_EVERY", 5)
    budget = limiter(splunkd, clock, ((3, 1.0),))

    for _ in range(12):
        assert budget.acquire(unbounded(clock))
        clock.advance(1.0)

    # Slot 10 deleted every slot below 10 - 3; slots 11 and 12 came after.
    assert slots(splunkd) == [7, 8, 9, 10, 11, 12]
    assert limiter(splunkd, clock, ((3, 1.0),)).acquire(unbounded(clock))
    assert slots(splunkd)[-1] == 13


# --- the host-local fallback --------------------------------------------------------------------


def test_an_unavailable_kv_store_switches_to_the_fallback_once_with_one_warning(
    splunkd: FakeSplunkd, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fallback = CountingFallback()
    budget = limiter(splunkd, clock, fallback=fallback)
    assert budget.acquire(unbounded(clock))
    splunkd.kvstore_available = False

    with caplog.at_level(logging.WARNING, logger="mde_file_alerts.splunk.kv_budget"):
        granted = [budget.acquire(unbounded(clock)) for _ in range(3)]
    splunkd.kvstore_available = True
    requests_before = len(splunkd.requests)
    assert budget.acquire(unbounded(clock))

    assert granted == [True, True, True]
    assert fallback.calls == 4, "the rest of the process stays on the fallback"
    assert len(splunkd.requests) == requests_before
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "counts Defender calls on this host only" in warnings[0].getMessage()
    assert budget.fallback_reason is not None and "HTTP 503" in budget.fallback_reason


def test_a_user_without_access_to_the_budget_uses_the_fallback(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    fallback = CountingFallback()
    budget = limiter(splunkd, clock, store=collection(splunkd, PLAIN_USER), fallback=fallback)

    assert budget.acquire(unbounded(clock))

    assert fallback.calls == 1
    assert budget.fallback_reason is not None and "HTTP 403" in budget.fallback_reason


def test_the_fallbacks_refusal_is_the_answer(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    class Refusing:
        def acquire(self, deadline: Deadline) -> bool:
            return False

    splunkd.kvstore_available = False
    budget = KvRateLimiter(collection(splunkd), KEY, clock=clock, fallback=Refusing())

    assert not budget.acquire(unbounded(clock))


# --- the [budget] settings ----------------------------------------------------------------------


def test_the_shipped_budget_settings_are_defenders_limits_in_the_kv_store() -> None:
    settings = AppSettings.from_stanzas(read_conf(ROOT / "default" / "ta_mde_file_alerts_settings.conf"))

    assert settings.budget_use_kvstore is True
    assert settings.budget_windows == DEFENDER_WINDOWS


def test_budget_settings_can_leave_room_for_other_tools() -> None:
    settings = AppSettings.from_stanzas(
        {"budget": {"use_kvstore": "false", "calls_per_minute": "40", "calls_per_hour": "600"}}
    )

    assert settings.budget_use_kvstore is False
    assert settings.budget_windows == ((40, 60.0), (600, 3600.0))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("calls_per_minute", "101"),
        ("calls_per_minute", "0"),
        ("calls_per_hour", "1.5k"),
        ("use_kvstore", "sure"),
    ],
)
def test_an_unusable_budget_setting_is_logged_and_its_default_used(
    key: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mde_file_alerts.splunk.settings"):
        settings = AppSettings.from_stanzas({"budget": {key: value}})

    assert settings == AppSettings()
    assert f"ta_mde_file_alerts_settings.conf [budget] {key}={value!r} is not" in caplog.text
