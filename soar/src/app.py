"""The SOAR app object; SOAR finds it through ``[tool.soar.app] main_module = "src.app:app"``.

``python -m src.app action get_file_alerts -a asset.json -p params.json`` (from soar/) runs an
action locally, as the SDK's command line does for every app.
"""

import logging

from soar_sdk.app import App
from soar_sdk.compat import PythonVersion
from soar_sdk.logging import getLogger

from mde_file_alerts.logging_setup import LOGGER_NAME, RedactingFilter

from .actions import check_connectivity, get_file_alerts
from .asset import Asset
from .outputs import FileAlertsSummary

APP_ID = "db32f3a9-e2d3-469b-8cb8-e0efc5ab3f1f"


def create_app() -> App:
    """A new app with its asset and actions (tests make a fresh one per action run, as SOAR does)."""
    app = App(
        name="MDE File Alerts",
        app_type="investigative",
        logo="logo.svg",
        logo_dark="logo_dark.svg",
        product_vendor="Microsoft",
        product_name="Defender for Endpoint",
        publisher="TA-mde-file-alerts developers",
        appid=APP_ID,
        python_version=str(PythonVersion.PY_3_13),
        asset_cls=Asset,
    )
    app.test_connectivity()(check_connectivity)
    app.action(
        action_type="investigate",
        verbose=(
            "Looks up the file by its SHA-1 with Defender's GET /api/files/{sha1}/alerts and returns one "
            "data item per hash holding its alerts (action_result.data.*.alerts.*). A file without alerts "
            "is a success with alert_count 0. MD5 hashes are refused; a SHA-256 is resolved to its SHA-1 "
            "first when resolve_sha256 is true."
        ),
        render_as="table",
        summary_type=FileAlertsSummary,
    )(get_file_alerts)
    return app


def route_library_logs() -> None:
    """The library's log lines (one per lookup: hash, status, duration, correlation id) go to
    SOAR's debug log through the SDK's handler, redacted.

    Nothing in the library logs a secret; the redaction (bearer tokens, secret-looking fields) is
    the last line of defence, as in the Splunk app's log file.
    """
    soar_handler = getLogger().handler
    if not any(isinstance(existing, RedactingFilter) for existing in soar_handler.filters):
        soar_handler.addFilter(RedactingFilter())
    library = logging.getLogger(LOGGER_NAME)
    if soar_handler not in library.handlers:
        library.addHandler(soar_handler)
    library.setLevel(logging.INFO)
    # Handlers on the root logger (when present) would write every line a second time.
    library.propagate = False


route_library_logs()
app = create_app()

if __name__ == "__main__":
    app.cli()
