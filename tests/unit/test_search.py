"""search.py: how the command learns its mode from splunkd's getinfo chunk and hands the bytes on."""

from __future__ import annotations

import io
import json

import pytest

from mde_file_alerts.search import read_getinfo_args, wants_enrichment
from tests.support.chunked import encode_chunk, encode_records


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
