"""Fixtures every test gets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mde_file_alerts.logging_setup import LOGGER_NAME
from tests.support.emulator import DefenderEmulator


@pytest.fixture(autouse=True)
def app_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The app log of this test in its own file; the package logger is restored afterwards.

    Code run in-process (the token broker behind the fake splunkd) configures the app's logger
    as it does inside splunkd; in this process that logger is shared with every other test, so
    its handlers, level and propagation are put back.
    """
    logger = logging.getLogger(LOGGER_NAME)
    saved_handlers, saved_level, saved_propagate = list(logger.handlers), logger.level, logger.propagate
    for handler in saved_handlers:
        logger.removeHandler(handler)
    path = tmp_path / "ta_mde_file_alerts.log"
    monkeypatch.setenv("MDE_FILE_ALERTS_LOG_FILE", str(path))
    yield path
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    for handler in saved_handlers:
        logger.addHandler(handler)
    logger.setLevel(saved_level)
    logger.propagate = saved_propagate


# One emulator per test module, reset before each test. Test folders that need another
# (a fake clock, a fresh one per test) define their own `emulator` fixture.
@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[DefenderEmulator]:
    with DefenderEmulator() as emulator:
        yield emulator


@pytest.fixture
def emulator(shared_emulator: DefenderEmulator) -> Iterator[DefenderEmulator]:
    shared_emulator.reset()
    yield shared_emulator
    assert not shared_emulator.server_errors, shared_emulator.server_errors
