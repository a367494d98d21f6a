"""The splunkd side against real servers: the fake splunkd (HTTPS) and the Entra/Defender emulator.

The fake runs the app's own restmap.conf handler in-process, so a test's request goes the whole
way: splunklib -> fake splunkd (capability check) -> bin/mde_file_alerts_token.py -> splunkd
again with the system key (conf, storage/passwords) -> msal -> the emulator's token endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.support.emulator import DefenderEmulator
from tests.support.fake_clock import FakeClock
from tests.support.splunkd import FakeSplunkd

ANALYST = "ana"
PLAIN_USER = "bob"
ADMIN = "root"
ACCOUNT = "prod"

USERS: Mapping[str, list[str]] = {
    ANALYST: ["mde_file_alerts_analyst"],
    PLAIN_USER: ["user", "power"],
    ADMIN: ["admin"],
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator() -> Iterator[DefenderEmulator]:
    # Real time on purpose: msal decides whether its cached token is still good by the real clock.
    with DefenderEmulator() as emu:
        yield emu


def account_stanza(emu: DefenderEmulator, **overrides: Any) -> dict[str, Any]:
    """An account stanza (conf values, no secret) pointing at the emulator."""
    stanza: dict[str, Any] = {
        "tenant_id": emu.tenant_id,
        "client_id": emu.client_id,
        "authority_host": emu.base_url,
        "api_host": emu.base_url,
        "ca_bundle": emu.ca_bundle,
    }
    for key, value in overrides.items():
        if value is None:
            stanza.pop(key, None)
        else:
            stanza[key] = value
    return stanza


def fake_splunkd(
    emu: DefenderEmulator,
    *,
    accounts: Mapping[str, Mapping[str, Any]] | None = None,
    passwords: Mapping[str, str] | None = None,
    **options: Any,
) -> FakeSplunkd:
    """A fake splunkd with the test users and, unless given otherwise, one account with its secret."""
    options.setdefault("users", USERS)
    return FakeSplunkd(
        accounts=accounts if accounts is not None else {ACCOUNT: account_stanza(emu)},
        passwords=passwords if passwords is not None else {ACCOUNT: emu.client_secret},
        **options,
    )


@pytest.fixture
def splunkd(emulator: DefenderEmulator) -> Iterator[FakeSplunkd]:
    with fake_splunkd(emulator) as fake:
        yield fake
