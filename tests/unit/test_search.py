"""search.py: how the command learns its mode from splunkd's getinfo chunk and hands the bytes on."""

from __future__ import annotations

import importlib.util
import io
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from mde_file_alerts.search import read_getinfo_args, wants_enrichment
from tests.support.chunked import encode_chunk, encode_records
from tests.support.conf import read_conf


def getinfo(*args: str) -> bytes:
    return encode_chunk({"action": "getinfo", "preview": False, "searchinfo": {"args": list(args)}})


def execute(records: list[dict[str, str]]) -> bytes:
    return encode_chunk({"action": "execute", "finished": True}, encode_records(records))


@pytest.mark.parametrize(
    ("args", "enrich"),
    [
        (["hash=6532ec91d513acc05f43ee0aa3002599729fd3e1"], False),
        (["field=sha1"], True),
        (["expand=true", "field=Hashes", "cache=false"], True),
        (["fields=sha1"], False),
        (["field"], False),
        ([], False),
    ],
)
def test_field_is_what_asks_for_enrichment(args: list[str], enrich: bool) -> None:
    assert wants_enrichment(args) is enrich


def test_the_getinfo_chunk_is_read_and_then_given_back_byte_for_byte() -> None:
    sent = getinfo("field=sha1", "expand=true") + execute([{"sha1": "a" * 40, "note": "line\none"}])

    args, replay = read_getinfo_args(io.BytesIO(sent))

    assert args == ["field=sha1", "expand=true"]
    header = replay.readline()
    assert header.startswith(b"chunked 1.0,")
    assert header + replay.read() == sent


def test_reads_in_pieces_cross_from_the_replayed_bytes_into_the_rest() -> None:
    sent = getinfo("hash=x") + execute([])
    args, replay = read_getinfo_args(io.BytesIO(sent))
    first = len(getinfo("hash=x"))

    assert replay.read(0) == b""
    assert replay.read(first - 3) + replay.read(10) + replay.read() == sent
    assert args == ["hash=x"]


@pytest.mark.parametrize(
    "sent",
    [
        b"not a chunk header\n" + getinfo("field=x"),
        b"chunked 1.0,5,0\n{nope",
        encode_chunk({"action": "getinfo", "searchinfo": "not an object"}),
        encode_chunk({"action": "getinfo", "searchinfo": {"args": "field=x"}}),
        b"",
    ],
)
def test_anything_else_yields_no_arguments_and_the_same_bytes_for_splunklib(sent: bytes) -> None:
    args, replay = read_getinfo_args(io.BytesIO(sent))
    assert args == []
    assert replay.read() == sent


def test_a_getinfo_whose_metadata_is_json_but_not_utf8_text_is_left_to_splunklib() -> None:
    metadata = json.dumps({"searchinfo": {"args": ["field=x"]}}).encode("utf-16")
    sent = b"chunked 1.0,%d,0\n" % len(metadata) + metadata
    args, replay = read_getinfo_args(io.BytesIO(sent))
    assert args == [] and replay.read() == sent


# --- the shipped configuration agrees with the command ---------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SAVED_SEARCHES = read_conf(ROOT / "default" / "savedsearches.conf")
MACROS = read_conf(ROOT / "default" / "macros.conf")
MAINTENANCE = "MDE File Alerts - Expire cached lookup results"


def command_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mdefilealerts_bin", ROOT / "bin" / "mdefilealerts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the command classes; dispatch runs only as __main__
    return module


def test_every_option_of_both_modes_is_in_searchbnf() -> None:
    from splunklib.searchcommands import Option
    from splunklib.searchcommands.search_command import SearchCommand

    bnf = read_conf(ROOT / "default" / "searchbnf.conf")["mdefilealerts-command"]
    module = command_module()
    for command in (module.MdeFileAlertsCommand, module.MdeFileAlertsEnrichCommand):
        # splunklib's own options (record, show_configuration, logging_*) are not this command's.
        options = [
            name
            for name, value in vars(command).items()
            if isinstance(value, Option) and not hasattr(SearchCommand, name)
        ]
        assert options, command
        for name in options:
            assert f"{name}=" in bnf["syntax"], name
            assert name in bnf["description"], name


def test_the_maintenance_search_is_scheduled_and_only_the_examples_are_disabled() -> None:
    searches = {name: stanza for name, stanza in SAVED_SEARCHES.items() if name != "default"}
    maintenance = searches.pop(MAINTENANCE)
    assert (
        maintenance["disabled"] == "0" and maintenance["enableSched"] == "1" and maintenance["cron_schedule"]
    )
    assert maintenance["search"] == (
        "| inputlookup mde_file_alerts_cache | where expires_at > now() | outputlookup mde_file_alerts_cache"
    )
    transforms = read_conf(ROOT / "default" / "transforms.conf")
    assert transforms["mde_file_alerts_cache"]["collection"] == "mde_file_alerts_cache"
    assert "expires_at" in transforms["mde_file_alerts_cache"]["fields_list"]
    assert searches, "example correlation searches are shipped"
    for name, stanza in searches.items():
        assert stanza["disabled"] == "1", name
        assert "| mdefilealerts field=" in stanza["search"], name


def test_every_macro_the_searches_use_is_defined() -> None:
    used = set()
    for stanza in [*SAVED_SEARCHES.values(), *MACROS.values()]:
        for text in (stanza.get("search", ""), stanza.get("definition", "")):
            used.update(re.findall(r"`([^`(]+)`", text))
    assert used, "the searches use macros"
    assert used <= set(MACROS), used - set(MACROS)
    for name in MACROS:
        if name != "default":
            assert name.startswith("mde_file_alerts_") and MACROS[name]["definition"], name
