"""The retry policy: what is retried, Retry-After honoured exactly, capped backoff and pinned jitter."""

from __future__ import annotations

import random

import pytest

from mde_file_alerts import errors
from mde_file_alerts.retry import RetryPolicy


def api_error(status: int, body: str = "", retry_after: float | None = None) -> errors.ApiError:
    return errors.ApiError.from_response(
        status, body, method="GET", url="https://api.example.test/api/files/x/alerts", retry_after=retry_after
    )


class NoJitter(RetryPolicy):
    """The policy with jitter removed, so backoff values can be asserted exactly."""

    def jitter(self, delay: float) -> float:
        return delay


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_throttling_and_transient_server_errors_are_retried(status: int) -> None:
    assert RetryPolicy().delay_before_retry(1, api_error(status)) is not None


def test_network_failures_are_retried() -> None:
    assert RetryPolicy().delay_before_retry(1, errors.TransportError("connection reset")) is not None


@pytest.mark.parametrize(
    "error",
    [
        api_error(400),
        api_error(400, '{"error": {"code": "InvalidHashValue", "message": "bad"}}'),
        api_error(401),
        api_error(403),
        api_error(403, '{"error": {"code": "DisabledFeature"}}'),
        api_error(404),
        api_error(405),
        api_error(501),
        api_error(505),
        errors.MalformedResponse(),
        errors.AuthenticationError(),
        errors.ConfigurationError(),
        errors.InvalidHash(),
    ],
    ids=lambda error: f"{type(error).__name__}-{error.status}",
)
def test_errors_that_would_fail_again_are_never_retried(error: errors.MdeError) -> None:
    assert RetryPolicy().delay_before_retry(1, error) is None


def test_retry_after_is_honoured_exactly_never_sooner() -> None:
    policy = RetryPolicy(rng=random.Random(1))

    for retry_after in (0.5, 7.0, 59.0, 300.0):
        assert policy.delay_before_retry(1, api_error(429, retry_after=retry_after)) == retry_after


def test_retry_after_beyond_the_cap_gives_up_instead_of_retrying_early() -> None:
    policy = RetryPolicy(max_retry_after=60.0)

    assert policy.delay_before_retry(1, api_error(429, retry_after=60.0)) == 60.0
    assert policy.delay_before_retry(1, api_error(429, retry_after=61.0)) is None


def test_a_429_without_retry_after_backs_off() -> None:
    policy = NoJitter(base_delay=2.0)

    assert policy.delay_before_retry(1, api_error(429)) == 2.0
    assert policy.delay_before_retry(2, api_error(429, retry_after=0.0)) == 4.0


def test_backoff_doubles_per_attempt_up_to_the_cap() -> None:
    policy = NoJitter(max_attempts=10, base_delay=1.0, max_delay=30.0)

    delays = [policy.delay_before_retry(attempt, api_error(503)) for attempt in range(1, 11)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, None]


def test_a_huge_attempt_number_does_not_overflow() -> None:
    assert NoJitter(max_attempts=10_000).delay_before_retry(5_000, api_error(500)) == 30.0


def test_attempts_are_used_up_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)

    assert policy.delay_before_retry(2, api_error(500)) is not None
    assert policy.delay_before_retry(3, api_error(500)) is None
    assert policy.delay_before_retry(3, api_error(429, retry_after=1.0)) is None
    assert RetryPolicy(max_attempts=1).delay_before_retry(1, api_error(503)) is None


def test_jitter_keeps_at_least_half_of_the_delay_and_never_exceeds_it() -> None:
    policy = RetryPolicy(rng=random.Random(20240501))

    samples = [policy.jitter(8.0) for _ in range(2_000)]

    assert min(samples) >= 4.0
    assert max(samples) <= 8.0
    # Spread out, not a constant: the point of jitter is to separate concurrent retries.
    assert max(samples) - min(samples) > 3.5


def test_a_seeded_generator_makes_delays_reproducible() -> None:
    first = RetryPolicy(rng=random.Random(7))
    second = RetryPolicy(rng=random.Random(7))

    assert [first.delay_before_retry(a, api_error(502)) for a in (1, 2, 3)] == [
        second.delay_before_retry(a, api_error(502)) for a in (1, 2, 3)
    ]


def test_jitter_applies_to_the_capped_backoff() -> None:
    delay = RetryPolicy(max_attempts=10, rng=random.Random(3)).delay_before_retry(8, api_error(500))

    assert delay is not None
    assert 15.0 <= delay <= 30.0


def test_a_server_error_without_status_is_retried() -> None:
    assert RetryPolicy().delay_before_retry(1, errors.ServerError()) is not None


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1.0}, {"max_delay": -1.0}, {"max_retry_after": -5.0}],
)
def test_a_nonsensical_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        RetryPolicy().delay_before_retry(0, api_error(500))


def test_policies_compare_by_settings_not_by_generator() -> None:
    assert RetryPolicy(rng=random.Random(1)) == RetryPolicy(rng=random.Random(2))
    assert RetryPolicy(max_attempts=2) != RetryPolicy()
