"""Account stanzas, app settings and the choice of account (pure functions, no splunkd)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mde_file_alerts.account import ProxySettings, Secret
from mde_file_alerts.errors import AccountNotFound, ConfigurationError
from mde_file_alerts.splunk.settings import (
    APP_DIRECTORY,
    AccountStanza,
    AppSettings,
    choose_account,
    parse_flag,
)

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"
THUMBPRINT = "AB" * 20


def stanza(name: str = "prod", **content: Any) -> AccountStanza:
    values: dict[str, Any] = {"tenant_id": TENANT, "client_id": CLIENT}
    values.update(content)
    return AccountStanza.from_conf(name, values)


# --- reading a stanza -------------------------------------------------------------------------


def test_splunkds_metadata_is_skipped_and_empty_values_count_as_unset() -> None:
    read = stanza(**{"eai:acl": None, "eai:appName": "TA-mde-file-alerts", "api_host": "", "cloud": " eu "})

    assert dict(read.settings) == {"tenant_id": TENANT, "client_id": CLIENT, "cloud": "eu"}
    assert read.disabled is False


def test_unknown_keys_are_refused_by_name() -> None:
    with pytest.raises(ConfigurationError) as raised:
        stanza(tennant_id=TENANT, clientsecret="oops")

    message = raised.value.message
    assert message.startswith(
        "The Defender account settings in ta_mde_file_alerts_accounts.conf [prod] are not valid: "
        "unknown keys 'clientsecret', 'tennant_id'"
    )
    assert "oops" not in message


@pytest.mark.parametrize(
    ("value", "disabled"), [(True, True), (False, False), ("1", True), ("0", False), (None, False)]
)
def test_disabled_is_read_as_splunkd_reports_it(value: Any, disabled: bool) -> None:
    assert stanza(disabled=value).disabled is disabled


def test_an_unreadable_disabled_flag_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="disabled must be 0 or 1"):
        stanza(disabled="sometimes")


# --- stanza + secret = Account ----------------------------------------------------------------


def test_a_secret_account_gets_the_stored_secret_as_client_secret() -> None:
    account = stanza(cloud="gcc_high", timeout="45", connect_timeout="5").to_account(Secret("s3cr3t"))

    assert account.name == "prod"
    assert account.client_secret == Secret("s3cr3t")
    assert account.auth_type == "secret"
    assert (account.cloud, account.timeout, account.connect_timeout) == ("gcc_high", 45.0, 5.0)


def test_a_certificate_account_gets_the_stored_secret_as_its_private_key() -> None:
    account = stanza(auth_type="certificate", thumbprint=THUMBPRINT).to_account(
        Secret("-----BEGIN PRIVATE KEY-----")
    )

    assert account.private_key == Secret("-----BEGIN PRIVATE KEY-----")
    assert account.client_secret is None
    assert (account.auth_type, account.thumbprint) == ("certificate", THUMBPRINT)


def test_a_thumbprint_is_ignored_for_a_secret_account() -> None:
    # [default] gives every stanza the key; only certificate accounts use it.
    account = stanza(auth_type="secret", thumbprint=THUMBPRINT).to_account(Secret("s3cr3t"))

    assert (account.auth_type, account.thumbprint) == ("secret", None)


def test_a_certificate_account_without_thumbprint_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="needs its thumbprint"):
        stanza(auth_type="certificate").to_account(Secret("-----BEGIN PRIVATE KEY-----"))


@pytest.mark.parametrize(
    ("auth_type", "what"), [("secret", "client secret"), ("certificate", "private key (PEM)")]
)
def test_a_missing_secret_says_where_it_belongs(auth_type: str, what: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        stanza(auth_type=auth_type, thumbprint=THUMBPRINT).to_account(None)

    assert raised.value.message == (
        f"The Defender account 'prod' has no {what} in Splunk's storage/passwords: an admin stores it with "
        "realm 'TA-mde-file-alerts' and user name 'prod' in the TA-mde-file-alerts app."
    )


def test_an_unknown_auth_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="auth_type 'password' is not one of secret, certificate"):
        stanza(auth_type="password").to_account(Secret("s3cr3t"))


def test_the_proxy_password_joins_the_proxy_settings() -> None:
    read = stanza(proxy_url="http://proxy.example.test:3128", proxy_username="svc")
    account = read.to_account(Secret("s3cr3t"), Secret("proxy-pass"))

    assert read.needs_proxy_password
    assert read.proxy_password_username == "prod#proxy"
    assert account.proxy == ProxySettings("http://proxy.example.test:3128", "svc", Secret("proxy-pass"))


def test_a_proxy_user_without_a_proxy_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="proxy_username is set but proxy_url is not"):
        stanza(proxy_username="svc").to_account(Secret("s3cr3t"))


def test_a_relative_ca_bundle_is_found_in_the_app_directory() -> None:
    account = stanza(ca_bundle="default/app.conf").to_account(Secret("s3cr3t"))

    assert account.ca_bundle == str(APP_DIRECTORY / "default" / "app.conf")


def test_invalid_values_are_reported_with_the_stanza_and_not_the_secret() -> None:
    with pytest.raises(ConfigurationError) as raised:
        stanza(client_id="not-a-guid", timeout="soon").to_account(Secret("s3cr3t"))

    assert "ta_mde_file_alerts_accounts.conf [prod]" in raised.value.message
    assert "client_id 'not-a-guid' is not a GUID" in raised.value.message
    assert "timeout must be a positive number of seconds" in raised.value.message
    assert "s3cr3t" not in str(raised.value)


# --- app settings -----------------------------------------------------------------------------


def test_app_settings_default_to_no_default_account_and_info() -> None:
    assert AppSettings.from_conf(None, None) == AppSettings(default_account=None, log_level="INFO")
    assert AppSettings.from_conf({"default_account": "  "}, {"log_level": ""}) == AppSettings(None, "INFO")


def test_app_settings_are_read() -> None:
    assert AppSettings.from_conf({"default_account": "lab"}, {"log_level": "debug"}) == AppSettings(
        "lab", "DEBUG"
    )


def test_an_unknown_log_level_falls_back_to_info_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mde_file_alerts.splunk.settings"):
        settings = AppSettings.from_conf(None, {"log_level": "chatty"})

    assert settings.log_level == "INFO"
    assert "log_level='CHATTY' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in caplog.text


# --- which account ----------------------------------------------------------------------------

ENABLED: dict[str, dict[str, Any]] = {"prod": {"disabled": False}, "lab": {"disabled": "0"}}


def test_the_requested_account_wins() -> None:
    assert choose_account("lab", AppSettings("prod"), ENABLED) == "lab"


def test_the_default_account_is_used_when_none_is_requested() -> None:
    assert choose_account(None, AppSettings("lab"), ENABLED) == "lab"


def test_the_only_enabled_account_is_used_when_there_is_no_default() -> None:
    stanzas = {"prod": {"disabled": False}, "old": {"disabled": True}}
    assert choose_account(None, AppSettings(), stanzas) == "prod"


def test_a_default_that_does_not_exist_is_named() -> None:
    with pytest.raises(AccountNotFound) as raised:
        choose_account(None, AppSettings("staging"), ENABLED)

    assert raised.value.message == (
        "The default account 'staging' (default_account in ta_mde_file_alerts_settings.conf [general]) is "
        "not configured; configured accounts: lab, prod."
    )


def test_several_accounts_without_default_need_a_choice() -> None:
    with pytest.raises(AccountNotFound) as raised:
        choose_account(None, AppSettings(), ENABLED)

    assert raised.value.message == (
        "Several Defender for Endpoint accounts are configured (lab, prod) and none is the default: name one "
        "with account=<name>, or an admin sets default_account in ta_mde_file_alerts_settings.conf [general]."
    )


def test_no_enabled_account_at_all() -> None:
    with pytest.raises(AccountNotFound, match="No Defender for Endpoint account is configured"):
        choose_account(None, AppSettings(), {"old": {"disabled": True}})


def test_an_unknown_requested_account_lists_the_configured_ones_or_says_there_are_none() -> None:
    with pytest.raises(AccountNotFound, match=r"configured accounts: lab, prod\.$"):
        choose_account("staging", AppSettings(), ENABLED)
    with pytest.raises(AccountNotFound, match="no account is configured yet"):
        choose_account("staging", AppSettings(), {})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (0, False),
        (1.0, True),
        ("TRUE", True),
        ("yes", True),
        ("off", False),
        ("", False),
        (None, False),
    ],
)
def test_parse_flag_reads_splunk_booleans(value: Any, expected: bool) -> None:
    assert parse_flag(value) is expected


def test_parse_flag_refuses_anything_else() -> None:
    with pytest.raises(ValueError, match="'perhaps' is not a boolean"):
        parse_flag("perhaps")
