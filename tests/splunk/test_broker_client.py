"""The search command's side: the capability check, the brokered account and its token source."""

from __future__ import annotations

import socket
import time

import pytest

from mde_file_alerts.client import DefenderClient, HashStatus
from mde_file_alerts.errors import (
    AccountNotFound,
    AuthenticationError,
    CapabilityMissing,
    ConfigurationError,
    MdeError,
)
from mde_file_alerts.splunk import BrokerClient, connect_through_broker
from mde_file_alerts.splunk.broker import ASSUMED_LIFETIME_SECONDS
from mde_file_alerts.splunk.broker_client import REFRESH_MARGIN_SECONDS
from mde_file_alerts.splunk.settings import BROKER_PATH
from tests.splunk.conftest import ACCOUNT, ANALYST, PLAIN_USER, account_stanza, fake_splunkd
from tests.support.emulator import DefenderEmulator
from tests.support.fake_clock import FakeClock
from tests.support.splunkd import FakeSplunkd


def broker_posts(splunkd: FakeSplunkd) -> list[dict[str, str]]:
    return [dict(request.form) for request in splunkd.requests_to(BROKER_PATH)]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the capability ---------------------------------------------------------------------------


def test_an_analyst_passes_the_capability_check(splunkd: FakeSplunkd) -> None:
    caller = BrokerClient(splunkd.uri, splunkd.session_key_for(ANALYST)).check_capability()

    assert caller.username == ANALYST
    assert caller.roles == ("mde_file_alerts_analyst",)
    assert caller.has("mde_file_alerts_lookup")


def test_a_user_without_the_capability_gets_one_sentence_naming_it_and_the_role(splunkd: FakeSplunkd) -> None:
    with pytest.raises(CapabilityMissing) as raised:
        connect_through_broker(splunkd.uri, splunkd.session_key_for(PLAIN_USER))

    assert raised.value.user_message == (
        f"The Splunk user '{PLAIN_USER}' lacks the capability 'mde_file_alerts_lookup' needed to query "
        "Microsoft Defender for Endpoint: ask a Splunk admin for the role 'mde_file_alerts_analyst', "
        "which grants it."
    )
    assert raised.value.fatal
    assert broker_posts(splunkd) == [], "the check comes before any token request"


def test_splunkds_own_capability_refusal_becomes_the_same_error(splunkd: FakeSplunkd) -> None:
    client = BrokerClient(splunkd.uri, splunkd.session_key_for(PLAIN_USER))

    with pytest.raises(CapabilityMissing, match="lacks the capability 'mde_file_alerts_lookup'"):
        client.fetch_account()


# --- the account and its tokens ---------------------------------------------------------------


def test_the_brokered_account_has_no_credentials_and_its_tokens_work_with_the_defender_client(
    splunkd: FakeSplunkd, emulator: DefenderEmulator
) -> None:
    account, token_source = connect_through_broker(splunkd.uri, splunkd.session_key_for(ANALYST))

    assert account.name == ACCOUNT
    assert (account.client_secret, account.private_key, account.auth_type) == (None, None, "none")
    assert account.api_base_url == emulator.base_url
    known = next(file for file in emulator.known_files() if file.alerts)
    outcomes = list(DefenderClient(account, token_source=token_source).lookup([known.sha1]))
    assert [outcome.status for outcome in outcomes] == [HashStatus.FOUND]
    assert len(outcomes[0].alerts) == len(known.alerts)
    assert len(broker_posts(splunkd)) == 1, "the token that came with the account was used"


def test_a_named_account_is_asked_for(emulator: DefenderEmulator) -> None:
    with fake_splunkd(
        emulator,
        accounts={"lab": account_stanza(emulator), ACCOUNT: account_stanza(emulator)},
        passwords={"lab": emulator.client_secret, ACCOUNT: emulator.client_secret},
    ) as splunkd:
        brokered = connect_through_broker(splunkd.uri, splunkd.session_key_for(ANALYST), "lab")

    assert brokered.account.name == "lab"


def test_tokens_are_reused_until_shortly_before_they_expire(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    # The fake clock starts in 2023, so the broker's expiry (real time) lies far ahead: move the
    # clock to real time for the token's lifetime to mean something.
    clock.advance(time.time() - clock.time())
    client = BrokerClient(splunkd.uri, splunkd.session_key_for(ANALYST), clock=clock)
    _, token_source = client.fetch_account()
    first = token_source.token()

    clock.advance(ASSUMED_LIFETIME_SECONDS - REFRESH_MARGIN_SECONDS - 5)
    assert token_source.token() == first
    assert len(broker_posts(splunkd)) == 1

    clock.advance(10)
    token_source.token()
    assert broker_posts(splunkd)[-1] == {"force_refresh": "0", "account": ACCOUNT}
    assert len(broker_posts(splunkd)) == 2


def test_force_refresh_goes_to_the_broker_for_the_same_account(
    splunkd: FakeSplunkd, emulator: DefenderEmulator
) -> None:
    _, token_source = connect_through_broker(splunkd.uri, splunkd.session_key_for(ANALYST))
    first = token_source.token()

    refreshed = token_source.token(force_refresh=True)

    assert refreshed != first
    assert broker_posts(splunkd) == [{"force_refresh": "0"}, {"force_refresh": "1", "account": ACCOUNT}]
    assert emulator.token_requests == 2


def test_the_account_stays_the_same_when_the_default_changes_during_a_search(
    emulator: DefenderEmulator,
) -> None:
    with fake_splunkd(
        emulator,
        accounts={"lab": account_stanza(emulator), ACCOUNT: account_stanza(emulator)},
        passwords={"lab": emulator.client_secret, ACCOUNT: emulator.client_secret},
        settings={"general": {"default_account": ACCOUNT}},
    ) as splunkd:
        account, token_source = connect_through_broker(splunkd.uri, splunkd.session_key_for(ANALYST))
        splunkd.set_setting("general", "default_account", "lab")
        token_source.token(force_refresh=True)
        posts = broker_posts(splunkd)

    assert account.name == ACCOUNT
    assert posts[-1]["account"] == ACCOUNT


def test_the_apps_settings_are_readable_with_the_users_session(emulator: DefenderEmulator) -> None:
    with fake_splunkd(
        emulator, settings={"general": {"default_account": "lab"}, "logging": {"log_level": "debug"}}
    ) as splunkd:
        settings = BrokerClient(splunkd.uri, splunkd.session_key_for(PLAIN_USER)).settings()

    assert (settings.default_account, settings.log_level) == ("lab", "DEBUG")


# --- failures become one clean error ----------------------------------------------------------


def test_an_unknown_account_is_account_not_found_naming_the_configured_ones(splunkd: FakeSplunkd) -> None:
    with pytest.raises(AccountNotFound) as raised:
        connect_through_broker(splunkd.uri, splunkd.session_key_for(ANALYST), "staging")

    assert raised.value.user_message == (
        f"No Defender for Endpoint account named 'staging' is configured; configured accounts: {ACCOUNT}."
    )


def test_a_wrong_secret_is_an_authentication_error_with_the_aadsts_code(emulator: DefenderEmulator) -> None:
    wrong = {ACCOUNT: "wrong-secret-value"}
    with fake_splunkd(emulator, passwords=wrong) as splunkd, pytest.raises(AuthenticationError) as raised:
        connect_through_broker(splunkd.uri, splunkd.session_key_for(ANALYST))

    assert raised.value.aadsts_code == "AADSTS7000215"
    assert raised.value.user_message.startswith(
        f"Entra ID refused to issue a token for account '{ACCOUNT}': Invalid client secret provided."
    )
    assert "code AADSTS7000215, correlation id " in raised.value.user_message
    assert "wrong-secret-value" not in str(raised.value) + repr(raised.value)


def test_an_unreachable_splunkd_says_so() -> None:
    with pytest.raises(ConfigurationError) as raised:
        connect_through_broker(f"https://127.0.0.1:{closed_port()}", "some-session-key")

    assert raised.value.user_message.startswith(
        "Could not reach splunkd at https://127.0.0.1:"
    ) and raised.value.user_message.endswith("check that splunkd is running.")


def test_an_expired_session_key_says_so(splunkd: FakeSplunkd) -> None:
    with pytest.raises(ConfigurationError) as raised:
        connect_through_broker(splunkd.uri, "expired-session-key")

    assert "splunkd did not accept the session key" in raised.value.user_message


def test_a_missing_token_endpoint_tells_the_admin_to_restart_splunk(emulator: DefenderEmulator) -> None:
    moved = {"script:mde_file_alerts_token": {"match": "/somewhere/else"}}
    with fake_splunkd(emulator, restmap=moved) as splunkd, pytest.raises(ConfigurationError) as raised:
        connect_through_broker(splunkd.uri, splunkd.session_key_for(ANALYST))

    assert raised.value.status == 404
    assert "restarts Splunk after installing or upgrading it" in raised.value.user_message


def test_a_crashing_handler_is_a_configuration_error_pointing_at_the_log(emulator: DefenderEmulator) -> None:
    with fake_splunkd(
        emulator, restmap={"script:mde_file_alerts_token": {"handler": "mde_file_alerts_token.NoSuchClass"}}
    ) as splunkd:
        with pytest.raises(ConfigurationError) as raised:
            connect_through_broker(splunkd.uri, splunkd.session_key_for(ANALYST))
        assert splunkd.handler_errors

    assert raised.value.status == 500
    assert "ta_mde_file_alerts.log" in raised.value.user_message


@pytest.mark.parametrize("uri", ["", "127.0.0.1:8089", "ftp://127.0.0.1:8089", "https://127.0.0.1"])
def test_a_malformed_splunkd_uri_is_a_configuration_error(uri: str) -> None:
    with pytest.raises(ConfigurationError, match=r"is not a URL such as https://127\.0\.0\.1:8089"):
        BrokerClient(uri, "key")


def test_every_failure_stops_the_whole_search(splunkd: FakeSplunkd) -> None:
    errors: list[MdeError] = []
    for user, account in ((PLAIN_USER, None), (ANALYST, "staging")):
        with pytest.raises(MdeError) as raised:
            connect_through_broker(splunkd.uri, splunkd.session_key_for(user), account)
        errors.append(raised.value)

    assert all(error.fatal for error in errors)
