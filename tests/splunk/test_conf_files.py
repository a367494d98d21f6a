"""The shipped .conf files agree with the code, with their specs and with AppInspect's cloud rules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mde_file_alerts.splunk.persistconn import (
    LocalPersistentServerConnectionApplication,
    PersistentServerConnectionApplication,
)
from mde_file_alerts.splunk.settings import (
    ACCOUNT_KEYS,
    ACCOUNTS_CONF,
    ANALYST_ROLE,
    BROKER_PATH,
    CAPABILITY,
    SETTINGS_CONF,
)
from tests.support.conf import read_conf

ROOT = Path(__file__).resolve().parents[2]
RESTMAP_STANZA = "script:mde_file_alerts_token"


def spec_keys(conf: str) -> dict[str, set[str]]:
    """Per stanza pattern of a spec file, the setting names it documents."""
    documented: dict[str, set[str]] = {}
    stanza = ""
    for line in (ROOT / "README" / f"{conf}.conf.spec").read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            stanza = line.strip()[1:-1]
            documented.setdefault(stanza, set())
        match = re.match(r"^([A-Za-z_][\w.]*) = ", line)
        if match:
            documented.setdefault(stanza, set()).add(match.group(1))
    return documented


def test_restmap_registers_the_broker_as_a_capability_gated_persistent_handler() -> None:
    stanza = read_conf(ROOT / "default" / "restmap.conf")[RESTMAP_STANZA]

    assert stanza["match"] == "/" + BROKER_PATH
    assert stanza["scripttype"] == "persist"
    assert stanza["requireAuthentication"] == "true"
    assert stanza["capability"] == CAPABILITY
    assert stanza["passSystemAuth"] == "true"
    assert stanza["output_modes"] == "json"
    assert stanza["python.version"] == "python3"
    assert stanza["python.required"] == "3.9, 3.13"
    module, _, class_name = stanza["handler"].rpartition(".")
    assert stanza["script"] == f"{module}.py"
    source = (ROOT / "bin" / stanza["script"]).read_text(encoding="utf-8")
    classes = [node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]
    assert classes == [class_name], "the handler file is imports and one class"
    assert len(source.splitlines()) < 60


def test_authorize_defines_the_capability_and_grants_it_without_touching_inheritance() -> None:
    authorize = read_conf(ROOT / "default" / "authorize.conf")

    assert f"capability::{CAPABILITY}" in authorize
    assert authorize[f"role_{ANALYST_ROLE}"] == {"importRoles": "user", CAPABILITY: "enabled"}
    for builtin in ("role_admin", "role_sc_admin"):
        # AppInspect (cloud) fails an app that sets importRoles/grantableRoles on built-in roles.
        assert authorize[builtin] == {CAPABILITY: "enabled"}


def test_the_accounts_conf_defaults_are_known_keys_and_every_key_is_documented() -> None:
    defaults = read_conf(ROOT / "default" / f"{ACCOUNTS_CONF}.conf")

    assert set(defaults) == {"default"}, "no account is shipped"
    assert set(defaults["default"]) <= set(ACCOUNT_KEYS)
    assert spec_keys(ACCOUNTS_CONF) == {"<account name>": set(ACCOUNT_KEYS)}


def test_the_settings_conf_is_fully_documented() -> None:
    shipped = read_conf(ROOT / "default" / f"{SETTINGS_CONF}.conf")
    documented = spec_keys(SETTINGS_CONF)

    assert shipped["general"] == {"default_account": ""}
    assert shipped["logging"] == {"log_level": "INFO"}
    assert {stanza: set(values) for stanza, values in shipped.items() if values} == documented


def test_app_conf_reloads_both_conf_files_without_a_restart() -> None:
    triggers = read_conf(ROOT / "default" / "app.conf")["triggers"]

    assert triggers[f"reload.{ACCOUNTS_CONF}"] == "simple"
    assert triggers[f"reload.{SETTINGS_CONF}"] == "simple"


def test_outside_splunk_the_handler_base_is_the_local_stand_in() -> None:
    assert PersistentServerConnectionApplication is LocalPersistentServerConnectionApplication
    with pytest.raises(NotImplementedError):
        LocalPersistentServerConnectionApplication().handle("{}")
