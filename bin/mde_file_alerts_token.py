"""REST handler ``POST /servicesNS/nobody/TA-mde-file-alerts/mde_file_alerts/token`` (the token broker).

splunkd runs it in a persistent Python process (restmap.conf ``[script:mde_file_alerts_token]``),
only for users holding the ``mde_file_alerts_lookup`` capability, and passes it a system token to
read the account's secret. It answers with an access token and the account's non-secret settings.
"""

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from mde_file_alerts.logging_setup import configure_logging
from mde_file_alerts.splunk.broker import TokenBroker
from mde_file_alerts.splunk.persistconn import PersistentServerConnectionApplication

# One broker per process, shared by every handler instance: its msal applications and their token
# caches outlive single requests, so repeat requests do not go back to Entra ID.
_BROKER = TokenBroker()


class TokenHandler(PersistentServerConnectionApplication):
    """Issues Defender for Endpoint access tokens to users with the app's capability.

    Usage: POST account=<name> force_refresh=0|1 (form or JSON body; both optional)
    """

    def __init__(self, command_line: Any = None, command_arg: Any = None) -> None:
        super().__init__()
        # The level from the app's settings is applied per request, once the broker has read them.
        configure_logging()

    def handle(self, in_string: Any) -> Any:
        return _BROKER.handle(in_string)
