"""props.conf, eventtypes.conf and tags.conf agree with cim.py and with what the mapping emits.

Indexed events get their CIM fields from props.conf at search time, the search command's from
mapping.py; these tests keep the two from drifting apart.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts import cim
from mde_file_alerts.mapping import LookupContext, map_alert, map_alerts
from mde_file_alerts.validation import SCHEMA_PATH, AlertValidator
from tests.support.conf import read_conf

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
PROPS = read_conf(ROOT / "default" / "props.conf")
EVENTTYPES = read_conf(ROOT / "default" / "eventtypes.conf")
TAGS = read_conf(ROOT / "default" / "tags.conf")
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
SOURCE_STANZA = f"source::{cim.SOURCE_SCHEME}..."
SHA1 = "84abd80a4572c04c3a8a44ec5da93a3988a63fac"
# Words in eval expressions that are neither fields nor functions.
EVAL_KEYWORDS = {"true", "false", "null", "AND", "OR", "NOT", "LIKE"}


def load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def lookup(account: str = "contoso-prod", queried_hash: str = SHA1) -> LookupContext:
    return LookupContext(
        queried_hash=queried_hash,
        account=account,
        cloud="commercial",
        api_host="https://api.security.microsoft.com",
        portal_host="https://security.microsoft.com",
        retrieved_at=1707190000.0,
        app_version="0.1.0",
    )


def alert_event(account: str = "contoso-prod") -> dict[str, Any]:
    alert = load("alerts/jp-invoice-dropper-low.json")
    return map_alert(alert, lookup(account), AlertValidator().validate(alert))


def source_pattern(stanza: str) -> re.Pattern[str]:
    """A props.conf source:: stanza as a regex: '...' crosses path separators, '*' does not."""
    pattern = stanza[len("source::") :]
    parts = [re.escape(piece).replace(r"\*", "[^/]*") for piece in pattern.split("...")]
    return re.compile(".*".join(parts))


@pytest.fixture(scope="module")
def stanza() -> dict[str, str]:
    return PROPS[SOURCE_STANZA]


# --- props.conf --------------------------------------------------------------------------------


def test_settings_live_under_our_source_never_under_the_add_on_s_sourcetype() -> None:
    # Besides the alerts' source stanza, only the alert action's own summary sourcetype.
    assert sorted(name for name in PROPS if PROPS[name]) == ["mde_file_alerts:action", SOURCE_STANZA]
    assert cim.SOURCETYPE_ALERT not in PROPS


def test_json_is_extracted_at_search_time(stanza: dict[str, str]) -> None:
    assert stanza["KV_MODE"] == "json"


def test_props_computes_exactly_the_raw_derived_cim_fields(stanza: dict[str, str]) -> None:
    evals = sorted(key[len("EVAL-") :] for key in stanza if key.startswith("EVAL-"))

    assert evals == sorted(cim.RAW_DERIVED_FIELDS)


def test_fixed_values_match_cim(stanza: dict[str, str]) -> None:
    for field, value in (
        (cim.APP, cim.APP_VALUE),
        (cim.TYPE, cim.TYPE_VALUE),
        (cim.VENDOR, cim.VENDOR_VALUE),
        (cim.VENDOR_PRODUCT, cim.VENDOR_PRODUCT_VALUE),
    ):
        assert stanza[f"EVAL-{field}"] == f'"{value}"'


def test_severity_and_its_id_follow_the_cim_tables(stanza: dict[str, str]) -> None:
    severity_ids = re.findall(r'severity == "(\w+)", (\d+)', stanza[f"EVAL-{cim.SEVERITY_ID}"])
    special_cases = re.findall(r'severity == "(\w+)", "(\w+)"', stanza[f"EVAL-{cim.SEVERITY}"])

    assert {name: int(number) for name, number in severity_ids} == dict(cim.SEVERITY_IDS)
    # Everything else is lower(severity); the cases props spells out must be the exceptions.
    exceptions = {name: value for name, value in cim.SEVERITIES.items() if value != name.lower()}
    assert dict(special_cases) == exceptions
    assert "lower(severity)" in stanza[f"EVAL-{cim.SEVERITY}"]


def test_every_field_an_eval_reads_is_a_key_of_the_alert_schema(stanza: dict[str, str]) -> None:
    for key, expression in stanza.items():
        if not key.startswith("EVAL-"):
            continue
        without_strings = re.sub(r'"[^"]*"', '""', expression)
        quoted = re.findall(r"'([^']+)'", without_strings)
        bare = re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()", re.sub(r"'[^']*'", "", without_strings))
        for reference in quoted + [word for word in bare if word not in EVAL_KEYWORDS]:
            node = SCHEMA
            for part in reference.replace("{}", "").split("."):
                assert part in node.get("properties", {}), f"{key} reads {reference!r}, unknown to the schema"
                node = node["properties"][part]


def test_the_stanza_matches_the_source_of_every_event_the_mapping_writes() -> None:
    pattern = source_pattern(SOURCE_STANZA)

    for account in ("contoso-prod", "EU / tenant #2", ""):
        assert pattern.fullmatch(alert_event(account)[cim.SOURCE])
    assert not pattern.fullmatch("/var/log/mde_file_alerts.log")


def test_file_hash_is_extracted_from_the_source_as_the_mapping_sets_it(stanza: dict[str, str]) -> None:
    regex, _, field = stanza["EXTRACT-file_hash"].rpartition(" in ")
    python_regex = re.compile(regex.replace("(?<", "(?P<"))

    event = alert_event("EU / tenant #2")
    match = python_regex.search(event[field])

    assert field == cim.SOURCE
    assert match is not None and match.group(cim.FILE_HASH) == event[cim.FILE_HASH] == SHA1


# --- eventtypes.conf and tags.conf ---------------------------------------------------------------------


def eventtype_matches(search: str, event: dict[str, Any]) -> bool:
    """Enough of SPL for field="value" terms with wildcards (values compare case-insensitively)."""
    terms = re.findall(r'(\w+)="([^"]*)"', search)
    assert terms and re.sub(r'(\w+)="([^"]*)"', "", search).strip() == "", "only field=value terms expected"
    return all(
        fnmatch.fnmatchcase(str(event.get(field, "")).lower(), value.lower()) for field, value in terms
    )


def test_alert_events_are_tagged_alert_and_nothing_else_is() -> None:
    (name,) = [stanza for stanza in EVENTTYPES if EVENTTYPES[stanza]]
    search = EVENTTYPES[name]["search"]
    response = [load("alerts/jp-invoice-dropper-low.json"), load("invalid/graph-alerts-v2.json")]
    alert, not_an_alert = map_alerts(response, lookup(), AlertValidator()).events

    assert TAGS[f"eventtype={name}"] == {"alert": "enabled"}
    assert eventtype_matches(search, alert)
    assert not eventtype_matches(search, not_an_alert)
    assert not eventtype_matches(search, {**alert, cim.SOURCE: "ms_defender_input://tenant"})


# --- cim.py itself ---------------------------------------------------------------------------------------


def test_field_name_constants_are_distinct_and_our_own_fields_are_prefixed() -> None:
    names = {
        constant: value
        for constant, value in vars(cim).items()
        if constant.isupper()
        and isinstance(value, str)
        and not constant.endswith("_VALUE")
        and not constant.startswith(("TIME_SOURCE_", "SOURCETYPE_", "SOURCE_SCHEME"))
    }
    cim_fields = set(cim.RAW_DERIVED_FIELDS) | set(cim.RAW_NATIVE_FIELDS)
    splunk_fields = {cim.TIME, cim.RAW, cim.SOURCE, cim.SOURCETYPE, cim.HOST, cim.FILE_HASH, cim.FILE_NAME}
    status_fields = {cim.STATUS_VALUE, cim.STATUS_MESSAGE}

    assert len(set(names.values())) == len(names)
    for constant, value in names.items():
        if value not in cim_fields | splunk_fields | status_fields | {cim.FILE_PATH}:
            assert value.startswith("mde_"), constant


def test_raw_native_fields_are_alert_keys() -> None:
    for field in cim.RAW_NATIVE_FIELDS:
        assert field in SCHEMA["properties"]
