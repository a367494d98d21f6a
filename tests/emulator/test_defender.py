"""Defender: file alerts and file entities from the fixtures, in the real service's wire format."""

from __future__ import annotations

import json
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.emulator.conftest import DEMO_SHA1, bearer
from tests.support.emulator import DefenderEmulator
from tests.support.fake_clock import FakeClock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INDEX = json.loads((FIXTURES / "defender" / "files.json").read_text(encoding="utf-8"))
UNKNOWN_SHA1 = "0123456789abcdef0123456789abcdef01234567"
ODATA_CONTENT_TYPE = (
    "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
)


def fixture_alert(name: str) -> dict[str, Any]:
    alert: dict[str, Any] = json.loads((FIXTURES / "alerts" / name).read_text(encoding="utf-8"))
    return alert


def get(
    session: requests.Session, emulator: DefenderEmulator, path: str, token: str, **kwargs: Any
) -> requests.Response:
    return session.get(f"{emulator.base_url}{path}", headers=bearer(token), **kwargs)


def assert_envelope(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert uuid.UUID(error["target"])
    return error


class TestFileAlerts:
    @pytest.mark.parametrize("sha1", sorted(INDEX))
    def test_each_known_file_gets_exactly_its_fixture_alerts(
        self, emulator: DefenderEmulator, session: requests.Session, token: str, sha1: str
    ) -> None:
        response = get(session, emulator, f"/api/files/{sha1}/alerts", token)
        assert response.status_code == 200
        assert response.json()["value"] == [fixture_alert(name) for name in INDEX[sha1]["alerts"]]

    def test_the_envelope_carries_the_odata_context_and_the_real_content_type(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        response = get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts", token)
        assert response.headers["Content-Type"] == ODATA_CONTENT_TYPE
        assert response.json()["@odata.context"] == f"{emulator.base_url}/api/$metadata#Alerts"
        assert "@odata.nextLink" not in response.json()

    def test_the_body_is_deflated_when_the_client_accepts_it(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        response = get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts", token, stream=True)
        assert response.headers["Content-Encoding"] == "deflate"
        raw = response.raw.read(decode_content=False)
        assert int(response.headers["Content-Length"]) == len(raw)
        assert json.loads(zlib.decompress(raw))["value"]

    def test_the_body_is_plain_when_the_client_does_not_accept_deflate(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        response = session.get(
            f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts",
            headers={**bearer(token), "Accept-Encoding": "identity"},
        )
        assert "Content-Encoding" not in response.headers
        assert len(response.json()["value"]) == len(INDEX[DEMO_SHA1]["alerts"])

    def test_the_versioned_path_and_upper_case_hashes_work_too(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        response = get(session, emulator, f"/api/v1.0/files/{DEMO_SHA1.upper()}/alerts", token)
        assert len(response.json()["value"]) == len(INDEX[DEMO_SHA1]["alerts"])

    def test_an_unknown_file_is_200_with_no_alerts(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        response = get(session, emulator, f"/api/files/{UNKNOWN_SHA1}/alerts", token)
        assert response.status_code == 200
        assert response.json()["value"] == []

    def test_an_unknown_file_is_404_when_the_older_behaviour_is_chosen(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.unknown_file_status = 404
        response = get(session, emulator, f"/api/files/{UNKNOWN_SHA1}/alerts", token)
        assert_envelope(response, 404, "NotFound")

    def test_a_known_file_without_alerts_is_200_with_none(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        sha1 = next(sha1 for sha1, entry in INDEX.items() if not entry["alerts"])
        emulator.unknown_file_status = 404
        assert get(session, emulator, f"/api/files/{sha1}/alerts", token).json()["value"] == []

    def test_a_sha256_finds_no_alerts_because_the_api_takes_sha1_only(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        sha256 = INDEX[DEMO_SHA1]["sha256"]
        assert get(session, emulator, f"/api/files/{sha256}/alerts", token).json()["value"] == []

    @pytest.mark.parametrize(
        "bad_id",
        ["d41d8cd98f00b204e9800998ecf8427e", "6532ec91d513acc05f43ee0aa3002599729fd3e", "zz" * 20, "%20"],
    )
    def test_an_id_that_is_not_40_or_64_hex_is_400_invalid_hash_value(
        self, emulator: DefenderEmulator, session: requests.Session, token: str, bad_id: str
    ) -> None:
        response = get(session, emulator, f"/api/files/{bad_id}/alerts", token)
        assert_envelope(response, 400, "InvalidHashValue")

    def test_added_files_are_served_until_reset(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        odd_alerts: list[Any] = [{"id": "da1_1", "severity": 3}, "not even an object"]
        emulator.add_file(UNKNOWN_SHA1, odd_alerts)
        assert (
            get(session, emulator, f"/api/files/{UNKNOWN_SHA1}/alerts", token).json()["value"] == odd_alerts
        )
        emulator.reset()
        assert get(session, emulator, f"/api/files/{UNKNOWN_SHA1}/alerts", token).json()["value"] == []

    def test_other_methods_get_a_405_without_a_body(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        response = session.post(f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts", headers=bearer(token))
        assert response.status_code == 405
        assert response.content == b""

    def test_an_unknown_api_path_is_404(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        assert_envelope(get(session, emulator, "/api/machines", token), 404, "NotFound")


class TestFileEntity:
    def test_a_sha256_resolves_to_the_file_and_its_sha1(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        sha256 = INDEX[DEMO_SHA1]["sha256"]
        entity = get(session, emulator, f"/api/files/{sha256}", token).json()
        assert entity["sha1"] == DEMO_SHA1
        assert entity["sha256"] == sha256
        assert entity["md5"] == INDEX[DEMO_SHA1]["md5"]
        assert entity["@odata.context"] == f"{emulator.base_url}/api/$metadata#Files/$entity"

    def test_a_sha1_resolves_too_on_either_path(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        for prefix in ("/api", "/api/v1.0"):
            assert get(session, emulator, f"{prefix}/files/{DEMO_SHA1}", token).json()["sha1"] == DEMO_SHA1

    def test_an_unknown_file_is_404_not_found(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        assert_envelope(get(session, emulator, f"/api/files/{'ab' * 32}", token), 404, "NotFound")


class TestBearerToken:
    def test_no_authorization_header_is_401(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.get(f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts")
        assert_envelope(response, 401, "Unauthorized")

    def test_a_token_the_emulator_never_issued_is_401(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        assert_envelope(
            get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts", "forged"), 401, "Unauthorized"
        )

    def test_expire_tokens_makes_every_issued_token_401_but_new_ones_work(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.expire_tokens()
        error = assert_envelope(
            get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts", token), 401, "Unauthorized"
        )
        assert "expired" in error["message"]
        assert (
            get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts", emulator.issue_token()).status_code
            == 200
        )

    def test_tokens_expire_on_the_injected_clock(
        self, clock: FakeClock, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        clock.advance(3598)
        assert get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts", token).status_code == 200
        clock.advance(1)
        assert get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts", token).status_code == 401

    def test_a_token_for_another_audience_is_403(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        other = emulator.issue_token("https://api.security.microsoft.com/.default")
        assert_envelope(get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts", other), 403, "Forbidden")

    def test_the_accepted_scope_is_configurable(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        emulator.api_scope = "https://api-gcc.securitycenter.microsoft.us/.default"
        gcc = emulator.issue_token()
        commercial = emulator.issue_token("https://api.securitycenter.microsoft.com/.default")
        assert get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts", gcc).status_code == 200
        assert get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts", commercial).status_code == 403


class TestPaging:
    def test_alerts_split_into_pages_linked_by_next_link(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.page_size = 2
        url: str | None = f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts"
        pages: list[list[Any]] = []
        while url is not None:
            document = session.get(url, headers=bearer(token)).json()
            pages.append(document["value"])
            url = document.get("@odata.nextLink")
        assert [len(page) for page in pages] == [2, 2, 1]
        assert [alert for page in pages for alert in page] == [
            fixture_alert(name) for name in INDEX[DEMO_SHA1]["alerts"]
        ]
        assert len(emulator.api_requests) == 3

    def test_a_page_size_covering_everything_gives_one_page(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.page_size = len(INDEX[DEMO_SHA1]["alerts"])
        document = get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts", token).json()
        assert "@odata.nextLink" not in document

    def test_a_bad_skip_token_is_400(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.page_size = 2
        response = get(session, emulator, f"/api/files/{DEMO_SHA1}/alerts?$skiptoken=x", token)
        assert_envelope(response, 400, "BadRequest")
