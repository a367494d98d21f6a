"""Runs the SOAR app's actions the way SOAR's action runner does, and hands back the results.

SOAR calls the app object with the action's input JSON: the asset's settings merged into
``config``, sensitive ones encrypted for the asset, and one parameter set per item of
``parameters``. A failing action does not raise and the process does not fail; the outcome is
the ``ActionResult`` (status, message, data, summary) of each parameter set, so tests assert on
those. Each run uses a fresh app object, as each SOAR action run is a fresh process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from soar_sdk.shims.phantom_common.encryption.encryption_manager_factory import (
    platform_encryption_backend,
)

from soar.src.app import create_app
from soar.src.asset import Asset
from tests.support.emulator import DefenderEmulator

ASSET_ID = "17"


@dataclass(frozen=True)
class Result:
    """One parameter set's ``ActionResult``, as plain values."""

    success: bool
    message: str
    data: list[dict[str, Any]]
    summary: dict[str, Any]
    parameter: dict[str, Any]

    def as_text(self) -> str:
        """Everything SOAR would store for the result, for "this never appears" checks."""
        return json.dumps([self.message, self.data, self.summary, self.parameter], ensure_ascii=False)


def asset_for(emu: DefenderEmulator, **overrides: Any) -> dict[str, Any]:
    """The asset form an admin would fill in for the emulator; an override of None clears a field."""
    asset: dict[str, Any] = {
        "tenant_id": emu.tenant_id,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "cloud": "commercial",
        "api_host": emu.base_url,
        "authority_host": emu.base_url,
        "ca_bundle": emu.ca_bundle,
        "lookup_timeout": 30,
    }
    for key, value in overrides.items():
        if value is None:
            asset.pop(key, None)
        else:
            asset[key] = value
    return asset


def run_action(
    identifier: str, asset: dict[str, Any], parameters: list[dict[str, Any]] | None = None
) -> list[Result]:
    """Run one action with SOAR's input document; one ``Result`` per parameter set."""
    app = create_app()
    config: dict[str, Any] = {
        "app_version": "0.0.0",
        "directory": "/opt/phantom/apps/mdefilealerts",
        "main_module": "src.app:app",
    }
    for key, value in asset.items():
        sensitive = key in Asset.fields_requiring_decryption() and value
        config[key] = platform_encryption_backend.encrypt(value, ASSET_ID) if sensitive else value
    document = {
        "action": identifier,
        "identifier": identifier,
        "asset_id": ASSET_ID,
        "config": config,
        "parameters": parameters if parameters is not None else [{}],
    }
    app.handle(json.dumps(document))
    return [
        Result(
            success=result.get_status(),
            message=result.get_message(),
            data=result.get_data(),
            summary=result.get_summary(),
            parameter=result.get_param(),
        )
        for result in app.actions_manager.get_action_results()
    ]


def run_one(identifier: str, asset: dict[str, Any], parameters: dict[str, Any] | None = None) -> Result:
    """Run an action for a single parameter set; exactly one result is expected."""
    results = run_action(identifier, asset, [parameters or {}])
    assert len(results) == 1, f"expected one action result, got {len(results)}"
    return results[0]
