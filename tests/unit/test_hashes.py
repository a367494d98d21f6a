"""Hash values: normalisation, classification and the exact sentence for every refused value."""

from __future__ import annotations

import pytest

from mde_file_alerts.hashes import (
    KIND_BY_LENGTH,
    HashInput,
    HashKind,
    parse_hash,
    parse_hashes,
    quote_value,
    split_hash_values,
)

SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA512 = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce" * 2


def test_a_sha1_is_trimmed_and_lower_cased_and_has_no_problem() -> None:
    parsed = parse_hash(f"  {SHA1.upper()}\t")

    assert parsed == HashInput(original=f"  {SHA1.upper()}\t", value=SHA1, kind=HashKind.SHA1, problem=None)
    assert parsed.is_sha1
    assert not parsed.is_sha256


def test_the_length_table_covers_each_kind_once() -> None:
    assert sorted(KIND_BY_LENGTH.values(), key=lambda kind: kind.value) == sorted(
        HashKind, key=lambda kind: kind.value
    )


@pytest.mark.parametrize(
    ("value", "kind", "label"),
    [(MD5, HashKind.MD5, "an MD5"), (SHA512, HashKind.SHA512, "a SHA-512")],
)
def test_a_known_non_sha1_kind_is_named_with_its_length(value: str, kind: HashKind, label: str) -> None:
    parsed = parse_hash(value)

    assert parsed.kind is kind
    assert not parsed.is_sha1
    assert parsed.problem is not None
    assert f"looks like {label} ({len(value)} hex characters); " in parsed.problem
    assert parsed.problem.endswith("Defender's file alerts API accepts SHA-1 only (40 hex characters).")


def test_an_md5_message_is_exactly_the_documented_sentence() -> None:
    assert parse_hash(MD5).problem == (
        f"'{MD5}' looks like an MD5 (32 hex characters); "
        "Defender's file alerts API accepts SHA-1 only (40 hex characters)."
    )


def test_a_sha256_is_flagged_as_resolvable() -> None:
    parsed = parse_hash(SHA256.upper())

    assert parsed.kind is HashKind.SHA256
    assert parsed.is_sha256
    assert not parsed.is_sha1
    assert parsed.value == SHA256
    assert parsed.problem == (
        f"'{SHA256.upper()}' looks like a SHA-256 (64 hex characters); "
        "Defender's file alerts API accepts SHA-1 only (40 hex characters). "
        "Set resolve_sha256=true to resolve a SHA-256 to its SHA-1 first (one extra API call)."
    )


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_an_empty_value_says_it_is_empty(value: str) -> None:
    parsed = parse_hash(value)

    assert parsed.kind is None
    assert parsed.problem == (
        "The hash value is empty; Defender's file alerts API accepts SHA-1 only (40 hex characters)."
    )


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("da39a3ee5e6b4b0d3255bfef95601890afd8070g", "character 'g' at position 40"),
        ("zz39a3ee5e6b4b0d3255bfef95601890afd80709", "character 'z' at position 1"),
        ("da39 a3ee", "character ' ' (a space) at position 5"),
        ("da39\u200ba3ee", "character '\\u200b' (U+200B) at position 5"),
        ("ab'cd", 'character "\'" at position 3'),
        ("0xda39a3ee", "character 'x' at position 2"),
    ],
)
def test_a_non_hex_value_names_the_first_bad_character_and_its_position(value: str, named: str) -> None:
    parsed = parse_hash(value)

    assert parsed.kind is None
    assert not parsed.is_sha1
    assert parsed.problem is not None
    assert " is not hexadecimal: " in parsed.problem
    assert f"{named} is not 0-9 or a-f;" in parsed.problem


def test_a_hex_value_of_no_known_length_states_its_length() -> None:
    assert parse_hash("abc123").problem == (
        "'abc123' has 6 hex characters, which is not the length of any known hash; "
        "Defender's file alerts API accepts SHA-1 only (40 hex characters)."
    )


def test_a_sha1_with_one_character_missing_is_not_a_sha1() -> None:
    parsed = parse_hash(SHA1[:-1])

    assert not parsed.is_sha1
    assert parsed.problem is not None
    assert "has 39 hex characters" in parsed.problem


def test_long_junk_is_quoted_truncated_and_control_characters_escaped() -> None:
    junk = "x" * 10_000 + "\n"
    problem = parse_hash("line1\nline2" + junk).problem

    assert problem is not None
    assert "\n" not in problem
    assert problem.startswith("'line1\\nline2xxx")
    assert len(problem) < 250
    quoted = quote_value("y" * 500)
    assert quoted == "'" + "y" * 69 + "…'"


def test_a_sha512_is_quoted_truncated() -> None:
    problem = parse_hash(SHA512).problem

    assert problem is not None
    assert SHA512 not in problem
    assert problem.startswith(f"'{SHA512[:69]}…' looks like a SHA-512")


def test_split_accepts_every_separator_and_strips_quotes_and_brackets() -> None:
    text = f"[\"{SHA1}\", '{MD5}';{SHA256}\t{SHA1.upper()}\r\n  ({SHA512}) , ,; `abc`]"

    assert split_hash_values(text) == [SHA1, MD5, SHA256, SHA1.upper(), SHA512, "abc"]


@pytest.mark.parametrize("text", ["", "  ", ",;, \n", '""', "[]"])
def test_split_of_nothing_is_an_empty_list(text: str) -> None:
    assert split_hash_values(text) == []


def test_parse_hashes_deduplicates_by_normalised_value_keeping_first_and_order() -> None:
    parsed = parse_hashes([SHA1.upper(), MD5, " " + SHA1, "junk!", MD5.upper(), "junk!", SHA256])

    assert [item.value for item in parsed] == [SHA1, MD5, "junk!", SHA256]
    assert parsed[0].original == SHA1.upper()
    assert [item.is_sha1 for item in parsed] == [True, False, False, False]
    assert parsed[2].problem is not None


def test_parse_hashes_keeps_invalid_values_so_they_are_reported() -> None:
    parsed = parse_hashes(["", "g" * 40])

    assert [item.problem is not None for item in parsed] == [True, True]


def test_hash_kind_values_are_the_strings_used_in_events() -> None:
    assert [kind.value for kind in HashKind] == ["md5", "sha1", "sha256", "sha512"]
    assert HashKind("sha1") is HashKind.SHA1
