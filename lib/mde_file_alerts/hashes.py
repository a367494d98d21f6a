"""Normalise the hash values a user typed, and say precisely why one that is not a SHA-1 is refused.

Defender's file alerts endpoint accepts SHA-1 only, and what it does with anything else is
undocumented, so every value is classified here before any request is built: the client only
ever puts ``HashInput.value`` into a URL when ``is_sha1`` is true. One table of hex lengths drives
both the detection and the wording of the messages.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class HashKind(str, Enum):
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"

    @property
    def label(self) -> str:
        """The name people write, with its article: "an MD5", "a SHA-256"."""
        return _LABELS[self]


_LABELS = {
    HashKind.MD5: "an MD5",
    HashKind.SHA1: "a SHA-1",
    HashKind.SHA256: "a SHA-256",
    HashKind.SHA512: "a SHA-512",
}

#: Hex length → the hash kind of that length; the single source for detection and messages.
KIND_BY_LENGTH: dict[int, HashKind] = {
    32: HashKind.MD5,
    40: HashKind.SHA1,
    64: HashKind.SHA256,
    128: HashKind.SHA512,
}
SHA1_LENGTH = 40

_HEX_DIGITS = frozenset(string.hexdigits)
_ONLY_SHA1 = f"Defender's file alerts API accepts SHA-1 only ({SHA1_LENGTH} hex characters)."
# Values are quoted in messages; junk can be arbitrarily long, so the quote is capped.
_MAX_QUOTED = 70
_SEPARATORS = re.compile(r"[,;\s]+")
# What people paste around hashes: quotes from CSV/JSON, brackets from lists.
_WRAPPERS = "\"'`[](){}<>"


@dataclass(frozen=True)
class HashInput:
    """One value as the user gave it, and what it turned out to be."""

    original: str
    value: str
    kind: HashKind | None
    problem: str | None

    @property
    def is_sha1(self) -> bool:
        """True only for a well-formed SHA-1: the one case whose ``value`` may go into a URL."""
        return self.kind is HashKind.SHA1 and self.problem is None

    @property
    def is_sha256(self) -> bool:
        """True for a well-formed SHA-256 (which the client can resolve to a SHA-1 on request)."""
        return self.kind is HashKind.SHA256


def parse_hash(value: str) -> HashInput:
    """Classify one value; ``problem`` is one sentence whenever it is not a SHA-1."""
    trimmed = value.strip()
    normalised = trimmed.lower()
    if not trimmed:
        return HashInput(value, normalised, None, f"The hash value is empty; {_ONLY_SHA1}")
    quoted = quote_value(trimmed)
    for position, character in enumerate(trimmed, start=1):
        if character not in _HEX_DIGITS:
            return HashInput(
                value,
                normalised,
                None,
                f"{quoted} is not hexadecimal: character {_show_character(character)} at position "
                f"{position} is not 0-9 or a-f; {_ONLY_SHA1}",
            )
    kind = KIND_BY_LENGTH.get(len(trimmed))
    if kind is HashKind.SHA1:
        return HashInput(value, normalised, kind, None)
    if kind is None:
        return HashInput(
            value,
            normalised,
            None,
            f"{quoted} has {len(trimmed)} hex characters, which is not the length of any known hash; "
            f"{_ONLY_SHA1}",
        )
    problem = f"{quoted} looks like {kind.label} ({len(trimmed)} hex characters); {_ONLY_SHA1}"
    if kind is HashKind.SHA256:
        problem += " Set resolve_sha256=true to resolve a SHA-256 to its SHA-1 first (one extra API call)."
    return HashInput(value, normalised, kind, problem)


def split_hash_values(text: str) -> list[str]:
    """Split a pasted list of hashes on commas, semicolons and any whitespace; drop quotes and brackets."""
    values = []
    for token in _SEPARATORS.split(text):
        cleaned = token.strip(_WRAPPERS)
        if cleaned:
            values.append(cleaned)
    return values


def parse_hashes(values: Iterable[str]) -> list[HashInput]:
    """Parse each value, keeping the first of each distinct ``value`` in order; invalid ones stay in."""
    seen: set[str] = set()
    parsed = []
    for raw in values:
        hash_input = parse_hash(raw)
        if hash_input.value in seen:
            continue
        seen.add(hash_input.value)
        parsed.append(hash_input)
    return parsed


def quote_value(value: str) -> str:
    """Quote a user's value for a message: control characters escaped, at most ~70 characters."""
    shown = "".join(character if character.isprintable() else _escape(character) for character in value)
    if len(shown) > _MAX_QUOTED:
        shown = shown[: _MAX_QUOTED - 1] + "…"
    return f"'{shown}'"


def _show_character(character: str) -> str:
    if character == " ":
        return "' ' (a space)"
    if character == "'":
        return '"\'"'
    if character.isprintable():
        return f"'{character}'"
    return f"'{_escape(character)}' (U+{ord(character):04X})"


def _escape(character: str) -> str:
    # repr() gives Python's escape (\n, \t, \u200b) without the surrounding quotes.
    return repr(character)[1:-1]
