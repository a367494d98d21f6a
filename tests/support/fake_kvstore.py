"""The KV store behind the fake splunkd: collections from the app's collections.conf, and documents
queried the way splunkd's ``storage/collections/data`` endpoints document it.

What it implements (everything else is refused with HTTP 400, so a client bug shows in tests):

- Queries: a JSON object of field conditions, all of which must hold: equality (numbers equal
  across int/float, a missing field equals null), ``$gt``/``$gte``/``$lt``/``$lte``/``$ne``/``$in``/
  ``$nin``, ``$not`` around a condition, and ``$and``/``$or`` over lists of queries. Ordering
  comparisons only match values of the same kind (number with number, text with text), as in
  MongoDB underneath.
- ``sort=field[:1|:-1],...``, ``skip``, ``limit`` (0 means no limit; at most limits.conf's
  ``max_rows_per_query`` of 50,000 rows either way), ``fields=a,b`` (``_key`` always comes too
  unless ``_key:0``) or ``fields=a:0,b:0``.
- Field types of collections.conf (``field.<name> = number|bool|string|time``) applied on every
  write; with ``enforceTypes = false`` (the default) a value that does not convert is dropped,
  with ``true`` the write is refused.
- Documents belong to the namespace's owner (``_user``); ``nobody`` holds the shared ones.
- Inserting a ``_key`` that exists is refused with 409; ``batch_save`` inserts or replaces, at most
  ``max_documents_per_batch_save`` (1,000) documents a request.

The store is in memory and guarded by one lock, so concurrent requests see each other's writes
in one order, as a single KV store node does.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.conf import read_conf

#: limits.conf [kvstore] defaults.
MAX_ROWS_PER_QUERY = 50_000
MAX_DOCUMENTS_PER_BATCH_SAVE = 1000
SHARED_OWNER = "nobody"

_COMPARISONS = {
    "$gt": lambda order: order > 0,
    "$gte": lambda order: order >= 0,
    "$lt": lambda order: order < 0,
    "$lte": lambda order: order <= 0,
}
_MISSING = object()


class KvStoreRefusal(Exception):
    """An answer other than success: the HTTP status and splunkd's message."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass
class Collection:
    """One collection's configuration (a collections.conf stanza) and its documents."""

    app: str
    name: str
    settings: dict[str, str] = field(default_factory=dict)
    #: (owner, _key) -> document, in insertion order (MongoDB's natural order).
    documents: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @property
    def field_types(self) -> dict[str, str]:
        return {
            key[len("field.") :]: value.strip().lower()
            for key, value in self.settings.items()
            if key.startswith("field.")
        }

    @property
    def enforce_types(self) -> bool:
        return self.settings.get("enforceTypes", "false").strip().lower() in ("1", "true", "t", "yes")


class FakeKvStore:
    """Collections per app, and the data operations of splunkd's KV store REST API."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._collections: dict[tuple[str, str], Collection] = {}

    # -- configuration -------------------------------------------------------------------------

    def load_app(self, app: str, app_directory: Path) -> None:
        """Create the collections the app's default/collections.conf declares."""
        conf = app_directory / "default" / "collections.conf"
        if not conf.exists():
            return
        for name, settings in read_conf(conf).items():
            if name != "default":
                self.create(app, name, settings)

    def create(self, app: str, name: str, settings: Mapping[str, str] | None = None) -> Collection:
        with self._lock:
            if (app, name) in self._collections:
                raise KvStoreRefusal(409, f"An object with name={name} already exists")
            collection = Collection(app, name, dict(settings or {}))
            self._collections[(app, name)] = collection
            return collection

    def configure(self, app: str, name: str, settings: Mapping[str, str]) -> Collection:
        with self._lock:
            collection = self._collection(app, name)
            collection.settings.update(settings)
            return collection

    def drop(self, app: str, name: str) -> None:
        with self._lock:
            self._collection(app, name)
            del self._collections[(app, name)]

    def collections(self, app: str) -> list[Collection]:
        """The collections visible in ``app`` (``-``: every app's)."""
        with self._lock:
            return [
                collection
                for (owning_app, _), collection in sorted(self._collections.items())
                if app in ("-", owning_app)
            ]

    def collection(self, app: str, name: str) -> Collection:
        with self._lock:
            return self._collection(app, name)

    # -- data ----------------------------------------------------------------------------------

    def query(self, app: str, name: str, owner: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        query = _json_parameter(params, "query", default={})
        fields = _projection(params.get("fields", ""))
        sort_keys = _sort_keys(params.get("sort", ""))
        skip = _count_parameter(params, "skip")
        limit = _count_parameter(params, "limit") or MAX_ROWS_PER_QUERY
        shared = params.get("shared", "false").strip().lower() in ("1", "true", "t")
        with self._lock:
            collection = self._collection(app, name)
            owners = {owner, SHARED_OWNER} if shared else {owner}
            matching = [
                dict(document)
                for (document_owner, _), document in collection.documents.items()
                if document_owner in owners and _matches(document, query)
            ]
        # Stable sorts from the last key to the first give the multi-key order.
        for field_name, direction in reversed(sort_keys):
            matching.sort(
                key=lambda document, name=field_name: _order_key(document.get(name, _MISSING)),
                reverse=direction < 0,
            )
        window = matching[skip : skip + min(limit, MAX_ROWS_PER_QUERY)]
        return [_project(document, fields) for document in window]

    def get(self, app: str, name: str, owner: str, key: str) -> dict[str, Any]:
        with self._lock:
            document = self._collection(app, name).documents.get((owner, key))
            if document is None:
                raise KvStoreRefusal(404, "Could not find object.")
            return dict(document)

    def insert(self, app: str, name: str, owner: str, document: Any) -> str:
        with self._lock:
            collection = self._collection(app, name)
            stored = _typed(collection, _document(document), owner)
            if (owner, stored["_key"]) in collection.documents:
                raise KvStoreRefusal(409, "A document with the same key and user already exists.")
            collection.documents[(owner, stored["_key"])] = stored
            return str(stored["_key"])

    def update(self, app: str, name: str, owner: str, key: str, document: Any) -> str:
        with self._lock:
            collection = self._collection(app, name)
            if (owner, key) not in collection.documents:
                raise KvStoreRefusal(404, "Could not find object.")
            stored = _typed(collection, {**_document(document), "_key": key}, owner)
            collection.documents[(owner, key)] = stored
            return key

    def batch_save(self, app: str, name: str, owner: str, documents: Any) -> list[str]:
        if not isinstance(documents, list) or not all(isinstance(item, dict) for item in documents):
            raise KvStoreRefusal(400, "Batch save expects a JSON array of documents.")
        if len(documents) > MAX_DOCUMENTS_PER_BATCH_SAVE:
            raise KvStoreRefusal(
                400,
                "Request exceeds API limits - see limits.conf for details. (Too many documents for a "
                f"single batch save, max_documents_per_batch_save={MAX_DOCUMENTS_PER_BATCH_SAVE})",
            )
        with self._lock:
            collection = self._collection(app, name)
            typed = [_typed(collection, _document(item), owner) for item in documents]
            for stored in typed:
                collection.documents[(owner, stored["_key"])] = stored
            return [str(stored["_key"]) for stored in typed]

    def delete(self, app: str, name: str, owner: str, params: Mapping[str, str]) -> None:
        query = _json_parameter(params, "query", default={})
        with self._lock:
            collection = self._collection(app, name)
            for identity, document in list(collection.documents.items()):
                if identity[0] == owner and _matches(document, query):
                    del collection.documents[identity]

    def delete_key(self, app: str, name: str, owner: str, key: str) -> None:
        with self._lock:
            collection = self._collection(app, name)
            if collection.documents.pop((owner, key), None) is None:
                raise KvStoreRefusal(404, "Could not find object.")

    def documents(self, app: str, name: str, owner: str = SHARED_OWNER) -> list[dict[str, Any]]:
        """A test's view of every document of one owner, in insertion order."""
        with self._lock:
            return [
                dict(document)
                for (document_owner, _), document in self._collection(app, name).documents.items()
                if document_owner == owner
            ]

    def _collection(self, app: str, name: str) -> Collection:
        collection = self._collections.get((app, name))
        if collection is None:
            raise KvStoreRefusal(404, f"Collection {name} does not exist in app {app}.")
        return collection


# -- documents and types -----------------------------------------------------------------------


def _document(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KvStoreRefusal(400, "The document must be a JSON object.")
    key = value.get("_key", _MISSING)
    if key is not _MISSING and (not isinstance(key, str) or not key):
        raise KvStoreRefusal(400, "_key must be a non-empty string.")
    return dict(value)


def _typed(collection: Collection, document: dict[str, Any], owner: str) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    types = collection.field_types
    for name, value in document.items():
        if name in ("_key", "_user") or name not in types:
            stored[name] = value
            continue
        converted = _convert(value, types[name])
        if converted is _MISSING:
            if collection.enforce_types:
                raise KvStoreRefusal(400, f"Field {name} must be of type {types[name]}.")
            continue
        stored[name] = converted
    stored["_key"] = document.get("_key") or uuid.uuid4().hex[:24]
    stored["_user"] = owner
    return stored


def _convert(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind in ("number", "time"):
        if isinstance(value, bool):
            return _MISSING
        if isinstance(value, (int, float)):
            return value
        try:
            number = float(str(value).strip())
        except ValueError:
            return _MISSING
        return number if math.isfinite(number) else _MISSING
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "t", "yes"):
            return True
        if text in ("false", "0", "f", "no"):
            return False
        return _MISSING
    if kind == "string":
        if isinstance(value, (dict, list)):
            return _MISSING
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    return value


# -- queries -----------------------------------------------------------------------------------


def _json_parameter(params: Mapping[str, str], name: str, *, default: Any) -> Any:
    text = params.get(name)
    if text is None or not text.strip():
        return default
    try:
        return json.loads(text)
    except ValueError:
        raise KvStoreRefusal(400, f"Invalid JSON in parameter {name}.") from None


def _count_parameter(params: Mapping[str, str], name: str) -> int:
    text = params.get(name, "0").strip() or "0"
    if not text.isdigit():
        raise KvStoreRefusal(400, f"{name} must be a non-negative integer, not {text!r}.")
    return int(text)


def _matches(document: Mapping[str, Any], query: Any) -> bool:
    if not isinstance(query, dict):
        raise KvStoreRefusal(400, "A query must be a JSON object.")
    for name, condition in query.items():
        if name in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise KvStoreRefusal(400, f"{name} needs a non-empty array of queries.")
            results = [_matches(document, part) for part in condition]
            if not (all(results) if name == "$and" else any(results)):
                return False
        elif name.startswith("$"):
            raise KvStoreRefusal(400, f"Unsupported query operator {name}.")
        elif not _holds(document.get(name, _MISSING), condition):
            return False
    return True


def _holds(value: Any, condition: Any) -> bool:
    if not (isinstance(condition, dict) and condition and all(key.startswith("$") for key in condition)):
        return _equal(value, condition)
    for operator, operand in condition.items():
        if operator in _COMPARISONS:
            order = _compare(value, operand)
            if order is None or not _COMPARISONS[operator](order):
                return False
        elif operator in ("$in", "$nin"):
            if not isinstance(operand, list):
                raise KvStoreRefusal(400, f"{operator} needs an array.")
            if any(_equal(value, item) for item in operand) != (operator == "$in"):
                return False
        elif operator == "$ne":
            if _equal(value, operand):
                return False
        elif operator == "$not":
            if not isinstance(operand, dict) or _holds(value, operand):
                return False
        else:
            raise KvStoreRefusal(400, f"Unsupported query operator {operator}.")
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(value: Any, expected: Any) -> bool:
    if value is _MISSING:
        return expected is None
    if _is_number(value) and _is_number(expected):
        return bool(value == expected)
    return type(value) is type(expected) and bool(value == expected)


def _compare(value: Any, operand: Any) -> int | None:
    if _is_number(value) and _is_number(operand):
        return (value > operand) - (value < operand)
    if isinstance(value, str) and isinstance(operand, str):
        return (value > operand) - (value < operand)
    return None


def _order_key(value: Any) -> tuple[int, Any]:
    # MongoDB's order of types: missing/null, numbers, text, objects, arrays, booleans.
    if value is _MISSING or value is None:
        return (0, 0)
    if _is_number(value):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, dict):
        return (3, json.dumps(value, sort_keys=True))
    if isinstance(value, list):
        return (4, json.dumps(value, sort_keys=True))
    return (5, bool(value))


def _sort_keys(text: str) -> list[tuple[str, int]]:
    keys = []
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        name, _, direction = part.partition(":")
        if direction.strip() not in ("", "1", "-1") or not name.strip():
            raise KvStoreRefusal(400, f"Invalid sort specification {part!r}.")
        keys.append((name.strip(), -1 if direction.strip() == "-1" else 1))
    return keys


@dataclass(frozen=True)
class _Projection:
    include: frozenset[str]
    exclude: frozenset[str]


def _projection(text: str) -> _Projection:
    include: set[str] = set()
    exclude: set[str] = set()
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        name, _, flag = part.partition(":")
        if flag.strip() not in ("", "0", "1") or not name.strip():
            raise KvStoreRefusal(400, f"Invalid fields specification {part!r}.")
        (exclude if flag.strip() == "0" else include).add(name.strip())
    if include and exclude - {"_key"}:
        raise KvStoreRefusal(400, "fields cannot both include and exclude fields (except _key:0).")
    return _Projection(frozenset(include), frozenset(exclude))


def _project(document: dict[str, Any], fields: _Projection) -> dict[str, Any]:
    if fields.include:
        wanted = (fields.include | {"_key"}) - fields.exclude
        return {name: value for name, value in document.items() if name in wanted}
    return {name: value for name, value in document.items() if name not in fields.exclude}


def parse_access(value: str) -> dict[str, list[str]]:
    """``read : [ a, b ], write : [ c ]`` (metadata/*.meta) -> {"read": [a, b], "write": [c]}."""
    permissions: dict[str, list[str]] = {}
    for kind, _, roles in (part.partition(":") for part in value.split("]") if ":" in part):
        names = roles.replace("[", "").split(",")
        permissions[kind.strip(" ,")] = [name.strip() for name in names if name.strip()]
    return permissions


def collection_access(app_directory: Path, name: str) -> dict[str, list[str]]:
    """The read/write roles of collection ``name`` by the app's metadata/default.meta, as splunkd
    resolves them: the object's own stanza, else its type's, else the app-wide ``[]`` stanza."""
    meta_file = app_directory / "metadata" / "default.meta"
    meta = read_conf(meta_file) if meta_file.exists() else {}
    for stanza in (f"collections/{name}", "collections", ""):
        if "access" in meta.get(stanza, {}):
            return parse_access(meta[stanza]["access"])
    return {"read": ["*"], "write": ["admin"]}
