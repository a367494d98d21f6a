"""The KV store client against the fake splunkd: splunkd's REST formats, queries, limits, permissions,
an unavailable KV store, and the shipped collections.conf, transforms.conf and default.meta.

Also the fake's receivers/simple endpoint, which the alert action indexes through.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from splunklib import binding

from mde_file_alerts.errors import MdeError
from mde_file_alerts.splunk.kvstore import (
    BUDGET_COLLECTION,
    CACHE_COLLECTION,
    MAX_DOCUMENTS_PER_BATCH_SAVE,
    KvStoreCollection,
    KvStoreConflict,
    KvStoreError,
    KvStoreUnavailable,
)
from tests.splunk.conftest import ADMIN, ANALYST, PLAIN_USER, USERS
from tests.support.conf import read_conf
from tests.support.splunkd import FakeSplunkd

ROOT = Path(__file__).resolve().parents[2]
DATA_PATH = "/servicesNS/nobody/TA-mde-file-alerts/storage/collections/data/"


@pytest.fixture
def splunkd() -> Iterator[FakeSplunkd]:
    with FakeSplunkd(users=USERS) as fake:
        yield fake


def collection(splunkd: FakeSplunkd, name: str = BUDGET_COLLECTION, user: str = ANALYST) -> KvStoreCollection:
    return KvStoreCollection(splunkd.uri, splunkd.session_key_for(user), name)


def seeded(splunkd: FakeSplunkd) -> KvStoreCollection:
    budget = collection(splunkd)
    budget.batch_save(
        [
            {"_key": "a1", "key": "a", "seq": 1, "t": 100.0},
            {"_key": "a2", "key": "a", "seq": 2, "t": 160.0},
            {"_key": "a3", "key": "a", "seq": 3, "t": 160.0},
            {"_key": "b1", "key": "b", "seq": 1, "t": 130.0},
            {"_key": "b2", "key": "b", "seq": 2, "t": 220.0},
        ]
    )
    return budget


def keys(documents: list[dict[str, Any]]) -> list[str]:
    return [document["_key"] for document in documents]


# --- the REST shape ---------------------------------------------------------------------------


def test_every_request_goes_to_the_apps_collection_as_nobody_with_json_bodies(splunkd: FakeSplunkd) -> None:
    budget = collection(splunkd)

    key = budget.insert({"key": "a", "seq": 1, "t": 5.0})
    budget.query({"key": "a"})
    budget.delete_key(key)

    assert [(request.method, request.path) for request in splunkd.requests] == [
        ("POST", DATA_PATH + BUDGET_COLLECTION),
        ("GET", DATA_PATH + BUDGET_COLLECTION),
        ("DELETE", DATA_PATH + BUDGET_COLLECTION + "/" + key),
    ]
    assert [request.user for request in splunkd.requests] == [ANALYST] * 3
    assert splunkd.requests[1].params["query"] == '{"key":"a"}'


def test_an_insert_returns_the_generated_key_and_the_document_is_stored_as_the_shared_owners(
    splunkd: FakeSplunkd,
) -> None:
    key = collection(splunkd).insert({"key": "a", "seq": 1, "t": 5.0})

    assert splunkd.kv_documents(BUDGET_COLLECTION) == [
        {"key": "a", "seq": 1, "t": 5.0, "_key": key, "_user": "nobody"}
    ]


def test_a_second_insert_of_one_key_is_refused_as_a_conflict(splunkd: FakeSplunkd) -> None:
    budget = collection(splunkd)
    budget.insert({"_key": "slot-1", "key": "a", "seq": 1, "t": 5.0})

    with pytest.raises(KvStoreConflict) as raised:
        budget.insert({"_key": "slot-1", "key": "a", "seq": 1, "t": 6.0})

    assert raised.value.status == 409
    assert budget.get("slot-1") == {"_key": "slot-1", "_user": "nobody", "key": "a", "seq": 1, "t": 5.0}


def test_get_update_and_delete_one_document_by_key(splunkd: FakeSplunkd) -> None:
    budget = seeded(splunkd)

    budget.update("a1", {"key": "a", "seq": 1, "t": 101.0})

    assert budget.get("a1") == {"_key": "a1", "_user": "nobody", "key": "a", "seq": 1, "t": 101.0}
    assert budget.get("missing") is None
    assert budget.delete_key("a1") is True
    assert budget.delete_key("a1") is False
    with pytest.raises(KvStoreError, match="holds no document with that key"):
        budget.update("a1", {"key": "a"})


# --- queries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"key": "a"}, ["a1", "a2", "a3"]),
        ({"key": "a", "t": 160.0}, ["a2", "a3"]),
        ({"t": {"$gt": 130}}, ["a2", "a3", "b2"]),
        ({"t": {"$gte": 130, "$lt": 220}}, ["a2", "a3", "b1"]),
        ({"t": {"$lte": 130}}, ["a1", "b1"]),
        ({"_key": {"$in": ["a2", "b2", "zz"]}}, ["a2", "b2"]),
        ({"$and": [{"key": "b"}, {"seq": {"$gt": 1}}]}, ["b2"]),
        ({"$or": [{"key": "b", "seq": 1}, {"t": {"$gt": 200}}]}, ["b1", "b2"]),
        ({"key": "a", "seq": {"$ne": 2}}, ["a1", "a3"]),
        ({"seq": {"$gt": "1"}}, []),
    ],
)
def test_mongo_style_queries(splunkd: FakeSplunkd, query: dict[str, Any], expected: list[str]) -> None:
    assert sorted(keys(seeded(splunkd).query(query))) == expected


def test_sort_skip_limit_and_fields_as_splunkd_takes_them(splunkd: FakeSplunkd) -> None:
    budget = seeded(splunkd)

    assert keys(budget.query(sort="t:-1,_key")) == ["b2", "a2", "a3", "b1", "a1"]
    assert keys(budget.query({"key": "a"}, sort="seq:-1", limit=2)) == ["a3", "a2"]
    assert keys(budget.query(sort="_key", skip=1, limit=2)) == ["a2", "a3"]
    assert budget.query({"_key": "b1"}, fields=("seq", "t")) == [{"seq": 1, "t": 130.0, "_key": "b1"}]


def test_a_query_the_kv_store_refuses_is_an_error_with_splunkds_reason(splunkd: FakeSplunkd) -> None:
    with pytest.raises(KvStoreError) as raised:
        seeded(splunkd).query({"t": {"$regex": "1.*"}})

    assert raised.value.status == 400
    assert "Unsupported query operator $regex" in str(raised.value)


def test_values_are_stored_with_the_field_types_of_collections_conf(splunkd: FakeSplunkd) -> None:
    budget = collection(splunkd)

    budget.insert({"_key": "typed", "key": 7, "seq": "12", "t": "not a time", "extra": "kept"})

    assert budget.get("typed") == {
        "_key": "typed",
        "_user": "nobody",
        "key": "7",
        "seq": 12.0,
        "extra": "kept",
    }


def test_many_keys_are_found_with_several_short_gets(splunkd: FakeSplunkd) -> None:
    cache = collection(splunkd, CACHE_COLLECTION)
    wanted = [f"{number:064x}" for number in range(300)]
    cache.batch_save([{"_key": key, "sha1": key[:40]} for key in wanted[::2]])
    before = len(splunkd.requests)

    documents = cache.find_keys(wanted)

    gets = splunkd.requests[before:]
    assert sorted(keys(documents)) == wanted[::2]
    assert len(gets) > 1
    # 8 KB is the smallest request-line limit common among HTTP servers and proxies.
    assert all(len(urlencode(request.query)) < 8 * 1024 for request in gets)


# --- writes in bulk and deletes ----------------------------------------------------------------


def test_batch_save_inserts_and_replaces_by_key_within_splunkds_batch_limit(splunkd: FakeSplunkd) -> None:
    budget = collection(splunkd)
    budget.insert({"_key": "k0", "key": "old"})
    documents = [
        {"_key": f"k{number}", "key": "new", "seq": number}
        for number in range(2 * MAX_DOCUMENTS_PER_BATCH_SAVE + 1)
    ]
    before = len(splunkd.requests)

    saved = budget.batch_save(documents)

    assert saved == [f"k{number}" for number in range(2 * MAX_DOCUMENTS_PER_BATCH_SAVE + 1)]
    assert len(splunkd.requests[before:]) == 3
    assert budget.get("k0") == {"_key": "k0", "_user": "nobody", "key": "new", "seq": 0}
    assert len(budget.query({"key": "new"})) == 2 * MAX_DOCUMENTS_PER_BATCH_SAVE + 1


def test_the_fake_refuses_a_batch_over_splunkds_limit_as_splunkd_does(splunkd: FakeSplunkd) -> None:
    context = binding.Context(
        scheme="https",
        host="127.0.0.1",
        port=urlsplit(splunkd.uri).port,
        token=splunkd.session_key_for(ANALYST),
        owner="nobody",
        app="TA-mde-file-alerts",
    )
    body = json.dumps([{"key": "x"}] * (MAX_DOCUMENTS_PER_BATCH_SAVE + 1))

    with pytest.raises(binding.HTTPError) as raised:
        context.post(
            f"storage/collections/data/{BUDGET_COLLECTION}/batch_save",
            headers=[("Content-Type", "application/json")],
            body=body,
        )

    assert raised.value.status == 400
    assert b"max_documents_per_batch_save=1000" in raised.value.body


def test_delete_by_query_or_everything(splunkd: FakeSplunkd) -> None:
    budget = seeded(splunkd)

    budget.delete({"key": "a", "seq": {"$lt": 3}})
    assert sorted(keys(budget.query())) == ["a3", "b1", "b2"]

    budget.delete()
    assert budget.query() == []


# --- who may use the collections, and when they cannot be used ----------------------------------


@pytest.mark.parametrize("name", [CACHE_COLLECTION, BUDGET_COLLECTION])
@pytest.mark.parametrize("user", [ANALYST, ADMIN])
def test_analysts_and_admins_read_and_write_both_collections(
    splunkd: FakeSplunkd, name: str, user: str
) -> None:
    store = collection(splunkd, name, user)

    key = store.insert({"status": "found"} if name == CACHE_COLLECTION else {"key": "a"})

    assert keys(store.query()) == [key]
    store.delete()


def test_a_user_without_the_analyst_role_is_refused_with_a_sentence(splunkd: FakeSplunkd) -> None:
    with pytest.raises(KvStoreError) as raised:
        collection(splunkd, CACHE_COLLECTION, PLAIN_USER).query()

    error = raised.value
    assert not isinstance(error, KvStoreUnavailable)
    assert error.status == 403
    assert error.user_message == (
        "The KV store collection mde_file_alerts_cache cannot be used: the user's roles have no permission "
        "on it (metadata/default.meta of the app) (HTTP 403)."
    )


def test_an_unavailable_kv_store_raises_kv_store_unavailable(splunkd: FakeSplunkd) -> None:
    budget = seeded(splunkd)
    splunkd.kvstore_available = False

    with pytest.raises(KvStoreUnavailable) as raised:
        budget.query()

    assert raised.value.status == 503
    assert raised.value.retryable
    assert "KV Store is initializing" in str(raised.value)
    splunkd.kvstore_available = True
    assert len(budget.query()) == 5


def test_an_unreachable_splunkd_is_an_unavailable_kv_store() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    store = KvStoreCollection(f"https://127.0.0.1:{port}", "key", BUDGET_COLLECTION, timeout=5.0)

    with pytest.raises(KvStoreUnavailable, match="Could not reach splunkd's KV store"):
        store.query()


def test_a_collection_the_app_does_not_declare_is_named_in_the_error(splunkd: FakeSplunkd) -> None:
    with pytest.raises(KvStoreError) as raised:
        collection(splunkd, "mde_file_alerts_nonesuch").query()

    assert raised.value.status == 404
    assert "mde_file_alerts_nonesuch cannot be used: it does not exist" in raised.value.message


def test_errors_are_app_errors_and_never_carry_the_session_key(splunkd: FakeSplunkd) -> None:
    key = splunkd.session_key_for(PLAIN_USER)
    with pytest.raises(MdeError) as raised:
        KvStoreCollection(splunkd.uri, key, BUDGET_COLLECTION).insert({"key": "a"})

    assert key not in str(raised.value) and key not in repr(raised.value)


# --- storage/collections/config ----------------------------------------------------------------


def config(
    splunkd: FakeSplunkd, user: str, method: str = "GET", form: dict[str, str] | None = None
) -> dict[str, Any]:
    context = binding.Context(
        scheme="https",
        host="127.0.0.1",
        port=urlsplit(splunkd.uri).port,
        token=splunkd.session_key_for(user),
        owner="nobody",
        app="TA-mde-file-alerts",
    )
    path = "storage/collections/config"
    if method == "GET":
        response = context.get(path, output_mode="json")
    else:
        response = context.post(path, output_mode="json", **(form or {}))
    document: dict[str, Any] = json.loads(response.body.read())
    return document


def test_the_config_endpoint_lists_the_apps_collections_with_their_field_types(splunkd: FakeSplunkd) -> None:
    entries = {entry["name"]: entry for entry in config(splunkd, ANALYST)["entry"]}

    assert set(entries) == {CACHE_COLLECTION, BUDGET_COLLECTION}
    budget = entries[BUDGET_COLLECTION]
    assert budget["content"]["field.seq"] == "number"
    assert budget["content"]["eai:appName"] == "TA-mde-file-alerts"
    assert "mde_file_alerts_analyst" in budget["acl"]["perms"]["write"]


def test_only_admins_create_collections_which_then_hold_data(splunkd: FakeSplunkd) -> None:
    with pytest.raises(binding.HTTPError) as raised:
        config(splunkd, ANALYST, "POST", {"name": "scratch"})
    assert raised.value.status == 403

    created = config(splunkd, ADMIN, "POST", {"name": "scratch", "field.n": "number"})

    assert created["entry"][0]["name"] == "scratch"
    scratch = collection(splunkd, "scratch", ADMIN)
    scratch.insert({"_key": "one", "n": "1"})
    assert scratch.get("one") == {"_key": "one", "_user": "nobody", "n": 1.0}


# --- the shipped configuration ------------------------------------------------------------------


def test_every_collection_has_a_lookup_with_all_its_fields() -> None:
    collections = read_conf(ROOT / "default" / "collections.conf")
    transforms = read_conf(ROOT / "default" / "transforms.conf")

    for name in (CACHE_COLLECTION, BUDGET_COLLECTION):
        fields = {key[len("field.") :] for key in collections[name] if key.startswith("field.")}
        lookup = transforms[name]
        assert (lookup["external_type"], lookup["collection"]) == ("kvstore", name)
        assert {field.strip() for field in lookup["fields_list"].split(",")} == {"_key", *fields}
        for accelerated in (
            value for key, value in collections[name].items() if key.startswith("accelerated")
        ):
            assert set(json.loads(accelerated)) <= fields


def test_default_meta_lets_analysts_and_admins_read_and_write_the_collections_only() -> None:
    meta = read_conf(ROOT / "metadata" / "default.meta")
    roles = "[admin,sc_admin,mde_file_alerts_analyst]"

    for name in (CACHE_COLLECTION, BUDGET_COLLECTION):
        assert meta[f"collections/{name}"]["access"].replace(" ", "") == f"read:{roles},write:{roles}"
        assert (
            meta[f"transforms/{name}"]["access"].replace(" ", "")
            == "read:[admin,sc_admin],write:[admin,sc_admin]"
        )
        assert "export" not in meta[f"collections/{name}"]


# --- receivers/simple (the fake's, for the alert action) ----------------------------------------


def submit(splunkd: FakeSplunkd, user: str, body: str, **query: str) -> binding.Record:
    context = binding.Context(
        scheme="https", host="127.0.0.1", port=urlsplit(splunkd.uri).port, token=splunkd.session_key_for(user)
    )
    return context.post("/services/receivers/simple", body=body, **query)


def test_receivers_simple_indexes_each_line_as_an_event_with_the_requests_metadata(
    splunkd: FakeSplunkd,
) -> None:
    response = submit(
        splunkd,
        ADMIN,
        '{"id": 1}\n{"id": 2}\n',
        index="main",
        sourcetype="ms:defender:atp:alerts",
        source="mde_file_alerts://prod",
        output_mode="json",
    )

    assert json.loads(response.body.read()) == {
        "index": "main",
        "bytes": 20,
        "host": "fake-splunkd",
        "source": "mde_file_alerts://prod",
        "sourcetype": "ms:defender:atp:alerts",
    }
    events = splunkd.received_in("main")
    assert [event.json for event in events] == [{"id": 1}, {"id": 2}]
    assert {(event.sourcetype, event.source, event.host, event.user) for event in events} == {
        ("ms:defender:atp:alerts", "mde_file_alerts://prod", None, ADMIN)
    }


def test_receivers_simple_answers_xml_unless_asked_for_json(splunkd: FakeSplunkd) -> None:
    body = submit(splunkd, ADMIN, "one line", sourcetype="demo").body.read()

    assert body.startswith(b"<?xml")
    assert b"<index>main</index>" in body


@pytest.mark.parametrize(("user", "index", "status"), [(ANALYST, "main", 403), (ADMIN, "mde", 400)])
def test_receivers_simple_needs_edit_tcp_and_a_known_index(
    splunkd: FakeSplunkd, user: str, index: str, status: int
) -> None:
    with pytest.raises(binding.HTTPError) as raised:
        submit(splunkd, user, "x", index=index, output_mode="json")

    assert raised.value.status == status
    assert splunkd.received == []
    splunkd.add_index("mde")
    submit(splunkd, ADMIN, "x", index="mde")
    assert [event.index for event in splunkd.received] == ["mde"]
