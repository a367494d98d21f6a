"""One typed, validated object for a Defender account's settings, whatever they were loaded from.

Settings arrive as loosely typed mappings (a JSON file for the CLI and tests, Splunk .conf values
and storage/passwords for the app); ``Account.from_mapping`` checks all of them at once and reports
every problem in one message that names the source, so an admin fixes the file in one go. Secrets
are wrapped in ``Secret`` so that no repr, str, log line or error message can show them.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

from mde_file_alerts.clouds import CLOUDS, DEFAULT_CLOUD, CloudEndpoints, get_cloud
from mde_file_alerts.errors import ConfigurationError

AuthType = Literal["secret", "certificate", "none"]

_MASK = "********"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# A tenant may also be addressed by one of its verified domains, e.g. contoso.onmicrosoft.com.
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$")
_THUMBPRINT = re.compile(r"^[0-9a-fA-F]{40}$")
_MAX_SHOWN = 60


class Secret:
    """A string that never shows itself: repr and str are masked; ``reveal()`` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return _MASK

    def __str__(self) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant-time, so comparing a secret does not leak how much of it matched.
        return hmac.compare_digest(self._value.encode("utf-8"), other._value.encode("utf-8"))

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class ProxySettings:
    """An HTTP(S) proxy; credentials are kept apart from the URL so the URL can be logged."""

    url: str
    username: str | None = None
    password: Secret | None = None

    @classmethod
    def parse(cls, value: str) -> ProxySettings:
        """Accept ``scheme://[user[:password]@]host[:port]`` (http or https); credentials are split out."""
        text = value.strip()
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise ConfigurationError(f"The proxy {_redacted_proxy(text)} is not a valid URL.") from None
        shown = _redacted_proxy(text)
        if parts.scheme.lower() not in ("http", "https"):
            raise ConfigurationError(
                f"The proxy {shown} must start with http:// or https:// "
                "(other proxy kinds are not supported)."
            )
        if not parts.hostname:
            raise ConfigurationError(f"The proxy {shown} has no host name.")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigurationError(f"The proxy {shown} must be scheme://host:port with no path.")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        url = f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")
        username = unquote(parts.username) if parts.username else None
        password = Secret(unquote(parts.password)) if parts.password else None
        if password and not username:
            raise ConfigurationError(f"The proxy {shown} has a password but no user name.")
        return cls(url=url, username=username, password=password)

    def requests_proxies(self) -> dict[str, str]:
        """The ``proxies`` mapping for requests (http and https); the one place the password is revealed."""
        proxy_url = self.url
        if self.username:
            credentials = quote(self.username, safe="")
            if self.password:
                credentials += ":" + quote(self.password.reveal(), safe="")
            scheme, _, rest = self.url.partition("://")
            proxy_url = f"{scheme}://{credentials}@{rest}"
        return {"http": proxy_url, "https": proxy_url}


_SECRET_KEYS = ("client_secret", "private_key")
_KNOWN_KEYS = (
    "name",
    "tenant_id",
    "client_id",
    "client_secret",
    "private_key",
    "certificate_path",
    "thumbprint",
    "cloud",
    "api_host",
    "authority_host",
    "ca_bundle",
    "proxy",
    "timeout",
    "connect_timeout",
)
_REQUIRED_KEYS = ("tenant_id", "client_id")
DEFAULT_ACCOUNT_NAME = "default"


@dataclass(frozen=True)
class Account:
    """Everything needed to get a token and call the Defender API for one tenant and app registration."""

    name: str
    tenant_id: str
    client_id: str
    client_secret: Secret | None = None
    private_key: Secret | None = None
    certificate_path: str | None = None
    thumbprint: str | None = None
    cloud: str = DEFAULT_CLOUD
    api_host: str | None = None
    authority_host: str | None = None
    ca_bundle: str | None = None
    proxy: ProxySettings | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0

    @property
    def endpoints(self) -> CloudEndpoints:
        """The cloud's endpoints with ``api_host``/``authority_host`` overrides applied (scope unchanged)."""
        endpoints = get_cloud(self.cloud)
        if self.api_host:
            endpoints = replace(endpoints, api_host=self.api_host.rstrip("/"))
        if self.authority_host:
            endpoints = replace(endpoints, authority_host=self.authority_host.rstrip("/"))
        return endpoints

    @property
    def authority_url(self) -> str:
        return f"{self.endpoints.authority_host}/{self.tenant_id}"

    @property
    def api_base_url(self) -> str:
        return self.endpoints.api_host

    @property
    def scope(self) -> str:
        return self.endpoints.scope

    @property
    def auth_type(self) -> AuthType:
        """``certificate`` with a thumbprint and a key (inline or file), else ``secret`` or ``none``."""
        if self.thumbprint and (self.private_key or self.certificate_path):
            return "certificate"
        if self.client_secret:
            return "secret"
        return "none"

    def private_key_pem(self) -> Secret:
        """The certificate's PEM private key: ``private_key`` if set, else read from ``certificate_path``."""
        if self.private_key:
            return self.private_key
        if not self.certificate_path:
            raise ConfigurationError(
                f"Account {self.name!r} has no private key: set private_key or certificate_path."
            )
        try:
            text = Path(self.certificate_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(
                f"Account {self.name!r}: cannot read certificate_path {self.certificate_path!r} "
                f"({type(error).__name__})."
            ) from None
        if "PRIVATE KEY-----" not in text:
            raise ConfigurationError(
                f"Account {self.name!r}: certificate_path {self.certificate_path!r} holds no PEM private key."
            )
        return Secret(text)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        source: str,
        credentials_required: bool = True,
        base_directory: str | os.PathLike[str] | None = None,
    ) -> Account:
        """Validate settings and build an Account; every problem is reported in one ConfigurationError.

        ``credentials_required=False`` skips the secret-or-certificate requirement, for callers whose
        secret is kept elsewhere (Splunk's storage/passwords). Relative ``ca_bundle`` and
        ``certificate_path`` are resolved against ``base_directory`` when given. Empty strings count
        as absent (Splunk .conf files cannot express null). Values of secret keys are never quoted.
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{source}: the account settings must be a JSON object.")
        return _AccountReader(data, source, base_directory).read(credentials_required)


def load_account_file(path: str | os.PathLike[str]) -> Account:
    """Load an account from a JSON file; relative paths inside it are relative to the file."""
    file_path = Path(path)
    source = str(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"Account file {source} does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"Account file {source} cannot be read ({type(error).__name__}).") from None
    try:
        data = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except _DuplicateKey as duplicate:
        raise ConfigurationError(f"{source}: the key {duplicate.key!r} appears more than once.") from None
    except json.JSONDecodeError as error:
        # The decoder's own message names a position, never the content, so no secret can leak here.
        raise ConfigurationError(
            f"{source} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from None
    return Account.from_mapping(data, source=source, base_directory=file_path.parent)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKey(key)
        document[key] = value
    return document


class _AccountReader:
    """Reads one mapping, collecting problems instead of stopping at the first."""

    def __init__(
        self, data: Mapping[str, Any], source: str, base_directory: str | os.PathLike[str] | None
    ) -> None:
        self._data = data
        self._source = source
        self._base = Path(base_directory) if base_directory is not None else None
        self._problems: list[str] = []

    def read(self, credentials_required: bool) -> Account:
        unknown = sorted(str(key) for key in self._data if key not in _KNOWN_KEYS)
        if unknown:
            self._problems.append(
                f"unknown {_plural('key', len(unknown))} {_names(unknown)} "
                f"(known keys: {', '.join(_KNOWN_KEYS)})"
            )
        missing = [key for key in _REQUIRED_KEYS if self._text(key) is None]
        if missing:
            self._problems.append(f"missing required {_plural('key', len(missing))} {_names(missing)}")

        name = self._text("name") or DEFAULT_ACCOUNT_NAME
        tenant_id = self._tenant_id()
        client_id = self._client_id()
        client_secret = self._secret("client_secret")
        private_key = self._secret("private_key")
        certificate_path = self._file("certificate_path")
        thumbprint = self._thumbprint()
        cloud = self._cloud()
        api_host = self._base_url("api_host")
        authority_host = self._base_url("authority_host")
        ca_bundle = self._file("ca_bundle")
        proxy = self._proxy()
        timeout = self._seconds("timeout", 30.0)
        connect_timeout = self._seconds("connect_timeout", 10.0)
        self._check_credentials(credentials_required, client_secret, private_key, certificate_path)

        if self._problems:
            raise ConfigurationError(
                f"The Defender account settings in {self._source} are not valid: {'; '.join(self._problems)}."
            )
        return Account(
            name=name,
            tenant_id=tenant_id or "",
            client_id=client_id or "",
            client_secret=client_secret,
            private_key=private_key,
            certificate_path=certificate_path,
            thumbprint=thumbprint,
            cloud=cloud,
            api_host=api_host,
            authority_host=authority_host,
            ca_bundle=ca_bundle,
            proxy=proxy,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )

    # --- one reader per kind of value ----------------------------------------------------------

    def _raw(self, key: str) -> Any:
        value = self._data.get(key)
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def _text(self, key: str) -> str | None:
        value = self._raw(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self._problems.append(f"{key} must be a string, not {_json_type(value)}")
            return None
        return value.strip()

    def _tenant_id(self) -> str | None:
        tenant_id = self._text("tenant_id")
        if tenant_id is not None and not (_GUID.match(tenant_id) or _DOMAIN.match(tenant_id)):
            self._problems.append(
                f"tenant_id {_shown(tenant_id)} is neither a GUID nor a domain name such as "
                "contoso.onmicrosoft.com"
            )
        return tenant_id

    def _client_id(self) -> str | None:
        client_id = self._text("client_id")
        if client_id is not None and not _GUID.match(client_id):
            self._problems.append(
                f"client_id {_shown(client_id)} is not a GUID "
                "(the app registration's Application (client) ID)"
            )
        return client_id

    def _secret(self, key: str) -> Secret | None:
        value = self._raw(key)
        if isinstance(value, Secret):
            return value if value else None
        if value is None:
            return None
        if not isinstance(value, str):
            self._problems.append(f"{key} must be a string, not {_json_type(value)}")
            return None
        return Secret(value.strip())

    def _file(self, key: str) -> str | None:
        path_text = self._text(key)
        if path_text is None:
            return None
        path = Path(path_text)
        if self._base is not None and not path.is_absolute():
            path = self._base / path
        if not path.is_file():
            self._problems.append(f"{key} {_shown(str(path))} is not a readable file")
        return str(path)

    def _thumbprint(self) -> str | None:
        thumbprint = self._text("thumbprint")
        if thumbprint is None:
            return None
        # Tools show thumbprints with colons or spaces between the bytes; msal wants bare hex.
        compact = re.sub(r"[\s:]", "", thumbprint)
        if not _THUMBPRINT.match(compact):
            self._problems.append(
                f"thumbprint {_shown(thumbprint)} is not the certificate's SHA-1 thumbprint "
                "(40 hex characters)"
            )
            return None
        return compact.upper()

    def _cloud(self) -> str:
        cloud = self._text("cloud")
        if cloud is None:
            return DEFAULT_CLOUD
        try:
            return get_cloud(cloud).name
        except ConfigurationError:
            self._problems.append(f"cloud {_shown(cloud)} is not one of {', '.join(CLOUDS)}")
            return DEFAULT_CLOUD

    def _base_url(self, key: str) -> str | None:
        url = self._text(key)
        if url is None:
            return None
        problem = _base_url_problem(url)
        if problem:
            self._problems.append(f"{key} {_shown(url)} {problem}")
            return None
        parts = urlsplit(url)
        return f"https://{parts.netloc.lower()}"

    def _proxy(self) -> ProxySettings | None:
        value = self._raw("proxy")
        if value is None or isinstance(value, ProxySettings):
            return value
        try:
            if isinstance(value, str):
                return ProxySettings.parse(value)
            if isinstance(value, Mapping):
                return self._proxy_from_mapping(value)
        except ConfigurationError as error:
            self._problems.append(_lower_first(error.message.rstrip(".")))
            return None
        self._problems.append(f"proxy must be a URL string or an object, not {_json_type(value)}")
        return None

    def _proxy_from_mapping(self, value: Mapping[str, Any]) -> ProxySettings | None:
        unknown = sorted(str(key) for key in value if key not in ("url", "username", "password"))
        if unknown:
            self._problems.append(f"proxy has unknown {_plural('key', len(unknown))} {_names(unknown)}")
        url, username, password = value.get("url"), value.get("username"), value.get("password")
        if url is not None and not isinstance(url, str):
            self._problems.append("proxy url must be a string")
            return None
        if username is not None and not isinstance(username, str):
            self._problems.append("proxy username must be a string")
            return None
        if password is not None and not isinstance(password, (str, Secret)):
            self._problems.append("proxy password must be a string")
            return None
        username = (username or "").strip() or None
        secret = password if isinstance(password, Secret) else Secret(password or "")
        if not url or not url.strip():
            # Splunk .conf files hold empty values for settings nobody filled in.
            if username or secret:
                self._problems.append("proxy has a username or password but no url")
            return None
        parsed = ProxySettings.parse(url)
        if username:
            return ProxySettings(parsed.url, username, secret or None)
        if secret:
            self._problems.append("proxy has a password but no username")
            return None
        return parsed

    def _seconds(self, key: str, default: float) -> float:
        value = self._raw(key)
        if value is None:
            return default
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number) or number <= 0:
            self._problems.append(f"{key} must be a positive number of seconds, not {_shown(str(value))}")
            return default
        return number

    def _check_credentials(
        self,
        required: bool,
        client_secret: Secret | None,
        private_key: Secret | None,
        certificate_path: str | None,
    ) -> None:
        has_key = bool(private_key) or certificate_path is not None
        # Presence, not validity: an invalid thumbprint is reported on its own, not again as missing.
        has_thumbprint = self._raw("thumbprint") is not None
        if client_secret and (has_key or has_thumbprint):
            self._problems.append(
                "give either client_secret or a certificate (thumbprint with certificate_path or "
                "private_key), not both"
            )
            return
        if not required:
            return
        if has_key and not has_thumbprint:
            self._problems.append(
                "a certificate needs its thumbprint as well as certificate_path or private_key"
            )
        elif has_thumbprint and not has_key:
            self._problems.append("thumbprint is set but neither certificate_path nor private_key is")
        elif not client_secret and not has_key:
            self._problems.append(
                "missing credentials: set client_secret, or thumbprint with certificate_path or private_key"
            )


def _base_url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what validates it
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() == "http":
        return "must use https:// (msal refuses http:// authorities and the API is served over TLS only)"
    if parts.scheme.lower() != "https":
        return "must be a base URL such as https://host or https://host:port"
    if not parts.hostname:
        return "has no host name"
    if parts.username or parts.password:
        return "must not contain credentials"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "must be a base URL with no path (https://host or https://host:port)"
    return None


def _redacted_proxy(text: str) -> str:
    """The proxy URL as it may be shown: credentials replaced, whatever the URL's shape."""
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "", text
    authority_end = len(rest)
    for delimiter in "/?#":
        index = rest.find(delimiter)
        if index != -1:
            authority_end = min(authority_end, index)
    authority = rest[:authority_end]
    if "@" in authority:
        rest = _MASK + "@" + authority.rpartition("@")[2] + rest[authority_end:]
    return _shown(f"{scheme}{separator}{rest}")


def _shown(value: str) -> str:
    shown = value if len(value) <= _MAX_SHOWN else value[: _MAX_SHOWN - 1] + "…"
    return repr(shown)


def _names(keys: list[str]) -> str:
    return ", ".join(_shown(key) for key in keys)


def _plural(word: str, count: int) -> str:
    return word if count == 1 else word + "s"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
