"""The splunkd side of the app: account settings, the caller's capability and the token broker.

The search command calls ``connect_through_broker(splunkd_uri, session_key, account)``: it checks
the caller's capability and returns the account (without credentials) and a token source backed
by the app's token broker (``bin/mde_file_alerts_token.py``), which alone reads the secret.
"""

from mde_file_alerts.splunk.broker_client import (
    BrokerClient,
    BrokeredAccount,
    BrokeredTokenSource,
    connect_through_broker,
)
from mde_file_alerts.splunk.capability import CallerContext
from mde_file_alerts.splunk.settings import ANALYST_ROLE, CAPABILITY, AppSettings

__all__ = [
    "ANALYST_ROLE",
    "CAPABILITY",
    "AppSettings",
    "BrokerClient",
    "BrokeredAccount",
    "BrokeredTokenSource",
    "CallerContext",
    "connect_through_broker",
]
