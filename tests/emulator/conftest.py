"""Fixtures for the emulator's own tests: a running emulator and a plain requests Session for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.support.emulator import DefenderEmulator
from tests.support.fake_clock import FakeClock

DEMO_SHA1 = "6532ec91d513acc05f43ee0aa3002599729fd3e1"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[DefenderEmulator]:
    with DefenderEmulator(clock=clock) as emu:
        yield emu
    assert emu.server_errors == []


@pytest.fixture
def session(emulator: DefenderEmulator) -> Iterator[requests.Session]:
    """Trusts the emulator's CA only; ``trust_env`` off because this machine exports REQUESTS_CA_BUNDLE."""
    with requests.Session() as http:
        http.trust_env = False
        http.verify = emulator.ca_bundle
        yield http


@pytest.fixture
def token(emulator: DefenderEmulator) -> str:
    return emulator.issue_token()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
