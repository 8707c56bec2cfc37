"""The audit's one table: a row per check, and the breaches behind any failure."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    check: str
    ran: str
    cases: int = 0
    failures: int = 0
    figure: str = ""
    breaches: list[str] = field(default_factory=list)
    # a check that could not run says so: it is never shown as passed
    not_run: str = ""

    def breach(self, text: str) -> None:
        self.failures += 1
        if len(self.breaches) < 20:
            self.breaches.append(text)

    @property
    def verdict(self) -> str:
        if self.not_run:
            return "NOT RUN"
        return "FAIL" if self.failures else "pass"


def render(rows: list[Row]) -> str:
    headers = ("check", "what ran", "cases", "failures", "figure", "verdict")
    table = [headers, *((r.check, r.ran, str(r.cases), str(r.failures), r.figure, r.verdict) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in table]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    for row in rows:
        if row.not_run:
            lines.append(f"\n{row.check}: not run: {row.not_run}")
        for breach in row.breaches:
            lines.append(f"\n{row.check}: {breach}")
    return "\n".join(lines)
