"""Rate limits: 100/min and 1,500/h sliding windows per (tenant, client id), 429 with Retry-After."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.emulator.conftest import DEMO_SHA1, bearer
from tests.support.emulator import DefenderEmulator
from tests.support.emulator.limits import SlidingWindowLimiter, retry_after_header
from tests.support.fake_clock import FakeClock


@pytest.fixture
def small_limits(clock: FakeClock) -> Iterator[DefenderEmulator]:
    """3 calls per minute and 5 per hour: the same windows, few enough calls to stay quick."""
    with DefenderEmulator(clock=clock, rate_limits=((3, 60.0), (5, 3600.0))) as emu:
        yield emu


def call(session: requests.Session, emulator: DefenderEmulator, token: str) -> requests.Response:
    return session.get(
        f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts", headers=bearer(token), verify=emulator.ca_bundle
    )


def test_the_defaults_admit_100_calls_a_minute_then_429_with_retry_after(
    clock: FakeClock, emulator: DefenderEmulator, session: requests.Session, token: str
) -> None:
    for _ in range(100):
        assert call(session, emulator, token).status_code == 200
        clock.advance(0.1)
    response = call(session, emulator, token)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "TooManyRequests"
    assert response.headers["Retry-After"] == "51"  # the first call (t=0) leaves the window at t=60
    assert emulator.throttled_count == 1
    clock.advance(51)
    assert call(session, emulator, token).status_code == 200


def test_the_minute_window_slides(
    small_limits: DefenderEmulator, clock: FakeClock, session: requests.Session
) -> None:
    token = small_limits.issue_token()
    for step in (0, 20, 20):
        clock.advance(step)
        assert call(session, small_limits, token).status_code == 200
    clock.advance(10)  # calls at t=0, 20, 40; now t=50
    refused = call(session, small_limits, token)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "10"
    clock.advance(10)  # the t=0 call has left the window
    assert call(session, small_limits, token).status_code == 200
    assert call(session, small_limits, token).status_code == 429


def test_the_hour_window_holds_after_the_minute_window_frees(
    small_limits: DefenderEmulator, clock: FakeClock, session: requests.Session
) -> None:
    token = small_limits.issue_token()
    for _ in range(5):
        assert call(session, small_limits, token).status_code == 200
        clock.advance(61)
    refused = call(session, small_limits, token)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(3600 - 5 * 61)
    clock.advance(3600 - 5 * 61)
    # An hour has passed: the first token has expired too.
    assert call(session, small_limits, small_limits.issue_token()).status_code == 200


def test_throttled_calls_do_not_count_unless_asked(clock: FakeClock, session: requests.Session) -> None:
    for count_throttled, expected in ((False, 200), (True, 429)):
        with DefenderEmulator(clock=clock, rate_limits=((2, 60.0),), count_throttled=count_throttled) as emu:
            token = emu.issue_token()
            assert [call(session, emu, token).status_code for _ in range(3)] == [200, 200, 429]
            clock.advance(30)
            assert [call(session, emu, token).status_code for _ in range(2)] == [429, 429]
            clock.advance(30)
            # The first two calls have aged out; only the counted 429s still fill the window.
            assert call(session, emu, token).status_code == expected


def test_time_scale_shrinks_the_windows(clock: FakeClock, session: requests.Session) -> None:
    with DefenderEmulator(clock=clock, time_scale=0.01) as emu:
        token = emu.issue_token()
        for _ in range(100):
            call(session, emu, token)
        refused = call(session, emu, token)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"  # 0.6 s, rounded up to a whole second
        clock.advance(0.6)
        assert call(session, emu, token).status_code == 200


def test_no_rate_limits_never_throttles(clock: FakeClock, session: requests.Session) -> None:
    with DefenderEmulator(clock=clock, rate_limits=None) as emu:
        token = emu.issue_token()
        assert {call(session, emu, token).status_code for _ in range(120)} == {200}
        assert emu.throttled_count == 0


def test_reset_forgets_the_calls_and_the_throttled_count(
    small_limits: DefenderEmulator, session: requests.Session
) -> None:
    token = small_limits.issue_token()
    assert [call(session, small_limits, token).status_code for _ in range(4)] == [200, 200, 200, 429]
    small_limits.reset()
    assert small_limits.throttled_count == 0
    assert call(session, small_limits, token).status_code == 200


def test_each_tenant_and_client_pair_has_its_own_budget(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter([(1, 60.0)], clock=clock)
    assert limiter.admit(("tenant-a", "client-1")) is None
    assert limiter.admit(("tenant-a", "client-2")) is None
    assert limiter.admit(("tenant-b", "client-1")) is None
    assert limiter.admit(("tenant-a", "client-1")) == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("wait", "header"), [(0.001, "1"), (0.6, "1"), (1.0, "1"), (1.01, "2"), (59.5, "60")]
)
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait: float, header: str) -> None:
    assert retry_after_header(wait) == header
