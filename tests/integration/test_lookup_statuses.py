"""Every per-hash status, produced by the real client over HTTPS against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from mde_file_alerts import errors
from mde_file_alerts.client import DefenderClient, HashOutcome, HashStatus
from mde_file_alerts.ratelimit import FileRateLimiter
from mde_file_alerts.retry import RetryPolicy
from tests.integration.conftest import emulator_account, emulator_client, sha1_with_alerts
from tests.support.emulator import (
    ConnectionReset,
    DefenderEmulator,
    ErrorStatus,
    HtmlPage,
    MalformedJson,
    NextLinkLoop,
    SlowResponse,
    UnexpectedJson,
)
from tests.support.fake_clock import FakeClock

UNKNOWN_SHA1 = "0123456789abcdef0123456789abcdef01234567"


def lookup_one(client: DefenderClient, value: str, **options: object) -> HashOutcome:
    (outcome,) = list(client.lookup([value], **options))  # type: ignore[arg-type]
    return outcome


def test_found_returns_the_fixture_alerts(emulator: DefenderEmulator, client: DefenderClient) -> None:
    sha1 = sha1_with_alerts(emulator, minimum=2)
    expected = [alert["id"] for alert in emulator.find_file(sha1).alerts]  # type: ignore[union-attr]

    outcome = lookup_one(client, sha1.upper())

    assert outcome.status is HashStatus.FOUND
    assert [alert["id"] for alert in outcome.alerts] == expected
    assert outcome.calls == 1
    (request,) = emulator.api_requests
    assert request.path == f"/api/files/{sha1}/alerts"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("MdePartner-TAmde-TA-mde-file-alerts/")
    # The emulator compresses like the service; the client decoded it.
    assert "deflate" in request.headers["accept-encoding"]


@pytest.mark.parametrize("unknown_file_status", [200, 404])
def test_an_unknown_file_is_not_found_in_both_service_eras(
    emulator: DefenderEmulator, client: DefenderClient, unknown_file_status: int
) -> None:
    emulator.unknown_file_status = unknown_file_status

    outcome = lookup_one(client, UNKNOWN_SHA1)

    assert outcome.status is HashStatus.NOT_FOUND
    assert outcome.message == f"No Defender alerts for file {UNKNOWN_SHA1}."
    assert [request.status for request in emulator.api_requests] == [unknown_file_status]


def test_invalid_values_are_reported_and_never_sent(
    emulator: DefenderEmulator, client: DefenderClient
) -> None:
    values = ["d41d8cd98f00b204e9800998ecf8427e", "../../etc/passwd", "", "g" * 40]

    outcomes = list(client.lookup(values))

    assert [outcome.status for outcome in outcomes] == [HashStatus.INVALID_HASH] * 4
    assert "looks like an MD5 (32 hex characters)" in (outcomes[0].message or "")
    assert emulator.requests == []


def test_a_sha256_is_resolved_through_the_file_entity(
    emulator: DefenderEmulator, client: DefenderClient
) -> None:
    known = next(known for known in emulator.known_files() if known.sha256 and known.alerts)

    outcome = lookup_one(client, known.sha256 or "", resolve_sha256=True)

    assert outcome.status is HashStatus.FOUND
    assert (outcome.sha1, outcome.sha256) == (known.sha1, known.sha256)
    assert len(outcome.alerts) == len(known.alerts)
    assert [request.path for request in emulator.api_requests] == [
        f"/api/files/{known.sha256}",
        f"/api/files/{known.sha1}/alerts",
    ]
    assert outcome.calls == 2


def test_a_sha256_without_resolution_is_refused_with_the_reason(
    emulator: DefenderEmulator, client: DefenderClient
) -> None:
    outcome = lookup_one(client, "ab" * 32)

    assert outcome.status is HashStatus.INVALID_HASH
    assert "resolve_sha256" in (outcome.message or "")
    assert emulator.requests == []


def test_an_unknown_sha256_is_not_found(emulator: DefenderEmulator, client: DefenderClient) -> None:
    outcome = lookup_one(client, "ab" * 32, resolve_sha256=True)

    assert outcome.status is HashStatus.NOT_FOUND
    assert "does not know a file with SHA-256" in (outcome.message or "")


# --- throttling ---------------------------------------------------------------------------------


def test_a_429_beyond_the_deadline_is_throttled_and_says_when(
    emulator: DefenderEmulator, client: DefenderClient, clock: FakeClock
) -> None:
    emulator.inject(ErrorStatus(429, retry_after=600))

    outcome = lookup_one(client, sha1_with_alerts(emulator), timeout=120)

    assert outcome.status is HashStatus.THROTTLED
    assert "retry after 600 seconds" in (outcome.message or "")
    assert outcome.error is not None and outcome.error.code == "TooManyRequests"
    assert outcome.error.correlation_id
    assert clock.sleeps == []


def test_throttling_that_clears_within_the_deadline_is_waited_out(clock: FakeClock) -> None:
    # The emulator's own limiter, on the shared fake clock: two calls a minute.
    with DefenderEmulator(clock=clock, rate_limits=((2, 60.0),)) as emu:
        hashes = [known.sha1 for known in emu.known_files()[:3]]

        outcomes = list(emulator_client(emu, clock, max_workers=1).lookup(hashes, timeout=300))

        assert [outcome.status for outcome in outcomes] == [HashStatus.FOUND] * 3
        assert emu.throttled_count == 1
        assert [request.status for request in emu.api_requests] == [200, 200, 429, 200]
        # Retry-After was honoured exactly: the third call waited for the window to move on.
        assert clock.sleeps == [60.0]


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        (ErrorStatus(500), errors.ServerError),
        (ErrorStatus(503, body="html"), errors.ServerError),
        (ErrorStatus(502, body="empty"), errors.ServerError),
        (ConnectionReset(), errors.TransportError),
    ],
    ids=["500-envelope", "503-html", "502-empty", "reset"],
)
def test_transient_failures_are_retried_then_reported_as_errors(
    emulator: DefenderEmulator, client: DefenderClient, clock: FakeClock, fault: object, error_class: type
) -> None:
    emulator.inject(fault, times=None)  # type: ignore[arg-type]

    outcome = lookup_one(client, sha1_with_alerts(emulator), timeout=300)

    assert outcome.status is HashStatus.ERROR
    assert isinstance(outcome.error, error_class)
    assert outcome.calls == 4
    assert len(emulator.api_requests) == 4
    assert len(clock.sleeps) == 3


def test_a_transient_failure_then_success_is_found(
    emulator: DefenderEmulator, client: DefenderClient, clock: FakeClock
) -> None:
    emulator.inject(ConnectionReset())
    emulator.inject(ErrorStatus(500))

    outcome = lookup_one(client, sha1_with_alerts(emulator))

    assert outcome.status is HashStatus.FOUND
    assert outcome.calls == 3
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (MalformedJson(), "the body is not JSON"),
        (HtmlPage(), "the body is not JSON (it starts with '<!DOCTYPE html>"),
        (ErrorStatus(200, body="empty"), "the body is empty"),
        (UnexpectedJson([{"id": "x"}]), "the body is a JSON list"),
        (UnexpectedJson({"alerts": []}), "it has no 'value' list"),
    ],
    ids=["truncated-json", "html-200", "empty-200", "json-list", "no-value"],
)
def test_a_2xx_that_is_not_alert_data_is_an_error_without_retries(
    emulator: DefenderEmulator, client: DefenderClient, fault: object, expected: str
) -> None:
    emulator.inject(fault)  # type: ignore[arg-type]
    sha1 = sha1_with_alerts(emulator)

    outcome = lookup_one(client, sha1)

    assert outcome.status is HashStatus.ERROR
    assert isinstance(outcome.error, errors.MalformedResponse)
    assert expected in outcome.error.message
    assert outcome.message == f"The Defender lookup of file {sha1} failed: {outcome.error.user_message}"
    assert len(emulator.api_requests) == 1


def test_a_response_slower_than_the_read_timeout_is_a_transport_error(
    emulator: DefenderEmulator, clock: FakeClock
) -> None:
    account = emulator_account(emulator, timeout=0.3)
    client = emulator_client(emulator, clock, account=account, retry_policy=RetryPolicy(max_attempts=1))
    client.check_access()
    emulator.inject(SlowResponse(5))

    outcome = lookup_one(client, sha1_with_alerts(emulator))

    assert outcome.status is HashStatus.ERROR
    assert isinstance(outcome.error, errors.TransportError)
    assert "ReadTimeout" in (outcome.error.detail or "")


# --- budget and deadline ------------------------------------------------------------------------


def test_hashes_beyond_the_shared_budget_are_not_looked_up(
    emulator: DefenderEmulator, clock: FakeClock, tmp_path: Path
) -> None:
    account = emulator_account(emulator)
    limiter = FileRateLimiter(tmp_path, "budget-test", windows=((2, 60.0),), clock=clock)
    client = emulator_client(emulator, clock, account=account, rate_limiter=limiter, max_workers=1)
    hashes = [known.sha1 for known in emulator.known_files()[:4]]

    outcomes = list(client.lookup(hashes, timeout=30))

    assert [outcome.status for outcome in outcomes] == [HashStatus.FOUND] * 2 + [HashStatus.NOT_LOOKED_UP] * 2
    assert all(isinstance(outcome.error, errors.BudgetExhausted) for outcome in outcomes[2:])
    assert len(emulator.api_requests) == 2
    assert emulator.throttled_count == 0


def test_a_budget_that_frees_up_before_the_deadline_is_waited_for(
    emulator: DefenderEmulator, clock: FakeClock, tmp_path: Path
) -> None:
    limiter = FileRateLimiter(tmp_path, "budget-test", windows=((2, 60.0),), clock=clock)
    client = emulator_client(emulator, clock, rate_limiter=limiter, max_workers=1)
    hashes = [known.sha1 for known in emulator.known_files()[:3]]

    outcomes = list(client.lookup(hashes, timeout=120))

    assert [outcome.status for outcome in outcomes] == [HashStatus.FOUND] * 3
    assert clock.total_slept == pytest.approx(60.0)
    assert emulator.throttled_count == 0


def test_an_expired_deadline_looks_nothing_up(emulator: DefenderEmulator, client: DefenderClient) -> None:
    outcomes = list(client.lookup([known.sha1 for known in emulator.known_files()[:2]], timeout=0))

    assert [outcome.status for outcome in outcomes] == [HashStatus.NOT_LOOKED_UP] * 2
    assert all("the search deadline passed first" in (outcome.message or "") for outcome in outcomes)
    assert emulator.api_requests == []


# --- paging -------------------------------------------------------------------------------------


def test_alerts_split_over_pages_are_all_collected(
    emulator: DefenderEmulator, client: DefenderClient
) -> None:
    sha1 = sha1_with_alerts(emulator, minimum=3)
    total = len(emulator.find_file(sha1).alerts)  # type: ignore[union-attr]
    emulator.page_size = 2

    outcome = lookup_one(client, sha1)

    assert outcome.status is HashStatus.FOUND
    assert len(outcome.alerts) == total
    pages = (total + 1) // 2
    assert outcome.calls == pages
    assert [request.query.get("$skiptoken") for request in emulator.api_requests] == [None] + [
        [str(offset)] for offset in range(2, total, 2)
    ]


def test_a_next_link_that_loops_is_not_followed_again(
    emulator: DefenderEmulator, client: DefenderClient
) -> None:
    emulator.inject(NextLinkLoop(), times=None)
    sha1 = sha1_with_alerts(emulator)

    outcome = lookup_one(client, sha1)

    assert outcome.status is HashStatus.FOUND
    assert len(emulator.api_requests) == 1
