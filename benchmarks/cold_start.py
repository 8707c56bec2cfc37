"""Cold start of each function as `sam build` packages it, against a handler that imports only boto3.

What is measured is what Lambda runs at each cold start: the function's code and its layer from the
build output (``.aws-sam/build``), imported by a fresh python3.13 whose only packages are boto3 and
botocore (``.venv-lambda``, from ``benchmarks/lambda-runtime.txt``: no awscrt, no cryptography, as in
the Lambda runtime), with no bytecode written (``/opt`` and ``/var/task`` are read-only in Lambda, so
a layer without compiled bytecode is compiled again at every cold start). The functions are found in
the built template, never listed here.

Each function is measured in pairs with the boto3-only handler, interleaved (the order inside a pair
alternates), and the figure kept is the median of the per-pair ratios: two processes started back to
back share the machine's load, so the ratio holds where absolute milliseconds do not.

    make benchmark            (BENCHMARK_PAIRS=n to change the number of pairs; at least 15 are kept)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".aws-sam" / "build"
RUNTIME_PYTHON = ROOT / ".venv-lambda" / "bin" / "python"
# 31 pairs by default: a shared machine moves the median of 15 by about a tenth between runs.
PAIRS = max(15, int(os.environ.get("BENCHMARK_PAIRS", "31")))
TARGET = 1.3  # each function's import at most 1.3 times the boto3-only handler's
BASELINE_HANDLER = "import boto3  # noqa: F401\n\n\ndef lambda_handler(event, context):\n    return None\n"

# Runs in the Lambda-like interpreter: sys.path as Lambda lays it out (the function's code, then the
# layer's python/ folder, then the runtime's packages), then the handler module imported by name.
PROBE = """
import sys, time
code, layer, module = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[:0] = [code] + ([layer] if layer else [])
import importlib
start = time.perf_counter()
importlib.import_module(module)
elapsed = time.perf_counter() - start
import json
# VmHWM, not ru_maxrss: the latter keeps the high-water mark of the forking parent across exec
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
print(json.dumps({"ms": elapsed * 1000, "rss_mb": rss}))
"""


@dataclass(frozen=True)
class Function:
    name: str  # the folder under functions/
    logical_id: str
    code: Path
    layers: tuple[Path, ...]
    module: str
    memory_mb: int


def functions(build: Path = BUILD) -> list[Function]:
    """Every function of the built template, with its code folder, layers, handler module and memory."""
    template: dict[str, Any] = yaml.safe_load((build / "template.yaml").read_text(encoding="utf-8"))
    defaults = template.get("Globals", {}).get("Function", {})
    resources = template["Resources"]
    found = []
    for logical_id, resource in sorted(resources.items()):
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue  # a Fn::ForEach loop (a list) makes log groups, never a function
        properties = {**defaults, **resource.get("Properties", {})}
        layers = []
        for layer in properties.get("Layers", []):
            target = resources[layer["Ref"]] if isinstance(layer, dict) and "Ref" in layer else None
            if target is None:
                raise SystemExit(f"{logical_id}: layer {layer!r} is not built by this template")
            layers.append(build / target["Properties"]["ContentUri"] / "python")
        found.append(
            Function(
                name=source_folder(logical_id),
                logical_id=logical_id,
                code=build / properties["CodeUri"],
                layers=tuple(layers),
                module=str(properties["Handler"]).rsplit(".", 1)[0],
                memory_mb=int(properties.get("MemorySize", 128)),
            )
        )
    if not found:
        raise SystemExit(f"no function in {build / 'template.yaml'}: run `make build` first")
    return found


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, ...) read as plain values."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_TemplateLoader.add_multi_constructor("!", _short_form)


def source_folder(logical_id: str) -> str:
    """The function's folder under functions/, as template.yaml names it (CodeUri)."""
    template = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=_TemplateLoader)  # noqa: S506
    return Path(str(template["Resources"][logical_id]["Properties"]["CodeUri"])).name


def check_runtime() -> None:
    """The Lambda-like interpreter must hold boto3 and botocore, and neither awscrt nor cryptography."""
    if not RUNTIME_PYTHON.exists():
        raise SystemExit(f"{RUNTIME_PYTHON} is missing: `make benchmark` creates it")
    probe = "import importlib.util as u, json; print(json.dumps([u.find_spec(m) is not None for m in %r]))"
    modules = ["boto3", "botocore", "awscrt", "cryptography"]
    present = json.loads(_run([str(RUNTIME_PYTHON), "-c", probe % modules]))
    if present != [True, True, False, False]:
        raise SystemExit(f"{RUNTIME_PYTHON} is not like Lambda's runtime: {dict(zip(modules, present, strict=True))}")


def layer_bytecode(layer: Path) -> tuple[int, int]:
    """(modules with an unchecked-hash .pyc beside them, modules) in a built layer: Lambda cannot write one."""
    sources = list(layer.rglob("*.py"))
    compiled = 0
    for source in sources:
        cached = source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
        # PEP 552 flags: bit 0 set, bit 1 clear is a hash-based .pyc that is never checked against its source
        if cached.exists() and int.from_bytes(cached.read_bytes()[4:8], "little") & 0b11 == 0b01:
            compiled += 1
    return compiled, len(sources)


def _environment() -> dict[str, str]:
    """A Lambda-like environment: a Region, no credentials needed at import, no bytecode written."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "benchmark",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_METRICS_NAMESPACE": "MultiRegionDeployment",
    }


def _run(command: list[str]) -> str:
    # Our own interpreters running our own probe: no untrusted input.
    result = subprocess.run(command, env=_environment(), capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def sample(code: Path, layers: tuple[Path, ...], module: str) -> dict[str, float]:
    layer = str(layers[0]) if layers else ""
    values: dict[str, float] = json.loads(_run([str(RUNTIME_PYTHON), "-c", PROBE, str(code), layer, module]))
    return values


@dataclass
class Result:
    function: Function
    ratios: list[float]
    ms: list[float]
    rss: list[float]
    rss_ratios: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def spread(self) -> tuple[float, float]:
        quartiles = statistics.quantiles(self.ratios, n=4)
        return quartiles[0], quartiles[2]


def measure(chosen: list[Function], pairs: int = PAIRS) -> tuple[list[float], list[Result]]:
    """``pairs`` interleaved pairs (boto3-only handler, function) per function."""
    with tempfile.TemporaryDirectory() as folder:
        baseline_code = Path(folder)
        (baseline_code / "app.py").write_text(BASELINE_HANDLER, encoding="utf-8")
        results = [Result(f, [], [], [], []) for f in chosen]
        baseline_ms: list[float] = []
        for index in range(pairs):
            for result in results:
                f = result.function
                if index % 2 == 0:
                    base = sample(baseline_code, (), "app")
                    own = sample(f.code, f.layers, f.module)
                else:
                    own = sample(f.code, f.layers, f.module)
                    base = sample(baseline_code, (), "app")
                baseline_ms.append(base["ms"])
                result.ratios.append(own["ms"] / base["ms"])
                result.ms.append(own["ms"])
                result.rss.append(own["rss_mb"])
                result.rss_ratios.append(own["rss_mb"] / base["rss_mb"])
    return baseline_ms, results


def main() -> int:
    check_runtime()
    chosen = functions()
    selected = set(sys.argv[1:])
    if selected:
        chosen = [f for f in chosen if f.name in selected or f.logical_id in selected]
    baseline_ms, results = measure(chosen)
    print(f"Cold start as built: import of each handler from {BUILD.relative_to(ROOT)}, Lambda-like python3.13 ")
    print(f"(boto3 and botocore only, no bytecode written), {PAIRS} interleaved pairs with a boto3-only handler")
    print(f"boto3-only handler: median {statistics.median(baseline_ms):.0f} ms on this machine")
    for layer in sorted({layer for f in chosen for layer in f.layers}):
        compiled, modules = layer_bytecode(layer)
        print(f"layer {layer.parent.name}: {compiled} of {modules} modules ship unchecked-hash bytecode")
    print(f"{'function':<26}{'x boto3':>8}{'  (p25-p75)':<14}{'median ms':>10}{'peak MB':>9}{'x boto3':>8}  target")
    for r in results:
        low, high = r.spread()
        verdict = "ok" if r.ratio <= TARGET else f"OVER {TARGET}"
        print(
            f"{r.function.name:<26}{r.ratio:>8.2f}  ({low:.2f}-{high:.2f}){'':<1}{statistics.median(r.ms):>10.0f}"
            f"{statistics.median(r.rss):>9.0f}{statistics.median(r.rss_ratios):>8.2f}  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
