"""The check's output: a site x step table for people, JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence

from check.judge import STEPS, Row, Status

MARK = {Status.OK: "ok", Status.BROKEN: "BROKEN", Status.UNKNOWN: "unknown"}


def table(rows: Sequence[Row], elapsed: float | None = None) -> str:
    """One line per site and step (status, reason), the fix indented under what is broken."""
    width = max(len(s) for s, _ in STEPS)
    site_width = max([len(r.site) for r in rows] + [4])
    out = [f"{'site':<{site_width}}  {'step':<{width}}  {'status':<7}  reason"]
    for row in rows:
        out.append(f"{row.site:<{site_width}}  {row.step:<{width}}  {MARK[row.status]:<7}  {row.reason}")
        if row.fix and row.status == Status.BROKEN:
            out.append(f"{'':<{site_width}}  {'':<{width}}  {'':<7}  fix: {row.fix}")
    broken = [r for r in rows if r.status == Status.BROKEN]
    unknown = [r for r in rows if r.status == Status.UNKNOWN]
    took = f" in {elapsed:.1f} s" if elapsed is not None else ""
    if broken:
        names = ", ".join(f"{r.site}: {r.step}" for r in broken)
        out.append(f"\n{len(broken)} broken ({names}), {len(unknown)} unknown, checked{took}")
    elif unknown:
        out.append(f"\nnothing broken, {len(unknown)} unknown, checked{took}")
    else:
        out.append(f"\nall {len(rows)} checks ok{took}")
    return "\n".join(out)


def as_json(rows: Sequence[Row], elapsed: float | None = None) -> str:
    return json.dumps({
        "ok": all(r.status == Status.OK for r in rows),
        "broken": [f"{r.site}:{r.step}" for r in rows if r.status == Status.BROKEN],
        "steps": {s: title for s, title in STEPS},
        "rows": [r.as_dict() for r in rows],
        "seconds": round(elapsed, 2) if elapsed is not None else None,
    }, indent=2)


def exit_code(rows: Sequence[Row]) -> int:
    """0 when every step is ok at every site, 1 otherwise (a step that could not be verified is not ok)."""
    return 0 if all(r.status == Status.OK for r in rows) else 1
