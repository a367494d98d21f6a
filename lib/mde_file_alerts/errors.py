"""Every error the app raises, and the parser for Microsoft's OData error envelope.

Each error has two faces: ``user_message`` is one clean sentence for the Splunk UI (no paths, no
tracebacks, no secrets), and ``str()`` is the fuller form for logs (method, URL, status, the
service's error code and correlation id). URLs in this app never carry credentials: tokens travel
in headers only, and those are never stored on an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class ErrorEnvelope:
    """Microsoft's ``{"error": {"code", "message", "target"}}`` body; ``target`` is the correlation id."""

    code: str | None = None
    message: str | None = None
    target: str | None = None

    @classmethod
    def parse(cls, body: bytes | str | None) -> ErrorEnvelope | None:
        """Parse an error body; ``None`` for empty, non-JSON (HTML from proxies) or other shapes."""
        if not body:
            return None
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        error = document.get("error") if isinstance(document, dict) else None
        if not isinstance(error, dict):
            return None
        return cls(
            code=_text_or_none(error.get("code")),
            message=_text_or_none(error.get("message")),
            target=_text_or_none(error.get("target")),
        )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class MdeError(Exception):
    """Base of every error of this app."""

    #: The sentence shown when the raiser gives none.
    default_message: ClassVar[str] = "The Defender for Endpoint lookup failed."
    #: True when the failure concerns the account as a whole (every further call would fail the
    #: same way), so a front end stops the whole search with one message instead of one per hash.
    fatal: ClassVar[bool] = False
    #: True when trying the same call again later can succeed.
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str | None = None,
        *,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
        code: str | None = None,
        correlation_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.method = method
        self.url = url
        self.status = status
        self.code = code
        self.correlation_id = correlation_id
        self.detail = detail
        super().__init__(self.message)

    @property
    def user_message(self) -> str:
        """One sentence for the Splunk UI, with the identifiers support will ask for."""
        facts = []
        if self.status is not None:
            facts.append(f"HTTP {self.status}")
        if self.code:
            facts.append(f"code {self.code}")
        if self.correlation_id:
            facts.append(f"correlation id {self.correlation_id}")
        if not facts:
            return self.message
        return f"{self.message.rstrip('.')} ({', '.join(facts)})."

    def __str__(self) -> str:
        text = self.user_message
        if self.method and self.url:
            text += f" Request: {self.method} {self.url}."
        if self.detail:
            text += f" Detail: {self.detail}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


# --- configuration and identity ---------------------------------------------------------------


class ConfigurationError(MdeError):
    """The account or app settings are missing or wrong; an admin has to fix them."""

    default_message = "The Defender for Endpoint account is not configured correctly."
    fatal = True


class AccountNotFound(ConfigurationError):
    default_message = "No Defender for Endpoint account is configured."


class CapabilityMissing(MdeError):
    """The Splunk user lacks the app's capability to run lookups."""

    default_message = "You do not have the capability required to query Defender for Endpoint."
    fatal = True


class AuthenticationError(MdeError):
    """Entra ID refused to issue a token (wrong secret, unknown client, expired certificate...)."""

    default_message = "Entra ID refused to issue a token for the Defender for Endpoint API."
    fatal = True

    @property
    def aadsts_code(self) -> str | None:
        """Microsoft's AADSTS error number, e.g. ``AADSTS7000215`` (stored in ``code``)."""
        return self.code


# --- per-hash input ----------------------------------------------------------------------------


class InvalidHash(MdeError):
    """A value that is not a SHA-1; the message says exactly what it is instead."""

    default_message = "The value is not a SHA-1 hash."


# --- responses from the API --------------------------------------------------------------------


class ApiError(MdeError):
    """A non-2xx answer from the Defender API."""

    default_message = "Defender for Endpoint returned an error."

    @classmethod
    def from_response(
        cls,
        status: int,
        body: bytes | str | None,
        *,
        method: str,
        url: str,
        retry_after: float | None = None,
    ) -> ApiError:
        """Build the subclass that matches ``status`` (and the service's error code)."""
        envelope = ErrorEnvelope.parse(body) or ErrorEnvelope()
        error_class = _ERROR_CODE_CLASSES.get(envelope.code or "") or _class_for_status(status)
        kwargs: dict[str, Any] = {
            "method": method,
            "url": url,
            "status": status,
            "code": envelope.code,
            "correlation_id": envelope.target,
            "detail": envelope.message,
        }
        if issubclass(error_class, Throttled):
            return error_class(retry_after=retry_after, **kwargs)
        return error_class(**kwargs)


class BadRequest(ApiError):
    default_message = "Defender for Endpoint rejected the request as malformed."


class InvalidHashValue(BadRequest):
    default_message = "Defender for Endpoint rejected the hash as invalid."


class Unauthorized(ApiError):
    """401: the token is missing, invalid or expired."""

    default_message = "Defender for Endpoint did not accept the access token."


class Forbidden(ApiError):
    """403: a valid token without the permission (or for the wrong audience)."""

    default_message = (
        "Defender for Endpoint denied access: grant the app registration the WindowsDefenderATP "
        "application permission Alert.Read.All (with admin consent) and check the cloud setting."
    )
    fatal = True


class DisabledFeature(Forbidden):
    default_message = "This Defender for Endpoint feature is disabled for the tenant."


class NotFound(ApiError):
    default_message = "Defender for Endpoint does not know this resource."


class Throttled(ApiError):
    """429: over Microsoft's per-application limits."""

    default_message = "Defender for Endpoint throttled the request (rate limit reached)."
    retryable = True

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: Microsoft asks to retry the operation."""

    default_message = "Defender for Endpoint had a server error."
    retryable = True


class UnexpectedStatus(ApiError):
    default_message = "Defender for Endpoint answered with an unexpected status."


_ERROR_CODE_CLASSES: dict[str, type[ApiError]] = {
    "InvalidHashValue": InvalidHashValue,
    "DisabledFeature": DisabledFeature,
}

_STATUS_CLASSES: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    429: Throttled,
}


def _class_for_status(status: int) -> type[ApiError]:
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if 500 <= status <= 599:
        return ServerError
    return UnexpectedStatus


class TransportError(MdeError):
    """The request never got an HTTP answer: connection refused or reset, TLS failure, timeout."""

    default_message = "Could not reach Defender for Endpoint."
    retryable = True


class MalformedResponse(MdeError):
    """A 2xx answer whose body is not the expected JSON envelope."""

    default_message = "Defender for Endpoint returned a response that is not valid alert data."

    @classmethod
    def because(
        cls, problem: str, *, url: str, status: int | None, correlation_id: str | None, method: str = "GET"
    ) -> MalformedResponse:
        """The error for a response whose ``problem`` is stated in a few words."""
        return cls(
            f"{cls.default_message.rstrip('.')}: {problem}.",
            method=method,
            url=url,
            status=status,
            correlation_id=correlation_id,
        )


# --- limits ------------------------------------------------------------------------------------


class BudgetExhausted(MdeError):
    """The client-side rate limiter could not grant a call before the deadline."""

    default_message = (
        "Not looked up: the Defender for Endpoint call budget (100 per minute, 1,500 per hour) "
        "is used up until after the search deadline."
    )


class DeadlineExceeded(MdeError):
    """The caller's overall deadline passed before this lookup could run or finish."""

    default_message = "Not looked up: the search deadline passed first."
