"""Tests of the Splunk SOAR app in soar/, run by ``python3 soar/tasks.py test`` in .venv/soar.

The SOAR SDK is installed only there (Python 3.13, with the ``mde-file-alerts`` wheel instead of
lib/ on the path); the Splunk app's test environments have neither, so they leave these out.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mde_file_alerts.logging_setup import LOGGER_NAME
from tests.support.emulator import DefenderEmulator

if importlib.util.find_spec("soar_sdk") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(autouse=True)
def state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The call budget of this test's action runs, apart from every other test and real run."""
    directory = tmp_path / "soar-state"
    monkeypatch.setenv("MDE_FILE_ALERTS_STATE_DIR", str(directory))
    return directory


@pytest.fixture(autouse=True)
def app_log() -> Iterator[None]:
    """Replaces the Splunk suite's fixture of this name, which detaches the library logger's
    handlers: here that logger keeps the route to SOAR's log that the app sets up on import."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for handler in saved[0]:
        logger.addHandler(handler)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@pytest.fixture
def emulator() -> Iterator[DefenderEmulator]:
    with DefenderEmulator() as emu:
        yield emu
