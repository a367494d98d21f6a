"""Every cloud's authority, API host, scope and portal, checked against Microsoft's published table."""

from __future__ import annotations

import pytest

from mde_file_alerts.clouds import CLOUDS, CloudEndpoints, get_cloud
from mde_file_alerts.errors import ConfigurationError

COMMERCIAL_LOGIN = "https://login.microsoftonline.com"
COMMERCIAL_SCOPE = "https://api.securitycenter.microsoft.com/.default"
COMMERCIAL_PORTAL = "https://security.microsoft.com"
GOV_LOGIN = "https://login.microsoftonline.us"
GOV_API = "https://api-gov.securitycenter.microsoft.us"

# (name, authority_host, api_host, scope, portal_host), written out in full rather than derived, so
# that a mistake in the module's table cannot be mirrored here.
EXPECTED = [
    (
        "commercial",
        COMMERCIAL_LOGIN,
        "https://api.security.microsoft.com",
        COMMERCIAL_SCOPE,
        COMMERCIAL_PORTAL,
    ),
    (
        "commercial_legacy",
        COMMERCIAL_LOGIN,
        "https://api.securitycenter.microsoft.com",
        COMMERCIAL_SCOPE,
        COMMERCIAL_PORTAL,
    ),
    ("us", COMMERCIAL_LOGIN, "https://us.api.security.microsoft.com", COMMERCIAL_SCOPE, COMMERCIAL_PORTAL),
    ("eu", COMMERCIAL_LOGIN, "https://eu.api.security.microsoft.com", COMMERCIAL_SCOPE, COMMERCIAL_PORTAL),
    ("uk", COMMERCIAL_LOGIN, "https://uk.api.security.microsoft.com", COMMERCIAL_SCOPE, COMMERCIAL_PORTAL),
    ("au", COMMERCIAL_LOGIN, "https://au.api.security.microsoft.com", COMMERCIAL_SCOPE, COMMERCIAL_PORTAL),
    ("swa", COMMERCIAL_LOGIN, "https://swa.api.security.microsoft.com", COMMERCIAL_SCOPE, COMMERCIAL_PORTAL),
    ("ina", COMMERCIAL_LOGIN, "https://ina.api.security.microsoft.com", COMMERCIAL_SCOPE, COMMERCIAL_PORTAL),
    ("aea", COMMERCIAL_LOGIN, "https://aea.api.security.microsoft.com", COMMERCIAL_SCOPE, COMMERCIAL_PORTAL),
    (
        "us_legacy",
        COMMERCIAL_LOGIN,
        "https://api-us.securitycenter.microsoft.com",
        COMMERCIAL_SCOPE,
        COMMERCIAL_PORTAL,
    ),
    (
        "eu_legacy",
        COMMERCIAL_LOGIN,
        "https://api-eu.securitycenter.microsoft.com",
        COMMERCIAL_SCOPE,
        COMMERCIAL_PORTAL,
    ),
    (
        "uk_legacy",
        COMMERCIAL_LOGIN,
        "https://api-uk.securitycenter.microsoft.com",
        COMMERCIAL_SCOPE,
        COMMERCIAL_PORTAL,
    ),
    (
        "au_legacy",
        COMMERCIAL_LOGIN,
        "https://api-au.securitycenter.microsoft.com",
        COMMERCIAL_SCOPE,
        COMMERCIAL_PORTAL,
    ),
    (
        "gcc",
        COMMERCIAL_LOGIN,
        "https://api-gcc.securitycenter.microsoft.us",
        "https://api-gcc.securitycenter.microsoft.us/.default",
        COMMERCIAL_PORTAL,
    ),
    ("gcc_high", GOV_LOGIN, GOV_API, f"{GOV_API}/.default", "https://security.microsoft.us"),
    ("dod", GOV_LOGIN, GOV_API, f"{GOV_API}/.default", "https://security.apps.mil"),
]


@pytest.mark.parametrize(("name", "authority", "api", "scope", "portal"), EXPECTED)
def test_each_cloud_has_exactly_the_published_urls(
    name: str, authority: str, api: str, scope: str, portal: str
) -> None:
    assert get_cloud(name) == CloudEndpoints(
        name=name, authority_host=authority, api_host=api, scope=scope, portal_host=portal
    )


def test_the_table_holds_exactly_the_expected_clouds() -> None:
    assert sorted(CLOUDS) == sorted(row[0] for row in EXPECTED)


def test_no_base_url_ends_with_a_slash_and_all_are_https() -> None:
    for cloud in CLOUDS.values():
        for url in (cloud.authority_host, cloud.api_host, cloud.portal_host):
            assert url.startswith("https://")
            assert not url.endswith("/")


@pytest.mark.parametrize("spelling", ["GCC-High", " gcc_high ", "GCC_HIGH"])
def test_names_are_case_insensitive_and_accept_hyphens(spelling: str) -> None:
    assert get_cloud(spelling).name == "gcc_high"


def test_an_unknown_cloud_lists_the_valid_names() -> None:
    with pytest.raises(ConfigurationError) as raised:
        get_cloud("azure_china")

    message = raised.value.user_message
    assert message.startswith("Unknown cloud 'azure_china'; use one of: commercial, commercial_legacy, us,")
    assert "gcc_high" in message
    assert message.endswith("dod.")


def test_the_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CLOUDS["evil"] = CLOUDS["commercial"]  # type: ignore[index]
