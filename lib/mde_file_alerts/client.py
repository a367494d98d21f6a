"""The Defender file alerts client: one outcome per requested hash, from a small bounded pool.

Every API call waits for the shared call budget, retries by the retry policy only while the
caller's deadline allows, and a 401 gets exactly one fresh token. Outcomes stream out in input
order while later hashes are still being looked up; at most ``2 * max_workers`` lookups are
queued at any time, so 10,000 hashes never mean 10,000 pending results.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Union

from mde_file_alerts.account import Account
from mde_file_alerts.auth import MsalTokenProvider, TokenSource
from mde_file_alerts.clock import Clock, Deadline, SystemClock
from mde_file_alerts.errors import (
    BudgetExhausted,
    DeadlineExceeded,
    InvalidHash,
    MalformedResponse,
    MdeError,
    NotFound,
    Unauthorized,
)
from mde_file_alerts.hashes import HashInput, parse_hash
from mde_file_alerts.outcome import HashOutcome, HashStatus, status_for
from mde_file_alerts.paging import PageWalk, read_page
from mde_file_alerts.ratelimit import RateLimiter, UnlimitedRateLimiter
from mde_file_alerts.retry import RetryPolicy
from mde_file_alerts.transport import JsonResponse, Transport

__all__ = ["DefenderClient", "FileAlerts", "HashOutcome", "HashStatus"]

logger = logging.getLogger(__name__)

HashValue = Union[str, HashInput]


@dataclass
class FileAlerts:
    """Every alert page of one file, and what it took to get them."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    correlation_id: str | None = None
    calls: int = 0


class _Stopped(Exception):
    """A worker noticed that the lookup run was stopped (fatal error or abandoned iterator)."""


class _Run:
    """State one ``lookup()`` shares with its workers: the first fatal error, and a stop flag."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.fatal: MdeError | None = None
        self.stopped = False

    def fail(self, error: MdeError) -> None:
        with self._changed:
            if self.fatal is None:
                self.fatal = error
            self.stopped = True
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self.stopped = True
            self._changed.notify_all()

    def notify(self, _future: object = None) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, future: Future[HashOutcome]) -> None:
        """Until ``future`` is done or some worker has failed fatally."""
        with self._changed:
            self._changed.wait_for(lambda: future.done() or self.fatal is not None)

    def check(self) -> None:
        if self.stopped:
            raise _Stopped


@dataclass
class _Calls:
    count: int = 0


class DefenderClient:
    """Looks up Defender alerts by file hash for one account."""

    def __init__(
        self,
        account: Account,
        *,
        token_source: TokenSource | None = None,
        transport: Transport | None = None,
        rate_limiter: RateLimiter | None = None,
        retry_policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        max_workers: int = 4,
    ) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self._account = account
        self._clock = clock or SystemClock()
        self._transport = transport or Transport(account, clock=self._clock)
        self._tokens = token_source or MsalTokenProvider(account, self._transport.session)
        # Without a shared limiter the service's own 429s are what limits the pace (and are retried).
        self._limiter = rate_limiter or UnlimitedRateLimiter()
        self._retry = retry_policy or RetryPolicy()
        self._max_workers = max_workers
        self._refresh_lock = threading.Lock()

    # --- public API ---------------------------------------------------------------------------

    def check_access(self) -> None:
        """Get a token now, so that a wrong secret or tenant shows before any lookup."""
        self._tokens.token()

    def file_alerts(self, sha1: str, *, deadline: Deadline) -> FileAlerts:
        """Every alert Defender has for one SHA-1 (all pages); raises ``MdeError`` on failure."""
        query = parse_hash(sha1)
        if not query.is_sha1:
            raise InvalidHash(query.problem)
        return self._file_alerts(query.value, deadline, _Calls(), _Run())

    def lookup(
        self,
        hashes: Iterable[HashValue],
        *,
        timeout: float | None = None,
        resolve_sha256: bool = False,
    ) -> Iterator[HashOutcome]:
        """One outcome per distinct value, in input order, streamed as the pool gets through them.

        ``timeout`` (seconds, from now) bounds the whole run: hashes it leaves no time for are
        reported ``not_looked_up``. A fatal error (bad credentials, no permission) stops the run and
        is raised from the iterator; outcomes already yielded stay valid.
        """
        deadline = Deadline(self._clock, timeout)
        return self._stream(_distinct(hashes), deadline, resolve_sha256)

    # --- the pool -----------------------------------------------------------------------------

    def _stream(
        self, queries: list[HashInput], deadline: Deadline, resolve_sha256: bool
    ) -> Iterator[HashOutcome]:
        run = _Run()
        window = 2 * self._max_workers
        waiting = iter(queries)
        queue: deque[tuple[HashInput, Future[HashOutcome] | HashOutcome]] = deque()
        pool = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="mde-lookup")
        try:
            while True:
                if run.fatal is not None:
                    raise run.fatal
                while len(queue) < window and not run.stopped:
                    query = next(waiting, None)
                    if query is None:
                        break
                    queue.append((query, self._start(pool, run, query, deadline, resolve_sha256)))
                if not queue:
                    return
                _, item = queue.popleft()
                if isinstance(item, Future):
                    run.wait_for(item)
                    if run.fatal is not None:
                        raise run.fatal
                    item = item.result()
                _log(item)
                yield item
        finally:
            # On a fatal error or an abandoned iterator: no new calls; running ones finish on their own.
            run.stop()
            pool.shutdown(wait=False, cancel_futures=True)

    def _start(
        self,
        pool: ThreadPoolExecutor,
        run: _Run,
        query: HashInput,
        deadline: Deadline,
        resolve_sha256: bool,
    ) -> Future[HashOutcome] | HashOutcome:
        if not (query.is_sha1 or (resolve_sha256 and query.is_sha256)):
            return HashOutcome(query, HashStatus.INVALID_HASH, error=InvalidHash(query.problem))
        future = pool.submit(self._lookup_one, run, query, deadline, resolve_sha256)
        future.add_done_callback(run.notify)
        return future

    def _lookup_one(
        self, run: _Run, query: HashInput, deadline: Deadline, resolve_sha256: bool
    ) -> HashOutcome:
        started = self._clock.monotonic()
        calls = _Calls()
        outcome = HashOutcome(query, HashStatus.NOT_LOOKED_UP)
        try:
            sha1 = query.value
            if resolve_sha256 and query.is_sha256:
                outcome.sha256 = query.value
                resolved = self._resolve_sha1(query.value, deadline, calls, run)
                if resolved is None:
                    outcome.status = HashStatus.NOT_FOUND
                    return outcome
                sha1 = resolved
            outcome.sha1 = sha1
            found = self._file_alerts(sha1, deadline, calls, run)
            outcome.alerts = found.alerts
            outcome.correlation_id = found.correlation_id
            outcome.status = HashStatus.FOUND if found.alerts else HashStatus.NOT_FOUND
        except _Stopped:
            outcome.error = DeadlineExceeded("Not looked up: the lookup was stopped.")
        except MdeError as error:
            if error.fatal:
                run.fail(error)
                raise
            outcome.status = status_for(error)
            outcome.error = error
            outcome.correlation_id = outcome.correlation_id or error.correlation_id
        finally:
            outcome.calls = calls.count
            outcome.duration = self._clock.monotonic() - started
        return outcome

    # --- endpoints ----------------------------------------------------------------------------

    def _file_alerts(self, sha1: str, deadline: Deadline, calls: _Calls, run: _Run) -> FileAlerts:
        url = f"{self._account.api_base_url}/api/files/{sha1}/alerts"
        walk = PageWalk(url, self._account.api_base_url)
        result = FileAlerts()
        next_url: str | None = url
        try:
            while next_url is not None:
                response = self._get(next_url, deadline, calls, run)
                page = read_page(
                    response.body,
                    url=next_url,
                    status=response.status,
                    correlation_id=response.correlation_id,
                )
                result.alerts.extend(page.items)
                result.correlation_id = result.correlation_id or response.correlation_id
                next_url = walk.next_url(next_url, page.next_link)
        except NotFound:
            # Older service versions answered 404 for a file they do not know; today it is an empty 200.
            result.alerts = []
        result.calls = calls.count
        return result

    def _resolve_sha1(self, sha256: str, deadline: Deadline, calls: _Calls, run: _Run) -> str | None:
        """The SHA-1 of the file Defender knows by this SHA-256, or None when it knows no such file."""
        url = f"{self._account.api_base_url}/api/files/{sha256}"
        try:
            response = self._get(url, deadline, calls, run)
        except NotFound:
            return None
        value = response.body.get("sha1") if isinstance(response.body, dict) else None
        resolved = parse_hash(value) if isinstance(value, str) else None
        if resolved is None or not resolved.is_sha1:
            raise MalformedResponse(
                "Defender for Endpoint's file entity has no valid 'sha1' field.",
                method="GET",
                url=url,
                status=response.status,
                correlation_id=response.correlation_id,
            )
        return resolved.value

    # --- one call: budget, token, retries ------------------------------------------------------

    def _get(self, url: str, deadline: Deadline, calls: _Calls, run: _Run) -> JsonResponse:
        attempt = 0
        refreshed = False
        token: str | None = None
        while True:
            run.check()
            if deadline.expired():
                raise DeadlineExceeded
            attempt += 1
            try:
                token = token or self._tokens.token()
                if not self._limiter.acquire(deadline):
                    raise BudgetExhausted
                # The budget may have kept this worker waiting while another one failed fatally.
                run.check()
                calls.count += 1
                return self._transport.get_json(url, token=token, max_wait=_finite(deadline.remaining()))
            except Unauthorized:
                if refreshed:
                    raise
                refreshed = True
                token = self._fresh_token(rejected=token)
            except (BudgetExhausted, DeadlineExceeded):
                raise
            except MdeError as error:
                if error.fatal:
                    raise
                delay = self._retry.delay_before_retry(attempt, error)
                if delay is None or not deadline.allows(delay):
                    raise
                logger.debug("retrying %s in %.1f s after %s", url, delay, type(error).__name__)
                self._clock.sleep(delay)

    def _fresh_token(self, rejected: str | None) -> str:
        # Several workers can get a 401 for the same expired token at once; one of them refreshes
        # and the others use its token instead of asking Entra ID again.
        with self._refresh_lock:
            current = self._tokens.token()
            if current != rejected:
                return current
            return self._tokens.token(force_refresh=True)


def _distinct(values: Iterable[HashValue]) -> list[HashInput]:
    seen: set[str] = set()
    queries = []
    for value in values:
        query = value if isinstance(value, HashInput) else parse_hash(value)
        if query.value not in seen:
            seen.add(query.value)
            queries.append(query)
    return queries


def _finite(seconds: float) -> float | None:
    return None if seconds == float("inf") else seconds


def _log(outcome: HashOutcome) -> None:
    logger.info(
        "lookup hash=%s sha1=%s status=%s alerts=%d duration_ms=%.0f calls=%d correlation_id=%s error=%s",
        outcome.query.value if not outcome.query.problem else repr(outcome.query.original[:70]),
        outcome.sha1 or "-",
        outcome.status.value,
        len(outcome.alerts),
        outcome.duration * 1000,
        outcome.calls,
        outcome.correlation_id or "-",
        type(outcome.error).__name__ if outcome.error else "-",
    )
