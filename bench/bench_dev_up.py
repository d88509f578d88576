"""Times the one-command demo: `xorj dev up` (cluster started, first and second run) and `xorj dev down`.

Runs on its own cluster name, namespace and state directory, so it never touches a cluster that tests
or a user's demo are using. Prints the figures; asserts nothing.

    python bench/bench_dev_up.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    return time.monotonic() - started, result


def main() -> None:
    xorj = str(Path(sys.executable).parent / "xorj")
    with tempfile.TemporaryDirectory(prefix="xorj-bench-demo-") as state:
        env = {**os.environ, "XORJ_DEMO_STATE_DIR": state, "XORJ_DEMO_NAMESPACE": "bench-demo",
               "XORJ_CLUSTER_NAME": "xorj-bench-demo"}
        try:
            first, result = timed([xorj, "dev", "up"], env)
            if result.returncode != 0:
                print(result.stderr[-3000:], file=sys.stderr)
                raise SystemExit("xorj dev up failed")
            second, result = timed([xorj, "dev", "up"], env)
        finally:
            down, _ = timed([xorj, "dev", "down"], env)
    print(f"xorj dev up, cluster started, to all demo CopyTrades CONFIRMED: {first:6.1f} s")
    print(f"xorj dev up again (everything running):                        {second:6.1f} s")
    print(f"xorj dev down:                                                 {down:6.1f} s")


if __name__ == "__main__":
    main()
