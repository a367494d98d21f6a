"""Read Splunk .conf/.meta files the way splunkd does (stanzas, `key = value`, `#` comments)."""

from __future__ import annotations

from pathlib import Path

# Settings before the first stanza belong to Splunk's implicit [default] stanza.
DEFAULT_STANZA = "default"


def read_conf(path: Path) -> dict[str, dict[str, str]]:
    stanzas: dict[str, dict[str, str]] = {DEFAULT_STANZA: {}}
    current = stanzas[DEFAULT_STANZA]
    pending = ""
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw_line.strip()
        pending = ""
        if line.endswith("\\"):  # a backslash continues the value on the next line
            pending = line[:-1] + "\n"
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = stanzas.setdefault(line[1:-1], {})
        elif "=" in line:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
        else:
            raise ValueError(f"{path.name}: not a stanza or a setting: {line!r}")
    return stanzas
