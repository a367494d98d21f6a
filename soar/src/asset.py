"""The asset form: one Defender for Endpoint tenant and app registration, turned into an ``Account``.

Every value is checked by ``Account.from_mapping``, the same validation the Splunk app applies to
its accounts, so a wrong tenant ID or an ``http://`` override gets the same one-sentence message
in both products. Empty optional fields arrive as ``None`` or ``""``; both count as "not set".
"""

from typing import Any

from soar_sdk.asset import AssetField, BaseAsset

from mde_file_alerts.account import Account
from mde_file_alerts.clouds import CLOUDS, DEFAULT_CLOUD

#: How configuration errors name where the settings came from.
ACCOUNT_SOURCE = "the asset configuration"
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_LOOKUP_TIMEOUT = 120.0


class Asset(BaseAsset):
    """Connection settings of one Defender for Endpoint tenant."""

    tenant_id: str = AssetField(
        description="Directory (tenant) ID: a GUID, or a verified domain such as contoso.onmicrosoft.com"
    )
    client_id: str = AssetField(
        description=(
            "Application (client) ID of the app registration that has the WindowsDefenderATP "
            "application permission Alert.Read.All"
        )
    )
    client_secret: str = AssetField(description="Client secret value of the app registration", sensitive=True)
    cloud: str = AssetField(
        description="Microsoft cloud (or regional API endpoint) of the tenant",
        required=False,
        default=DEFAULT_CLOUD,
        value_list=list(CLOUDS),
    )
    api_host: str = AssetField(
        description="Optional API base URL overriding the cloud's, https://host[:port] with no path",
        required=False,
    )
    authority_host: str = AssetField(
        description="Optional Entra ID sign-in base URL overriding the cloud's, https://host[:port]",
        required=False,
    )
    ca_bundle: str = AssetField(
        description=(
            "Optional path on the SOAR host of a PEM file of CA certificates to trust instead of the "
            "system's (for a TLS-inspecting proxy)"
        ),
        required=False,
    )
    proxy_url: str = AssetField(
        description="Optional HTTP(S) proxy, http://host:port (SOAR's own proxy variables are not used)",
        required=False,
    )
    proxy_username: str = AssetField(description="Optional proxy user name", required=False)
    proxy_password: str = AssetField(description="Optional proxy password", required=False, sensitive=True)
    timeout: float = AssetField(
        description="Read timeout of one HTTP request, in seconds",
        required=False,
        default=DEFAULT_TIMEOUT,
    )
    connect_timeout: float = AssetField(
        description="Connect timeout of one HTTP request, in seconds",
        required=False,
        default=DEFAULT_CONNECT_TIMEOUT,
    )
    lookup_timeout: float = AssetField(
        description=(
            "Longest time one action may spend on a hash, in seconds, waiting for the call budget and "
            "retries included; a throttled lookup that cannot be retried within it fails at once"
        ),
        required=False,
        default=DEFAULT_LOOKUP_TIMEOUT,
    )

    def to_account(self, name: str) -> Account:
        """The validated ``Account``; raises ``ConfigurationError`` naming every problem at once."""
        settings: dict[str, Any] = {
            "name": name,
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "cloud": self.cloud,
            "api_host": self.api_host,
            "authority_host": self.authority_host,
            "ca_bundle": self.ca_bundle,
            "timeout": self.timeout,
            "connect_timeout": self.connect_timeout,
        }
        if self.proxy_url or self.proxy_username or self.proxy_password:
            settings["proxy"] = {
                "url": self.proxy_url or "",
                "username": self.proxy_username,
                "password": self.proxy_password,
            }
        return Account.from_mapping(settings, source=ACCOUNT_SOURCE)
