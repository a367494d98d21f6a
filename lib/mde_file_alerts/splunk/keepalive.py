"""Persistent connections to splunkd: a request handler for splunklib's binding layer.

splunklib's default handler opens a new connection, with a new TLS handshake, for every request
and asks splunkd to close it afterwards. A search that reads ten thousand cached results in over
a hundred KV store requests would spend half its time on handshakes; this handler keeps
connections open (HTTP/1.1 keep-alive, which splunkd honours) and reuses them.

TLS is set up as splunklib's default handler sets it up: splunkd's certificate is not verified.
splunkd presents its own (usually self-signed) certificate on the management address that
splunkd itself handed the search process, so there is no name a public CA could vouch for.

Each request has a connection to itself: an idle one when there is one, else a new one. Threads
never share a connection in flight, and a connection goes back to the idle ones only after its
response has been read in full.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from mde_file_alerts.version import APP_NAME, app_version

#: Idle connections kept per handler; more than the threads that read the cache at once.
MAX_IDLE_CONNECTIONS = 8

# What splunklib's default handler offers on a Python that has set_groups (Splunk's own builds
# of 3.9 and 3.13 do): the post-quantum key exchanges as well as the classic ones.
_TLS_GROUPS = (
    "X25519MLKEM768:SecP256r1MLKEM768:SecP384r1MLKEM1024:"
    "MLKEM512:MLKEM768:MLKEM1024:"
    "X25519:secp256r1:X448:secp384r1:secp521r1:ffdhe2048:ffdhe3072"
)

# The peer closed the connection before answering. On a reused connection that means splunkd had
# closed it while it was idle, without reading the request; the request is sent once more on a
# new connection. (A KV store insert that did get through would then be refused as a conflict,
# which the call budget counts as a slot taken: it over-counts, it never under-counts.)
_DROPPED = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)

_Address = tuple[str, str, int]


class KeepAliveHandler:
    """``handler(url, message) -> response`` for ``splunklib.binding.Context(handler=...)``."""

    def __init__(self, *, timeout: float | None = None) -> None:
        self._timeout = timeout
        self._lock = threading.Lock()
        self._idle: list[tuple[_Address, http.client.HTTPConnection]] = []
        self._tls: ssl.SSLContext | None = None
        self._user_agent = f"{APP_NAME}/{app_version()}"
        # Idle sockets are closed when the handler goes, not left to the garbage collector.
        weakref.finalize(self, _close_all, self._idle)

    def __call__(self, url: str, message: Mapping[str, Any], **_options: Any) -> dict[str, Any]:
        address, target = _split(url)
        method = str(message.get("method") or "GET")
        body = message.get("body") or b""
        payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        headers = {"Content-Length": str(len(payload)), "User-Agent": self._user_agent, "Accept": "*/*"}
        headers.update((str(name), str(value)) for name, value in message.get("headers") or ())
        connection, reused = self._checkout(address)
        try:
            response, content = _exchange(connection, method, target, payload, headers)
        except _DROPPED:
            connection.close()
            if not reused:
                raise
            connection = self._connect(address)
            try:
                response, content = _exchange(connection, method, target, payload, headers)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._checkin(address, connection)
        return {
            "status": response.status,
            "reason": response.reason,
            "headers": response.getheaders(),
            "body": _Body(content),
        }

    def close(self) -> None:
        """Close the idle connections (the handler stays usable and opens new ones)."""
        with self._lock:
            idle = list(self._idle)
            self._idle.clear()
        _close_all(idle)

    # --- the idle connections -------------------------------------------------------------------

    def _checkout(self, address: _Address) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection to ``address`` that splunkd has not closed, else a new one."""
        while True:
            with self._lock:
                index = next((i for i, (held, _) in enumerate(self._idle) if held == address), None)
                if index is None:
                    break
                _, connection = self._idle.pop(index)
            if _still_open(connection):
                return connection, True
            connection.close()
        return self._connect(address), False

    def _checkin(self, address: _Address, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append((address, connection))
                return
        connection.close()

    def _connect(self, address: _Address) -> http.client.HTTPConnection:
        scheme, host, port = address
        if scheme == "http":
            return http.client.HTTPConnection(host, port, timeout=self._timeout)
        if scheme != "https":
            raise ValueError(f"unsupported scheme: {scheme}")
        return http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._tls_context())

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            set_groups = getattr(context, "set_groups", None)
            if set_groups is not None:
                set_groups(_TLS_GROUPS)
            self._tls = context
        return self._tls


class _Body:
    """The response body, read in full already (the connection may be serving another request)."""

    def __init__(self, content: bytes) -> None:
        self._content = content
        self._position = 0

    def read(self, size: int | None = None) -> bytes:
        end = len(self._content) if size is None or size < 0 else self._position + size
        chunk = self._content[self._position : end]
        self._position += len(chunk)
        return chunk

    def close(self) -> None:
        self._position = len(self._content)


def _exchange(
    connection: http.client.HTTPConnection,
    method: str,
    target: str,
    payload: bytes,
    headers: Mapping[str, str],
) -> tuple[http.client.HTTPResponse, bytes]:
    connection.request(method, target, payload, dict(headers))
    response = connection.getresponse()
    return response, response.read()


def _split(url: str) -> tuple[_Address, str]:
    parts = urlsplit(url)
    if not parts.hostname or parts.port is None:
        raise ValueError(f"not a URL with a host and a port: {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, parts.port), target


def _still_open(connection: http.client.HTTPConnection) -> bool:
    # An idle connection has nothing to read: readable means splunkd closed it (or broke it).
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _close_all(idle: list[tuple[_Address, http.client.HTTPConnection]]) -> None:
    for _, connection in idle:
        connection.close()
    idle.clear()
