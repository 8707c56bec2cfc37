"""Static scans of template.yaml: cfn-lint with no findings, checkov (from its own virtual environment)
with every skipped check explained, and every ``Resource: "*"`` listed with its reason."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from samtranslator.policy_template_processor.processor import PolicyTemplatesProcessor

from audit.table import Row
from local_aws.cloudformation import load_template
from local_aws.cloudformation.templates import expand_for_each
from tests.support.events import REPO_ROOT

TEMPLATE = REPO_ROOT / "template.yaml"
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


def cfn_lint() -> Row:
    row = Row("static cfn-lint", "cfn-lint template.yaml", cases=1)
    command = [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO_ROOT)  # noqa: S603
    findings = [line for line in done.stdout.splitlines() if line.strip() and not line.startswith(" ")]
    for finding in findings:
        row.breach(finding)
    if done.returncode and not findings:
        row.breach(f"cfn-lint exited {done.returncode}: {done.stderr.strip()[:300]}")
    row.figure = f"{len(findings)} findings"
    return row


def checkov() -> Row:
    row = Row("static checkov", "checkov --skip-download on template.yaml, Fn::ForEach expanded")
    executable = os.environ.get("CHECKOV", "")
    if not executable or not Path(executable).is_file():
        row.breach("checkov is not installed (make audit installs it in its own virtual environment)")
        return row
    # checkov does not expand Fn::ForEach: it reads the template with its loops expanded, as CloudFormation
    # deploys it, so every log group the loop makes is checked (their skips come from the loop's Metadata).
    expanded = expand_for_each(load_template(TEMPLATE), {"AWS::StackName": "solution", "AWS::Region": "us-east-1"})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "template.json"
        path.write_text(json.dumps(expanded), encoding="utf-8")
        command = [executable, "-f", str(path), "--framework", "cloudformation", "--skip-download", "--compact"]
        done = subprocess.run([*command, "--output", "json"], capture_output=True, text=True, check=False)  # noqa: S603
    report = json.loads(done.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    results = report["results"]
    row.cases = summary["passed"] + summary["failed"] + summary["skipped"]
    for check in results.get("failed_checks", []):
        row.breach(f"{check['check_id']} failed on {check['resource']}: {check['check_name']}")
    for check in results.get("skipped_checks", []):
        if not str((check.get("check_result") or {}).get("suppress_comment") or "").strip():
            row.breach(f"{check['check_id']} skipped on {check['resource']} without a reason")
    if summary.get("parsing_errors"):
        row.breach(f"{summary['parsing_errors']} parsing errors")
    row.figure = (
        f"{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped "
        f"(checkov {summary.get('checkov_version', '?')})"
    )
    return row


def wildcard_resources() -> Row:
    """Every statement on every resource ("*") with the reason written beside it or on the line above."""
    row = Row('static Resource "*"', 'Resource: "*" in template.yaml, each with its reason')
    lines = TEMPLATE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        match = _STAR.match(line)
        if not match:
            continue
        row.cases += 1
        above = _COMMENT.match(lines[number - 2]) if number > 1 else None
        reason = match.group("reason") or (above.group("reason") if above else None)
        if not reason:
            row.breach(f'template.yaml:{number}: Resource "*" without a reason')
    row.figure = f"{row.cases} listed, {row.cases - row.failures} with a reason"
    return row


def listing() -> list[str]:
    """Each ``Resource: "*"`` with its reason, for the audit's output."""
    lines = TEMPLATE.read_text(encoding="utf-8").splitlines()
    shown = []
    for number, line in enumerate(lines, start=1):
        match = _STAR.match(line)
        if match:
            above = _COMMENT.match(lines[number - 2]) if number > 1 else None
            reason = match.group("reason") or (above.group("reason") if above else "NO REASON")
            shown.append(f'  template.yaml:{number}: Resource "*": {reason}')
    return shown
