"""Account settings: validation with one complete message, endpoint overrides, and secrets that never show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts.account import Account, ProxySettings, Secret, load_account_file
from mde_file_alerts.errors import ConfigurationError

TENANT = "8f3c2a71-5d4e-4b6a-9c1f-2e7d8a9b0c13"
CLIENT = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
CANARY = "canary-S3cr3t~value.do-not-leak"
THUMBPRINT = "5A0E1C3B7D9F2468ACE013579BDF2468ACE01357"
SOURCE = "accounts/prod.json"


def settings(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "prod", "tenant_id": TENANT, "client_id": CLIENT, "client_secret": CANARY}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def configuration_error(data: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigurationError) as raised:
        Account.from_mapping(data, source=SOURCE, **kwargs)
    message = raised.value.user_message
    assert CANARY not in message
    assert CANARY not in str(raised.value)
    assert CANARY not in repr(raised.value)
    return message


def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "app-cert.pem"
    path.write_text(f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n")
    return path


# --- a valid account ---------------------------------------------------------------------------


def test_a_secret_account_gets_the_commercial_defaults() -> None:
    account = Account.from_mapping(settings(), source=SOURCE)

    assert account.name == "prod"
    assert account.client_secret == Secret(CANARY)
    assert account.auth_type == "secret"
    assert account.cloud == "commercial"
    assert account.authority_url == f"https://login.microsoftonline.com/{TENANT}"
    assert account.api_base_url == "https://api.security.microsoft.com"
    assert account.scope == "https://api.securitycenter.microsoft.com/.default"
    assert account.endpoints.portal_host == "https://security.microsoft.com"
    assert (account.timeout, account.connect_timeout) == (30.0, 10.0)
    assert account.proxy is None
    assert account.ca_bundle is None


def test_a_missing_name_falls_back_to_default() -> None:
    assert Account.from_mapping(settings(name=None), source=SOURCE).name == "default"


def test_a_government_cloud_changes_authority_api_and_scope() -> None:
    account = Account.from_mapping(settings(cloud="GCC-High"), source=SOURCE)

    assert account.cloud == "gcc_high"
    assert account.authority_url == f"https://login.microsoftonline.us/{TENANT}"
    assert account.api_base_url == "https://api-gov.securitycenter.microsoft.us"
    assert account.scope == "https://api-gov.securitycenter.microsoft.us/.default"


def test_a_tenant_can_be_addressed_by_its_domain() -> None:
    account = Account.from_mapping(settings(tenant_id="contoso.onmicrosoft.com"), source=SOURCE)

    assert account.authority_url == "https://login.microsoftonline.com/contoso.onmicrosoft.com"


def test_host_overrides_replace_the_cloud_hosts_but_keep_its_scope() -> None:
    account = Account.from_mapping(
        settings(cloud="eu", api_host="https://127.0.0.1:8443/", authority_host="HTTPS://Login.Example.TEST"),
        source=SOURCE,
    )

    assert account.api_host == "https://127.0.0.1:8443"
    assert account.api_base_url == "https://127.0.0.1:8443"
    assert account.authority_url == f"https://login.example.test/{TENANT}"
    assert account.scope == "https://api.securitycenter.microsoft.com/.default"
    assert account.endpoints.name == "eu"


def test_timeouts_accept_numbers_and_numeric_strings_from_conf_files() -> None:
    account = Account.from_mapping(settings(timeout="45", connect_timeout=2.5), source=SOURCE)

    assert (account.timeout, account.connect_timeout) == (45.0, 2.5)


def test_empty_strings_count_as_absent_as_splunk_conf_files_cannot_say_null() -> None:
    account = Account.from_mapping(
        settings(
            cloud="", api_host="", proxy=" ", ca_bundle="", timeout="", thumbprint="", certificate_path=""
        ),
        source=SOURCE,
    )

    assert account.cloud == "commercial"
    assert account.api_host is None
    assert account.proxy is None
    assert account.timeout == 30.0
    assert account.auth_type == "secret"


def test_a_certificate_account_from_a_key_file(tmp_path: Path) -> None:
    key_path = key_file(tmp_path)
    colon_thumbprint = ":".join(THUMBPRINT[i : i + 2] for i in range(0, 40, 2)).lower()

    account = Account.from_mapping(
        settings(client_secret=None, certificate_path=key_path.name, thumbprint=colon_thumbprint),
        source=SOURCE,
        base_directory=tmp_path,
    )

    assert account.auth_type == "certificate"
    assert account.thumbprint == THUMBPRINT
    assert account.certificate_path == str(key_path)
    assert CANARY in account.private_key_pem().reveal()
    assert CANARY not in repr(account)


def test_a_certificate_account_with_an_inline_private_key() -> None:
    pem = f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----"
    account = Account.from_mapping(
        settings(client_secret=None, private_key=pem, thumbprint=THUMBPRINT), source=SOURCE
    )

    assert account.auth_type == "certificate"
    assert account.private_key_pem() == Secret(pem)


def test_a_key_file_without_a_private_key_is_refused(tmp_path: Path) -> None:
    not_a_key = tmp_path / "cert-only.pem"
    not_a_key.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    account = Account("prod", TENANT, CLIENT, certificate_path=str(not_a_key), thumbprint=THUMBPRINT)

    with pytest.raises(ConfigurationError, match="holds no PEM private key"):
        account.private_key_pem()


def test_credentials_may_be_absent_when_the_caller_keeps_them_elsewhere() -> None:
    account = Account.from_mapping(settings(client_secret=None), source=SOURCE, credentials_required=False)

    assert account.auth_type == "none"
    assert account.client_secret is None


def test_secret_values_may_arrive_already_wrapped() -> None:
    account = Account.from_mapping(settings(client_secret=Secret(CANARY)), source=SOURCE)

    assert account.client_secret == Secret(CANARY)


# --- invalid settings: one message naming the source and every problem -------------------------


def test_unknown_and_missing_keys_are_all_named_in_one_message() -> None:
    message = configuration_error(
        {"client_secret": CANARY, "tenantid": "x", "clientSecret": CANARY, "tenant_id": ""}
    )

    assert message.startswith(f"The Defender account settings in {SOURCE} are not valid: ")
    assert "unknown keys 'clientSecret', 'tenantid' (known keys: name, tenant_id, client_id," in message
    assert "missing required keys 'tenant_id', 'client_id'" in message


def test_a_single_unknown_key_is_singular() -> None:
    assert "unknown key 'proxy_url' (known keys:" in configuration_error(settings(proxy_url="http://p:1"))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"tenant_id": "not a tenant"}, "tenant_id 'not a tenant' is neither a GUID nor a domain name"),
        ({"tenant_id": "common!"}, "tenant_id 'common!' is neither a GUID nor a domain name"),
        ({"client_id": "contoso.onmicrosoft.com"}, "client_id 'contoso.onmicrosoft.com' is not a GUID"),
        ({"client_id": 42}, "client_id must be a string, not a number"),
        ({"cloud": "azure_china"}, "cloud 'azure_china' is not one of commercial, commercial_legacy, us,"),
        ({"timeout": 0}, "timeout must be a positive number of seconds, not '0'"),
        ({"timeout": -3}, "timeout must be a positive number of seconds, not '-3'"),
        ({"connect_timeout": "soon"}, "connect_timeout must be a positive number of seconds, not 'soon'"),
        ({"timeout": True}, "timeout must be a positive number of seconds, not 'True'"),
        ({"timeout": "nan"}, "timeout must be a positive number of seconds, not 'nan'"),
        ({"thumbprint": "abc", "client_secret": None}, "thumbprint 'abc' is not the certificate's SHA-1"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle '/nonexistent/ca.pem' is not a readable file"),
        ({"proxy": 3128}, "proxy must be a URL string or an object, not a number"),
    ],
)
def test_each_invalid_value_gets_a_precise_reason(overrides: dict[str, Any], expected: str) -> None:
    assert expected in configuration_error(settings(**overrides))


@pytest.mark.parametrize("key", ["api_host", "authority_host"])
def test_an_http_override_is_refused_because_msal_refuses_http_authorities(key: str) -> None:
    message = configuration_error(settings(**{key: "http://127.0.0.1:8080"}))

    assert f"{key} 'http://127.0.0.1:8080' must use https:// (msal refuses http:// authorities" in message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://api.example.test/api", "must be a base URL with no path"),
        ("https://api.example.test/?x=1", "must be a base URL with no path"),
        ("api.example.test", "must be a base URL such as https://host or https://host:port"),
        ("https://", "has no host name"),
        ("https://host:99999", "is not a valid URL"),
        ("https://user:pw@host", "must not contain credentials"),
    ],
)
def test_an_override_must_be_an_https_base_url(url: str, reason: str) -> None:
    assert f"api_host {url!r} {reason}" in configuration_error(settings(api_host=url))


def test_a_certificate_needs_a_thumbprint(tmp_path: Path) -> None:
    message = configuration_error(
        settings(client_secret=None, certificate_path=str(key_file(tmp_path))),
    )

    assert "a certificate needs its thumbprint as well as certificate_path or private_key" in message


def test_a_thumbprint_needs_a_key() -> None:
    message = configuration_error(settings(client_secret=None, thumbprint=THUMBPRINT))

    assert "thumbprint is set but neither certificate_path nor private_key is" in message


def test_no_credentials_at_all_is_refused_when_they_are_required() -> None:
    message = configuration_error(settings(client_secret=None))

    assert (
        "missing credentials: set client_secret, or thumbprint with certificate_path or private_key"
        in message
    )


def test_a_secret_and_a_certificate_together_are_ambiguous() -> None:
    message = configuration_error(settings(private_key="-----BEGIN PRIVATE KEY-----", thumbprint=THUMBPRINT))

    assert "give either client_secret or a certificate" in message


def test_every_problem_is_reported_at_once() -> None:
    message = configuration_error(
        settings(tenant_id="?", client_id="?", api_host="http://h", timeout=-1, colour="blue")
    )

    for fragment in (
        "unknown key 'colour'",
        "tenant_id '?'",
        "client_id '?'",
        "api_host 'http://h'",
        "timeout",
    ):
        assert fragment in message
    assert message.endswith(".")


def test_non_object_settings_are_refused() -> None:
    assert configuration_error(["tenant_id"]) == f"{SOURCE}: the account settings must be a JSON object."


def test_a_wrongly_typed_secret_is_refused_without_showing_it() -> None:
    message = configuration_error(settings(client_secret=[CANARY]))

    assert "client_secret must be a string, not a list" in message


def test_long_values_are_shortened_in_messages() -> None:
    message = configuration_error(settings(tenant_id="t" * 5000))

    assert "t" * 59 + "…'" in message
    assert "t" * 61 not in message


# --- secrets never show ------------------------------------------------------------------------


def test_secret_masks_itself_everywhere() -> None:
    secret = Secret(CANARY)

    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret):  # noqa: UP031
        assert shown == "********"
    assert secret.reveal() == CANARY


def test_secret_equality_truthiness_and_hashing() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert not Secret("")
    assert Secret("x")
    assert len({Secret("a"), Secret("a"), Secret("b")}) == 2


def test_an_account_never_shows_its_secrets() -> None:
    account = Account.from_mapping(
        settings(proxy=f"http://svc:{CANARY}@proxy.example.test:3128"), source=SOURCE
    )

    for shown in (repr(account), str(account), repr(account.proxy)):
        assert CANARY not in shown
    assert "client_secret=********" in repr(account)


# --- proxies -----------------------------------------------------------------------------------


def test_a_proxy_url_with_credentials_is_split() -> None:
    proxy = ProxySettings.parse("http://user:pass@proxy.example.test:3128")

    assert proxy.url == "http://proxy.example.test:3128"
    assert proxy.username == "user"
    assert proxy.password == Secret("pass")
    assert proxy.requests_proxies() == {
        "http": "http://user:pass@proxy.example.test:3128",
        "https": "http://user:pass@proxy.example.test:3128",
    }


def test_proxy_credentials_with_special_characters_round_trip() -> None:
    proxy = ProxySettings.parse("http://DOMAIN%5Csvc:p%40ss%3Aw%2Frd@proxy.example.test:8080/")

    assert proxy.username == "DOMAIN\\svc"
    assert proxy.password == Secret("p@ss:w/rd")
    assert proxy.requests_proxies()["https"] == "http://DOMAIN%5Csvc:p%40ss%3Aw%2Frd@proxy.example.test:8080"


def test_a_proxy_without_credentials_or_port() -> None:
    proxy = ProxySettings.parse(" HTTPS://Proxy.Example.TEST ")

    assert proxy == ProxySettings(url="https://proxy.example.test")
    assert proxy.requests_proxies() == {
        "http": "https://proxy.example.test",
        "https": "https://proxy.example.test",
    }


def test_a_proxy_may_be_given_as_an_object() -> None:
    account = Account.from_mapping(
        settings(proxy={"url": "http://10.0.0.5:3128", "username": "svc", "password": CANARY}), source=SOURCE
    )

    assert account.proxy == ProxySettings("http://10.0.0.5:3128", "svc", Secret(CANARY))


def test_an_empty_proxy_object_from_a_conf_file_means_no_proxy() -> None:
    account = Account.from_mapping(
        settings(proxy={"url": "", "username": "", "password": None}), source=SOURCE
    )

    assert account.proxy is None


def test_a_proxy_object_without_a_username_keeps_credentials_from_its_url() -> None:
    account = Account.from_mapping(settings(proxy={"url": "http://svc:pw@10.0.0.5:3128"}), source=SOURCE)

    assert account.proxy == ProxySettings("http://10.0.0.5:3128", "svc", Secret("pw"))


@pytest.mark.parametrize(
    ("proxy", "reason"),
    [
        (
            {"url": "", "username": "svc", "password": Secret(CANARY)},
            "proxy has a username or password but no url",
        ),
        ({"url": "http://10.0.0.5:3128", "password": CANARY}, "proxy has a password but no username"),
        ({"url": 3128}, "proxy url must be a string"),
        ({"url": "http://p:1", "port": 1}, "proxy has unknown key 'port'"),
    ],
)
def test_an_inconsistent_proxy_object_is_refused(proxy: dict[str, Any], reason: str) -> None:
    assert reason in configuration_error(settings(proxy=proxy))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"socks5://u:{CANARY}@proxy:1080", "must start with http:// or https://"),
        (f"http://u:{CANARY}@:3128", "has no host name"),
        (f"http://u:{CANARY}@proxy:3128/path", "must be scheme://host:port with no path"),
        (f"http://u:{CANARY}@proxy:notaport", "is not a valid URL"),
        (f"http://:{CANARY}@proxy:3128", "has a password but no user name"),
    ],
)
def test_an_invalid_proxy_is_refused_without_showing_its_password(value: str, reason: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ProxySettings.parse(value)

    assert reason in raised.value.user_message
    assert CANARY not in str(raised.value)
    assert "********@" in raised.value.user_message
    assert reason in configuration_error(settings(proxy=value))


# --- account files -----------------------------------------------------------------------------


def test_an_account_file_resolves_relative_paths_against_its_directory(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "account.json"
    path.write_text(json.dumps(settings(ca_bundle="ca.pem", cloud="dod")))

    account = load_account_file(path)

    assert account.ca_bundle == str(tmp_path / "ca.pem")
    assert account.cloud == "dod"
    assert account.client_secret == Secret(CANARY)


def test_a_missing_account_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"Account file .*nope\.json does not exist\."):
        load_account_file(tmp_path / "nope.json")


def test_invalid_json_reports_a_position_but_no_content(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    path.write_text('{\n  "client_secret": "' + CANARY + '"\n  "tenant_id": "x"\n}')

    with pytest.raises(ConfigurationError) as raised:
        load_account_file(path)

    assert str(raised.value) == f"{path} is not valid JSON: Expecting ',' delimiter at line 3, column 3."
    assert CANARY not in str(raised.value)


def test_a_duplicated_key_in_an_account_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    path.write_text(json.dumps(settings())[:-1] + ', "client_id": "other"}')

    with pytest.raises(ConfigurationError, match="the key 'client_id' appears more than once"):
        load_account_file(path)


def test_an_account_file_problem_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    path.write_text(json.dumps(settings(cloud="mars")))

    with pytest.raises(ConfigurationError) as raised:
        load_account_file(path)

    assert raised.value.user_message.startswith(f"The Defender account settings in {path} are not valid: ")
    assert raised.value.fatal
