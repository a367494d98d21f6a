"""Check an alert against the JSON Schema of Defender's alert entity, and report drift.

Three outcomes per alert: ``valid``, ``invalid`` (with one readable sentence per problem, e.g.
``evidence[2].sha1: 123 is not of type 'string', 'null'``) or ``skipped`` (mode ``off``). Keys
the schema does not know are not errors (Microsoft adds keys over time) but are reported as
``unknown_keys``: that is how a changed API gets noticed.

Independently of the mode, a JSON value that lacks the schema's required core (or is not an
object at all) is flagged ``is_alert=False``: a Microsoft 365 Defender incidents-API alert or a
Graph alerts_v2 object must never be mapped as if it were a Defender for Endpoint alert.

The schema is read and compiled once per process and shared by every ``AlertValidator``. The
schema uses no ``$ref``, so jsonschema's reference resolver (which keeps per-call state) is never
involved and the compiled validator can be shared between threads.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import jsonschema

from mde_file_alerts.timestamps import parse_date_time as parse_date_time

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "alert.schema.json"

VALID = "valid"
INVALID = "invalid"
SKIPPED = "skipped"

#: More problems than this are summed up in one closing message, to keep events small.
MAX_ERRORS = 10
# Values are quoted in messages; a wrong-typed evidence list could be kilobytes long.
_MAX_QUOTED = 60


class ValidationMode(str, Enum):
    WARN = "warn"
    """Emit every alert; an invalid one carries its problems in the event."""
    STRICT = "strict"
    """Leave invalid alerts out, but count and report them."""
    OFF = "off"
    """Skip the schema (only the is-it-an-alert check remains)."""


@dataclass(frozen=True)
class ValidationResult:
    """What validation found for one alert."""

    status: str
    errors: tuple[str, ...] = ()
    unknown_keys: tuple[str, ...] = ()
    #: False when the value lacks the alert core (id, title, ...): it must not be mapped as an alert.
    is_alert: bool = True

    @property
    def is_valid(self) -> bool:
        return self.status == VALID


def _is_date_time(instance: object) -> bool:
    # Formats apply to strings only; the schema's "type" judges everything else.
    return not isinstance(instance, str) or parse_date_time(instance) is not None


# --- the compiled schema (once per process) ----------------------------------------------------------


@dataclass(frozen=True)
class _KnownKeys:
    """The property names the schema declares for one object, and where nested objects are."""

    names: frozenset[str]
    #: key → (True for a list of objects / False for one object, the nested object's keys)
    nested: Mapping[str, tuple[bool, _KnownKeys]]


@dataclass(frozen=True)
class _CompiledSchema:
    validator: Any
    required: tuple[str, ...]
    known_keys: _KnownKeys


@functools.cache
def _compiled_schema() -> _CompiledSchema:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    # Only our own date-time check: jsonschema's needs an optional package we do not ship, and it
    # would not accept Defender's 7 fraction digits anyway.
    format_checker = jsonschema.FormatChecker(formats=())
    format_checker.checks("date-time")(_is_date_time)
    return _CompiledSchema(
        validator=jsonschema.Draft202012Validator(schema, format_checker=format_checker),
        required=tuple(schema["required"]),
        known_keys=_known_keys(schema),
    )


def _known_keys(object_schema: Mapping[str, Any]) -> _KnownKeys:
    properties: Mapping[str, Any] = object_schema.get("properties", {})
    nested: dict[str, tuple[bool, _KnownKeys]] = {}
    for name, property_schema in properties.items():
        items = property_schema.get("items")
        if "properties" in property_schema:
            nested[name] = (False, _known_keys(property_schema))
        elif isinstance(items, Mapping) and "properties" in items:
            nested[name] = (True, _known_keys(items))
    return _KnownKeys(frozenset(properties), nested)


_SKIPPED = ValidationResult(SKIPPED)


# --- the validator -------------------------------------------------------------------------------------


class AlertValidator:
    """Validates alerts in one mode; cheap to create, the compiled schema is shared."""

    def __init__(self, mode: ValidationMode = ValidationMode.WARN) -> None:
        self.mode = ValidationMode(mode)
        self._schema = _compiled_schema()

    def validate(self, alert: Any) -> ValidationResult:
        not_an_alert = self._not_an_alert(alert)
        if not_an_alert is not None:
            return not_an_alert
        if self.mode is ValidationMode.OFF:
            return _SKIPPED
        errors = _messages(self._schema.validator.iter_errors(alert))
        unknown = _unknown_keys(alert, self._schema.known_keys)
        return ValidationResult(INVALID if errors else VALID, errors, unknown)

    def _not_an_alert(self, alert: Any) -> ValidationResult | None:
        """The result for a value without the alert core, else None."""
        if not isinstance(alert, dict):
            return ValidationResult(
                INVALID,
                (f"Not a Defender for Endpoint alert: expected a JSON object, got {_json_type(alert)}.",),
                is_alert=False,
            )
        missing = [key for key in self._schema.required if key not in alert]
        if not missing:
            return None
        reasons = [f"Not a Defender for Endpoint alert: it lacks {', '.join(missing)}."]
        look_alike = _look_alike(alert)
        if look_alike:
            reasons.append(look_alike)
        # In off mode nothing else is checked; otherwise the other problems help whoever debugs it
        # (the missing keys are named above already).
        if self.mode is not ValidationMode.OFF:
            errors = self._schema.validator.iter_errors(alert)
            reasons.extend(
                _messages(error for error in errors if error.validator != "required" or error.path)
            )
        return ValidationResult(INVALID, tuple(reasons[: MAX_ERRORS + 1]), is_alert=False)


# Entities from Microsoft's other alert APIs, recognised by keys Defender for Endpoint alerts
# never carry, so that the message names what was received instead of only what is missing.
_LOOK_ALIKES: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "a Microsoft Graph alerts_v2 alert",
        frozenset({"createdDateTime", "lastUpdateDateTime", "alertWebUrl", "@odata.type", "tenantId"}),
    ),
    (
        "an alert from the Microsoft 365 Defender incidents API",
        frozenset({"alertId", "creationTime", "devices", "entities", "lastUpdatedTime"}),
    ),
)


def _look_alike(alert: Mapping[str, Any]) -> str | None:
    for name, markers in _LOOK_ALIKES:
        present = sorted(markers.intersection(alert))
        if len(present) >= 2:
            return f"It looks like {name} (it has {', '.join(present)})."
    return None


# --- messages --------------------------------------------------------------------------------------


def _messages(errors: Iterable[Any]) -> tuple[str, ...]:
    messages = [_describe(error) for error in errors]
    if len(messages) > MAX_ERRORS:
        hidden = len(messages) - MAX_ERRORS
        messages = [*messages[:MAX_ERRORS], f"... and {hidden} more problem{'s' if hidden > 1 else ''}."]
    return tuple(messages)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 1] + "…"


def _types(expected: Any) -> str:
    return ", ".join(repr(name) for name in ([expected] if isinstance(expected, str) else expected))


# jsonschema's own messages quote the whole offending value; these keep the quote short.
_TEMPLATES: dict[str, Callable[[Any], str]] = {
    "type": lambda error: f"{_short(error.instance)} is not of type {_types(error.validator_value)}",
    "enum": lambda error: f"{_short(error.instance)} is not one of {error.validator_value!r}",
    "format": lambda error: f"{_short(error.instance)} is not a {error.validator_value!r}",
}


def _describe(error: Any) -> str:
    template = _TEMPLATES.get(error.validator)
    message = template(error) if template else error.message
    path = _path(error.absolute_path)
    return f"{path}: {message}" if path else message


def _path(parts: Iterable[Any]) -> str:
    """``evidence[2].sha1`` from ``["evidence", 2, "sha1"]``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    for python_type, name in names.items():
        if isinstance(value, python_type):
            return name
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


# --- drift ---------------------------------------------------------------------------------------------


def _unknown_keys(alert: Mapping[str, Any], known: _KnownKeys) -> tuple[str, ...]:
    """Keys the schema does not declare, as paths (``newKey``, ``evidence[].newKey``), first seen first."""
    found: dict[str, None] = {}
    _collect_unknown(alert, known, "", found)
    return tuple(found)


def _collect_unknown(
    value: Mapping[str, Any], known: _KnownKeys, prefix: str, found: dict[str, None]
) -> None:
    for key, item in value.items():
        if key not in known.names:
            found[prefix + key] = None
            continue
        nested = known.nested.get(key)
        if nested is None:
            continue
        is_list, nested_keys = nested
        if is_list and isinstance(item, list):
            for element in item:
                if isinstance(element, dict):
                    _collect_unknown(element, nested_keys, f"{prefix}{key}[].", found)
        elif not is_list and isinstance(item, dict):
            _collect_unknown(item, nested_keys, f"{prefix}{key}.", found)
