"""Run every check (two at a time, one per core), print the table, exit 1 on any breach."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable

from audit.table import Row, render

Task = tuple[str, str]


def _tasks() -> list[Task]:
    from audit import sandbox
    from audit.scenarios import MAP_SCENARIOS

    jobs = list(sandbox.job_functions())
    every = list(sandbox.SCENARIO_FUNCTIONS)
    # longest first, so the two workers finish together
    return [
        ("iam-pipeline", "pipeline role"),
        *(("fuzz", name) for name in jobs),
        ("fuzz-revert", "stage-revert"),
        *(("faults", name) for name in every),
        *(("iam", name) for name in every),
        *(("iam-map", name) for name in MAP_SCENARIOS),
        ("hostile", ""),
        ("static", ""),
    ]


def _run(task: Task) -> tuple[Task, list[Row], float]:
    started = time.perf_counter()
    kind, name = task
    runner = _RUNNERS[kind]
    try:
        rows = runner(name)
    except Exception as error:  # noqa: BLE001 (a check that crashed is a breach, shown as such)
        row = Row(f"{kind} {name}".strip(), "crashed")
        row.breach(f"{type(error).__name__}: {error}")
        rows = [row]
    return task, rows, time.perf_counter() - started


def _fuzz(name: str) -> list[Row]:
    from audit import fuzz

    return [fuzz.fuzz_job_function(name)]


def _fuzz_revert(name: str) -> list[Row]:
    from audit import fuzz_revert

    return [fuzz_revert.fuzz_stage_revert()]


def _faults(name: str) -> list[Row]:
    from audit import faults

    return [faults.inject(name)]


def _iam(name: str) -> list[Row]:
    from audit import iam

    return [iam.mutate(name)]


def _iam_map(name: str) -> list[Row]:
    from audit import iam

    return [iam.mutate(name, with_map=True)]


def _iam_pipeline(name: str) -> list[Row]:
    from audit import iam

    return [iam.pipeline_role()]


def _hostile(name: str) -> list[Row]:
    from audit import hostile

    return hostile.hostile_artifacts()


def _static(name: str) -> list[Row]:
    from audit import static

    return [static.cfn_lint(), static.checkov(), static.wildcard_resources()]


_RUNNERS: dict[str, Callable[[str], list[Row]]] = {
    "fuzz": _fuzz,
    "fuzz-revert": _fuzz_revert,
    "faults": _faults,
    "iam": _iam,
    "iam-map": _iam_map,
    "iam-pipeline": _iam_pipeline,
    "hostile": _hostile,
    "static": _static,
}


def _prepare() -> None:
    from audit import sandbox

    sandbox.prepare_process()


def main() -> int:
    started = time.perf_counter()
    _prepare()
    tasks = _tasks()
    only = os.environ.get("AUDIT_ONLY")
    if only:
        tasks = [t for t in tasks if t[0] in only.split(",")]
    workers = int(os.environ.get("AUDIT_WORKERS", "2"))
    context = multiprocessing.get_context("spawn")
    order = {task: index for index, task in enumerate(tasks)}
    done: list[tuple[Task, list[Row], float]] = []
    with context.Pool(workers, initializer=_prepare) as pool:
        for finished in pool.imap_unordered(_run, tasks):
            done.append(finished)
            task, rows, seconds = finished
            print(f"  {' '.join(task).strip()}: {seconds:.0f}s", file=sys.stderr, flush=True)
    done.sort(key=lambda item: order[item[0]])
    rows = [row for _, task_rows, _ in done for row in task_rows]
    print(render(rows))
    from audit import static

    print('\nResource "*" in the templates, with the reason beside each:')
    print("\n".join(static.listing()))
    breached = [row for row in rows if row.verdict == "FAIL"]
    not_run = [row for row in rows if row.verdict == "NOT RUN"]
    passed = len(rows) - len(breached) - len(not_run)
    elapsed = time.perf_counter() - started
    print(f"\naudit: {passed} passed, {len(breached)} failed, {len(not_run)} not run ({elapsed:.0f} s)")
    return 1 if breached else 0
