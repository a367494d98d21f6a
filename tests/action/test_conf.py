"""The alert action's configuration: alert_actions.conf, its spec, its form and its icon agree.

splunkd and Splunk Web find the action only through these files, so every name they share is
checked here: the script, the parameters, the form's inputs, Enterprise Security's metadata.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from mde_file_alerts.alert_action import ACTION_NAME, DEFAULT_INDEX
from tests.support.conf import read_conf

ROOT = Path(__file__).resolve().parents[2]
STANZA = read_conf(ROOT / "default" / "alert_actions.conf")[ACTION_NAME]
FORM = (ROOT / "default" / "data" / "ui" / "alerts" / f"{ACTION_NAME}.html").read_text(encoding="utf-8")
SPEC = (ROOT / "README" / "alert_actions.conf.spec").read_text(encoding="utf-8")
PARAMETERS = ("account", "hash_field", "index")


def test_splunkd_runs_the_script_with_json_on_stdin_under_both_pythons() -> None:
    assert STANZA["is_custom"] == "1"
    assert STANZA["payload_format"] == "json"
    assert (ROOT / "bin" / STANZA["alert.execute.cmd"]).is_file()
    assert STANZA["alert.execute.cmd.arg.0"] == "--execute"
    assert STANZA["python.version"] == "python3"
    assert STANZA["python.required"] == "3.9, 3.13"


def test_the_defaults_are_the_cim_hash_field_and_an_index_every_instance_has() -> None:
    assert STANZA["param.hash_field"] == "file_hash"
    assert STANZA["param.index"] == DEFAULT_INDEX == "main"
    assert STANZA["param.account"] == ""


def test_the_form_has_one_input_per_parameter_named_as_splunk_web_saves_it() -> None:
    names = re.findall(r'name="([^"]+)"', FORM)
    assert sorted(names) == sorted(f"action.{ACTION_NAME}.param.{name}" for name in PARAMETERS)
    for name in PARAMETERS:
        control_id = f"{ACTION_NAME}_{name}"
        assert f'id="{control_id}"' in FORM and f'for="{control_id}"' in FORM
    assert "<script" not in FORM.lower(), "Splunk Web does not run scripts in alert action forms"


def test_the_spec_documents_every_parameter_the_conf_sets() -> None:
    assert f"[{ACTION_NAME}]" in SPEC
    for key in (key for key in STANZA if key.startswith("param.")):
        assert re.search(rf"^{re.escape(key)} = <", SPEC, re.MULTILINE), key


def test_enterprise_security_sees_an_adaptive_response_action_with_its_hash_field() -> None:
    cam = json.loads(STANZA["param._cam"])
    assert cam["category"] == ["Information Gathering"]
    assert cam["task"] and cam["subject"]
    assert cam["technology"] == [
        {"vendor": "Microsoft", "product": "Defender for Endpoint", "version": ["1.0"]}
    ]
    assert cam["field_name_params"] == ["param.hash_field"]
    assert set(cam["required_params"]) <= {f"param.{name}" for name in PARAMETERS}
    assert cam["supports_adhoc"] is True


def test_the_icon_is_a_png_where_splunk_web_looks_for_it() -> None:
    icon = ROOT / "appserver" / "static" / STANZA["icon_path"]
    data = icon.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == height == 48
