"""The emulator as a whole: lifecycle, request recording, account files, standalone use."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from tests.emulator.conftest import DEMO_SHA1, bearer
from tests.support.emulator import DEFAULT_CLIENT_ID, DEFAULT_TENANT_ID, DefenderEmulator
from tests.support.fake_clock import FakeClock

ROOT = Path(__file__).resolve().parents[2]


class TestLifecycle:
    def test_it_listens_on_an_ephemeral_port_of_127_0_0_1_over_verified_https(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        assert emulator.base_url == f"https://127.0.0.1:{emulator.port}"
        assert emulator.port > 0
        assert session.get(f"{emulator.authority}/v2.0/.well-known/openid-configuration").ok

    def test_localhost_is_in_the_certificate_too(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.get(
            f"https://localhost:{emulator.port}/{emulator.tenant_id}/v2.0/.well-known/openid-configuration"
        )
        assert response.ok

    def test_a_client_without_the_ca_refuses_the_certificate(self, emulator: DefenderEmulator) -> None:
        with requests.Session() as untrusting:
            untrusting.trust_env = False
            with pytest.raises(requests.exceptions.SSLError):
                untrusting.get(f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts")

    def test_stop_closes_the_port_and_removes_the_files(self, session: requests.Session) -> None:
        emulator = DefenderEmulator().start()
        base_url, ca_bundle, port = emulator.base_url, emulator.ca_bundle, emulator.port
        session.verify = ca_bundle
        assert session.get(f"{base_url}/{emulator.tenant_id}/v2.0/.well-known/openid-configuration").ok
        emulator.stop()
        assert not Path(ca_bundle).exists()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        with pytest.raises(RuntimeError, match="not running"):
            _ = emulator.base_url

    def test_two_emulators_run_side_by_side_with_their_own_secrets(self) -> None:
        with DefenderEmulator() as first, DefenderEmulator() as second:
            assert first.port != second.port
            assert first.client_secret != second.client_secret
            assert first.thumbprint == second.thumbprint

    def test_defaults_match_the_fixture_tenant(self, emulator: DefenderEmulator) -> None:
        assert emulator.tenant_id == DEFAULT_TENANT_ID
        assert emulator.client_id == DEFAULT_CLIENT_ID
        assert "8Q~" in emulator.client_secret

    def test_many_threads_at_once(self, emulator: DefenderEmulator, token: str) -> None:
        statuses: list[int] = []

        def worker() -> None:
            with requests.Session() as http:
                http.trust_env = False
                for _ in range(5):
                    response = http.get(
                        f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts",
                        headers=bearer(token),
                        verify=emulator.ca_bundle,
                    )
                    statuses.append(response.status_code)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 40
        assert len(emulator.api_requests) == 40


class TestRecording:
    def test_each_request_is_recorded_with_what_tests_assert_on(
        self, clock: FakeClock, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        session.get(
            f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts?x=1",
            headers={**bearer(token), "User-Agent": "MdePartner-Test/1.0"},
        )
        (entry,) = emulator.requests
        assert (entry.method, entry.path, entry.query) == (
            "GET",
            f"/api/files/{DEMO_SHA1}/alerts",
            {"x": ["1"]},
        )
        assert entry.headers["authorization"] == f"Bearer {token}"
        assert entry.headers["user-agent"] == "MdePartner-Test/1.0"
        assert (entry.endpoint, entry.file_id, entry.status, entry.body) == ("api", DEMO_SHA1, 200, b"")
        assert entry.timestamp == clock.time()

    def test_token_requests_keep_their_form_body(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        session.post(emulator.token_endpoint, data={"grant_type": "client_credentials", "client_id": "x"})
        (entry,) = emulator.requests
        assert entry.endpoint == "token"
        assert entry.form == {"grant_type": "client_credentials", "client_id": "x"}
        assert emulator.token_requests == 1
        assert emulator.api_requests == []

    def test_reset_forgets_requests_but_keeps_tokens_valid(
        self, emulator: DefenderEmulator, session: requests.Session, token: str
    ) -> None:
        emulator.page_size = 1
        session.post(emulator.token_endpoint, data={})
        emulator.reset()
        assert emulator.requests == [] and emulator.token_requests == 0
        assert emulator.page_size is None
        response = session.get(f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts", headers=bearer(token))
        assert response.status_code == 200
        assert len(response.json()["value"]) == 5

    def test_an_unknown_path_is_recorded_as_other(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        assert session.get(f"{emulator.base_url}/favicon.ico").status_code == 404
        assert [entry.endpoint for entry in emulator.requests] == ["other"]


class TestAccountFile:
    def test_secret_account_data_points_both_hosts_at_the_emulator(self, emulator: DefenderEmulator) -> None:
        assert emulator.account_data() == {
            "name": "emulator",
            "tenant_id": emulator.tenant_id,
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
            "cloud": "commercial",
            "authority_host": emulator.base_url,
            "api_host": emulator.base_url,
            "ca_bundle": emulator.ca_bundle,
        }

    def test_certificate_account_data_names_the_key_file_and_thumbprint(
        self, emulator: DefenderEmulator
    ) -> None:
        data = emulator.account_data("certificate")
        assert "client_secret" not in data
        assert Path(data["certificate_path"]).read_text(encoding="ascii") == emulator.private_key_pem
        assert data["thumbprint"] == emulator.thumbprint

    def test_overrides_replace_add_and_with_none_remove(self, emulator: DefenderEmulator) -> None:
        data = emulator.account_data(name="soc", timeout=5, ca_bundle=None)
        assert (data["name"], data["timeout"]) == ("soc", 5)
        assert "ca_bundle" not in data

    def test_write_account_file_writes_that_json(self, emulator: DefenderEmulator, tmp_path: Path) -> None:
        path = emulator.write_account_file(tmp_path / "account.json", cloud="eu")
        assert json.loads(path.read_text(encoding="utf-8")) == emulator.account_data(cloud="eu")


def test_standalone_it_writes_the_account_file_and_serves_until_interrupted(tmp_path: Path) -> None:
    account_file = tmp_path / "emulator.json"
    environment = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), str(ROOT)]),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.emulator", "--port", "0", "--account-file", str(account_file)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert first_line.startswith("Defender emulator listening on https://127.0.0.1:")
        ca_line, account_line, busiest_file_line = (process.stdout.readline() for _ in range(3))
        assert "CA bundle" in ca_line and str(account_file) in account_line
        assert busiest_file_line.split() == [DEMO_SHA1, "5", "alert(s)"]
        account = json.loads(account_file.read_text(encoding="utf-8"))
        base_url = first_line.split()[-1]
        assert account["api_host"] == base_url
        with requests.Session() as http:
            http.trust_env = False
            response = http.post(
                f"{base_url}/{account['tenant_id']}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": account["client_id"],
                    "client_secret": account["client_secret"],
                    "scope": "https://api.securitycenter.microsoft.com/.default",
                },
                verify=account["ca_bundle"],
            )
        assert response.status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
