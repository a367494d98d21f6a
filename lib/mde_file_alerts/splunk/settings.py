"""This app's own Splunk configuration: where accounts and secrets live, and which account to use.

An account is a stanza of ``ta_mde_file_alerts_accounts.conf`` holding only non-secret settings;
its client secret (or, for certificate accounts, the PEM private key) lives in storage/passwords
under the realm ``TA-mde-file-alerts`` and the account's name, and a proxy password under
``<account>#proxy``. splunkd encrypts those, and only the token broker reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mde_file_alerts.account import Account, Secret
from mde_file_alerts.cache import DEFAULT_TTL_FOUND, DEFAULT_TTL_NOT_FOUND
from mde_file_alerts.errors import AccountNotFound, ConfigurationError
from mde_file_alerts.ratelimit import DEFENDER_WINDOWS
from mde_file_alerts.version import APP_NAME

#: Every REST call of this app is made in its own namespace with this owner, so the settings and
#: secrets read are the app's shared ones, never a user's private copies or the user's search app.
APP_OWNER = "nobody"

ACCOUNTS_CONF = "ta_mde_file_alerts_accounts"
SETTINGS_CONF = "ta_mde_file_alerts_settings"
GENERAL_STANZA = "general"
LOGGING_STANZA = "logging"
CACHE_STANZA = "cache"
BUDGET_STANZA = "budget"

PASSWORD_REALM = APP_NAME
#: storage/passwords user name of an account's proxy password: ``<account>#proxy``.
PROXY_USERNAME_SUFFIX = "#proxy"

#: The capability that lets a user run lookups (and so obtain tokens from the broker).
CAPABILITY = "mde_file_alerts_lookup"
#: The role this app ships for analysts; it grants CAPABILITY on top of the built-in ``user`` role.
ANALYST_ROLE = "mde_file_alerts_analyst"
#: The token broker's REST path, below ``/servicesNS/nobody/<app>/`` (restmap.conf ``match``).
BROKER_PATH = "mde_file_alerts/token"

#: ``auth_type`` values: a client secret, or a certificate whose private key is stored as the secret.
AUTH_TYPES = ("secret", "certificate")
DEFAULT_AUTH_TYPE, CERTIFICATE_AUTH_TYPE = AUTH_TYPES

#: The keys an account stanza may hold; each is documented in README/ta_mde_file_alerts_accounts.conf.spec.
ACCOUNT_KEYS = (
    "tenant_id",
    "client_id",
    "auth_type",
    "thumbprint",
    "cloud",
    "api_host",
    "authority_host",
    "ca_bundle",
    "proxy_url",
    "proxy_username",
    "timeout",
    "connect_timeout",
    "disabled",
)
# splunkd adds its own metadata (eai:acl, eai:appName ...) to every stanza it returns.
_SPLUNKD_METADATA_PREFIX = "eai:"
# Splunk's own name for the stanza every other stanza inherits from.
_DEFAULT_STANZA = "default"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LOG_LEVEL = "INFO"

# Defender's published limits, the most the [budget] settings may allow.
(DEFENDER_CALLS_PER_MINUTE, _), (DEFENDER_CALLS_PER_HOUR, _) = DEFENDER_WINDOWS
# A cache entry older than 30 days says little about a file's alerts today.
MAX_CACHE_TTL = 30 * 24 * 3600.0

# lib/mde_file_alerts/splunk/settings.py -> the app directory is three levels above the package.
APP_DIRECTORY = Path(__file__).resolve().parents[3]

logger = logging.getLogger(__name__)


def conf_file_name(conf: str) -> str:
    return f"{conf}.conf"


def is_real_stanza(name: str) -> bool:
    """False for Splunk's inherited ``[default]`` stanza, which is never an account."""
    return name != _DEFAULT_STANZA


def parse_flag(value: Any) -> bool:
    """A Splunk boolean as splunkd returns it: a JSON boolean, or text such as 1/0, true/false."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y", "on"):
        return True
    if text in ("", "0", "false", "f", "no", "n", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean")


#: Account settings that pass unchanged from a stanza (and from the broker's answer) into Account.
PLAIN_ACCOUNT_KEYS = (
    "tenant_id",
    "client_id",
    "cloud",
    "api_host",
    "authority_host",
    "ca_bundle",
    "timeout",
    "connect_timeout",
)


@dataclass(frozen=True)
class AccountStanza:
    """One account stanza, its values as splunkd returned them (secrets are never in it)."""

    name: str
    settings: Mapping[str, str]
    disabled: bool

    @classmethod
    def from_conf(cls, name: str, content: Mapping[str, Any]) -> AccountStanza:
        """Read a stanza's content; unknown keys (typos) are refused by name, splunkd's own are skipped."""
        source = f"{conf_file_name(ACCOUNTS_CONF)} [{name}]"
        unknown = sorted(
            key for key in content if key not in ACCOUNT_KEYS and not key.startswith(_SPLUNKD_METADATA_PREFIX)
        )
        if unknown:
            raise ConfigurationError(
                f"The Defender account settings in {source} are not valid: unknown "
                f"{'key' if len(unknown) == 1 else 'keys'} {', '.join(repr(key) for key in unknown)} "
                f"(known keys: {', '.join(ACCOUNT_KEYS)})."
            )
        try:
            disabled = parse_flag(content.get("disabled"))
        except ValueError:
            raise ConfigurationError(
                f"The Defender account settings in {source} are not valid: disabled must be 0 or 1."
            ) from None
        settings = {
            key: str(value).strip()
            for key, value in content.items()
            if key in ACCOUNT_KEYS and key != "disabled" and value is not None and str(value).strip()
        }
        return cls(name=name, settings=settings, disabled=disabled)

    @property
    def source(self) -> str:
        return f"{conf_file_name(ACCOUNTS_CONF)} [{self.name}]"

    @property
    def auth_type(self) -> str:
        return self.settings.get("auth_type", DEFAULT_AUTH_TYPE).lower()

    @property
    def secret_username(self) -> str:
        """The storage/passwords user name of the client secret or private key."""
        return self.name

    @property
    def proxy_password_username(self) -> str:
        return self.name + PROXY_USERNAME_SUFFIX

    @property
    def needs_proxy_password(self) -> bool:
        return bool(self.settings.get("proxy_url") and self.settings.get("proxy_username"))

    def to_account(self, secret: Secret | None, proxy_password: Secret | None = None) -> Account:
        """Combine the stanza with its secrets into a validated Account."""
        if self.auth_type not in AUTH_TYPES:
            raise ConfigurationError(
                f"The Defender account settings in {self.source} are not valid: auth_type "
                f"{self.auth_type!r} is not one of {', '.join(AUTH_TYPES)}."
            )
        if not secret:
            what = "private key (PEM)" if self.auth_type == CERTIFICATE_AUTH_TYPE else "client secret"
            raise ConfigurationError(
                f"The Defender account {self.name!r} has no {what} in Splunk's storage/passwords: an admin "
                f"stores it with realm {PASSWORD_REALM!r} and user name {self.secret_username!r} in the "
                f"{APP_NAME} app."
            )
        data: dict[str, Any] = {key: self.settings[key] for key in PLAIN_ACCOUNT_KEYS if key in self.settings}
        data["name"] = self.name
        if self.auth_type == CERTIFICATE_AUTH_TYPE:
            data["private_key"] = secret
            if "thumbprint" in self.settings:
                data["thumbprint"] = self.settings["thumbprint"]
        else:
            data["client_secret"] = secret
        if "proxy_url" in self.settings:
            data["proxy"] = {
                "url": self.settings["proxy_url"],
                "username": self.settings.get("proxy_username"),
                "password": proxy_password,
            }
        elif "proxy_username" in self.settings:
            raise ConfigurationError(
                f"The Defender account settings in {self.source} are not valid: proxy_username is set "
                "but proxy_url is not."
            )
        return Account.from_mapping(data, source=self.source, base_directory=APP_DIRECTORY)


@dataclass(frozen=True)
class AppSettings:
    """``ta_mde_file_alerts_settings.conf``: default account, log level, result cache and call budget."""

    default_account: str | None = None
    log_level: str = DEFAULT_LOG_LEVEL
    #: [cache] enabled: results are kept in the KV store (a search can still bypass with cache=false).
    cache_enabled: bool = True
    #: [cache] ttl_found / ttl_not_found: seconds a result stays valid; 0 keeps no such results.
    cache_ttl_found: float = DEFAULT_TTL_FOUND
    cache_ttl_not_found: float = DEFAULT_TTL_NOT_FOUND
    #: [budget] use_kvstore: count calls in the KV store (every search head of a cluster shares the
    #: count) rather than per host in a file.
    budget_use_kvstore: bool = True
    #: [budget] calls_per_minute / calls_per_hour: at most Defender's limits; lower leaves room for
    #: other tools that use the same app registration.
    calls_per_minute: int = DEFENDER_CALLS_PER_MINUTE
    calls_per_hour: int = DEFENDER_CALLS_PER_HOUR

    @property
    def budget_windows(self) -> tuple[tuple[int, float], ...]:
        """The call budget as rate-limiter windows: (calls, per seconds)."""
        return ((self.calls_per_minute, 60.0), (self.calls_per_hour, 3600.0))

    @classmethod
    def from_stanzas(cls, stanzas: Mapping[str, Mapping[str, Any]]) -> AppSettings:
        """Read every stanza this class knows from the conf file's stanzas (name -> content)."""
        return cls.from_conf(
            stanzas.get(GENERAL_STANZA),
            stanzas.get(LOGGING_STANZA),
            cache=stanzas.get(CACHE_STANZA),
            budget=stanzas.get(BUDGET_STANZA),
        )

    @classmethod
    def from_conf(
        cls,
        general: Mapping[str, Any] | None,
        logging_stanza: Mapping[str, Any] | None,
        *,
        cache: Mapping[str, Any] | None = None,
        budget: Mapping[str, Any] | None = None,
    ) -> AppSettings:
        """Settings from the stanzas' contents; an unusable value is logged and its default taken."""
        default_account = str((general or {}).get("default_account") or "").strip() or None
        level = str((logging_stanza or {}).get("log_level") or "").strip().upper() or DEFAULT_LOG_LEVEL
        if level not in LOG_LEVELS:
            _warn_default(
                LOGGING_STANZA, "log_level", level, f"one of {', '.join(LOG_LEVELS)}", DEFAULT_LOG_LEVEL
            )
            level = DEFAULT_LOG_LEVEL
        cache, budget = cache or {}, budget or {}
        return cls(
            default_account=default_account,
            log_level=level,
            cache_enabled=_flag_setting(CACHE_STANZA, cache, "enabled", default=True),
            cache_ttl_found=_seconds_setting(CACHE_STANZA, cache, "ttl_found", DEFAULT_TTL_FOUND),
            cache_ttl_not_found=_seconds_setting(CACHE_STANZA, cache, "ttl_not_found", DEFAULT_TTL_NOT_FOUND),
            budget_use_kvstore=_flag_setting(BUDGET_STANZA, budget, "use_kvstore", default=True),
            calls_per_minute=_calls_setting(
                BUDGET_STANZA, budget, "calls_per_minute", DEFENDER_CALLS_PER_MINUTE
            ),
            calls_per_hour=_calls_setting(BUDGET_STANZA, budget, "calls_per_hour", DEFENDER_CALLS_PER_HOUR),
        )


def _setting_text(content: Mapping[str, Any], key: str) -> str:
    value = content.get(key)
    return "" if value is None else str(value).strip()


def _warn_default(stanza: str, key: str, value: Any, expected: str, default: Any) -> None:
    logger.warning(
        "%s [%s] %s=%r is not %s; using %s.",
        conf_file_name(SETTINGS_CONF),
        stanza,
        key,
        value,
        expected,
        default,
    )


def _flag_setting(stanza: str, content: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = content.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        return parse_flag(value)
    except ValueError:
        _warn_default(stanza, key, value, "a boolean (true or false)", str(default).lower())
        return default


def _seconds_setting(stanza: str, content: Mapping[str, Any], key: str, default: float) -> float:
    text = _setting_text(content, key)
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds <= MAX_CACHE_TTL:  # also refuses NaN and infinity
        _warn_default(
            stanza, key, text, f"a number of seconds from 0 to {MAX_CACHE_TTL:.0f}", f"{default:.0f}"
        )
        return default
    return seconds


def _calls_setting(stanza: str, content: Mapping[str, Any], key: str, default: int) -> int:
    text = _setting_text(content, key)
    if not text:
        return default
    try:
        calls = int(text)
    except ValueError:
        calls = 0
    if not 1 <= calls <= default:
        _warn_default(stanza, key, text, f"a whole number from 1 to Defender's limit of {default}", default)
        return default
    return calls


def is_disabled(content: Mapping[str, Any]) -> bool:
    """Whether a stanza is switched off; an unreadable flag counts as enabled so it gets validated."""
    try:
        return parse_flag(content.get("disabled"))
    except ValueError:
        return False


def choose_account(
    requested: str | None, settings: AppSettings, stanzas: Mapping[str, Mapping[str, Any]]
) -> str:
    """The account to use: the one asked for, else the default, else the only enabled one.

    ``stanzas`` maps each account stanza's name to its content (Splunk's [default] excluded).
    """
    enabled = sorted(name for name, content in stanzas.items() if not is_disabled(content))
    if requested:
        if requested not in stanzas:
            raise AccountNotFound(
                f"No Defender for Endpoint account named {requested!r} is configured; {_configured(enabled)}"
            )
        return requested
    if settings.default_account:
        if settings.default_account not in stanzas:
            raise AccountNotFound(
                f"The default account {settings.default_account!r} (default_account in "
                f"{conf_file_name(SETTINGS_CONF)} [{GENERAL_STANZA}]) is not configured; "
                + _configured(enabled)
            )
        return settings.default_account
    if len(enabled) == 1:
        return enabled[0]
    if not enabled:
        raise AccountNotFound(
            "No Defender for Endpoint account is configured: an admin adds one to "
            f"{conf_file_name(ACCOUNTS_CONF)} and stores its secret in storage/passwords "
            "(see the app's README)."
        )
    raise AccountNotFound(
        f"Several Defender for Endpoint accounts are configured ({', '.join(enabled)}) and none is the "
        f"default: name one with account=<name>, or an admin sets default_account in "
        f"{conf_file_name(SETTINGS_CONF)} [{GENERAL_STANZA}]."
    )


def _configured(names: list[str]) -> str:
    if not names:
        return "no account is configured yet (an admin adds one as described in the app's README)."
    return f"configured accounts: {', '.join(names)}."
