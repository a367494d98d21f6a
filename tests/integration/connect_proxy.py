"""A tiny HTTP CONNECT proxy on 127.0.0.1 that records what clients ask of it.

It tunnels only to 127.0.0.1 (the emulator); any other target is recorded and refused with a
502, so a test can see which real Microsoft host a client tried to reach without any traffic
leaving the machine. With ``credentials`` set it demands Basic proxy authentication (407).
"""

from __future__ import annotations

import base64
import contextlib
import selectors
import socket
import threading
from dataclasses import dataclass

_TUNNEL_HOSTS = frozenset({"127.0.0.1"})
_MAX_HEAD = 65536


@dataclass(frozen=True)
class ConnectRequest:
    target: str
    proxy_authorization: str | None
    answered: int


class ConnectProxy:
    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        self._expected = None
        if credentials is not None:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            self._expected = f"Basic {token}"
        self._lock = threading.Lock()
        self._requests: list[ConnectRequest] = []
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="connect-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    @property
    def requests(self) -> list[ConnectRequest]:
        with self._lock:
            return list(self._requests)

    def targets(self) -> list[str]:
        return [request.target for request in self.requests]

    def __enter__(self) -> ConnectProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            open_sockets = list(self._sockets)
        for open_socket in open_sockets:
            with contextlib.suppress(OSError):
                open_socket.shutdown(socket.SHUT_RDWR)
            open_socket.close()

    # --- serving -------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        # A blocked accept() is not woken by close() from another thread; poll so stopping is prompt.
        self._listener.settimeout(0.05)
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._sockets.add(connection)

    def _serve(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            head = self._read_head(client)
            if head is None:
                return
            request_line, headers = head
            method, _, rest = request_line.partition(" ")
            target = rest.rpartition(" ")[0]
            authorization = headers.get("proxy-authorization")
            if method != "CONNECT":
                self._answer(client, target, authorization, 405)
                return
            if self._expected is not None and authorization != self._expected:
                self._answer(client, target, authorization, 407, 'Proxy-Authenticate: Basic realm="test"\r\n')
                return
            host, _, port = target.rpartition(":")
            if host not in _TUNNEL_HOSTS or not port.isdigit():
                self._answer(client, target, authorization, 502)
                return
            upstream = socket.create_connection((host, int(port)), timeout=10)
            self._track(upstream)
            self._answer(client, target, authorization, 200, close=False)
            self._pipe(client, upstream)

    def _read_head(self, client: socket.socket) -> tuple[str, dict[str, str]] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(4096)
            if not chunk or len(data) > _MAX_HEAD:
                client.close()
                return None
            data += chunk
        lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return lines[0], headers

    def _answer(
        self,
        client: socket.socket,
        target: str,
        authorization: str | None,
        status: int,
        extra_headers: str = "",
        *,
        close: bool = True,
    ) -> None:
        with self._lock:
            self._requests.append(ConnectRequest(target, authorization, status))
        reason = {
            200: "Connection established",
            405: "Method Not Allowed",
            407: "Proxy Authentication Required",
        }
        text = reason.get(status, "Bad Gateway")
        length = "" if status == 200 else "Content-Length: 0\r\nConnection: close\r\n"
        client.sendall(f"HTTP/1.1 {status} {text}\r\n{extra_headers}{length}\r\n".encode())
        if close:
            client.close()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.5):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        finally:
            selector.close()
            client.close()
            upstream.close()
