"""Microsoft Defender for Endpoint file alerts for Splunk.

The package is layered; front ends (the search command, the alert action, the SOAR action and the
CLI) sit on top of ``client`` and ``mapping``, and nothing here imports from ``bin/`` or ``tests/``.
"""

from mde_file_alerts.version import APP_NAME, app_version

__all__ = ["APP_NAME", "app_version"]
