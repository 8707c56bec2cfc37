"""The demo rehearsed with each statement of the pipeline role removed in turn (run by ``audit.iam`` in a
process of its own). Prints one JSON line: [[statement, the demo succeeded], ...], the whole policy first."""

from __future__ import annotations

import copy
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from local_aws.cloudformation import load_template
from rehearsal.actions import replay_linter_builds
from rehearsal.emulator import Emulator
from rehearsal.report import Console
from rehearsal.scenarios import Options, run

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


def main() -> None:
    raw = load_template(TEMPLATE)
    policies = raw["Resources"]["PipelineRole"]["Properties"]["Policies"]
    statements = [
        (p, s, str(statement.get("Sid", f"statement {s}")))
        for p, policy in enumerate(policies)
        for s, statement in enumerate(policy["PolicyDocument"]["Statement"])
    ]
    replay_linter_builds()
    results: list[tuple[str, bool]] = []
    with Emulator() as emulator, tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "template.json"

        def rehearse(template: dict[str, Any]) -> bool:
            path.write_text(json.dumps(template), encoding="utf-8")
            options = Options(scenario="demo", solution_template=path, enforce_iam=True, verbose=False)
            try:
                return run(options, emulator, Console(io.StringIO(), verbose=False)).ok
            except ClientError:  # refused where the rehearsal itself acts for the pipeline (the source action)
                return False

        results.append(("the whole policy", rehearse(raw)))
        for p, s, sid in statements:
            mutated = copy.deepcopy(raw)
            del mutated["Resources"]["PipelineRole"]["Properties"]["Policies"][p]["PolicyDocument"]["Statement"][s]
            results.append((sid, rehearse(mutated)))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
