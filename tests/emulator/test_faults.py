"""Injected faults: each kind, scoped to a hash or not, consumed in order."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import requests

from tests.emulator.conftest import DEMO_SHA1, bearer
from tests.support.emulator import (
    DEFENDER_SCOPE,
    ConnectionReset,
    DefenderEmulator,
    ErrorStatus,
    HtmlPage,
    MalformedJson,
    NextLinkLoop,
    SlowResponse,
    UnexpectedJson,
)

OTHER_SHA1 = "583e09022c9e9d2ddd35ff99d457c479972eae35"


def alerts(
    session: requests.Session, emulator: DefenderEmulator, token: str, sha1: str = DEMO_SHA1, **kwargs: Any
) -> requests.Response:
    return session.get(f"{emulator.base_url}/api/files/{sha1}/alerts", headers=bearer(token), **kwargs)


class TestErrorStatus:
    @pytest.mark.parametrize(
        ("status", "code"),
        [
            (500, "InternalServerError"),
            (502, "BadGateway"),
            (503, "ServiceUnavailable"),
            (504, "GatewayTimeout"),
            (405, "MethodNotAllowed"),
        ],
    )
    def test_an_envelope_with_the_status_code_name_and_a_correlation_id(
        self, emulator: DefenderEmulator, session: requests.Session, token: str, status: int, code: str
    ) -> None:
        emulator.inject(ErrorStatus(status))
        response = alerts(session, emulator, token)
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
        assert uuid.UUID(response.json()["error"]["target"])

    def test_an_html_body(self, emulator: DefenderEmulator, session: requests.Session, token: str) -> None:
        emulator.inject(ErrorStatus(502, body="html"))
        response = alerts(session, emulator, token)
        assert response.status_code == 502
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.text.startswith("<!DOCTYPE html>")

    def test_an_empty_body(self, emulator: DefenderEmulator, session: requests.Session, token: str) -> None:
        emulator.inject(ErrorStatus(503, body="empty", retry_after=7))
        response = alerts(session, emulator, token)
        assert response.status_code == 503
        assert response.content == b""
        assert "Content-Type" not in response.headers
        assert response.headers["Retry-After"] == "7"

    def test_an_int_is_short_for_an_error_status(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.inject(500)
        assert alerts(session, emulator, token).status_code == 500

    def test_an_unknown_body_kind_is_refused(self) -> None:
        with pytest.raises(ValueError, match="body must be"):
            ErrorStatus(500, body="xml")


class TestDelivery:
    def test_a_connection_reset_raises_a_connection_error_and_the_next_call_works(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.inject(ConnectionReset())
        with pytest.raises(requests.ConnectionError):
            alerts(session, emulator, token)
        assert alerts(session, emulator, token).status_code == 200
        assert [entry.status for entry in emulator.api_requests] == [None, 200]

    def test_a_slow_response_trips_a_shorter_read_timeout(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.inject(SlowResponse(0.5))
        with pytest.raises(requests.exceptions.ReadTimeout):
            alerts(session, emulator, token, timeout=(2, 0.1))

    def test_a_slow_response_within_the_timeout_is_the_normal_answer(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.inject(SlowResponse(0.15))
        started = time.monotonic()
        response = alerts(session, emulator, token, timeout=(2, 2))
        assert time.monotonic() - started >= 0.15
        assert len(response.json()["value"]) == 5

    def test_stop_does_not_wait_out_a_slow_response(self, session: requests.Session) -> None:
        emulator = DefenderEmulator().start()
        token = emulator.issue_token()
        emulator.inject(SlowResponse(30))
        session.verify = emulator.ca_bundle
        with pytest.raises(requests.exceptions.ReadTimeout):
            alerts(session, emulator, token, timeout=(2, 0.1))
        started = time.monotonic()
        emulator.stop()
        assert time.monotonic() - started < 2


class TestContent:
    def test_malformed_json_is_the_normal_body_cut_short(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        whole = alerts(session, emulator, token).text
        emulator.inject(MalformedJson())
        response = alerts(session, emulator, token)
        assert response.status_code == 200
        assert whole.startswith(response.text) and len(response.text) < len(whole)
        with pytest.raises(ValueError):
            json.loads(response.text)

    @pytest.mark.parametrize("document", [[], [{"id": "x"}], {"foo": 1}, {"value": None}, "value"])
    def test_unexpected_json_is_served_as_given(
        self, emulator: DefenderEmulator, session: requests.Session, token: str, document: object
    ) -> None:
        emulator.inject(UnexpectedJson(document))
        response = alerts(session, emulator, token)
        assert response.status_code == 200
        assert response.json() == document

    def test_a_proxy_html_page_with_200(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.inject(HtmlPage())
        response = alerts(session, emulator, token)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert "<html>" in response.text

    def test_a_next_link_loop_points_at_the_requested_url(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.page_size = 2
        emulator.inject(NextLinkLoop(), times=None)
        first = alerts(session, emulator, token).json()
        again = session.get(first["@odata.nextLink"], headers=bearer(token)).json()
        assert first["@odata.nextLink"] == f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts"
        assert again == first


class TestScopeAndOrder:
    def test_a_hash_scoped_fault_hits_only_that_file_including_by_sha256(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.inject(ErrorStatus(503), sha1=DEMO_SHA1, times=2)
        assert alerts(session, emulator, token, sha1=OTHER_SHA1).status_code == 200
        assert alerts(session, emulator, token).status_code == 503
        known = emulator.find_file(DEMO_SHA1)
        assert known is not None
        sha256 = known.sha256
        entity = session.get(f"{emulator.base_url}/api/files/{sha256}", headers=bearer(token))
        assert entity.status_code == 503
        assert alerts(session, emulator, token).status_code == 200

    def test_faults_are_consumed_in_the_order_injected(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.inject(500)
        emulator.inject(ErrorStatus(502), times=2)
        emulator.inject(HtmlPage())
        responses = [alerts(session, emulator, token) for _ in range(5)]
        assert [response.status_code for response in responses] == [500, 502, 502, 200, 200]
        assert responses[3].headers["Content-Type"].startswith("text/html")
        assert responses[4].json()["value"]
        assert emulator.pending_faults == []

    def test_a_hash_scoped_fault_waits_behind_nothing_for_other_hashes(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.inject(500, sha1=OTHER_SHA1)
        emulator.inject(502)
        assert alerts(session, emulator, token).status_code == 502
        assert alerts(session, emulator, token, sha1=OTHER_SHA1).status_code == 500

    def test_times_none_repeats_until_reset(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.inject(503, times=None)
        assert {alerts(session, emulator, token).status_code for _ in range(4)} == {503}
        emulator.reset()
        assert alerts(session, emulator, token).status_code == 200

    def test_a_faulted_call_skips_the_token_check(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        emulator.inject(502)
        assert alerts(session, emulator, "never-issued").status_code == 502

    def test_faults_on_the_token_endpoint_and_discovery(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        emulator.inject(ErrorStatus(503), on="token")
        emulator.inject(ErrorStatus(500, body="html"), on="discovery")
        form = {
            "grant_type": "client_credentials",
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
            "scope": DEFENDER_SCOPE,
        }
        assert session.post(emulator.token_endpoint, data=form).status_code == 503
        assert session.post(emulator.token_endpoint, data=form).status_code == 200
        discovery = f"{emulator.authority}/v2.0/.well-known/openid-configuration"
        assert session.get(discovery).status_code == 500
        assert session.get(discovery).status_code == 200

    def test_the_recorded_request_names_its_fault(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.inject(MalformedJson())
        alerts(session, emulator, token)
        alerts(session, emulator, token)
        assert [entry.fault for entry in emulator.api_requests] == [MalformedJson(), None]

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"times": 0}, "times"),
            ({"on": "graph"}, "applies to"),
            ({"on": "token", "sha1": DEMO_SHA1}, "hash"),
        ],
    )
    def test_impossible_injections_are_refused(
        self, emulator: DefenderEmulator, arguments: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            emulator.inject(500, **arguments)
