#!/usr/bin/env python
"""Splunk alert action ``mde_file_alerts_lookup``: index the Defender alerts for the hashes in the results.

splunkd runs it as ``python bin/mde_file_alerts_action.py --execute`` with the JSON payload on stdin
(alert_actions.conf: payload_format = json); the logic is in lib/mde_file_alerts/alert_action.py.
"""

import sys
from pathlib import Path

# The app's own lib/ (our package and the vendored libraries), found relative to this file.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from mde_file_alerts.alert_action import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], sys.stdin.buffer, sys.stderr))
