"""The CI job summary: a few Markdown lines about the latest run, for ``$GITHUB_STEP_SUMMARY``.

Why from the history and not from the bench's own output: the history row has everything a reviewer asks
first (verdict, ratio and its interval, the commit) and the series around it (did this run start a new
level?), and the same command writes the trend page the summary links to. Text from results is escaped:
a model name with a ``|`` must not break the table, nor one with ``<`` add markup.
"""

from __future__ import annotations

import re
from typing import Any

from dass_edge.history.changepoints import ChangePoint
from dass_edge.history.store import Run

# Hook for per-operator profiles (a later feature): a result that records per-operator times (ms) under this
# key, for itself and for its reference under "against", gets the operators that grew listed.
PROFILE_KEY = "op_profile_ms"
MAX_GROWN = 5
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|#])")


def md(text: Any) -> str:
    """``text`` safe inside Markdown table cells and prose (markup characters escaped, one line)."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(text).split()))


def grown_operators(result: dict[str, Any], tolerance: float) -> list[tuple[str, float, float]] | None:
    """(operator, reference ms, candidate ms) for operators slower than the reference by more than
    ``tolerance``, largest growth first; None when the run recorded no profiles to compare."""
    mine = result.get(PROFILE_KEY)
    theirs = (result.get("against") or {}).get(PROFILE_KEY)
    if not isinstance(mine, dict) or not isinstance(theirs, dict):
        return None
    grown = [(op, float(theirs[op]), float(ms)) for op, ms in mine.items()
             if op in theirs and float(theirs[op]) > 0 and float(ms) > float(theirs[op]) * (1 + tolerance)]
    grown += [(op, 0.0, float(ms)) for op, ms in mine.items() if op not in theirs]  # new operators
    return sorted(grown, key=lambda g: g[2] - g[1], reverse=True)[:MAX_GROWN]


def _verdict(run: Run) -> str:
    c = run.columns
    if run.decision is None:
        return "recorded, not gated"
    against = {"paired": "the reference build, same run (paired rounds)", "baseline": "the stored baseline",
               "point": "the stored prediction"}.get(c.get("method") or "", "nothing")
    return f"**{run.decision.upper()}** against {against}"


def _ratio(run: Run) -> str:
    c = run.columns
    if c.get("ratio") is None:
        return "n/a"
    interval = "" if c.get("ratio_ci_low") is None else f" (95% CI {c['ratio_ci_low']:.3f}-{c['ratio_ci_high']:.3f}x)"
    limit = "" if c.get("tolerance") is None else f", limit {1 + c['tolerance']:.2f}x"
    return f"{c['ratio']:.3f}x{interval}{limit}"


def _operators(run: Run) -> str:
    grown = grown_operators(run.result, run.columns.get("tolerance") or 0.0)
    if grown is None:
        return "not available: this run recorded no per-operator profile"
    if not grown:
        return "none beyond the tolerance"
    return "; ".join(f"{md(op)} {before:.3f} → {after:.3f} ms" for op, before, after in grown)


def markdown(run: Run, points: list[ChangePoint], page_url: str | None) -> str:
    """The summary of ``run`` (the latest of its series) and the change points of that series."""
    c = run.columns
    reference = "" if c.get("reference_median_ms") is None else f" (reference {c['reference_median_ms']:.4f} ms)"
    started_here = [p for p in points if p.run_id == run.id]
    lines = [f"### Latency of {md(run.model)} on {md(run.device)}: {_verdict(run)}", "",
             "| | |", "|---|---|",
             f"| ratio | {_ratio(run)} |",
             f"| median | {run.median_ms:.4f} ms{reference} |",
             f"| commit | {md(run.commit or 'not recorded')} |",
             f"| runtime | {md(c.get('runtime'))} {md(c.get('runtime_version') or '')} on "
             f"{md(c.get('host') or c.get('latency_source') or '?')} |",
             f"| operators that grew | {_operators(run)} |",
             f"| change points in this series | {len(points)}"
             + (f"; the latest: {points[-1].ratio:.2f}x from {md(points[-1].commit or '?')}" if points else "")
             + (" (**starts at this run**)" if started_here else "") + " |", ""]
    if page_url:
        lines.append(f"[Trend page]({page_url.replace(')', '%29').replace(' ', '%20')})")
    return "\n".join(lines) + "\n"
