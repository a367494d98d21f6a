"""Persistent connections to splunkd: reuse, threads, and connections splunkd has dropped."""

from __future__ import annotations

import http.client
import socketserver
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from mde_file_alerts.splunk.capability import current_context
from mde_file_alerts.splunk.keepalive import KeepAliveHandler
from mde_file_alerts.splunk.kvstore import CACHE_COLLECTION, KvStoreCollection
from mde_file_alerts.splunk.settings import SETTINGS_CONF
from mde_file_alerts.splunk.splunkd import Splunkd
from tests.splunk.conftest import ADMIN, ANALYST
from tests.support.splunkd import FakeSplunkd

# --- against the fake splunkd (HTTPS with a certificate no CA vouches for, like splunkd's) -----------


def test_a_splunkd_client_sends_all_its_requests_on_one_connection(splunkd: FakeSplunkd) -> None:
    client = Splunkd(splunkd.uri, splunkd.session_key_for(ANALYST))

    contexts = [current_context(client) for _ in range(3)]
    stanzas = client.conf_stanzas(SETTINGS_CONF)

    assert {context.username for context in contexts} == {ANALYST}
    assert "cache" in stanzas
    assert len(splunkd.requests) == 4
    assert splunkd.connections == 1


def test_an_error_answer_leaves_the_connection_usable(splunkd: FakeSplunkd) -> None:
    client = Splunkd(splunkd.uri, splunkd.session_key_for(ANALYST))

    missing = client.get("configs/conf-ta_mde_file_alerts_settings/no_such_stanza")
    after = client.get("/services/authentication/current-context")

    assert missing.status == 404
    assert missing.messages, "the 404's body was read in full"
    assert after.ok
    assert splunkd.connections == 1


def test_threads_reading_the_kv_store_at_once_never_share_a_connection_in_flight(
    splunkd: FakeSplunkd,
) -> None:
    writer = KvStoreCollection(splunkd.uri, splunkd.system_key, CACHE_COLLECTION)
    keys = [f"k{index:03d}" for index in range(200)]
    writer.batch_save([{"_key": key, "sha1": key} for key in keys])
    reader = KvStoreCollection(splunkd.uri, splunkd.session_key_for(ADMIN), CACHE_COLLECTION)
    parts = [keys[start : start + 10] for start in range(0, len(keys), 10)]
    before = splunkd.connections

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda part: reader.find_keys(part), parts))

    assert [sorted(document["sha1"] for document in answer) for answer in answers] == parts
    assert 1 <= splunkd.connections - before <= 4


def test_clients_that_ask_for_close_still_get_whole_answers(splunkd: FakeSplunkd) -> None:
    # splunklib's default handler says "Connection: Close" and closes before reading the body.
    from splunklib import binding

    context = binding.Context(
        scheme="https",
        host="127.0.0.1",
        port=int(splunkd.uri.rsplit(":", 1)[1]),
        token=splunkd.session_key_for(ANALYST),
    )

    bodies = [context.get("/services/authentication/current-context", output_mode="json").body.read()]
    bodies.append(context.get("/services/authentication/current-context", output_mode="json").body.read())

    assert all(ANALYST.encode() in body for body in bodies)
    assert splunkd.connections == 2


# --- connections splunkd drops (a scripted plain-HTTP server) --------------------------------------

#: What the server does with a request, given (connection number, request number on it), from 1.
Script = Callable[[int, int], str]
ANSWER, DROP, ANSWER_AND_CLOSE = "answer", "drop", "answer and close"
HANG_UP = "answer, then close without having said so"


class ScriptedServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.script = script
        self.lock = threading.Lock()
        self.connections = 0
        self.answered: list[str] = []
        self.hung_up = threading.Event()

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.hung_up.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ScriptedHandler(socketserver.StreamRequestHandler):
    server: ScriptedServer

    def handle(self) -> None:
        with self.server.lock:
            self.server.connections += 1
            connection = self.server.connections
        number = 0
        while True:
            request_line = self.rfile.readline()
            if not request_line:
                return
            length = 0
            for line in iter(self.rfile.readline, b"\r\n"):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            self.rfile.read(length)
            number += 1
            action = self.server.script(connection, number)
            if action == DROP:
                return
            path = request_line.split()[1].decode("ascii")
            with self.server.lock:
                self.server.answered.append(path)
            body = path.encode("ascii")
            closing = b"Connection: close\r\n" if action == ANSWER_AND_CLOSE else b""
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), closing, body)
            )
            self.wfile.flush()
            if action in (ANSWER_AND_CLOSE, HANG_UP):
                return


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        server = ScriptedServer(script)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def get(handler: KeepAliveHandler, url: str) -> dict[str, Any]:
    return handler(url, {"method": "GET", "headers": [], "body": ""})


def test_a_request_on_a_connection_dropped_while_idle_is_sent_again_on_a_new_one(
    scripted: Callable[[Script], ScriptedServer],
) -> None:
    # The second request reaches a connection the server has given up on: no answer, just EOF.
    server = scripted(lambda connection, number: DROP if (connection, number) == (1, 2) else ANSWER)
    handler = KeepAliveHandler(timeout=5)

    first = get(handler, f"{server.url}/first")
    second = get(handler, f"{server.url}/second")

    assert (first["status"], first["body"].read()) == (200, b"/first")
    assert (second["status"], second["body"].read()) == (200, b"/second")
    assert server.connections == 2
    assert server.answered == ["/first", "/second"]
    handler.close()


def test_a_new_connection_that_fails_is_not_tried_again(
    scripted: Callable[[Script], ScriptedServer],
) -> None:
    server = scripted(lambda connection, number: DROP)
    handler = KeepAliveHandler(timeout=5)

    with pytest.raises(http.client.RemoteDisconnected):
        get(handler, f"{server.url}/only")

    assert server.connections == 1


def test_a_connection_closed_after_an_answer_is_replaced_before_the_next_request(
    scripted: Callable[[Script], ScriptedServer],
) -> None:
    server = scripted(lambda connection, number: ANSWER_AND_CLOSE)
    handler = KeepAliveHandler(timeout=5)

    answers = [get(handler, f"{server.url}/{index}")["body"].read() for index in range(3)]

    assert answers == [b"/0", b"/1", b"/2"]
    assert server.connections == 3
    assert server.answered == ["/0", "/1", "/2"], "no request was sent twice"
    handler.close()


def test_a_connection_the_server_closed_while_idle_is_noticed_before_it_is_used(
    scripted: Callable[[Script], ScriptedServer],
) -> None:
    # splunkd closes idle keep-alive connections after a while without saying so in the answer.
    server = scripted(lambda connection, number: HANG_UP)
    handler = KeepAliveHandler(timeout=5)

    answers = []
    for index in range(3):
        answers.append(get(handler, f"{server.url}/{index}")["body"].read())
        assert server.hung_up.wait(5)
        server.hung_up.clear()

    assert answers == [b"/0", b"/1", b"/2"]
    assert server.connections == 3
    assert server.answered == ["/0", "/1", "/2"]
    handler.close()
