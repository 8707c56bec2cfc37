"""Static scans of the templates (the solution's template.yaml and the target-account bootstrap): cfn-lint with
no findings, checkov (from its own virtual environment) with every skipped check explained, and every
``Resource: "*"`` listed with its reason."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from samtranslator.policy_template_processor.processor import PolicyTemplatesProcessor

from audit.table import Row
from local_aws.cloudformation import load_template
from local_aws.cloudformation.templates import expand_for_each
from tests.support.events import REPO_ROOT

TEMPLATE = REPO_ROOT / "template.yaml"
BOOTSTRAP = REPO_ROOT / "bootstrap" / "target-account.yaml"
TEMPLATES = (TEMPLATE, BOOTSTRAP)
# SAM policy templates whose every statement is on "*": a function listing one holds a Resource "*".
_STAR_POLICY_TEMPLATES = "|".join(
    sorted(
        name
        for name, spec in PolicyTemplatesProcessor.get_default_policy_templates_json()["Templates"].items()
        if all(statement.get("Resource") == "*" for statement in spec["Definition"]["Statement"])
    )
)
_STAR = re.compile(
    r"""^\s*(?:-\s*)?(?:Resource:\s*["']\*["']|(?:"""
    + _STAR_POLICY_TEMPLATES
    + r"""):\s*\{\})\s*(?:#\s*(?P<reason>.+))?$"""
)
_COMMENT = re.compile(r"^\s*#\s*(?P<reason>.+)$")


def _name(template: Path) -> str:
    return str(template.relative_to(REPO_ROOT))


def cfn_lint(templates: Sequence[Path] = TEMPLATES) -> Row:
    names = " ".join(_name(t) for t in templates)
    row = Row("static cfn-lint", f"cfn-lint {names}", cases=len(templates))
    command = [str(Path(sys.executable).parent / "cfn-lint"), *(str(t) for t in templates)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO_ROOT)  # noqa: S603
    findings = [line for line in done.stdout.splitlines() if line.strip() and not line.startswith(" ")]
    for finding in findings:
        row.breach(finding)
    if done.returncode and not findings:
        row.breach(f"cfn-lint exited {done.returncode}: {done.stderr.strip()[:300]}")
    row.figure = f"{len(findings)} findings"
    return row


def checkov(templates: Sequence[Path] = TEMPLATES) -> Row:
    names = " and ".join(_name(t) for t in templates)
    row = Row("static checkov", f"checkov --skip-download on {names}, Fn::ForEach expanded")
    executable = os.environ.get("CHECKOV", "")
    if not executable or not Path(executable).is_file():
        row.breach("checkov is not installed (make audit installs it in its own virtual environment)")
        return row
    # checkov does not expand Fn::ForEach: it reads each template with its loops expanded, as CloudFormation
    # deploys it, so every log group the loop makes is checked (their skips come from the loop's Metadata).
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for template in templates:
            expanded = expand_for_each(
                load_template(template), {"AWS::StackName": "solution", "AWS::Region": "us-east-1"}
            )
            path = Path(folder) / f"{template.stem}.json"
            path.write_text(json.dumps(expanded), encoding="utf-8")
            paths.append(str(path))
        command = [executable, "-f", *paths, "--framework", "cloudformation", "--skip-download", "--compact"]
        done = subprocess.run([*command, "--output", "json"], capture_output=True, text=True, check=False)  # noqa: S603
    report = json.loads(done.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    results = report["results"]
    row.cases = summary["passed"] + summary["failed"] + summary["skipped"]
    for check in results.get("failed_checks", []):
        where = f"{Path(check['file_path']).stem}: {check['resource']}"
        row.breach(f"{check['check_id']} failed on {where}: {check['check_name']}")
    for check in results.get("skipped_checks", []):
        if not str((check.get("check_result") or {}).get("suppress_comment") or "").strip():
            where = f"{Path(check['file_path']).stem}: {check['resource']}"
            row.breach(f"{check['check_id']} skipped on {where} without a reason")
    if summary.get("parsing_errors"):
        row.breach(f"{summary['parsing_errors']} parsing errors")
    row.figure = (
        f"{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped "
        f"(checkov {summary.get('checkov_version', '?')})"
    )
    return row


def _wildcards(template: Path) -> list[tuple[int, str | None]]:
    """(line number, reason or None) of each ``Resource: "*"``: the reason written beside it or on the line above."""
    lines = template.read_text(encoding="utf-8").splitlines()
    found = []
    for number, line in enumerate(lines, start=1):
        match = _STAR.match(line)
        if match:
            above = _COMMENT.match(lines[number - 2]) if number > 1 else None
            found.append((number, match.group("reason") or (above.group("reason") if above else None)))
    return found


def wildcard_resources(templates: Sequence[Path] = TEMPLATES) -> Row:
    """Every statement on every resource ("*") with the reason written beside it or on the line above."""
    row = Row('static Resource "*"', 'Resource: "*" in the templates, each with its reason')
    for template in templates:
        for number, reason in _wildcards(template):
            row.cases += 1
            if not reason:
                row.breach(f'{_name(template)}:{number}: Resource "*" without a reason')
    row.figure = f"{row.cases} listed, {row.cases - row.failures} with a reason"
    return row


def listing(templates: Sequence[Path] = TEMPLATES) -> list[str]:
    """Each ``Resource: "*"`` with its reason, for the audit's output."""
    return [
        f'  {_name(template)}:{number}: Resource "*": {reason or "NO REASON"}'
        for template in templates
        for number, reason in _wildcards(template)
    ]
