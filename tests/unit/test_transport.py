"""Transport: the Session's configuration and the mapping of HTTP answers to results and errors.

A scripted requests adapter stands in for the network, so the Session's own behaviour (header
merging, environment handling, content decoding) is the real one.
"""

from __future__ import annotations

import email.utils
import io
import logging
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import pytest
import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.response import HTTPResponse

from mde_file_alerts import errors
from mde_file_alerts.account import Account, ProxySettings, Secret
from mde_file_alerts.transport import Transport, parse_retry_after, user_agent
from mde_file_alerts.version import app_version
from tests.support.fake_clock import FakeClock

TOKEN = "eyJ0eXAi.canary-access-token.sig"
URL = "https://api.example.test/api/files/" + "a" * 40 + "/alerts"

Answer = Union[Callable[[requests.PreparedRequest], requests.Response], Exception]


@dataclass
class Sent:
    request: requests.PreparedRequest
    timeout: Any
    verify: Any
    proxies: Any


@dataclass
class ScriptedAdapter(BaseAdapter):
    answers: list[Answer]
    sent: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(Sent(request, kwargs.get("timeout"), kwargs.get("verify"), kwargs.get("proxies")))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(request)

    def close(self) -> None:
        pass


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
    def build(request: requests.PreparedRequest) -> requests.Response:
        raw = HTTPResponse(body=io.BytesIO(body), headers=headers or {}, status=status, preload_content=False)
        return HTTPAdapter().build_response(request, raw)

    return build


def json_reply(status: int, body: str, **headers: str) -> Answer:
    return reply(status, body.encode(), {"Content-Type": "application/json", **headers})


def make_account(**overrides: Any) -> Account:
    settings: dict[str, Any] = {
        "name": "unit",
        "tenant_id": "11111111-2222-3333-4444-555555555555",
        "client_id": "66666666-7777-8888-9999-000000000000",
        "client_secret": Secret("unit-secret"),
        "api_host": "https://api.example.test",
        "timeout": 31.0,
        "connect_timeout": 7.0,
    }
    settings.update(overrides)
    return Account(**settings)


def make_transport(
    *answers: Answer, clock: FakeClock | None = None, **account: Any
) -> tuple[Transport, ScriptedAdapter]:
    adapter = ScriptedAdapter(list(answers))
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return Transport(make_account(**account), session=session, clock=clock or FakeClock()), adapter


# --- the session --------------------------------------------------------------------------------


def test_session_ignores_the_environment_and_verifies_tls_by_default() -> None:
    transport, _ = make_transport()

    assert transport.session.trust_env is False
    assert transport.session.verify is True
    assert transport.session.proxies == {}


def test_an_empty_ca_bundle_still_means_verification_on() -> None:
    transport, _ = make_transport(ca_bundle="")

    assert transport.session.verify is True


def test_ca_bundle_and_proxy_come_from_the_account() -> None:
    proxy = ProxySettings.parse("http://alice:s3cr%40t@proxy.example.test:3128")
    transport, _ = make_transport(ca_bundle="/etc/mde/ca.pem", proxy=proxy)

    assert transport.session.verify == "/etc/mde/ca.pem"
    assert transport.session.proxies == {
        "http": "http://alice:s3cr%40t@proxy.example.test:3128",
        "https": "http://alice:s3cr%40t@proxy.example.test:3128",
    }


def test_user_agent_is_the_partner_form_with_the_app_version() -> None:
    assert user_agent() == f"MdePartner-TAmde-TA-mde-file-alerts/{app_version()}"
    assert re.fullmatch(r"MdePartner-[A-Za-z0-9]+-TA-mde-file-alerts/\d+\.\d+\.\d+", user_agent())


def test_every_request_carries_token_headers_timeouts_and_verification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The machine's REQUESTS_CA_BUNDLE and proxy variables must not reach the request.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy.example.test:8080")
    transport, adapter = make_transport(json_reply(200, '{"value": []}'), ca_bundle="/etc/mde/ca.pem")

    transport.get_json(URL, token=TOKEN)

    (sent,) = adapter.sent
    assert sent.request.method == "GET"
    assert sent.request.url == URL
    assert sent.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.request.headers["User-Agent"] == user_agent()
    assert sent.request.headers["Accept"] == "application/json"
    assert sent.timeout == (7.0, 31.0)
    assert sent.verify == "/etc/mde/ca.pem"
    assert not sent.proxies


# --- successful answers -----------------------------------------------------------------------


def test_a_json_object_is_returned_with_status_and_correlation_id() -> None:
    transport, _ = make_transport(json_reply(200, '{"value": [{"id": "da1"}]}', **{"request-id": "req-42"}))

    response = transport.get_json(URL, token=TOKEN)

    assert response.body == {"value": [{"id": "da1"}]}
    assert response.status == 200
    assert response.correlation_id == "req-42"


def test_a_deflate_encoded_body_is_decoded() -> None:
    body = zlib.compress(b'{"value": [{"id": "deflated"}]}')
    transport, _ = make_transport(
        reply(200, body, {"Content-Type": "application/json", "Content-Encoding": "deflate"})
    )

    assert transport.get_json(URL, token=TOKEN).body == {"value": [{"id": "deflated"}]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "the body is empty"),
        (b"  \r\n", "the body is empty"),
        (b"<html><body>Gateway</body></html>", "the body is not JSON (it starts with '<html><body>Gateway"),
        (b'{"value": [', "the body is not JSON"),
        (b"[1, 2]", "the body is a JSON list, not an object"),
        (b'"text"', "the body is a JSON str, not an object"),
    ],
)
def test_a_2xx_body_that_is_not_a_json_object_is_malformed(body: bytes, expected: str) -> None:
    transport, _ = make_transport(reply(200, body, {"request-id": "req-7"}))

    with pytest.raises(errors.MalformedResponse) as caught:
        transport.get_json(URL, token=TOKEN)

    assert expected in caught.value.message
    assert caught.value.status == 200
    assert caught.value.url == URL
    assert caught.value.correlation_id == "req-7"


def test_redirects_are_not_followed_so_the_token_stays_with_defender() -> None:
    transport, adapter = make_transport(reply(302, b"", {"Location": "https://elsewhere.example.test/"}))

    with pytest.raises(errors.UnexpectedStatus) as caught:
        transport.get_json(URL, token=TOKEN)

    assert caught.value.status == 302
    assert len(adapter.sent) == 1


# --- error answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (400, "InvalidHashValue", errors.InvalidHashValue),
        (401, "Unauthorized", errors.Unauthorized),
        (403, "Forbidden", errors.Forbidden),
        (404, "NotFound", errors.NotFound),
        (500, "InternalServerError", errors.ServerError),
    ],
)
def test_non_2xx_answers_become_the_matching_error(
    status: int, code: str, error_class: type[errors.ApiError]
) -> None:
    envelope = f'{{"error": {{"code": "{code}", "message": "said the service", "target": "c-1"}}}}'
    transport, _ = make_transport(json_reply(status, envelope))

    with pytest.raises(error_class) as caught:
        transport.get_json(URL, token=TOKEN)

    assert caught.value.status == status
    assert caught.value.code == code
    assert caught.value.correlation_id == "c-1"
    assert caught.value.method == "GET"
    assert caught.value.url == URL


@pytest.mark.parametrize("body", [b"", b"<html><h1>502 Bad Gateway</h1></html>"])
def test_errors_without_an_envelope_still_map_by_status(body: bytes) -> None:
    transport, _ = make_transport(reply(502, body, {"request-id": "hdr-1"}))

    with pytest.raises(errors.ServerError) as caught:
        transport.get_json(URL, token=TOKEN)

    assert caught.value.code is None
    assert caught.value.correlation_id == "hdr-1"


def test_throttled_answer_carries_retry_after_seconds() -> None:
    transport, _ = make_transport(
        json_reply(
            429, '{"error": {"code": "TooManyRequests", "message": "slow down"}}', **{"Retry-After": "17"}
        )
    )

    with pytest.raises(errors.Throttled) as caught:
        transport.get_json(URL, token=TOKEN)

    assert caught.value.retry_after == 17.0


def test_throttled_answer_with_an_http_date_is_measured_from_the_clock() -> None:
    clock = FakeClock()
    when = email.utils.formatdate(clock.time() + 90, usegmt=True)
    transport, _ = make_transport(reply(429, b"", {"Retry-After": when}), clock=clock)

    with pytest.raises(errors.Throttled) as caught:
        transport.get_json(URL, token=TOKEN)

    assert caught.value.retry_after == 90.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        (" 120 ", 120.0),
        ("2.5", 2.5),
        ("-3", None),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),
        ("Tue, 14 Nov 2023 22:13:50", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    # 1_700_000_000 is 2023-11-14T22:13:20Z.
    assert parse_retry_after(value, now=1_700_000_000.0) == expected


# --- no answer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError("Connection reset by peer"),
        requests.ReadTimeout("read timed out"),
        requests.exceptions.SSLError("certificate verify failed"),
        requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"),
        # What requests raises for a CA bundle path that has gone missing.
        OSError("Could not find a suitable TLS CA certificate bundle, invalid path: /gone/ca.pem"),
    ],
)
def test_no_answer_becomes_a_transport_error_naming_the_host(failure: Exception) -> None:
    transport, _ = make_transport(failure)

    with pytest.raises(errors.TransportError) as caught:
        transport.get_json(URL, token=TOKEN)

    assert caught.value.message == "Could not reach Defender for Endpoint at https://api.example.test."
    assert type(failure).__name__ in (caught.value.detail or "")
    assert caught.value.retryable
    assert caught.value.__cause__ is None


def test_transport_error_detail_hides_proxy_credentials_and_the_token() -> None:
    proxy = ProxySettings("http://proxy.example.test:3128", "alice", Secret("pr0xy-pa55"))
    failure = requests.exceptions.ProxyError(
        f"Cannot connect to proxy http://alice:pr0xy-pa55@proxy.example.test:3128 with {TOKEN}"
    )
    transport, _ = make_transport(failure, proxy=proxy)

    with pytest.raises(errors.TransportError) as caught:
        transport.get_json(URL, token=TOKEN)

    shown = f"{caught.value} {caught.value!r} {caught.value.detail}"
    assert "pr0xy-pa55" not in shown
    assert TOKEN not in shown
    assert "alice:" not in shown


def test_the_token_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    transport, _ = make_transport(
        json_reply(200, '{"value": []}'), json_reply(401, "{}"), requests.ConnectionError("x")
    )

    transport.get_json(URL, token=TOKEN)
    for _ in range(2):
        with pytest.raises(errors.MdeError):
            transport.get_json(URL, token=TOKEN)

    assert caplog.records, "the transport logs each request at DEBUG"
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("max_wait", "expected"),
    [(None, (7.0, 31.0)), (12.0, (7.0, 12.0)), (3.0, (3.0, 3.0)), (0.01, (1.0, 1.0))],
)
def test_a_closer_deadline_shortens_the_timeouts(
    max_wait: float | None, expected: tuple[float, float]
) -> None:
    transport, adapter = make_transport(json_reply(200, "{}"))

    transport.get_json(URL, token=TOKEN, max_wait=max_wait)

    assert adapter.sent[0].timeout == expected
