"""Peak memory of each function over an invocation, as built, in the Lambda-like interpreter.

The emulator is started in this process and seeded as ``make emulator`` seeds it (the solution
installed, a first release of the example, a second change in review); then every sample event of
every function (``events/local/<function>/*.json``) is sent to the handler from the build output, in
a fresh Lambda-like python3.13 each (see cold_start.py), which reaches the emulator only as ``sam
local invoke`` lets it (AWS_SAM_LOCAL and LOCAL_ENDPOINT_URL). The peak resident memory of that
process (import, clients, the invocation) is what Lambda's "Max Memory Used" reports; a function's
figure is its heaviest event. Custom resource events are left out: their answer goes to a pre-signed
S3 URL of CloudFormation's, which the emulator does not serve.

    make benchmark
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.cold_start import RUNTIME_PYTHON, Function, check_runtime, functions

ROOT = Path(__file__).resolve().parents[1]
HEADROOM = 1.5  # MemorySize must be at least 1.5 times the peak measured here

PROBE = """
import json, sys, time, uuid, importlib
code, layer, module, event_file, memory = sys.argv[1:6]
sys.path[:0] = [code, layer]


class Context:
    function_name = "benchmark"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:benchmark"
    memory_limit_in_mb = int(memory)
    aws_request_id = str(uuid.uuid4())
    log_group_name = "/aws/lambda/benchmark"
    log_stream_name = "benchmark"
    _deadline = time.monotonic() + 300

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)


handler = importlib.import_module(module).lambda_handler
outcome = "returned"
try:
    handler(json.load(open(event_file)), Context())
except Exception as error:  # a sample event that must fail (stage-revert raises for Lambda to retry)
    outcome = type(error).__name__
# VmHWM, not ru_maxrss: the latter keeps the high-water mark of the forking parent across exec
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rss_mb": peak / 1024, "outcome": outcome}))
"""


def peak(function: Function, event: Path, environment: dict[str, str]) -> tuple[float, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": "benchmark",
        **environment,
        "AWS_SAM_LOCAL": "true",  # what `sam local invoke` sets: the only way LOCAL_ENDPOINT_URL is read
    }
    command = [
        str(RUNTIME_PYTHON),
        "-c",
        PROBE,
        str(function.code),
        str(function.layers[0]) if function.layers else "",
        function.module,
        str(event),
        str(function.memory_mb),
    ]
    # Our own interpreter running our own probe on the repository's sample events.
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603
    if result.returncode != 0:
        raise SystemExit(f"{function.name} {event.name} failed:\n{result.stderr[-2000:]}")
    values = json.loads(result.stdout.strip().splitlines()[-1])
    return float(values["rss_mb"]), str(values["outcome"])


def main() -> int:
    check_runtime()
    from rehearsal.emulator import Emulator
    from rehearsal.local import EVENTS, environment_file, seed

    built = functions()
    rows = []
    unseeded: list[str] = []
    with Emulator() as emulator:
        solution, _ = seed(emulator)
        environments = environment_file(solution, emulator.endpoint)
        for function in built:
            if function.logical_id not in environments:
                # a function of the deployment map: the seeded emulator (make emulator) releases without one
                unseeded.append(function.name)
                continue
            environment = {
                **environments[function.logical_id],
                "AWS_REGION": solution.primary_region,
                "AWS_DEFAULT_REGION": solution.primary_region,
            }
            samples = []
            for event in sorted((EVENTS / "local" / function.name).glob("*.json")):
                if "ResponseURL" in json.loads(event.read_text(encoding="utf-8")):
                    continue  # a custom resource answers CloudFormation's pre-signed URL: no emulator serves it
                rss, outcome = peak(function, event, environment)
                samples.append((rss, event.stem, outcome))
            if samples:
                rows.append((function, max(samples)))
    print(f"Peak memory per function over its sample events against the seeded emulator (MemorySize >= {HEADROOM}x)")
    print(f"{'function':<26}{'peak MB':>8}  {'heaviest event':<24}{'MemorySize':>11}{'headroom':>10}")
    for function, (rss, heaviest, _) in rows:
        verdict = "" if function.memory_mb >= rss * HEADROOM else "  TOO SMALL"
        print(
            f"{function.name:<26}{rss:>8.0f}  {heaviest:<24}{function.memory_mb:>11}"
            f"{function.memory_mb / rss:>9.1f}x{verdict}"
        )
    if unseeded:
        print(f"Not measured here (the seeded emulator has no deployment map): {', '.join(unseeded)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
