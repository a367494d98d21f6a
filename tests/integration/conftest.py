"""The client against the HTTPS emulator: one emulator per test, sharing the test's FakeClock.

The emulator's token expiry and rate-limit windows and the client's deadline, backoff and budget
all run on the same FakeClock, so waiting is instant and exact; only the network is real.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from mde_file_alerts.account import Account
from mde_file_alerts.client import DefenderClient
from mde_file_alerts.retry import RetryPolicy
from tests.support.emulator import DefenderEmulator
from tests.support.fake_clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[DefenderEmulator]:
    with DefenderEmulator(clock=clock) as emu:
        yield emu


def emulator_account(emu: DefenderEmulator, auth: str = "secret", **overrides: Any) -> Account:
    """The account a user would write for this emulator, validated like a real account file."""
    return Account.from_mapping(emu.account_data(auth, **overrides), source="emulator account")


def emulator_client(
    emu: DefenderEmulator, clock: FakeClock, *, account: Account | None = None, **options: Any
) -> DefenderClient:
    options.setdefault("retry_policy", RetryPolicy(rng=random.Random(3)))
    return DefenderClient(account or emulator_account(emu), clock=clock, **options)


@pytest.fixture
def client(emulator: DefenderEmulator, clock: FakeClock) -> DefenderClient:
    return emulator_client(emulator, clock)


def sha1_with_alerts(emu: DefenderEmulator, minimum: int = 1) -> str:
    """A SHA-1 from the fixtures that Defender has at least ``minimum`` alerts for."""
    return next(known.sha1 for known in emu.known_files() if len(known.alerts) >= minimum)
