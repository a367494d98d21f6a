"""The one place that speaks HTTP: a configured requests Session and one error-raising GET.

Everything about the connection is explicit here rather than taken from the environment
(``trust_env = False``): Splunk hosts often export ``REQUESTS_CA_BUNDLE`` or ``HTTPS_PROXY`` for
other tools, and an admin must be able to see from the account alone which CA and proxy are used.
TLS verification is never turned off; an account may only add its own CA bundle.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from mde_file_alerts.account import Account
from mde_file_alerts.clock import Clock, SystemClock
from mde_file_alerts.errors import ApiError, MalformedResponse, TransportError
from mde_file_alerts.version import APP_NAME, app_version

logger = logging.getLogger(__name__)

#: The company token of the partner User-Agent ``MdePartner-<Company>-<Product>/<version>``.
PARTNER_COMPANY = "TAmde"

# Defender documents the error envelope's ``target`` as the correlation id; successful answers
# carry none in the body, so the request id headers Microsoft's front doors add are the fallback.
_CORRELATION_HEADERS = ("request-id", "x-ms-request-id", "client-request-id")
# Credentials embedded in a URL (``scheme://user:password@host``) as some exception texts show them.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
_MAX_DETAIL = 300
# A timeout shortened to fit a deadline still gets long enough for a TLS handshake on a slow link.
_MIN_TIMEOUT = 1.0


def user_agent() -> str:
    """The partner User-Agent Microsoft asks integrations to send."""
    return f"MdePartner-{PARTNER_COMPANY}-{APP_NAME}/{app_version()}"


@dataclass(frozen=True)
class JsonResponse:
    """A successful answer whose body is a JSON object."""

    body: Any
    status: int
    correlation_id: str | None


class Transport:
    """One Session per account; every request has timeouts, TLS verification and the partner User-Agent."""

    def __init__(
        self, account: Account, *, session: requests.Session | None = None, clock: Clock | None = None
    ) -> None:
        self._account = account
        self._clock = clock or SystemClock()
        self._timeout = (account.connect_timeout, account.timeout)
        self.session = session if session is not None else requests.Session()
        self.session.trust_env = False
        # ``or True``: an empty or missing bundle means the system store, never "do not verify".
        self.session.verify = account.ca_bundle or True
        self.session.proxies = account.proxy.requests_proxies() if account.proxy else {}
        self.session.headers["User-Agent"] = user_agent()
        self.session.headers["Accept"] = "application/json"

    def get_json(self, url: str, *, token: str, max_wait: float | None = None) -> JsonResponse:
        """GET ``url`` with a bearer token; return the JSON object or raise an ``MdeError``.

        Raises ``ApiError`` (by status) for non-2xx answers, ``TransportError`` when no answer
        arrives, and ``MalformedResponse`` when a 2xx body is not a JSON object. ``max_wait``
        shortens the account's connect and read timeouts (a caller's deadline is closer).
        """
        timeout = self._timeout
        if max_wait is not None:
            cap = max(_MIN_TIMEOUT, max_wait)
            timeout = (min(timeout[0], cap), min(timeout[1], cap))
        started = self._clock.monotonic()
        try:
            # Redirects are not followed: Defender does not redirect, and a redirect elsewhere must
            # not receive the bearer token.
            response = self.session.get(
                url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=timeout,
                allow_redirects=False,
            )
            content = response.content
        except OSError as exc:
            # requests' own errors are OSErrors too; a bare one means a CA bundle path it cannot read.
            elapsed_ms = (self._clock.monotonic() - started) * 1000
            logger.debug("GET %s failed after %.0f ms: %s", url, elapsed_ms, type(exc).__name__)
            raise TransportError(
                f"Could not reach Defender for Endpoint at {_origin(url)}.",
                method="GET",
                url=url,
                detail=describe_failure(exc, self._secrets(token)),
            ) from None
        elapsed_ms = (self._clock.monotonic() - started) * 1000
        correlation_id = _correlation_id(response.headers)
        logger.debug("GET %s -> %d in %.0f ms", url, response.status_code, elapsed_ms)
        if not 200 <= response.status_code <= 299:
            error = ApiError.from_response(
                response.status_code,
                content,
                method="GET",
                url=url,
                retry_after=parse_retry_after(response.headers.get("Retry-After"), now=self._clock.time()),
            )
            if error.correlation_id is None:
                error.correlation_id = correlation_id
            raise error
        return JsonResponse(
            body=_json_object(content, url=url, status=response.status_code, correlation_id=correlation_id),
            status=response.status_code,
            correlation_id=correlation_id,
        )

    def close(self) -> None:
        self.session.close()

    def _secrets(self, token: str) -> list[str]:
        secrets = [token]
        if self._account.proxy and self._account.proxy.password:
            secrets.append(self._account.proxy.password.reveal())
        return secrets


def describe_failure(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A short text of a connection failure for an error's detail, with no credentials in it."""
    text = f"{type(exc).__name__}: {exc}"
    text = _URL_CREDENTIALS.sub("***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:_MAX_DETAIL]


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait per a ``Retry-After`` value (seconds or HTTP-date); ``None`` if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        # An HTTP-date is always GMT; a date without a zone is not one.
        return None
    return max(0.0, moment.timestamp() - now)


def _json_object(content: bytes, *, url: str, status: int, correlation_id: str | None) -> Any:
    problem = None
    document: Any = None
    if not content.strip():
        problem = "the body is empty"
    else:
        try:
            document = json.loads(content)
        except (ValueError, UnicodeDecodeError):
            problem = f"the body is not JSON (it starts with {_preview(content)})"
        else:
            if not isinstance(document, dict):
                problem = f"the body is a JSON {type(document).__name__}, not an object"
    if problem is None:
        return document
    raise MalformedResponse.because(problem, url=url, status=status, correlation_id=correlation_id)


def _preview(content: bytes) -> str:
    text = content[:40].decode("utf-8", errors="replace")
    return repr(text)


def _correlation_id(headers: Any) -> str | None:
    for name in _CORRELATION_HEADERS:
        value = headers.get(name)
        if value:
            return str(value)
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
