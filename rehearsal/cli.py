"""python -m rehearsal: rehearse the release pipeline of template.yaml against a local AWS emulator.

    python -m rehearsal run [--scenario demo] [--stage-mode delete|retain] [--approve|--reject|--ask]
    python -m rehearsal list
    python -m rehearsal emulator [--port 5000] [--env-file events/env.json]

Exit status: 0 when the scenario ends as it must, 1 when it does not, 2 when the pipeline in
template.yaml cannot run at all (a wiring error: the message names the stage and action).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rehearsal.emulator import Emulator
from rehearsal.pipeline import WiringError
from rehearsal.report import Console
from rehearsal.scenarios import EXAMPLE, FAILS_LINT, SCENARIOS, SECOND_CHANGE, Options, run
from rehearsal.solution import SetupError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__.splitlines()[0] if __doc__ else "")
    commands = parser.add_subparsers(dest="command", required=True)

    play = commands.add_parser("run", help="play a scenario through the pipeline of template.yaml")
    play.add_argument("--scenario", choices=sorted(SCENARIOS), default="demo")
    play.add_argument(
        "--stage-mode",
        choices=["delete", "retain", "both"],
        default="delete",
        help="DeleteStageStack=Yes (delete), No (retain), or the scenario once in each",
    )
    decision = play.add_mutually_exclusive_group()
    decision.add_argument(
        "--approve", dest="decision", action="store_const", const="approve", help="approve the change under review"
    )
    decision.add_argument(
        "--reject", dest="decision", action="store_const", const="reject", help="reject the change under review"
    )
    decision.add_argument(
        "--ask",
        dest="decision",
        action="store_const",
        const="ask",
        help="ask at the terminal (the default when stdin is a terminal)",
    )
    play.add_argument("--source", type=Path, default=EXAMPLE, help="the application folder pushed as the first commit")
    play.add_argument("--change", type=Path, default=SECOND_CHANGE, help="files laid over it for the second change")
    play.add_argument("--broken", type=Path, default=FAILS_LINT, help="files laid over it for lint-failure")
    play.add_argument("--template-path", default="template.yaml", help="the template inside the source folder")
    play.add_argument("--drift-policy", choices=["NOTIFY", "BLOCK"], help="override the scenario's DriftPolicy")
    play.add_argument("--no-iam", action="store_true", help="do not enforce each principal's IAM policy")
    play.add_argument("--quiet", action="store_true", help="no command output, reports or variables")
    play.add_argument("--logs", action="store_true", help="print every function's log lines")
    play.add_argument("--strict", action="store_true", help="fail the run when a check cannot run here (cfn_nag)")

    commands.add_parser("list", help="list the scenarios")

    serve = commands.add_parser("emulator", help="start the emulator with the solution installed, for sam local invoke")
    serve.add_argument("--port", type=int, default=0, help="port on localhost (default: a free one)")
    serve.add_argument("--env-file", type=Path, default=Path("events/env.json"))
    serve.add_argument(
        "--host-alias",
        default="localhost",
        help="how a container reaches this machine (host.docker.internal on Docker Desktop)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<14} {scenario.description}")
        return 0
    if args.command == "emulator":
        from rehearsal.local import serve

        return serve(port=args.port, env_file=args.env_file, host_alias=args.host_alias)
    decision = args.decision or ("ask" if sys.stdin.isatty() and args.scenario != "demo" else None)
    modes = ["delete", "retain"] if args.stage_mode == "both" else [args.stage_mode]
    for folder in (args.source, args.change, args.broken):
        if not folder.is_dir():
            print(f"error: {folder} is not a folder", file=sys.stderr)
            return 2
    if not (args.source / args.template_path).is_file():
        print(f"error: {args.source} has no {args.template_path} (choose it with --template-path)", file=sys.stderr)
        return 2
    failed = False
    with Emulator() as emulator:
        for mode in modes:
            options = Options(
                scenario=args.scenario,
                stage_mode=mode,
                decision=decision,
                source=args.source.resolve(),
                change=args.change.resolve(),
                broken=args.broken.resolve(),
                template_path=args.template_path,
                drift_policy=args.drift_policy,
                enforce_iam=not args.no_iam,
                verbose=not args.quiet,
                show_logs=args.logs,
                strict=args.strict,
            )
            try:
                report = run(options, emulator, Console(verbose=not args.quiet))
            except (WiringError, SetupError) as error:
                print(f"\nerror: {error}", file=sys.stderr)
                return 2
            except EOFError:
                print("\nerror: no terminal to ask for the approval: use --approve or --reject", file=sys.stderr)
                return 2
            failed = failed or not report.ok
    return 1 if failed else 0
