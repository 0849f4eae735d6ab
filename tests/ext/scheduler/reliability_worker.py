"""One scheduler process for test_reliability.py: ``python reliability_worker.py STORE_URL RUNS_URL``.

Runs until SIGTERM (a clean stop) or SIGKILL (the test's crash). Leases are short so the other
processes take a killed one's fires over within seconds.
"""

from __future__ import annotations

import signal
import sys

# A SIGTERM that arrives while the process still starts (before run() handles it) is a clean stop too.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

import logging  # noqa: E402

from kaygraph.ext.scheduler import Scheduler  # noqa: E402


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="worker %(process)d %(levelname)s %(message)s")
    store_url, runs_url = sys.argv[1], sys.argv[2]
    scheduler = Scheduler(store_url, runs=runs_url, lease=2, grace=120, poll_interval=1, shutdown_timeout=5)
    print("ready", flush=True)
    scheduler.run()


if __name__ == "__main__":
    main()
