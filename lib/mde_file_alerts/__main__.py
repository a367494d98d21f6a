"""``python3 -m mde_file_alerts``: see ``mde_file_alerts.cli``."""

import sys

from mde_file_alerts.cli import main

if __name__ == "__main__":
    sys.exit(main())
