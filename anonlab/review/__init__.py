"""Verification: the review queue, the export gate, review statuses, the red-team pass and the residual risk.

Detection proposes, tracking smooths, and a person verifies. This package holds the pure logic of that last
step; the workbench (`anonlab.widgets`), the case file (`anonlab.case`), the pipeline and the CLI call it.
It never imports `anonlab.case` or `anonlab.pipeline` (they import it).

* `anonlab.review.items` — `ReviewItem` and `Flag`: one decision before export, its priority, its flags.
* `anonlab.review.queue` — `build_queue`: one card per track, routine cards in pages, ranked by risk.
* `anonlab.review.gate` — `export_allowed` and the override; `advance_status` (draft -> reviewed ->
  approved); the review fields of the report.
* `anonlab.review.redteam` — `red_team`: the detectors again, at a lowered threshold, on the output.
* `anonlab.review.risk` — `sample_frames` and `risk_bound`: exact bounds on what the analysis missed.

Every public name is importable from ``anonlab.review`` itself. Nothing here puts coordinates in a reason,
summary or report field.
"""

from __future__ import annotations

from anonlab.review.gate import (STATUSES, ExportBlocked, advance_status, export_allowed, gate_summary, make_override,
                                 new_review_state, report_review_fields, require_export_allowed)
from anonlab.review.items import DECISIONS, FILMSTRIP, PRIORITY, Flag, ReviewItem
from anonlab.review.queue import (LONG_GAP, PAGE_SIZE, ROUTINE_FLAGS, build_queue, decisions_needed, event_count,
                                  find_disagreements, review_pages, track_flags)
from anonlab.review.redteam import (INSIDE_FRACTION, RED_TEAM_FACTOR, Finding, coverage_mask, findings_to_items,
                                    group_findings, rank_findings, red_team, red_team_detectors)
from anonlab.review.redteam import _merge_detections  # noqa: F401  (tests import it from anonlab.review)
from anonlab.review.risk import binomial_upper, poisson_upper, risk_bound, sample_frames

__all__ = [
    "DECISIONS",
    "FILMSTRIP",
    "INSIDE_FRACTION",
    "LONG_GAP",
    "PAGE_SIZE",
    "PRIORITY",
    "ROUTINE_FLAGS",
    "RED_TEAM_FACTOR",
    "STATUSES",
    "ExportBlocked",
    "Finding",
    "Flag",
    "ReviewItem",
    "advance_status",
    "binomial_upper",
    "build_queue",
    "coverage_mask",
    "decisions_needed",
    "event_count",
    "export_allowed",
    "find_disagreements",
    "findings_to_items",
    "gate_summary",
    "group_findings",
    "make_override",
    "new_review_state",
    "poisson_upper",
    "rank_findings",
    "red_team",
    "red_team_detectors",
    "report_review_fields",
    "require_export_allowed",
    "review_pages",
    "risk_bound",
    "sample_frames",
    "track_flags",
]
