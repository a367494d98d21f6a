"""REST calls to splunkd in this app's own namespace, and the one place their failures become errors.

A search command's ``self.service`` is bound to the app the *user* searches in, where this app's
settings are invisible (or shadowed by a user's private copy). Every relative path here resolves
to ``/servicesNS/nobody/TA-mde-file-alerts/...``; absolute paths (``/services/...``) are kept.
splunklib does not verify splunkd's certificate unless asked to: splunkd presents its own
(usually self-signed) certificate on the management address splunkd itself handed us.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

from splunklib import binding

from mde_file_alerts.account import Secret
from mde_file_alerts.errors import ConfigurationError
from mde_file_alerts.splunk.keepalive import KeepAliveHandler
from mde_file_alerts.splunk.settings import APP_OWNER, conf_file_name
from mde_file_alerts.version import APP_NAME

logger = logging.getLogger(__name__)

#: Seconds to wait for splunkd; the broker's answer includes a round trip to Entra ID.
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class SplunkdResponse:
    """An answer from splunkd, whatever its status."""

    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON."""
        try:
            return json.loads(self.body.decode("utf-8")) if self.body else None
        except (ValueError, UnicodeDecodeError):
            return None

    @property
    def messages(self) -> list[str]:
        """splunkd's own error texts: ``{"messages": [{"type", "text"}]}`` or the XML ``<msg>`` form."""
        document = self.json()
        if isinstance(document, dict) and isinstance(document.get("messages"), list):
            return [
                str(message["text"])
                for message in document["messages"]
                if isinstance(message, dict) and message.get("text")
            ]
        try:
            root = ElementTree.fromstring(self.body)  # noqa: S314 - splunkd's own answer, not user input
        except ElementTree.ParseError:
            return []
        return [element.text.strip() for element in root.iter("msg") if element.text and element.text.strip()]

    def entries(self) -> list[Mapping[str, Any]]:
        """The ``entry`` list of a JSON collection answer (empty when there is none)."""
        document = self.json()
        entries = document.get("entry") if isinstance(document, dict) else None
        return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []


class Splunkd:
    """splunkd's REST API for this app (owner ``nobody``), authenticated with one session key."""

    def __init__(self, splunkd_uri: str, session_key: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        parts = urlsplit(splunkd_uri)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("https", "http") or not parts.hostname or port is None:
            raise ConfigurationError(
                f"splunkd's address {splunkd_uri!r} is not a URL such as https://127.0.0.1:8089."
            )
        if not session_key:
            raise ConfigurationError(
                "splunkd gave this app no session key, so it cannot ask splunkd anything."
            )
        self.uri = f"{parts.scheme}://{parts.netloc}"
        self._context: Any = binding.Context(
            handler=KeepAliveHandler(timeout=timeout),
            scheme=parts.scheme,
            host=parts.hostname,
            port=port,
            token=session_key,
            owner=APP_OWNER,
            app=APP_NAME,
        )

    # --- raw requests ---------------------------------------------------------------------------

    def get(self, path: str, **query: str) -> SplunkdResponse:
        return self._send("GET", path, query)

    def post(self, path: str, form: Mapping[str, str]) -> SplunkdResponse:
        return self._send("POST", path, {}, form)

    def _send(
        self, method: str, path: str, query: Mapping[str, str], form: Mapping[str, str] | None = None
    ) -> SplunkdResponse:
        segment = binding.UrlEncoded(path, skip_encode=True)
        try:
            if method == "GET":
                response = self._context.get(segment, output_mode="json", **query)
            else:
                response = self._context.post(segment, body=dict(form or {}), output_mode="json", **query)
            return SplunkdResponse(int(response.status), response.body.read())
        except binding.HTTPError as error:
            return SplunkdResponse(int(error.status), bytes(error.body or b""))
        except (OSError, http.client.HTTPException) as error:
            raise ConfigurationError(
                f"Could not reach splunkd at {self.uri} ({type(error).__name__}); "
                "check that splunkd is running.",
                method=method,
                url=self.uri + self.absolute_path(path),
            ) from None

    def absolute_path(self, path: str) -> str:
        if path.startswith("/"):
            return path
        return f"/servicesNS/{APP_OWNER}/{quote(APP_NAME, safe='')}/{path}"

    # --- what the app reads ---------------------------------------------------------------------

    def conf_stanzas(self, conf: str) -> dict[str, Mapping[str, Any]]:
        """Every stanza of one of this app's conf files, with Splunk's [default] inheritance applied."""
        path = f"configs/conf-{quote(conf, safe='')}"
        response = self.get(path, count="0")
        if response.status == 404:
            return {}
        self._raise_unless_ok(response, "GET", path, f"read {conf_file_name(conf)}")
        return {
            str(entry.get("name")): _content(entry)
            for entry in response.entries()
            if entry.get("name") is not None
        }

    def conf_stanza(self, conf: str, stanza: str) -> Mapping[str, Any] | None:
        """One stanza, or None when the conf file has no such stanza."""
        path = f"configs/conf-{quote(conf, safe='')}/{quote(stanza, safe='')}"
        response = self.get(path)
        if response.status == 404:
            return None
        self._raise_unless_ok(response, "GET", path, f"read {conf_file_name(conf)} [{stanza}]")
        entries = response.entries()
        return _content(entries[0]) if entries else None

    def passwords(self, realm: str) -> dict[str, Secret]:
        """Every clear-text secret stored under ``realm``, by user name, each wrapped in a Secret.

        Reading storage/passwords needs ``list_storage_passwords``: only the broker's system
        session has it. The answer's body holds the app's secrets, so it is never logged.
        """
        path = "storage/passwords"
        response = self.get(path, count="0")
        self._raise_unless_ok(response, "GET", path, "read the secrets in storage/passwords")
        secrets: dict[str, Secret] = {}
        for entry in response.entries():
            content = _content(entry)
            username, clear = content.get("username"), content.get("clear_password")
            if (
                content.get("realm") == realm
                and isinstance(username, str)
                and isinstance(clear, str)
                and clear
            ):
                secrets[username] = Secret(clear)
        return secrets

    def _raise_unless_ok(self, response: SplunkdResponse, method: str, path: str, what: str) -> None:
        if response.ok:
            return
        if response.status == 401:
            reason = "splunkd did not accept the session key (expired or invalid)"
        elif response.status == 403:
            reason = "the session lacks the permission"
        else:
            reason = f"splunkd answered HTTP {response.status}"
        messages = response.messages
        raise ConfigurationError(
            f"Could not {what} of the {APP_NAME} app: {reason}.",
            method=method,
            url=self.uri + self.absolute_path(path),
            status=response.status,
            detail="; ".join(messages) if messages else None,
        )


def _content(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    content = entry.get("content")
    return content if isinstance(content, dict) else {}
