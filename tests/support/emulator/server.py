"""``DefenderEmulator``: one HTTPS server on 127.0.0.1 playing both Entra ID and Defender.

The path tells the two apart (``/{tenant}/...`` is Entra ID, ``/api/...`` is Defender), so
``base_url`` serves as both the authority host and the API host of an account.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import secrets
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
import traceback
import zlib
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from tests.support.emulator.catalog import FileCatalog, KnownFile
from tests.support.emulator.defender import DEFENDER_SCOPE, ApiRequest, Defender, DefenderSettings
from tests.support.emulator.entra import AppRegistration, EntraId
from tests.support.emulator.faults import Fault, FaultQueue
from tests.support.emulator.limits import DEFENDER_RATE_LIMITS, SlidingWindowLimiter, WallClock
from tests.support.emulator.recording import RecordedRequest, RequestLog
from tests.support.emulator.replies import ODATA_JSON, PLAIN_JSON, Reply
from tests.support.emulator.tls import app_certificate, server_tls
from tests.support.emulator.tokens import TokenStore, audience_of

# The tenant of every alert fixture (their aadTenantId), so served alerts match the account.
DEFAULT_TENANT_ID = "4b2a9c61-7d3e-4f0a-9b85-2c6e1d8f7a34"
DEFAULT_CLIENT_ID = "5e8c3d1f-96a2-4b7e-8f04-1d2c3b4a5e6f"
DEFAULT_TOKEN_LIFETIME = 3599.0

_DISCOVERY = re.compile(r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$")


class _SystemWallClock:
    def time(self) -> float:
        return time.time()


def _new_client_secret() -> str:
    """Shaped like an Entra secret value (``xxx8Q~`` and 34 more), fresh per emulator."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.~"
    tail = "".join(secrets.choice(alphabet) for _ in range(34))
    return f"{secrets.token_hex(2)[:3]}8Q~{tail}"


class DefenderEmulator:
    """Start with ``with DefenderEmulator() as emu:`` (or ``start()``/``stop()``).

    ``clock`` (anything with ``time()``) drives token expiry and the rate-limit windows; the
    slow-response fault and client-assertion validity use real time, as Entra's would.
    ``rate_limits=None`` turns throttling off. ``reset()`` forgets requests, faults, throttling
    state, counters, added files and setting changes, but keeps issued tokens valid so a client's
    cached token keeps working across tests sharing one emulator.
    """

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str | None = None,
        api_scope: str = DEFENDER_SCOPE,
        token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
        clock: WallClock | None = None,
        rate_limits: Sequence[tuple[int, float]] | None = DEFENDER_RATE_LIMITS,
        time_scale: float = 1.0,
        count_throttled: bool = False,
        page_size: int | None = None,
        unknown_file_status: int = 200,
        compress: bool = True,
        port: int = 0,
    ) -> None:
        if unknown_file_status not in (200, 404):
            raise ValueError(
                f"unknown_file_status is 200 (today's API) or 404 (older), not {unknown_file_status}"
            )
        if page_size is not None and page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret if client_secret is not None else _new_client_secret()
        self.compress = compress
        self._clock: WallClock = clock if clock is not None else _SystemWallClock()
        self._port = port
        self._initial_settings = DefenderSettings(api_scope, page_size, unknown_file_status)
        self._initial_token_lifetime = token_lifetime
        self._settings = DefenderSettings(api_scope, page_size, unknown_file_status)
        self.token_lifetime = token_lifetime

        self._certificate = app_certificate()
        self._tokens = TokenStore(self._clock)
        self._limiter = (
            None
            if rate_limits is None
            else SlidingWindowLimiter(
                rate_limits, clock=self._clock, time_scale=time_scale, count_rejected=count_throttled
            )
        )
        self._registration = AppRegistration(tenant_id, client_id, self.client_secret, self._certificate)
        self._entra = EntraId(
            self._registration,
            self._tokens,
            base_url=lambda: self.base_url,
            token_lifetime=lambda: self.token_lifetime,
            now=time.time,
        )
        self._defender = Defender(
            FileCatalog(), self._tokens, self._limiter, self._settings, base_url=lambda: self.base_url
        )
        self._faults = FaultQueue()
        self._log = RequestLog()
        self._counter_lock = threading.Lock()
        self._token_requests = 0
        self._stopping = threading.Event()
        self._server_errors: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._directory: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> DefenderEmulator:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._directory = tempfile.mkdtemp(prefix="mde-emulator-")
        tls = server_tls()
        (Path(self._directory) / "ca.pem").write_bytes(tls.ca_pem)
        (Path(self._directory) / "app-key.pem").write_text(
            self._certificate.private_key_pem, encoding="ascii"
        )
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self._port), tls.server_context(self._directory), self)
        # A short poll interval keeps stop() quick; shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), name="defender-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __enter__(self) -> DefenderEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- where it is and who it trusts -------------------------------------------------------

    @property
    def port(self) -> int:
        return self._running().server_address[1]

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> str:
        return str(Path(self._running_directory()) / "ca.pem")

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.tenant_id}"

    @property
    def token_endpoint(self) -> str:
        return self._entra.token_endpoint(self.tenant_id)

    @property
    def certificate_pem(self) -> str:
        return self._certificate.certificate_pem

    @property
    def private_key_pem(self) -> str:
        return self._certificate.private_key_pem

    @property
    def private_key_path(self) -> str:
        """A PEM file holding the app's private key (the account file's ``certificate_path``)."""
        return str(Path(self._running_directory()) / "app-key.pem")

    @property
    def thumbprint(self) -> str:
        """SHA-1 of the app certificate (DER), upper-case hex like the Azure portal shows."""
        return self._certificate.thumbprint

    def account_data(self, auth: str = "secret", **overrides: Any) -> dict[str, Any]:
        """An account file's content pointing at this emulator; an override of None removes the key.

        ``auth="certificate"`` gives ``certificate_path`` + ``thumbprint`` instead of ``client_secret``.
        """
        data: dict[str, Any] = {
            "name": "emulator",
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "cloud": "commercial",
            "authority_host": self.base_url,
            "api_host": self.base_url,
            "ca_bundle": self.ca_bundle,
        }
        if auth == "certificate":
            del data["client_secret"]
            data["certificate_path"] = self.private_key_path
            data["thumbprint"] = self.thumbprint
        elif auth != "secret":
            raise ValueError(f"auth is 'secret' or 'certificate', not {auth!r}")
        for key, value in overrides.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        return data

    def write_account_file(self, path: str | Path, auth: str = "secret", **overrides: Any) -> Path:
        target = Path(path)
        target.write_text(json.dumps(self.account_data(auth, **overrides), indent=2) + "\n", encoding="utf-8")
        return target

    # -- behaviour a test can change ---------------------------------------------------------

    @property
    def api_scope(self) -> str:
        """The scope whose tokens Defender accepts; tokens for any other audience get 403."""
        return self._settings.api_scope

    @api_scope.setter
    def api_scope(self, scope: str) -> None:
        self._settings.api_scope = scope

    @property
    def page_size(self) -> int | None:
        """Alerts per page; more alerts than this come with ``@odata.nextLink``. None: one page."""
        return self._settings.page_size

    @page_size.setter
    def page_size(self, size: int | None) -> None:
        if size is not None and size < 1:
            raise ValueError(f"page_size must be at least 1, not {size}")
        self._settings.page_size = size

    @property
    def unknown_file_status(self) -> int:
        """200 (``{"value": []}``, today's API) or 404 (older behaviour) for files Defender never saw."""
        return self._settings.unknown_file_status

    @unknown_file_status.setter
    def unknown_file_status(self, status: int) -> None:
        if status not in (200, 404):
            raise ValueError(f"unknown_file_status is 200 or 404, not {status}")
        self._settings.unknown_file_status = status

    def inject(
        self, fault: Fault | int, *, sha1: str | None = None, times: int | None = 1, on: str = "api"
    ) -> None:
        """Queue a fault for the next ``times`` matching calls (None: every one until ``reset``).

        An int is short for ``ErrorStatus(status)``. ``sha1`` limits it to calls about that file
        (its SHA-256 too); ``on`` is "api" (Defender), "token" or "discovery". Faults are consumed
        in the order injected; a faulted call skips the token check and the rate limiter.
        """
        self._faults.add(fault, sha1=sha1, times=times, target=on)

    @property
    def pending_faults(self) -> list[tuple[Fault, str | None, int | None]]:
        return self._faults.pending()

    def clear_faults(self) -> None:
        self._faults.clear()

    def add_file(self, sha1: str, alerts: list[Any], *, sha256: str | None = None) -> KnownFile:
        """Make Defender know one more file (until ``reset``), e.g. with deliberately odd alerts."""
        return self._defender.catalog.add(sha1, alerts, sha256=sha256)

    def find_file(self, file_id: str) -> KnownFile | None:
        """The file Defender knows by this SHA-1 or SHA-256, with its alerts."""
        return self._defender.catalog.find(file_id)

    def known_files(self) -> list[KnownFile]:
        return self._defender.catalog.files()

    def issue_token(self, scope: str | None = None) -> str:
        """A token as the token endpoint would issue it, without an HTTP round trip."""
        return self._tokens.issue(
            tenant_id=self.tenant_id,
            client_id=self.client_id,
            audience=audience_of(scope or self.api_scope),
            lifetime=self.token_lifetime,
        )

    def expire_tokens(self) -> None:
        """Every token issued so far is rejected as expired from now on."""
        self._tokens.expire_all()

    def reset(self) -> None:
        self._log.clear()
        self._faults.clear()
        self._defender.reset()
        self._defender.catalog = FileCatalog()
        self._settings.api_scope = self._initial_settings.api_scope
        self._settings.page_size = self._initial_settings.page_size
        self._settings.unknown_file_status = self._initial_settings.unknown_file_status
        self.token_lifetime = self._initial_token_lifetime
        with self._counter_lock:
            self._token_requests = 0

    # -- what happened -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        return self._log.snapshot()

    @property
    def api_requests(self) -> list[RecordedRequest]:
        return [entry for entry in self._log.snapshot() if entry.endpoint == "api"]

    @property
    def token_requests(self) -> int:
        """POSTs to the token endpoint, successful or not."""
        with self._counter_lock:
            return self._token_requests

    @property
    def throttled_count(self) -> int:
        """429s served by the rate limiter (not injected ones)."""
        return self._defender.throttled_count

    @property
    def server_errors(self) -> list[str]:
        """Tracebacks of exceptions that escaped a request handler (always empty unless a bug)."""
        return list(self._server_errors)

    # -- serving -----------------------------------------------------------------------------

    def _running(self) -> _Server:
        if self._server is None:
            raise RuntimeError("the emulator is not running; use it as a context manager or call start()")
        return self._server

    def _running_directory(self) -> str:
        self._running()
        assert self._directory is not None
        return self._directory

    def _respond(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[Reply, RecordedRequest]:
        split = urlsplit(raw_path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        url = f"{self.base_url}{raw_path}"
        record = RecordedRequest(method, path, query, headers, body, self._clock.time(), "other")

        target: str | None = None
        ids: frozenset[str] = frozenset()
        normal: Callable[[], Reply]
        discovery, token = _DISCOVERY.match(path), _TOKEN.match(path)
        if path == "/api" or path.startswith("/api/"):
            target = record.endpoint = "api"
            record.file_id = Defender.file_id(path)
            ids = self._defender.resource_ids(path)
            request = ApiRequest(method, path, query, headers, url)
            normal = functools.partial(self._defender.handle, request)
        elif discovery is not None:
            target = record.endpoint = "discovery"
            normal = functools.partial(self._entra.discovery, discovery.group("tenant"), headers)
        elif token is not None:
            target = record.endpoint = "token"
            if method == "POST":
                with self._counter_lock:
                    self._token_requests += 1
            normal = functools.partial(self._entra.token, token.group("tenant"), headers, body)
        else:
            normal = functools.partial(Reply, 404, {"error": "not_found"}, content_type=PLAIN_JSON)
        self._log.append(record)

        if (target == "discovery" and method != "GET") or (target == "token" and method != "POST"):
            reply = Reply(405, payload=b"", headers={"Allow": "GET" if target == "discovery" else "POST"})
        else:
            fault = None if target is None else self._faults.take(target, ids)
            record.fault = fault
            reply = normal() if fault is None else fault.apply(normal, url)
        record.status = None if reply.reset else reply.status
        return reply, record

    def _encode(self, reply: Reply, accept_encoding: str) -> tuple[bytes, dict[str, str]]:
        body = reply.body()
        headers = dict(reply.headers)
        if body:
            headers.setdefault("Content-Type", reply.content_type)
        if reply.content_type == ODATA_JSON and body:
            headers.setdefault("OData-Version", "4.0")
            if self.compress and "deflate" in accept_encoding.lower():
                body = zlib.compress(body)
                headers["Content-Encoding"] = "deflate"
        return body, headers

    def _pause(self, seconds: float) -> None:
        """A slow response waits on the real clock, but no longer than until ``stop()``."""
        self._stopping.wait(seconds)


class _ConnectionAborted(Exception):
    """Raised past the request loop after a reset, which must not touch the closed connection again."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, emulator: DefenderEmulator) -> None:
        super().__init__(address, _Handler)
        self.context = context
        self.emulator = emulator
        self._connections: set[ssl.SSLSocket] = set()
        self._connections_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens here, on the connection's own thread, so a client that never
        # completes it cannot stall the accept loop.
        request.settimeout(10)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            _Handler(connection, client_address, self)
        except (ssl.SSLError, OSError, _ConnectionAborted):
            pass
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An exception escaping a request is an emulator bug: keep it for ``server_errors``."""
        self.emulator._server_errors.append(traceback.format_exc())
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    # How long a kept-alive connection may sit idle.
    timeout = 30
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK would add
    # 40 ms to every response.
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        emulator = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        reply, _ = emulator._respond(self.command, self.path, headers, body)
        if reply.delay > 0:
            emulator._pause(reply.delay)
        if reply.reset:
            self._reset()
            raise _ConnectionAborted
        payload, reply_headers = emulator._encode(reply, headers.get("accept-encoding", ""))
        self.send_response(reply.status)
        for name, value in reply_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        """Abort the connection: with a zero linger, closing sends a TCP RST instead of a FIN."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.wfile.close()
        self.rfile.close()
        self.connection.close()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on ``emulator.requests`` instead of reading a log."""
