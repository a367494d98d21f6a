"""The files Defender knows, and their alerts, read from tests/fixtures.

``tests/fixtures/defender/files.json`` maps a lower-case SHA-1 to ``{"sha256", "md5", "fileName",
"size", "alerts": [alert fixture file names]}``; each alert fixture is one alert as the API returns
it. Fixtures are read once per process; ``add`` registers more files on one catalog only.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@dataclass(frozen=True)
class KnownFile:
    sha1: str
    sha256: str | None
    alerts: tuple[Any, ...]
    md5: str | None = None
    file_name: str | None = None
    size: int | None = None
    alert_names: tuple[str, ...] = field(default=())

    def entity(self) -> dict[str, Any]:
        """The file entity of ``GET /api/files/{id}``: what we know, null for the rest."""
        return {
            "sha1": self.sha1,
            "sha256": self.sha256,
            "md5": self.md5,
            "globalPrevalence": 1 + 37 * len(self.alerts),
            "globalFirstObserved": "2023-11-02T09:41:17.3370000Z",
            "globalLastObserved": "2024-06-23T04:12:55.1010000Z",
            "size": self.size,
            "fileType": None,
            "isPeFile": bool(self.file_name and self.file_name.lower().endswith(".exe")),
            "filePublisher": None,
            "fileProductName": None,
            "signer": None,
            "issuer": None,
            "signerHash": None,
            "isValidCertificate": None,
            "determinationType": "Malware" if self.alerts else "Unknown",
            "determinationValue": "",
        }


@functools.cache
def load_alert(name: str, directory: Path = FIXTURES / "alerts") -> dict[str, Any]:
    with (directory / name).open(encoding="utf-8") as alert_file:
        alert: dict[str, Any] = json.load(alert_file)
    return alert


@functools.cache
def _fixture_files(index_path: Path) -> tuple[KnownFile, ...]:
    with index_path.open(encoding="utf-8") as index_file:
        index: dict[str, dict[str, Any]] = json.load(index_file)
    return tuple(
        KnownFile(
            sha1=sha1,
            sha256=entry.get("sha256"),
            alerts=tuple(load_alert(name) for name in entry["alerts"]),
            md5=entry.get("md5"),
            file_name=entry.get("fileName"),
            size=entry.get("size"),
            alert_names=tuple(entry["alerts"]),
        )
        for sha1, entry in index.items()
    )


class FileCatalog:
    """Lookup by SHA-1 or SHA-256 (any case)."""

    def __init__(self, index_path: Path = FIXTURES / "defender" / "files.json") -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, KnownFile] = {}
        for known in _fixture_files(index_path):
            self._register(known)

    def _register(self, known: KnownFile) -> None:
        with self._lock:
            self._by_id[known.sha1] = known
            if known.sha256:
                self._by_id[known.sha256] = known

    def add(self, sha1: str, alerts: list[Any], *, sha256: str | None = None) -> KnownFile:
        """Make Defender know a file with these alerts (deep-copied; may be an empty list)."""
        known = KnownFile(
            sha1=sha1.lower(),
            sha256=None if sha256 is None else sha256.lower(),
            alerts=tuple(copy.deepcopy(alerts)),
        )
        self._register(known)
        return known

    def find(self, file_id: str) -> KnownFile | None:
        with self._lock:
            return self._by_id.get(file_id.lower())

    def files(self) -> list[KnownFile]:
        with self._lock:
            unique = {known.sha1: known for known in self._by_id.values()}
        return list(unique.values())
