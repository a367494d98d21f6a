"""DefenderClient against a scripted transport, token source and limiter (no HTTP at all).

These pin the client's own rules: which status each answer gives, how retries, the 401 refresh,
the budget and the deadline interact, paging, ordering and streaming, and fatal errors. The same
behaviours over real HTTPS are in tests/integration.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any, Callable

import pytest

from mde_file_alerts import errors
from mde_file_alerts.account import Account, Secret
from mde_file_alerts.client import DefenderClient, HashOutcome, HashStatus
from mde_file_alerts.clock import Deadline
from mde_file_alerts.hashes import parse_hash
from mde_file_alerts.paging import MAX_PAGES
from mde_file_alerts.retry import RetryPolicy
from mde_file_alerts.transport import JsonResponse
from tests.support.fake_clock import FakeClock

API = "https://api.example.test"
SHA1_A = "a" * 40
SHA1_B = "b" * 40
SHA1_C = "c" * 40
SHA256 = "d" * 64
ALERT = {"id": "da637000000000000000_1", "title": "Suspicious file"}

Step = Callable[[str], JsonResponse]


def ok(body: Any, correlation_id: str | None = None) -> Step:
    return lambda token: JsonResponse(body=body, status=200, correlation_id=correlation_id)


def fail(error: errors.MdeError) -> Step:
    def raise_it(token: str) -> JsonResponse:
        raise error

    return raise_it


def alerts_url(sha1: str) -> str:
    return f"{API}/api/files/{sha1}/alerts"


def api_error(status: int, **kwargs: Any) -> errors.ApiError:
    return errors.ApiError.from_response(status, b"", method="GET", url=API, **kwargs)


class ScriptedTransport:
    """Answers each URL with its scripted steps in order; unknown URLs get an empty collection."""

    def __init__(self, routes: dict[str, list[Step]] | None = None) -> None:
        self.routes = defaultdict(list, {url: list(steps) for url, steps in (routes or {}).items()})
        self.requests: list[tuple[str, str]] = []
        self.max_waits: list[float | None] = []
        self._lock = threading.Lock()

    def get_json(self, url: str, *, token: str, max_wait: float | None = None) -> JsonResponse:
        with self._lock:
            self.requests.append((url, token))
            self.max_waits.append(max_wait)
            steps = self.routes[url]
            step = steps.pop(0) if steps else ok({"value": []})
        return step(token)

    def urls(self) -> list[str]:
        return [url for url, _ in self.requests]


class FakeTokens:
    def __init__(self, failure: errors.MdeError | None = None) -> None:
        self.current = "token-1"
        self.forced = 0
        self.failure = failure
        self._lock = threading.Lock()

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            if self.failure is not None:
                raise self.failure
            if force_refresh:
                self.forced += 1
                self.current = f"token-{self.forced + 1}"
            return self.current


class Budget:
    def __init__(self, calls: int) -> None:
        self.left = calls
        self._lock = threading.Lock()

    def acquire(self, deadline: Deadline) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class NoJitter(RetryPolicy):
    def jitter(self, delay: float) -> float:
        return delay


def make_account() -> Account:
    return Account(
        name="unit",
        tenant_id="11111111-2222-3333-4444-555555555555",
        client_id="66666666-7777-8888-9999-000000000000",
        client_secret=Secret("unit-secret"),
        api_host=API,
    )


def make_client(
    transport: ScriptedTransport,
    *,
    tokens: FakeTokens | None = None,
    limiter: Any = None,
    clock: FakeClock | None = None,
    max_workers: int = 2,
) -> DefenderClient:
    return DefenderClient(
        make_account(),
        token_source=tokens or FakeTokens(),
        transport=transport,  # type: ignore[arg-type]
        rate_limiter=limiter,
        retry_policy=NoJitter(),
        clock=clock or FakeClock(),
        max_workers=max_workers,
    )


def lookup_one(client: DefenderClient, value: str, **kwargs: Any) -> HashOutcome:
    (outcome,) = list(client.lookup([value], **kwargs))
    return outcome


# --- statuses -----------------------------------------------------------------------------------


def test_found_returns_the_alerts_with_call_count_and_correlation_id() -> None:
    transport = ScriptedTransport({alerts_url(SHA1_A): [ok({"value": [ALERT]}, "corr-1")]})

    outcome = lookup_one(make_client(transport), SHA1_A.upper())

    assert outcome.status is HashStatus.FOUND
    assert outcome.alerts == [ALERT]
    assert outcome.sha1 == SHA1_A
    assert outcome.calls == 1
    assert outcome.correlation_id == "corr-1"
    assert outcome.message is None
    assert transport.requests == [(alerts_url(SHA1_A), "token-1")]


@pytest.mark.parametrize(
    "step",
    [ok({"@odata.context": f"{API}/api/$metadata#Alerts", "value": []}), fail(api_error(404))],
    ids=["empty-200", "404"],
)
def test_an_unknown_file_is_not_found(step: Step) -> None:
    transport = ScriptedTransport({alerts_url(SHA1_A): [step]})

    outcome = lookup_one(make_client(transport), SHA1_A)

    assert outcome.status is HashStatus.NOT_FOUND
    assert outcome.message == f"No Defender alerts for file {SHA1_A}."
    assert outcome.calls == 1


@pytest.mark.parametrize("value", ["", "xyz", "d41d8cd98f00b204e9800998ecf8427e", SHA256, "a" * 39])
def test_values_that_are_not_sha1_are_invalid_without_any_call(value: str) -> None:
    transport = ScriptedTransport()

    outcome = lookup_one(make_client(transport), value)

    assert outcome.status is HashStatus.INVALID_HASH
    assert outcome.message == parse_hash(value).problem
    assert isinstance(outcome.error, errors.InvalidHash)
    assert outcome.calls == 0
    assert transport.requests == []


def test_a_sha256_is_resolved_to_its_sha1_when_asked() -> None:
    transport = ScriptedTransport(
        {
            f"{API}/api/files/{SHA256}": [ok({"sha1": SHA1_B.upper(), "sha256": SHA256})],
            alerts_url(SHA1_B): [ok({"value": [ALERT]})],
        }
    )

    outcome = lookup_one(make_client(transport), SHA256, resolve_sha256=True)

    assert outcome.status is HashStatus.FOUND
    assert (outcome.sha1, outcome.sha256) == (SHA1_B, SHA256)
    assert outcome.calls == 2
    assert transport.urls() == [f"{API}/api/files/{SHA256}", alerts_url(SHA1_B)]


def test_a_sha256_defender_does_not_know_is_not_found() -> None:
    transport = ScriptedTransport({f"{API}/api/files/{SHA256}": [fail(api_error(404))]})

    outcome = lookup_one(make_client(transport), SHA256, resolve_sha256=True)

    assert outcome.status is HashStatus.NOT_FOUND
    assert outcome.sha1 is None
    assert outcome.message == (
        f"Defender for Endpoint does not know a file with SHA-256 {SHA256}, so it has no alerts for it."
    )


def test_a_file_entity_without_a_valid_sha1_is_an_error() -> None:
    transport = ScriptedTransport({f"{API}/api/files/{SHA256}": [ok({"sha1": "not-a-hash"})]})

    outcome = lookup_one(make_client(transport), SHA256, resolve_sha256=True)

    assert outcome.status is HashStatus.ERROR
    assert isinstance(outcome.error, errors.MalformedResponse)
    assert len(transport.requests) == 1


def test_an_md5_stays_invalid_even_with_resolution_on() -> None:
    outcome = lookup_one(
        make_client(ScriptedTransport()), "d41d8cd98f00b204e9800998ecf8427e", resolve_sha256=True
    )

    assert outcome.status is HashStatus.INVALID_HASH


@pytest.mark.parametrize(
    "body", [{"value": None}, {"values": []}, {"value": ["text"]}, {"value": [], "@odata.nextLink": 5}]
)
def test_a_page_that_is_not_an_alert_collection_is_an_error(body: Any) -> None:
    transport = ScriptedTransport({alerts_url(SHA1_A): [ok(body)]})

    outcome = lookup_one(make_client(transport), SHA1_A)

    assert outcome.status is HashStatus.ERROR
    assert isinstance(outcome.error, errors.MalformedResponse)
    assert outcome.message is not None
    assert outcome.message.startswith(f"The Defender lookup of file {SHA1_A} failed: ")


# --- retries, throttling, deadline, budget --------------------------------------------------------


def test_throttling_beyond_the_deadline_is_reported_with_defenders_retry_after() -> None:
    clock = FakeClock()
    transport = ScriptedTransport({alerts_url(SHA1_A): [fail(api_error(429, retry_after=120.0))]})

    outcome = lookup_one(make_client(transport, clock=clock), SHA1_A, timeout=60)

    assert outcome.status is HashStatus.THROTTLED
    assert "retry after 120 seconds" in (outcome.message or "")
    assert SHA1_A in (outcome.message or "")
    assert clock.sleeps == []


def test_throttling_that_clears_within_the_deadline_is_waited_out() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(
        {alerts_url(SHA1_A): [fail(api_error(429, retry_after=7.0)), ok({"value": [ALERT]})]}
    )

    outcome = lookup_one(make_client(transport, clock=clock), SHA1_A, timeout=60)

    assert outcome.status is HashStatus.FOUND
    assert clock.sleeps == [7.0]
    assert outcome.calls == 2
    assert outcome.duration == 7.0


def test_server_errors_are_retried_with_backoff_then_reported() -> None:
    clock = FakeClock()
    transport = ScriptedTransport({alerts_url(SHA1_A): [fail(api_error(503)) for _ in range(4)]})

    outcome = lookup_one(make_client(transport, clock=clock), SHA1_A)

    assert outcome.status is HashStatus.ERROR
    assert isinstance(outcome.error, errors.ServerError)
    assert outcome.calls == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_a_transport_failure_then_success_is_found() -> None:
    transport = ScriptedTransport(
        {alerts_url(SHA1_A): [fail(errors.TransportError("reset")), ok({"value": [ALERT]})]}
    )

    assert lookup_one(make_client(transport), SHA1_A).status is HashStatus.FOUND


def test_a_retry_that_does_not_fit_the_deadline_is_not_slept() -> None:
    clock = FakeClock()
    transport = ScriptedTransport({alerts_url(SHA1_A): [fail(api_error(500)), ok({"value": []})]})

    outcome = lookup_one(make_client(transport, clock=clock), SHA1_A, timeout=0.5)

    assert outcome.status is HashStatus.ERROR
    assert clock.sleeps == []


def test_the_request_timeout_is_shortened_to_the_deadline() -> None:
    transport = ScriptedTransport()

    lookup_one(make_client(transport), SHA1_A, timeout=12)
    lookup_one(make_client(transport), SHA1_B)

    assert transport.max_waits == [12.0, None]


def test_hashes_beyond_the_budget_are_not_looked_up() -> None:
    transport = ScriptedTransport()
    client = make_client(transport, limiter=Budget(2), max_workers=1)

    outcomes = list(client.lookup([SHA1_A, SHA1_B, SHA1_C], timeout=30))

    assert [outcome.status for outcome in outcomes] == [
        HashStatus.NOT_FOUND,
        HashStatus.NOT_FOUND,
        HashStatus.NOT_LOOKED_UP,
    ]
    assert isinstance(outcomes[2].error, errors.BudgetExhausted)
    assert outcomes[2].calls == 0
    assert outcomes[2].message == (
        f"File {SHA1_C} was not looked up: the Defender for Endpoint call budget (100 per minute, "
        "1,500 per hour) is used up until after the search deadline."
    )
    assert len(transport.requests) == 2


def test_a_deadline_that_has_passed_looks_nothing_up() -> None:
    transport = ScriptedTransport()

    outcomes = list(make_client(transport).lookup([SHA1_A, SHA1_B], timeout=0))

    assert [outcome.status for outcome in outcomes] == [HashStatus.NOT_LOOKED_UP] * 2
    assert all(isinstance(outcome.error, errors.DeadlineExceeded) for outcome in outcomes)
    assert outcomes[0].message == f"File {SHA1_A} was not looked up: the search deadline passed first."
    assert transport.requests == []


# --- tokens -------------------------------------------------------------------------------------


def rejects(*tokens: str) -> Step:
    """A step for many calls: 401 for the given tokens, alerts for any other."""

    def answer(token: str) -> JsonResponse:
        if token in tokens:
            raise api_error(401)
        return JsonResponse(body={"value": [ALERT]}, status=200, correlation_id=None)

    return answer


def test_a_401_gets_one_fresh_token_and_one_retry() -> None:
    tokens = FakeTokens()
    transport = ScriptedTransport({alerts_url(SHA1_A): [rejects("token-1"), rejects("token-1")]})

    outcome = lookup_one(make_client(transport, tokens=tokens), SHA1_A)

    assert outcome.status is HashStatus.FOUND
    assert tokens.forced == 1
    assert transport.requests == [(alerts_url(SHA1_A), "token-1"), (alerts_url(SHA1_A), "token-2")]
    assert outcome.calls == 2


def test_a_second_401_is_an_error_not_another_refresh() -> None:
    tokens = FakeTokens()
    transport = ScriptedTransport({alerts_url(SHA1_A): [fail(api_error(401)) for _ in range(3)]})

    outcome = lookup_one(make_client(transport, tokens=tokens), SHA1_A)

    assert outcome.status is HashStatus.ERROR
    assert isinstance(outcome.error, errors.Unauthorized)
    assert tokens.forced == 1
    assert len(transport.requests) == 2


def test_concurrent_401s_for_the_same_token_share_one_refresh() -> None:
    tokens = FakeTokens()
    hashes = [f"{index:040x}" for index in range(1, 5)]
    # All four workers hold the old token when their 401s arrive together.
    together = threading.Barrier(4, timeout=10)

    def rejected_together(token: str) -> JsonResponse:
        together.wait()
        raise api_error(401)

    transport = ScriptedTransport(
        {alerts_url(value): [rejected_together, ok({"value": [ALERT]})] for value in hashes}
    )

    outcomes = list(make_client(transport, tokens=tokens, max_workers=4).lookup(hashes))

    assert [outcome.status for outcome in outcomes] == [HashStatus.FOUND] * 4
    assert tokens.forced == 1
    assert [token for _, token in transport.requests].count("token-2") == 4


# --- fatal errors -------------------------------------------------------------------------------


def test_a_fatal_api_error_is_raised_after_the_outcomes_before_it() -> None:
    transport = ScriptedTransport({alerts_url(SHA1_B): [fail(api_error(403))]})
    iterator = make_client(transport, max_workers=1).lookup([SHA1_A, SHA1_B, SHA1_C, "f" * 40])

    first = next(iterator)
    with pytest.raises(errors.Forbidden):
        next(iterator)

    assert first.status is HashStatus.NOT_FOUND
    assert alerts_url(SHA1_C) not in transport.urls()
    assert alerts_url("f" * 40) not in transport.urls()
    with pytest.raises(StopIteration):
        next(iterator)


def test_an_authentication_error_is_raised_before_any_api_call() -> None:
    refusal = errors.AuthenticationError("Entra ID refused.", code="AADSTS7000215")
    transport = ScriptedTransport()

    with pytest.raises(errors.AuthenticationError) as caught:
        list(make_client(transport, tokens=FakeTokens(refusal)).lookup([SHA1_A, SHA1_B]))

    assert caught.value is refusal
    assert transport.requests == []


def test_invalid_values_before_a_fatal_error_are_still_reported() -> None:
    refusal = errors.AuthenticationError("Entra ID refused.")
    iterator = make_client(ScriptedTransport(), tokens=FakeTokens(refusal)).lookup(["md5?", SHA1_A])

    assert next(iterator).status is HashStatus.INVALID_HASH
    with pytest.raises(errors.AuthenticationError):
        next(iterator)


def test_check_access_raises_the_token_sources_error() -> None:
    refusal = errors.AuthenticationError("Entra ID refused.")

    with pytest.raises(errors.AuthenticationError):
        make_client(ScriptedTransport(), tokens=FakeTokens(refusal)).check_access()


# --- order, de-duplication, streaming ------------------------------------------------------------


def test_outcomes_come_in_input_order_once_per_distinct_value() -> None:
    transport = ScriptedTransport({alerts_url(SHA1_C): [ok({"value": [ALERT]})]})
    values = [SHA1_C, "bad", SHA1_A, SHA1_C.upper(), parse_hash(SHA1_B), f"  {SHA1_A} "]

    outcomes = list(make_client(transport, max_workers=3).lookup(values))

    assert [outcome.query.value for outcome in outcomes] == [SHA1_C, "bad", SHA1_A, SHA1_B]
    assert [outcome.status for outcome in outcomes] == [
        HashStatus.FOUND,
        HashStatus.INVALID_HASH,
        HashStatus.NOT_FOUND,
        HashStatus.NOT_FOUND,
    ]


def test_the_first_outcome_arrives_before_most_hashes_are_looked_up() -> None:
    transport = ScriptedTransport()
    hashes = [f"{index:040x}" for index in range(1, 10_001)]

    iterator = make_client(transport, max_workers=4).lookup(hashes)
    first = next(iterator)

    assert first.query.value == hashes[0]
    assert len(transport.requests) <= 2 * 4 + 1
    iterator.close()  # type: ignore[attr-defined]


def test_abandoning_the_iterator_stops_new_calls() -> None:
    transport = ScriptedTransport()
    hashes = [f"{index:040x}" for index in range(1, 200)]

    iterator = make_client(transport, max_workers=2).lookup(hashes)
    next(iterator)
    iterator.close()  # type: ignore[attr-defined]
    seen = len(transport.requests)

    assert seen <= 2 * 2 + 1


# --- paging -------------------------------------------------------------------------------------


def test_next_links_on_the_api_host_are_followed() -> None:
    second = f"{API}/api/files/{SHA1_A}/alerts?$skiptoken=2"
    transport = ScriptedTransport(
        {
            alerts_url(SHA1_A): [ok({"value": [ALERT], "@odata.nextLink": second})],
            second: [ok({"value": [{"id": "second"}]})],
        }
    )

    outcome = lookup_one(make_client(transport), SHA1_A)

    assert [alert["id"] for alert in outcome.alerts] == [ALERT["id"], "second"]
    assert outcome.calls == 2


def test_a_next_link_to_another_host_is_refused_and_never_requested() -> None:
    elsewhere = "https://collector.example.net/api/files/page2"
    transport = ScriptedTransport(
        {alerts_url(SHA1_A): [ok({"value": [ALERT], "@odata.nextLink": elsewhere})]}
    )

    outcome = lookup_one(make_client(transport), SHA1_A)

    assert outcome.status is HashStatus.ERROR
    assert isinstance(outcome.error, errors.MalformedResponse)
    assert transport.urls() == [alerts_url(SHA1_A)]


@pytest.mark.parametrize(
    "link",
    [
        "http://api.example.test/api/files/page2",
        "https://api.example.test:8443/api/files/page2",
        "https://api.example.test@collector.example.net/page2",
    ],
)
def test_next_links_must_keep_scheme_host_and_port(link: str) -> None:
    transport = ScriptedTransport({alerts_url(SHA1_A): [ok({"value": [], "@odata.nextLink": link})]})

    assert lookup_one(make_client(transport), SHA1_A).status is HashStatus.ERROR
    assert len(transport.requests) == 1


def test_a_next_link_loop_stops_with_the_alerts_so_far() -> None:
    second = f"{API}/api/files/{SHA1_A}/alerts?page=2"
    transport = ScriptedTransport(
        {
            alerts_url(SHA1_A): [ok({"value": [ALERT], "@odata.nextLink": second})],
            second: [ok({"value": [{"id": "second"}], "@odata.nextLink": alerts_url(SHA1_A)})],
        }
    )

    outcome = lookup_one(make_client(transport), SHA1_A)

    assert outcome.status is HashStatus.FOUND
    assert len(outcome.alerts) == 2
    assert outcome.calls == 2


def test_paging_stops_at_the_page_cap() -> None:
    def endless(token: str) -> JsonResponse:
        endless.page += 1  # type: ignore[attr-defined]
        link = f"{alerts_url(SHA1_A)}?page={endless.page}"  # type: ignore[attr-defined]
        return JsonResponse(body={"value": [ALERT], "@odata.nextLink": link}, status=200, correlation_id=None)

    endless.page = 0  # type: ignore[attr-defined]
    transport = ScriptedTransport()
    transport.routes = defaultdict(lambda: [endless])

    outcome = lookup_one(make_client(transport), SHA1_A)

    assert outcome.calls == MAX_PAGES
    assert len(outcome.alerts) == MAX_PAGES


# --- file_alerts and logging -----------------------------------------------------------------------


def test_file_alerts_refuses_a_value_that_is_not_sha1() -> None:
    transport = ScriptedTransport()

    with pytest.raises(errors.InvalidHash):
        make_client(transport).file_alerts("../../etc", deadline=Deadline(FakeClock(), None))

    assert transport.requests == []


def test_file_alerts_returns_every_alert_with_calls() -> None:
    transport = ScriptedTransport({alerts_url(SHA1_A): [ok({"value": [ALERT]}, "corr-5")]})

    found = make_client(transport).file_alerts(SHA1_A, deadline=Deadline(FakeClock(), 30))

    assert (found.alerts, found.correlation_id, found.calls) == ([ALERT], "corr-5", 1)


def test_one_log_line_per_hash_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    transport = ScriptedTransport({alerts_url(SHA1_A): [ok({"value": [ALERT]}, "corr-1")]})

    list(make_client(transport).lookup([SHA1_A, "nope"]))

    lines = [record.getMessage() for record in caplog.records if record.name == "mde_file_alerts.client"]
    assert len(lines) == 2
    assert lines[0].startswith(f"lookup hash={SHA1_A} sha1={SHA1_A} status=found alerts=1 ")
    assert "calls=1 correlation_id=corr-1" in lines[0]
    assert "status=invalid_hash" in lines[1]
    assert "token-1" not in caplog.text


def test_max_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        make_client(ScriptedTransport(), max_workers=0)
