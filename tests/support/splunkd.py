"""An HTTPS fake of the splunkd REST endpoints this app uses, answering in Splunk's JSON formats.

    with FakeSplunkd(users={"ana": ["mde_file_alerts_analyst"]}, accounts={"prod": {...}},
                     passwords={"prod": "<client secret>"}) as splunkd:
        key = splunkd.session_key_for("ana")
        ...  # call splunkd.uri with "Authorization: Splunk <key>"

What it serves (``output_mode=json`` only, ``count`` defaulting to 30 as splunkd's does):

- ``GET /services/authentication/current-context``: the caller's name, roles and capabilities.
- ``GET /servicesNS/{owner}/{app}/configs/conf-{file}[/{stanza}]``: this app's conf files as
  splunkd merges them: ``default/<file>.conf`` of the app on disk, then the stanzas a test gives
  (its "local" layer), every stanza inheriting ``[default]``. Other apps see none of them.
- ``GET /servicesNS/{owner}/{app}/storage/passwords``: needs ``list_storage_passwords`` (403
  otherwise), entries with ``clear_password`` like splunkd's.
- Every ``[script:...]`` endpoint of the app's ``default/restmap.conf`` (plus a test's overrides):
  splunkd's own checks first (authentication, ``capability``/``capability.<method>``), then the
  handler class runs in-process, loaded once per fake like splunkd's persistent process, and gets
  the persistent-handler request document (``session.authtoken`` = the caller's key,
  ``system_authtoken`` = the fake's system key when ``passSystemAuth`` is set).
- ``GET /services/server/info``.
- The KV store (tests/support/fake_kvstore.py), with the collections of the app's
  ``default/collections.conf``: ``/servicesNS/{owner}/{app}/storage/collections/data/{collection}``
  (GET query, POST insert, DELETE by query), ``.../{collection}/{key}`` (GET, POST replace, DELETE),
  ``.../{collection}/batch_save`` (POST), all JSON whatever ``output_mode`` says, and
  ``.../storage/collections/config[/{collection}]`` (list, create, update, delete; JSON entries).
  Access follows the collection's stanza of the app's ``metadata/default.meta`` (read for GET,
  write otherwise; ``admin_all_objects`` passes every check). ``kvstore_available = False`` makes
  every KV store endpoint answer 503 like a KV store that is starting or has failed.
- ``POST /services/receivers/simple`` (also under ``/servicesNS/...``): needs ``edit_tcp``; the
  body's lines become events of the ``index``/``sourcetype``/``source``/``host`` query arguments
  (``received``), one per line as splunkd's default line breaking makes them. An index the fake
  does not know (``indexes=``, default ``main``) is refused with 400, so a wrong index name never
  passes a test silently.

Users get their capabilities from roles: the built-in ones modelled below plus the roles and
grants of the app's ``default/authorize.conf``. The system key holds every capability.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import re
import secrets
import shutil
import ssl
import tempfile
import threading
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from tests.support.conf import read_conf
from tests.support.emulator import DefenderEmulator
from tests.support.emulator.tls import server_tls
from tests.support.fake_kvstore import FakeKvStore, KvStoreRefusal, collection_access

APP_DIRECTORY = Path(__file__).resolve().parents[2]
APP_NAME = "TA-mde-file-alerts"
PASSWORD_REALM = APP_NAME
SYSTEM_USER = "splunk-system-user"
SPLUNK_VERSION = "9.3.2"
DEFAULT_COUNT = 30

# The built-in roles, reduced to what matters here: only admin-like roles may read secrets.
BUILTIN_ROLES: Mapping[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "user": (
        (),
        frozenset({"search", "rest_properties_get", "get_metadata", "list_inputs", "change_own_password"}),
    ),
    "power": (("user",), frozenset({"schedule_search", "rtsearch", "edit_tokens_own"})),
    "admin": (
        ("power",),
        frozenset(
            {
                "admin_all_objects",
                "list_storage_passwords",
                "edit_storage_passwords",
                "list_settings",
                "edit_tcp",
            }
        ),
    ),
    "sc_admin": (
        ("power",),
        frozenset({"list_storage_passwords", "edit_storage_passwords", "list_settings"}),
    ),
    "can_delete": ((), frozenset({"delete_by_keyword"})),
}

_NAMESPACED = re.compile(r"^/servicesNS/(?P<owner>[^/]+)/(?P<app>[^/]+)(?P<rest>/.*)$")
_GLOBAL = re.compile(r"^/services(?P<rest>/.*)$")
_CONF = re.compile(r"^/configs/conf-(?P<conf>[^/]+)(?:/(?P<stanza>[^/]+))?$")
_KV_DATA = re.compile(r"^/storage/collections/data/(?P<collection>[^/]+)(?:/(?P<key>[^/]+))?/?$")
_KV_CONFIG = re.compile(r"^/storage/collections/config(?:/(?P<collection>[^/]+))?/?$")
_RECEIVER = "/receivers/simple"
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_KV_UNAVAILABLE = "KV Store is initializing. Please try again later."
_LINES = re.compile(r"[\r\n]+")


@dataclass(frozen=True)
class Role:
    imports: tuple[str, ...]
    capabilities: frozenset[str]


@dataclass
class RecordedRequest:
    """One request as the fake saw it; ``user`` is None when it carried no valid key."""

    method: str
    path: str
    query: list[tuple[str, str]]
    form: list[tuple[str, str]]
    user: str | None
    status: int = 0

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query + self.form)


@dataclass(frozen=True)
class ReceivedEvent:
    """One event that ``POST receivers/simple`` was given to index (None: the argument was not sent)."""

    index: str
    sourcetype: str | None
    source: str | None
    host: str | None
    raw: str
    user: str

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


class FakeSplunkd:
    """Start with ``with FakeSplunkd(...) as splunkd:``; ``uri`` is what searchinfo's splunkd_uri holds."""

    def __init__(
        self,
        *,
        users: Mapping[str, Sequence[str]] | None = None,
        roles: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        passwords: Mapping[str, str] | None = None,
        restmap: Mapping[str, Mapping[str, str]] | None = None,
        indexes: Sequence[str] = ("main",),
        app_directory: Path = APP_DIRECTORY,
    ) -> None:
        """``users``: user name -> role names; ``roles``: extra roles (imported roles, capabilities);
        ``accounts``/``settings``: local stanzas of the app's two conf files; ``passwords``:
        storage/passwords user name -> clear secret in the app's realm; ``restmap``: local
        restmap.conf stanzas merged over the app's default ones (e.g. to drop a setting);
        ``indexes``: the indexes receivers/simple accepts.
        """
        self._app_directory = app_directory
        self._lock = threading.Lock()
        self._roles = _roles(app_directory, roles or {})
        self._users: dict[str, tuple[str, ...]] = {
            name: tuple(role_names) for name, role_names in (users or {}).items()
        }
        self._keys: dict[str, str] = {}
        self.system_key = self._new_key(SYSTEM_USER)
        self._local_confs: dict[str, dict[str, dict[str, Any]]] = {
            "ta_mde_file_alerts_accounts": {name: dict(values) for name, values in (accounts or {}).items()},
            "ta_mde_file_alerts_settings": {name: dict(values) for name, values in (settings or {}).items()},
        }
        self._passwords: dict[tuple[str, str], str] = {
            (PASSWORD_REALM, username): value for username, value in (passwords or {}).items()
        }
        self._restmap_local = {name: dict(values) for name, values in (restmap or {}).items()}
        self._requests: list[RecordedRequest] = []
        self._connections = 0
        self._applications: dict[str, Any] = {}
        self.handler_errors: list[str] = []
        self.kvstore = FakeKvStore()
        self.kvstore.load_app(APP_NAME, app_directory)
        #: False: every KV store endpoint answers 503, as while the KV store starts or after it failed.
        self.kvstore_available = True
        self._indexes = set(indexes)
        self._received: list[ReceivedEvent] = []
        self.guid = str(uuid.uuid4()).upper()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._directory: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeSplunkd:
        self._directory = tempfile.mkdtemp(prefix="fake-splunkd-")
        self._server = _Server(("127.0.0.1", 0), server_tls().server_context(self._directory), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-splunkd", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> FakeSplunkd:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def uri(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake splunkd is not running")
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    # -- what a test configures ------------------------------------------------------------

    def session_key_for(self, user: str) -> str:
        """A fresh session key for a configured user (as splunkd gives a search its key)."""
        if user not in self._users:
            raise KeyError(f"no such user {user!r}; configure it with users={{...}}")
        return self._new_key(user)

    def add_user(self, user: str, roles: Sequence[str]) -> None:
        with self._lock:
            self._users[user] = tuple(roles)

    def set_account(self, name: str, **settings: Any) -> None:
        with self._lock:
            self._local_confs["ta_mde_file_alerts_accounts"][name] = dict(settings)

    def set_setting(self, stanza: str, key: str, value: str) -> None:
        with self._lock:
            self._local_confs["ta_mde_file_alerts_settings"].setdefault(stanza, {})[key] = value

    def set_password(self, username: str, value: str, *, realm: str = PASSWORD_REALM) -> None:
        with self._lock:
            self._passwords[(realm, username)] = value

    def add_index(self, name: str) -> None:
        with self._lock:
            self._indexes.add(name)

    def kv_documents(
        self, collection: str, *, app: str = APP_NAME, owner: str = "nobody"
    ) -> list[dict[str, Any]]:
        """Every document of one of the app's collections (one owner's), in insertion order."""
        return self.kvstore.documents(app, collection, owner)

    def capabilities_of(self, user: str) -> frozenset[str]:
        if user == SYSTEM_USER:
            return frozenset().union(*(role.capabilities for role in self._roles.values()))
        return _effective_capabilities(self._roles, self._users.get(user, ()))

    # -- what happened ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """How many connections clients opened (a keep-alive client sends many requests on one)."""
        with self._lock:
            return self._connections

    def requests_to(self, path_part: str) -> list[RecordedRequest]:
        return [request for request in self.requests if path_part in request.path]

    @property
    def received(self) -> list[ReceivedEvent]:
        """Every event given to receivers/simple, in arrival order."""
        with self._lock:
            return list(self._received)

    def received_in(self, index: str) -> list[ReceivedEvent]:
        return [event for event in self.received if event.index == index]

    # -- serving -----------------------------------------------------------------------------

    def _new_key(self, user: str) -> str:
        key = secrets.token_urlsafe(32)
        with self._lock:
            self._keys[key] = user
        return key

    def _user_of(self, authorization: str | None) -> str | None:
        if not authorization or not authorization.startswith("Splunk "):
            return None
        with self._lock:
            return self._keys.get(authorization[len("Splunk ") :].strip())

    def _respond(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        form: list[tuple[str, str]] = []
        if method in ("POST", "PUT") and "json" not in headers.get("content-type", ""):
            form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        user = self._user_of(headers.get("authorization"))
        record = RecordedRequest(method, path, list(query), list(form), user)
        with self._lock:
            self._requests.append(record)
        reply = self._route(method, path, query, form, headers, body, user)
        record.status = reply.status
        return reply

    def _route(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        user: str | None,
    ) -> _Reply:
        namespaced = _NAMESPACED.match(path)
        plain = _GLOBAL.match(path)
        if namespaced:
            owner, app, rest = namespaced["owner"], namespaced["app"], namespaced["rest"]
        elif plain:
            owner, app, rest = None, None, plain["rest"]
        else:
            return _messages(404, "ERROR", "Not Found")
        if user is None:
            return _messages(401, "WARN", "call not properly authenticated")
        endpoint = self._restmap_endpoint(rest)
        if endpoint is not None:
            return self._run_handler(
                endpoint, method, path, rest, query, form, headers, body, user, owner, app
            )
        if rest == _RECEIVER:
            return self._receive(method, query, body, user)
        kv_data, kv_config = _KV_DATA.match(rest), _KV_CONFIG.match(rest)
        if (kv_data or kv_config) and owner is not None and app is not None:
            if not self.kvstore_available:
                return _messages(503, "ERROR", _KV_UNAVAILABLE)
            try:
                if kv_data:
                    return self._kv_data(
                        method, kv_data["collection"], kv_data["key"], owner, app, query, body, user
                    )
                return self._kv_config(
                    method, path, kv_config["collection"] if kv_config else None, app, query, form, user
                )
            except KvStoreRefusal as refusal:
                return _messages(refusal.status, "ERROR", refusal.text)
        params = dict(query)
        conf = _CONF.match(rest)
        known = rest in ("/authentication/current-context", "/server/info") or (
            app is not None and (conf is not None or rest == "/storage/passwords")
        )
        if not known:
            return _messages(404, "ERROR", "Not Found")
        if params.get("output_mode") != "json":
            return _messages(400, "ERROR", "this fake splunkd answers output_mode=json only")
        if method != "GET":
            return _messages(405, "ERROR", f"Method {method} not allowed on {path} in this fake")
        if rest == "/authentication/current-context":
            return self._current_context(path, user, params)
        if rest == "/server/info":
            return self._server_info(path, params)
        if conf is not None and app is not None:
            return self._conf(path, app, conf["conf"], conf["stanza"], params)
        return self._storage_passwords(path, app or "-", user, params)

    # -- plain REST endpoints ----------------------------------------------------------------

    def _current_context(self, path: str, user: str, params: Mapping[str, str]) -> _Reply:
        roles = ["admin"] if user == SYSTEM_USER else list(self._users.get(user, ()))
        content = {
            "username": user,
            "realname": "",
            "email": "",
            "defaultApp": "search",
            "roles": roles,
            "capabilities": sorted(self.capabilities_of(user)),
            "type": "Splunk",
            "tz": "",
            "eai:acl": None,
        }
        return self._collection(path, [self._entry(path, "context", content, app="system")], params)

    def _server_info(self, path: str, params: Mapping[str, str]) -> _Reply:
        content = {
            "version": SPLUNK_VERSION,
            "build": "fake",
            "serverName": "fake-splunkd",
            "guid": self.guid,
        }
        return self._collection(path, [self._entry(path, "server-info", content, app="system")], params)

    def _conf(self, path: str, app: str, conf: str, stanza: str | None, params: Mapping[str, str]) -> _Reply:
        stanzas = self._merged_conf(conf) if app in (APP_NAME, "-") else {}
        base = path if stanza is None else path.rsplit("/", 1)[0]
        entries = [
            self._entry(base, name, _conf_content(values, app=APP_NAME), app=APP_NAME)
            for name, values in stanzas.items()
            if stanza is None or name == stanza
        ]
        if stanza is not None and not entries:
            return _messages(404, "ERROR", f"Could not find object id={stanza}")
        return self._collection(base, entries, params)

    def _merged_conf(self, conf: str) -> dict[str, dict[str, Any]]:
        default_file = self._app_directory / "default" / f"{conf}.conf"
        layers = read_conf(default_file) if default_file.exists() else {"default": {}}
        with self._lock:
            for name, values in self._local_confs.get(conf, {}).items():
                layers.setdefault(name, {}).update({key: str(value) for key, value in values.items()})
        inherited = layers.get("default", {})
        merged = {name: {**inherited, **values} for name, values in layers.items() if name != "default"}
        if inherited:
            merged = {"default": dict(inherited), **merged}
        return merged

    def _storage_passwords(self, path: str, app: str, user: str, params: Mapping[str, str]) -> _Reply:
        if "list_storage_passwords" not in self.capabilities_of(user):
            return _messages(
                403,
                "ERROR",
                f"You (user={user}) do not have permission to perform this operation "
                "(requires capability: list_storage_passwords).",
            )
        with self._lock:
            stored = sorted(self._passwords.items()) if app in (APP_NAME, "-") else []
        entries = []
        for (realm, username), clear in stored:
            content = {
                "clear_password": clear,
                "encr_password": "$7$" + base64.b64encode(secrets.token_bytes(24)).decode("ascii"),
                "password": "********",
                "realm": realm,
                "username": username,
                "eai:acl": None,
            }
            name = f"{_escape_colons(realm)}:{_escape_colons(username)}:"
            entries.append(self._entry(path, name, content, app=APP_NAME))
        return self._collection(path, entries, params)

    # -- the KV store ----------------------------------------------------------------------------

    def _kv_data(
        self,
        method: str,
        name: str,
        key: str | None,
        owner: str,
        app: str,
        query: list[tuple[str, str]],
        body: bytes,
        user: str,
    ) -> _Reply:
        self.kvstore.collection(app, name)  # 404 for a collection the app does not have
        self._check_kv_access(user, name, "read" if method == "GET" else "write")
        params = dict(query)
        store = self.kvstore
        if method == "GET" and key is None:
            return _json_reply(200, store.query(app, name, owner, params))
        if method == "GET" and key is not None:
            return _json_reply(200, store.get(app, name, owner, key))
        if method == "POST" and key == "batch_save":
            return _json_reply(200, store.batch_save(app, name, owner, _json_body(body)))
        if method == "POST" and key is None:
            return _json_reply(201, {"_key": store.insert(app, name, owner, _json_body(body))})
        if method == "POST" and key is not None:
            return _json_reply(200, {"_key": store.update(app, name, owner, key, _json_body(body))})
        if method == "DELETE" and key is None:
            store.delete(app, name, owner, params)
            return _Reply(200)
        if method == "DELETE" and key is not None:
            store.delete_key(app, name, owner, key)
            return _Reply(200)
        return _messages(405, "ERROR", f"Method {method} not allowed on KV store data in this fake")

    def _kv_config(
        self,
        method: str,
        path: str,
        name: str | None,
        app: str,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        user: str,
    ) -> _Reply:
        # splunkd takes output_mode from the query string or, for a POST, from the form as well.
        params = {**dict(form), **dict(query)}
        if params.get("output_mode") != "json":
            return _messages(400, "ERROR", "this fake splunkd answers output_mode=json only")
        base = path.rstrip("/") if name is None else path.rstrip("/").rsplit("/", 1)[0]
        settings = {key: value for key, value in form if key not in ("name", "output_mode")}
        if method != "GET" and "admin_all_objects" not in self.capabilities_of(user):
            return _messages(403, "ERROR", f"You (user={user}) do not have permission to change collections.")
        if method == "GET" and name is None:
            collections = self.kvstore.collections(app)
        elif method == "GET" and name is not None:
            collections = [self.kvstore.collection(app, name)]
        elif method == "POST" and name is None:
            new_name = dict(form).get("name", "").strip()
            if not new_name:
                return _messages(400, "ERROR", "Argument 'name' is required.")
            collections = [self.kvstore.create(app, new_name, settings)]
        elif method == "POST" and name is not None:
            collections = [self.kvstore.configure(app, name, settings)]
        elif method == "DELETE" and name is not None:
            self.kvstore.drop(app, name)
            return self._collection(base, [], params)
        else:
            return _messages(405, "ERROR", f"Method {method} not allowed on {path} in this fake")
        entries = [
            self._entry(
                base,
                collection.name,
                {**collection.settings, **_collection_metadata(collection.app)},
                app=collection.app,
                perms=collection_access(self._app_directory, collection.name),
            )
            for collection in collections
        ]
        reply = self._collection(base, entries, params)
        return _Reply(201, reply.body) if method == "POST" and name is None else reply

    def _check_kv_access(self, user: str, collection: str, kind: str) -> None:
        capabilities = self.capabilities_of(user)
        if "admin_all_objects" in capabilities:
            return
        allowed = collection_access(self._app_directory, collection).get(kind, [])
        roles = _effective_roles(self._roles, self._users.get(user, ()))
        if "*" not in allowed and not roles & set(allowed):
            raise KvStoreRefusal(
                403,
                f"User '{user}' with roles {', '.join(sorted(roles))} cannot {kind} collection {collection}.",
            )

    # -- receivers/simple --------------------------------------------------------------------

    def _receive(self, method: str, query: list[tuple[str, str]], body: bytes, user: str) -> _Reply:
        if method != "POST":
            return _messages(405, "ERROR", f"Method {method} not allowed on receivers/simple")
        if "edit_tcp" not in self.capabilities_of(user):
            return _messages(
                403,
                "ERROR",
                f"You (user={user}) do not have permission to perform this operation "
                "(requires capability: edit_tcp).",
            )
        params = dict(query)
        index = params.get("index") or "main"
        with self._lock:
            known = index in self._indexes
        if not known:
            return _messages(400, "ERROR", f"Index '{index}' does not exist.")
        text = body.decode("utf-8", "replace")
        events = [
            ReceivedEvent(
                index, params.get("sourcetype"), params.get("source"), params.get("host"), line, user
            )
            for line in _LINES.split(text)
            if line.strip()
        ]
        with self._lock:
            self._received.extend(events)
        answer = {
            "index": index,
            "bytes": len(body),
            "host": params.get("host") or "fake-splunkd",
            "source": params.get("source") or "http-simple",
            "sourcetype": params.get("sourcetype") or "http-simple",
        }
        if params.get("output_mode") == "json":
            return _json_reply(200, answer)
        results = "".join(f"<{name}>{value}</{name}>" for name, value in answer.items())
        xml = f"<response><results><result>{results}</result></results></response>"
        return _Reply(200, _XML_DECLARATION + xml.encode("utf-8"), "text/xml; charset=UTF-8")

    # -- restmap.conf endpoints --------------------------------------------------------------

    def _restmap(self) -> dict[str, dict[str, str]]:
        stanzas = read_conf(self._app_directory / "default" / "restmap.conf")
        for name, values in self._restmap_local.items():
            stanzas.setdefault(name, {}).update(values)
        return {name: values for name, values in stanzas.items() if name.startswith("script:")}

    def _restmap_endpoint(self, rest: str) -> tuple[str, dict[str, str]] | None:
        for name, conf in self._restmap().items():
            match = conf.get("match", "")
            if match and (rest == match or rest.startswith(match.rstrip("/") + "/")):
                return name, conf
        return None

    def _run_handler(
        self,
        endpoint: tuple[str, dict[str, str]],
        method: str,
        path: str,
        rest: str,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        user: str,
        owner: str | None,
        app: str | None,
    ) -> _Reply:
        name, conf = endpoint
        required = conf.get(f"capability.{method.lower()}") or conf.get("capability")
        if required and not _capability_expression_holds(required, self.capabilities_of(user)):
            return _messages(
                403,
                "ERROR",
                f"You (user={user}) do not have permission to perform this operation "
                f"(requires capability: {required}).",
            )
        request = self._request_document(
            name, conf, method, rest, query, form, headers, body, user, owner, app
        )
        try:
            application = self._application(name, conf)
            result = application.handle(json.dumps(request))
            application.done()
        except Exception:  # noqa: BLE001 - splunkd turns any handler failure into a 500 as well
            self.handler_errors.append(traceback.format_exc())
            return _messages(500, "ERROR", f"Unexpected error in the REST handler of [{name}].")
        reply = json.loads(result) if isinstance(result, (str, bytes)) else json.loads(json.dumps(result))
        return _persistent_reply(reply)

    def _request_document(
        self,
        name: str,
        conf: Mapping[str, str],
        method: str,
        rest: str,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        user: str,
        owner: str | None,
        app: str | None,
    ) -> dict[str, Any]:
        """splunkd's persistent-handler request document, with its optional parts as restmap decides."""
        match = conf["match"]
        output_mode = dict(query).get("output_mode")
        document: dict[str, Any] = {
            "output_mode": output_mode or "xml",
            "output_mode_explicit": output_mode is not None,
            "server": {
                "rest_uri": self.uri,
                "hostname": "fake-splunkd",
                "servername": "fake-splunkd",
                "guid": self.guid,
            },
            "query": [list(pair) for pair in query],
            "connection": {
                "src_ip": "127.0.0.1",
                "ssl": True,
                "listening_port": int(self.uri.rsplit(":", 1)[1]),
            },
            "rest_path": rest,
            "method": method,
        }
        if _flag(conf.get("passConf"), default=True):
            document["restmap"] = {"name": name, "conf": dict(conf)}
        if rest != match and rest.startswith(match.rstrip("/") + "/"):
            document["path_info"] = rest[len(match.rstrip("/")) + 1 :]
        if _flag(conf.get("passSession"), default=True):
            document["session"] = {"user": user, "authtoken": _session_key(headers)}
        if _flag(conf.get("passSystemAuth"), default=False):
            document["system_authtoken"] = self.system_key
        namespace = {key: value for key, value in (("app", app), ("user", owner)) if value and value != "-"}
        if namespace:
            document["ns"] = namespace
        if method in ("POST", "PUT"):
            document["form"] = [list(pair) for pair in form]
            if body and _flag(conf.get("passPayload"), default=False):
                document["payload"] = body.decode("utf-8", "replace")
        if _flag(conf.get("passHttpHeaders"), default=False):
            document["headers"] = [[key, value] for key, value in headers.items()]
        return document

    def _application(self, name: str, conf: Mapping[str, str]) -> Any:
        """The handler instance, created once per fake as splunkd's persistent process would."""
        with self._lock:
            if name in self._applications:
                return self._applications[name]
        module_name, _, class_name = conf["handler"].rpartition(".")
        script = self._app_directory / "bin" / (conf.get("script") or f"{module_name}.py")
        spec = importlib.util.spec_from_file_location(f"_fake_splunkd_{id(self)}_{module_name}", script)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {script}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        application = getattr(module, class_name)(f"{script}", None)
        with self._lock:
            return self._applications.setdefault(name, application)

    # -- Splunk's JSON envelope ----------------------------------------------------------------

    def _entry(
        self,
        base: str,
        name: str,
        content: Mapping[str, Any],
        *,
        app: str,
        perms: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        link = f"{base}/{quote(name, safe='')}"
        return {
            "name": name,
            "id": self.uri + link,
            "updated": "2024-01-01T00:00:00+00:00",
            "links": {"alternate": link, "list": link, "edit": link, "remove": link},
            "author": "nobody",
            "acl": {
                "app": app,
                "can_change_perms": True,
                "can_list": True,
                "can_share_app": True,
                "can_share_global": True,
                "can_share_user": False,
                "can_write": True,
                "modifiable": True,
                "owner": "nobody",
                "perms": {
                    kind: list(roles)
                    for kind, roles in (perms or {"read": ["*"], "write": ["admin", "sc_admin"]}).items()
                },
                "removable": False,
                "sharing": "app",
            },
            "content": dict(content),
        }

    def _collection(self, path: str, entries: list[dict[str, Any]], params: Mapping[str, str]) -> _Reply:
        count = int(params.get("count", DEFAULT_COUNT))
        offset = int(params.get("offset", 0))
        page = entries[offset:] if count == 0 else entries[offset : offset + count]
        document = {
            "links": {"create": f"{path}/_new", "_reload": f"{path}/_reload", "_acl": f"{path}/_acl"},
            "origin": self.uri + path,
            "updated": "2024-01-01T00:00:00+00:00",
            "generator": {"build": "fake", "version": SPLUNK_VERSION},
            "entry": page,
            "paging": {"total": len(entries), "perPage": count, "offset": offset},
            "messages": [],
        }
        return _Reply(200, json.dumps(document).encode("utf-8"))


def _persistent_reply(reply: Any) -> _Reply:
    """An HTTP answer from a persistent handler's reply document, as splunkd builds it."""
    if not isinstance(reply, dict):
        return _messages(500, "ERROR", "The REST handler's reply is not a JSON object.")
    status = reply.get("status", 200)
    status = int(status[0] if isinstance(status, list) else status)
    headers = reply.get("headers") or {}
    if isinstance(headers, list):
        headers = {str(name): str(value) for name, value in headers}
    if "payload_base64" in reply:
        return _Reply(status, base64.b64decode(reply["payload_base64"]), "", dict(headers))
    payload = reply.get("payload")
    if payload is None and "payload" in reply:
        return _Reply(204 if status == 200 else status, b"", "", dict(headers))
    if isinstance(payload, (dict, list)):
        return _Reply(status, json.dumps(payload).encode("utf-8"), headers=dict(headers))
    return _Reply(status, str(payload or "").encode("utf-8"), "", dict(headers))


def _json_reply(status: int, document: Any) -> _Reply:
    return _Reply(status, json.dumps(document).encode("utf-8"))


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError:
        raise KvStoreRefusal(400, "The request body is not valid JSON.") from None


def _collection_metadata(app: str) -> dict[str, Any]:
    return {"disabled": False, "eai:acl": None, "eai:appName": app, "eai:userName": "nobody"}


def _messages(status: int, kind: str, text: str) -> _Reply:
    return _Reply(status, json.dumps({"messages": [{"type": kind, "text": text}]}).encode("utf-8"))


def _conf_content(values: Mapping[str, Any], *, app: str) -> dict[str, Any]:
    content: dict[str, Any] = dict(values)
    # splunkd reports a stanza's "disabled" as a JSON boolean; every other value stays text.
    content["disabled"] = _flag(str(values.get("disabled", "0")), default=False)
    content.update({"eai:acl": None, "eai:appName": app, "eai:userName": "nobody"})
    return content


def _session_key(headers: Mapping[str, str]) -> str:
    return headers.get("authorization", "")[len("Splunk ") :].strip()


def _escape_colons(value: str) -> str:
    return value.replace(":", "\\:")


def _flag(value: str | None, *, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "t", "yes", "y", "on")


def _roles(app_directory: Path, extra: Mapping[str, tuple[Sequence[str], Sequence[str]]]) -> dict[str, Role]:
    roles = {name: Role(imports, capabilities) for name, (imports, capabilities) in BUILTIN_ROLES.items()}
    authorize = app_directory / "default" / "authorize.conf"
    stanzas = read_conf(authorize) if authorize.exists() else {}
    for stanza, values in stanzas.items():
        if not stanza.startswith("role_"):
            continue
        name = stanza[len("role_") :]
        known = roles.get(name, Role((), frozenset()))
        imports = tuple(role.strip() for role in values.get("importRoles", "").split(";") if role.strip())
        granted = {key for key, value in values.items() if value.strip().lower() == "enabled"}
        roles[name] = Role(imports or known.imports, known.capabilities | granted)
    for name, (imports, capabilities) in extra.items():
        roles[name] = Role(tuple(imports), frozenset(capabilities))
    return roles


def _effective_roles(roles: Mapping[str, Role], names: Sequence[str]) -> set[str]:
    """The user's roles and every role they import, as splunkd matches them against permissions."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(roles[name].imports if name in roles else ())
    return seen


def _effective_capabilities(roles: Mapping[str, Role], names: Sequence[str]) -> frozenset[str]:
    seen: set[str] = set()
    capabilities: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in seen or name not in roles:
            continue
        seen.add(name)
        capabilities |= roles[name].capabilities
        pending.extend(roles[name].imports)
    return frozenset(capabilities)


def _capability_expression_holds(expression: str, capabilities: frozenset[str]) -> bool:
    """restmap.conf's capability expressions: names joined by ``and``/``or``, grouped with ()."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expression)
    position = 0

    def parse_or() -> bool:
        nonlocal position
        value = parse_and()
        while position < len(tokens) and tokens[position] == "or":
            position += 1
            value = parse_and() or value
        return value

    def parse_and() -> bool:
        nonlocal position
        value = parse_atom()
        while position < len(tokens) and tokens[position] == "and":
            position += 1
            value = parse_atom() and value
        return value

    def parse_atom() -> bool:
        nonlocal position
        token = tokens[position]
        position += 1
        if token == "(":
            value = parse_or()
            position += 1  # the closing parenthesis
            return value
        return token in capabilities

    return parse_or()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, fake: FakeSplunkd) -> None:
        super().__init__(address, _Handler)
        self.context = context
        self.fake = fake

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs on the connection's own thread, never in the accept loop.
        request.settimeout(30)
        with self.fake._lock:
            self.fake._connections += 1
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with contextlib.closing(connection), contextlib.suppress(ssl.SSLError, OSError):
            _Handler(connection, client_address, self)


class _Handler(BaseHTTPRequestHandler):
    server_version = "Splunkd"
    # HTTP/1.1 as splunkd speaks it: a connection stays open for the next request unless the
    # client asks for "Connection: close" (splunklib's default handler does, every time).
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.fake._respond(self.command, self.path, headers, body)
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            # Said when the client asked for it, as splunkd does: http.client hands the socket to
            # the response only then, and splunklib closes its connection before reading the body.
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on ``FakeSplunkd.requests``."""


def account_stanza_for(emulator: DefenderEmulator) -> dict[str, str]:
    """The account stanza an admin would create for the emulator's tenant."""
    return {
        "tenant_id": emulator.tenant_id,
        "client_id": emulator.client_id,
        "cloud": "commercial",
        "api_host": emulator.base_url,
        "authority_host": emulator.base_url,
        "ca_bundle": emulator.ca_bundle,
    }
