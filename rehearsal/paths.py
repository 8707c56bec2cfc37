"""Where the rehearsal finds the repository's files: the solution template, examples, events."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
