"""REST access bound to this app (owner nobody) and the caller's context, against the fake splunkd."""

from __future__ import annotations

import pytest

from mde_file_alerts.errors import CapabilityMissing, ConfigurationError
from mde_file_alerts.splunk.capability import (
    CallerContext,
    capability_missing_message,
    current_context,
    require_capability,
)
from mde_file_alerts.splunk.settings import ACCOUNTS_CONF, PASSWORD_REALM, SETTINGS_CONF
from mde_file_alerts.splunk.splunkd import Splunkd, SplunkdResponse
from tests.splunk.conftest import ACCOUNT, ADMIN, ANALYST, PLAIN_USER, USERS
from tests.support.splunkd import FakeSplunkd


def test_every_relative_path_goes_to_this_apps_namespace_as_nobody(splunkd: FakeSplunkd) -> None:
    Splunkd(splunkd.uri, splunkd.session_key_for(ANALYST)).conf_stanzas(SETTINGS_CONF)

    assert [request.path for request in splunkd.requests] == [
        "/servicesNS/nobody/TA-mde-file-alerts/configs/conf-ta_mde_file_alerts_settings"
    ]


def test_conf_stanzas_inherit_the_shipped_defaults(splunkd: FakeSplunkd) -> None:
    stanzas = Splunkd(splunkd.uri, splunkd.session_key_for(ANALYST)).conf_stanzas(ACCOUNTS_CONF)

    prod = stanzas[ACCOUNT]
    assert (prod["auth_type"], prod["cloud"], prod["timeout"], prod["connect_timeout"]) == (
        "secret",
        "commercial",
        "30",
        "10",
    )
    assert prod["disabled"] is False
    assert "default" in stanzas, "splunkd lists the [default] stanza too; the broker skips it"


def test_more_accounts_than_splunkds_default_page_are_all_read() -> None:
    accounts = {f"tenant{number:02d}": {"tenant_id": "contoso.onmicrosoft.com"} for number in range(45)}
    with FakeSplunkd(users=USERS, accounts=accounts) as splunkd:
        stanzas = Splunkd(splunkd.uri, splunkd.session_key_for(ANALYST)).conf_stanzas(ACCOUNTS_CONF)

    assert set(accounts) <= set(stanzas)


def test_one_stanza_or_none(splunkd: FakeSplunkd) -> None:
    rest = Splunkd(splunkd.uri, splunkd.session_key_for(ANALYST))

    general = rest.conf_stanza(SETTINGS_CONF, "general")
    assert general is not None and general["default_account"] == ""
    assert rest.conf_stanza(SETTINGS_CONF, "no such stanza") is None


def test_passwords_need_list_storage_passwords(splunkd: FakeSplunkd) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Splunkd(splunkd.uri, splunkd.session_key_for(ANALYST)).passwords(PASSWORD_REALM)

    assert raised.value.status == 403
    assert raised.value.user_message == (
        "Could not read the secrets in storage/passwords of the TA-mde-file-alerts app: the session lacks "
        "the permission (HTTP 403)."
    )
    assert "requires capability: list_storage_passwords" in str(raised.value)


def test_passwords_of_the_apps_realm_come_back_masked(splunkd: FakeSplunkd) -> None:
    splunkd.set_password("other", "elsewhere", realm="another-realm")
    for number in range(40):
        splunkd.set_password(f"filler{number}", "x")

    secrets = Splunkd(splunkd.uri, splunkd.system_key).passwords(PASSWORD_REALM)

    assert ACCOUNT in secrets and "other" not in secrets
    assert repr(secrets[ACCOUNT]) == "********"
    assert len(secrets) == 41


def test_an_expired_key_is_named_as_such(splunkd: FakeSplunkd) -> None:
    with pytest.raises(ConfigurationError, match="splunkd did not accept the session key"):
        Splunkd(splunkd.uri, "expired").conf_stanzas(SETTINGS_CONF)


def test_an_empty_session_key_is_refused_before_any_call() -> None:
    with pytest.raises(ConfigurationError, match="no session key"):
        Splunkd("https://127.0.0.1:8089", "")


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        (b'{"messages":[{"type":"ERROR","text":"Not Found"}]}', ["Not Found"]),
        (b'<response><messages><msg type="ERROR">Unauthorized</msg></messages></response>', ["Unauthorized"]),
        (b"", []),
        (b"<html>proxy error", []),
    ],
)
def test_splunkds_messages_are_read_from_json_or_xml(body: bytes, messages: list[str]) -> None:
    assert SplunkdResponse(404, body).messages == messages


# --- the caller -------------------------------------------------------------------------------


def test_the_callers_roles_and_inherited_capabilities(splunkd: FakeSplunkd) -> None:
    analyst = current_context(Splunkd(splunkd.uri, splunkd.session_key_for(ANALYST)))
    admin = current_context(Splunkd(splunkd.uri, splunkd.session_key_for(ADMIN)))
    plain = current_context(Splunkd(splunkd.uri, splunkd.session_key_for(PLAIN_USER)))

    assert analyst.has("mde_file_alerts_lookup") and analyst.has("search")
    assert not analyst.has("list_storage_passwords")
    assert admin.has("mde_file_alerts_lookup") and admin.has("list_storage_passwords")
    assert not plain.has("mde_file_alerts_lookup")


def test_current_context_with_a_dead_key_is_a_configuration_error(splunkd: FakeSplunkd) -> None:
    with pytest.raises(ConfigurationError, match="Could not find out which Splunk user runs this search"):
        current_context(Splunkd(splunkd.uri, "dead"))


def test_require_capability() -> None:
    analyst = CallerContext.from_content(
        {"username": "ana", "roles": ["x"], "capabilities": ["mde_file_alerts_lookup"]}
    )
    single_role = CallerContext.from_content({"username": "bob", "roles": "user", "capabilities": None})

    require_capability(analyst)
    assert single_role.roles == ("user",)
    with pytest.raises(CapabilityMissing) as raised:
        require_capability(single_role)
    assert raised.value.message == capability_missing_message("bob")


def test_the_message_without_a_user_name_still_reads() -> None:
    assert capability_missing_message("").startswith("This Splunk user lacks the capability")
