"""One KV store collection of this app, through splunkd's REST API, and the one place its failures
become errors.

Every request goes to ``/servicesNS/nobody/TA-mde-file-alerts/storage/collections/data/<name>``
with the caller's session key, so the documents are the app's shared ones (owner ``nobody``),
whichever app the user searches in; the collection's permissions (metadata/default.meta) decide
who may read and write them. The KV store answers JSON whatever ``output_mode`` says.

On a search head cluster every member's KV store holds the same data: splunkd replicates it, so a
collection is shared by all members without anything more from this app.

A KV store that is starting, stopped or failed answers 503, and a splunkd that cannot be reached
does not answer at all: both raise ``KvStoreUnavailable``, after which callers fall back to
something local. Every other refusal raises ``KvStoreError`` with splunkd's own message.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from splunklib import binding

from mde_file_alerts.errors import ConfigurationError, MdeError
from mde_file_alerts.splunk.keepalive import KeepAliveHandler
from mde_file_alerts.splunk.settings import APP_OWNER
from mde_file_alerts.splunk.splunkd import SplunkdResponse
from mde_file_alerts.version import APP_NAME

logger = logging.getLogger(__name__)

#: The result cache (collections.conf, transforms.conf).
CACHE_COLLECTION = "mde_file_alerts_cache"
#: The cluster-wide Defender call budget.
BUDGET_COLLECTION = "mde_file_alerts_budget"

#: Seconds to wait for splunkd; the KV store answers in milliseconds when it is healthy.
DEFAULT_TIMEOUT = 30.0
#: limits.conf [kvstore] max_documents_per_batch_save (its default): more in one request is refused.
MAX_DOCUMENTS_PER_BATCH_SAVE = 1000
# Well below limits.conf max_size_per_batch_save_mb (50 MB by default).
_MAX_BATCH_BYTES = 16 * 1024 * 1024
# A lookup of many keys is split into GETs whose query string stays this short, far from any
# URL length limit of splunkd or a proxy in between.
_MAX_QUERY_CHARACTERS = 6000
_JSON_HEADERS = [("Content-Type", "application/json")]


class KvStoreError(MdeError):
    """splunkd refused a KV store request (permissions, unknown collection, bad request...)."""

    default_message = "The Splunk KV store refused the request."


class KvStoreUnavailable(KvStoreError):
    """The KV store is starting, stopped or failed (HTTP 503), or splunkd cannot be reached."""

    default_message = "The Splunk KV store is not available."
    retryable = True


class KvStoreConflict(KvStoreError):
    """An insert named a ``_key`` that the collection holds already (HTTP 409)."""

    default_message = "A KV store document with this key exists already."


class KvStoreCollection:
    """The documents of one collection of this app, read and written as owner ``nobody``."""

    def __init__(
        self,
        splunkd_uri: str,
        session_key: str,
        collection: str,
        *,
        app: str = APP_NAME,
        owner: str = APP_OWNER,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
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
            raise ConfigurationError("splunkd gave this app no session key, so it cannot use the KV store.")
        self.name = collection
        self.uri = f"{parts.scheme}://{parts.netloc}"
        self._path = f"storage/collections/data/{quote(collection, safe='')}"
        self._absolute_path = f"/servicesNS/{quote(owner, safe='')}/{quote(app, safe='')}/{self._path}"
        self._context: Any = binding.Context(
            handler=KeepAliveHandler(timeout=timeout),
            scheme=parts.scheme,
            host=parts.hostname,
            port=port,
            token=session_key,
            owner=owner,
            app=app,
        )

    def __repr__(self) -> str:
        return f"KvStoreCollection({self.name!r} at {self.uri})"

    # --- reading ---------------------------------------------------------------------------------

    def query(
        self,
        query: Mapping[str, Any] | None = None,
        *,
        sort: str | None = None,
        limit: int | None = None,
        skip: int | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Documents matching a Mongo-style ``query``.

        ``sort`` is splunkd's ``field[:1|:-1],...`` (e.g. ``"seq:-1"``); ``fields`` names the
        fields to return (``_key`` comes too).
        """
        parameters: dict[str, str] = {}
        if query:
            parameters["query"] = _json_text(query)
        if sort:
            parameters["sort"] = sort
        if limit is not None:
            parameters["limit"] = str(int(limit))
        if skip:
            parameters["skip"] = str(int(skip))
        if fields:
            parameters["fields"] = ",".join(fields)
        document = self._request("GET", "", parameters=parameters).json()
        if not isinstance(document, list):
            raise KvStoreError(
                f"The KV store answered a query on {self.name} with something else than documents.",
                method="GET",
                url=self.uri + self._absolute_path,
            )
        return [item for item in document if isinstance(item, dict)]

    def get(self, key: str) -> dict[str, Any] | None:
        """The document with this ``_key``, or None."""
        response = self._request("GET", _key_segment(key), missing_ok=True)
        document = response.json() if response.status != 404 else None
        return document if isinstance(document, dict) else None

    def find_keys(self, keys: Sequence[str], *, fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every document whose ``_key`` is one of ``keys``, in as few short GETs as possible."""
        documents: list[dict[str, Any]] = []
        for chunk in _chunks_for_query(list(dict.fromkeys(keys))):
            documents.extend(self.query({"_key": {"$in": chunk}}, fields=fields))
        return documents

    # --- writing ---------------------------------------------------------------------------------

    def insert(self, document: Mapping[str, Any]) -> str:
        """Add one document; its ``_key`` (generated unless given) is returned.

        Raises ``KvStoreConflict`` when the given ``_key`` exists: two inserts of one key never both
        succeed, which is what the call budget builds on.
        """
        response = self._request("POST", "", body=_json_body(document))
        return _key_of(response.json())

    def update(self, key: str, document: Mapping[str, Any]) -> None:
        """Replace the document with this ``_key`` (KvStoreError when there is none)."""
        self._request("POST", _key_segment(key), body=_json_body(document))

    def batch_save(self, documents: Sequence[Mapping[str, Any]]) -> list[str]:
        """Insert or replace (by ``_key``) every document; their keys in order.

        Split into requests within splunkd's limits on documents and bytes per batch.
        """
        keys: list[str] = []
        for batch in _batches(documents):
            answer = self._request("POST", "batch_save", body=batch).json()
            if not isinstance(answer, list):
                raise KvStoreError(
                    f"The KV store answered a batch save to {self.name} without the saved keys.",
                    method="POST",
                    url=self.uri + self._absolute_path + "/batch_save",
                )
            keys.extend(str(key) for key in answer)
        return keys

    def delete(self, query: Mapping[str, Any] | None = None) -> None:
        """Remove the documents matching ``query``: every document of the collection when None."""
        parameters = {"query": _json_text(query)} if query else {}
        self._request("DELETE", "", parameters=parameters)

    def delete_key(self, key: str) -> bool:
        """Remove the document with this ``_key``; False when there was none."""
        return self._request("DELETE", _key_segment(key), missing_ok=True).status != 404

    # --- the one request method ----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        subpath: str,
        *,
        parameters: Mapping[str, str] | None = None,
        body: bytes | None = None,
        missing_ok: bool = False,
    ) -> SplunkdResponse:
        suffix = f"/{subpath}" if subpath else ""
        segment = binding.UrlEncoded(self._path + suffix, skip_encode=True)
        url = self.uri + self._absolute_path + suffix
        try:
            if method == "GET":
                raw = self._context.get(segment, **dict(parameters or {}))
            elif method == "DELETE":
                raw = self._context.delete(segment, **dict(parameters or {}))
            else:
                raw = self._context.post(segment, headers=list(_JSON_HEADERS), body=body or b"{}")
            response = SplunkdResponse(int(raw.status), raw.body.read())
        except binding.HTTPError as error:
            response = SplunkdResponse(int(error.status), bytes(error.body or b""))
        except (OSError, http.client.HTTPException) as error:
            raise KvStoreUnavailable(
                f"Could not reach splunkd's KV store at {self.uri} ({type(error).__name__}).",
                method=method,
                url=url,
            ) from None
        if response.ok or (missing_ok and response.status == 404):
            return response
        raise self._error(response, method, url, about_document=bool(subpath) and subpath != "batch_save")

    def _error(
        self, response: SplunkdResponse, method: str, url: str, *, about_document: bool
    ) -> KvStoreError:
        messages = response.messages
        detail = "; ".join(messages) if messages else None
        error_class: type[KvStoreError] = KvStoreError
        if response.status == 503:
            error_class = KvStoreUnavailable
            message = (
                "The Splunk KV store is not available (it is starting, stopped or failed); "
                f"the collection {self.name} cannot be used now."
            )
        elif response.status == 409:
            error_class = KvStoreConflict
            message = KvStoreConflict.default_message
        else:
            reason = _reason(response.status, about_document)
            message = f"The KV store collection {self.name} cannot be used: {reason}."
        return error_class(message, method=method, url=url, status=response.status, detail=detail)


def _reason(status: int, about_document: bool) -> str:
    if status == 401:
        return "splunkd did not accept the session key (expired or invalid)"
    if status == 403:
        return "the user's roles have no permission on it (metadata/default.meta of the app)"
    if status == 404 and about_document:
        return "it holds no document with that key"
    if status == 404:
        return f"it does not exist: the {APP_NAME} app may need a restart of Splunk after installing"
    return f"splunkd answered HTTP {status}"


def _json_text(document: Any) -> str:
    # ASCII-only JSON: splunklib sends the length of the text as Content-Length, and NaN is not JSON.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _json_body(document: Any) -> bytes:
    return _json_text(document).encode("ascii")


def _key_segment(key: str) -> str:
    return quote(str(key), safe="")


def _key_of(answer: Any) -> str:
    key = answer.get("_key") if isinstance(answer, dict) else None
    if not isinstance(key, str):
        raise KvStoreError("The KV store answered an insert without the new document's key.")
    return key


def _chunks_for_query(keys: list[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    length = 0
    for key in keys:
        # Each key costs its quoted, percent-encoded JSON text plus an encoded comma.
        cost = len(quote(json.dumps(key), safe="")) + 3
        if chunk and length + cost > _MAX_QUERY_CHARACTERS:
            yield chunk
            chunk, length = [], 0
        chunk.append(key)
        length += cost
    if chunk:
        yield chunk


def _batches(documents: Sequence[Mapping[str, Any]]) -> Iterator[bytes]:
    encoded: list[str] = []
    size = 0
    for document in documents:
        text = _json_text(document)
        if encoded and (len(encoded) >= MAX_DOCUMENTS_PER_BATCH_SAVE or size + len(text) > _MAX_BATCH_BYTES):
            yield ("[" + ",".join(encoded) + "]").encode("ascii")
            encoded, size = [], 0
        encoded.append(text)
        size += len(text) + 1
    if encoded:
        yield ("[" + ",".join(encoded) + "]").encode("ascii")
