"""One search process drawing on the KV store call budget, for tests/splunk/test_kv_budget.py.

    MDE_TEST_SESSION_KEY=<key> python -m tests.splunk.kv_budget_process <uri> <limit> <seconds> <attempts>

Asks for a call slot ``attempts`` times (each with a 5-second deadline, on the real clock) and
prints one JSON line: how many were granted and whether the limiter fell back to its host-local
fallback (which this process makes refuse everything, so a fallback can never hide a grant).
"""

from __future__ import annotations

import json
import os
import sys

from mde_file_alerts.clock import Deadline, SystemClock
from mde_file_alerts.ratelimit import limiter_key
from mde_file_alerts.splunk.kv_budget import KvRateLimiter
from mde_file_alerts.splunk.kvstore import BUDGET_COLLECTION, KvStoreCollection

TENANT = "8f3c2a71-5d4e-4b6a-9c1f-2e7d8a9b0c13"
CLIENT = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"


class RefusingLimiter:
    def acquire(self, deadline: Deadline) -> bool:
        return False


def main(arguments: list[str]) -> int:
    uri, limit, seconds, attempts = arguments
    clock = SystemClock()
    collection = KvStoreCollection(uri, os.environ["MDE_TEST_SESSION_KEY"], BUDGET_COLLECTION)
    limiter = KvRateLimiter(
        collection,
        limiter_key(TENANT, CLIENT),
        windows=((int(limit), float(seconds)),),
        clock=clock,
        fallback=RefusingLimiter(),
    )
    granted = sum(limiter.acquire(Deadline(clock, 5.0)) for _ in range(int(attempts)))
    print(json.dumps({"granted": granted, "fallback": limiter.fallback_reason}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
