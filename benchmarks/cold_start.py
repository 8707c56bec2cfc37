"""Cold-start cost of each function: import time and peak memory of a fresh interpreter.

Each handler module is imported in a new process, five times, and compared with a process that
imports only boto3 (which every Lambda Python runtime pays anyway). Figures are printed as medians
and as ratios to that baseline, measured in the same run, since absolute times vary between machines.

    make benchmark
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5
PROBE = """
import json, resource, sys, time, importlib.util
start = time.perf_counter()
target = sys.argv[1]
if target == "baseline":
    import boto3  # noqa: F401
else:
    spec = importlib.util.spec_from_file_location("app", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
elapsed = time.perf_counter() - start
print(json.dumps({"ms": elapsed * 1000, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(target: str) -> tuple[float, float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "layers" / "common"),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    samples = []
    for _ in range(RUNS):
        # Our own interpreter running our own probe: no untrusted input.
        output = subprocess.run(  # noqa: S603
            [sys.executable, "-c", PROBE, target],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        samples.append(json.loads(output.strip().splitlines()[-1]))
    return statistics.median(s["ms"] for s in samples), statistics.median(s["rss_mb"] for s in samples)


def main() -> None:
    base_ms, base_rss = measure("baseline")
    print(f"{'function':<26}{'import ms':>10}{'x boto3':>9}{'peak MB':>9}{'x boto3':>9}")
    print(f"{'(boto3 alone)':<26}{base_ms:>10.0f}{1:>9.2f}{base_rss:>9.0f}{1:>9.2f}")
    for handler in sorted((ROOT / "functions").glob("*/app.py")):
        ms, rss = measure(str(handler))
        print(f"{handler.parent.name:<26}{ms:>10.0f}{ms / base_ms:>9.2f}{rss:>9.0f}{rss / base_rss:>9.2f}")


if __name__ == "__main__":
    main()
