"""An HTTPS emulator of Entra ID and Microsoft Defender for Endpoint's file alerts API, for tests.

    with DefenderEmulator() as emu:
        emu.write_account_file(tmp_path / "account.json")
        emu.inject(ErrorStatus(503), times=2)
        ...
        assert [r.status for r in emu.api_requests] == [503, 503, 200]

Alerts come from tests/fixtures/alerts, and which file has which alerts from
tests/fixtures/defender/files.json. ``python -m tests.support.emulator`` runs it on its own.
"""

from tests.support.emulator.catalog import KnownFile
from tests.support.emulator.defender import DEFENDER_SCOPE
from tests.support.emulator.faults import (
    ConnectionReset,
    ErrorStatus,
    Fault,
    HtmlPage,
    MalformedJson,
    NextLinkLoop,
    SlowResponse,
    UnexpectedJson,
)
from tests.support.emulator.limits import DEFENDER_RATE_LIMITS
from tests.support.emulator.recording import RecordedRequest
from tests.support.emulator.server import DEFAULT_CLIENT_ID, DEFAULT_TENANT_ID, DefenderEmulator

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_TENANT_ID",
    "DEFENDER_RATE_LIMITS",
    "DEFENDER_SCOPE",
    "ConnectionReset",
    "DefenderEmulator",
    "ErrorStatus",
    "Fault",
    "HtmlPage",
    "KnownFile",
    "MalformedJson",
    "NextLinkLoop",
    "RecordedRequest",
    "SlowResponse",
    "UnexpectedJson",
]
