"""The export gate and the review status: may this case be exported, and who signed it off when.

`export_allowed` refuses an export while a queue item is undecided, unless the analyst gives an override
reason (`make_override`), which then goes into the report (`report_review_fields`): nothing unmasked
leaves without a person's decision or a recorded reason. `advance_status` moves a case draft -> reviewed ->
approved (or back to draft) with the reviewer's name and the UTC time of each step. Everything here is a
pure function of the case file's ``review`` object and the queue, and returns a new state instead of
changing one, so the CLI, batch jobs and the workbench share one set of rules and the case (`anonlab.case`)
stays the only place that stores them. Summaries carry counts and kinds only, never coordinates.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Mapping, Sequence

from anonlab.errors import AnonlabError
from anonlab.review.items import DECISIONS, PRIORITY, ReviewItem

__all__ = [
    "STATUSES",
    "ExportBlocked",
    "advance_status",
    "export_allowed",
    "gate_summary",
    "make_override",
    "new_review_state",
    "report_review_fields",
    "require_export_allowed",
]


# --- the export gate --------------------------------------------------------------------------------


class ExportBlocked(AnonlabError):
    """Export refused: review items are undecided and no override reason was given."""


def _undecided(queue: Sequence[ReviewItem], decisions: Mapping[str, str]) -> list[ReviewItem]:
    return [i for i in queue if decisions.get(i.id) not in DECISIONS]


def _reason(override) -> str:
    """The override's reason, from a string or from the case file's ``{"reason", "by", "at"}``."""
    if isinstance(override, Mapping):
        override = override.get("reason")
    return " ".join(str(override or "").split())


def export_allowed(
    queue: Sequence[ReviewItem], decisions: Mapping[str, str], override_reason: str | Mapping | None = None
) -> tuple[bool, str]:
    """May the case be exported? ``(allowed, why)``; ``why`` is one line for the analyst and the report.

    Allowed when every queue item has a decision in `DECISIONS` (accepted, fixed, dismissed), or when an
    override reason (non-blank; a string or the case file's ``{"reason", "by", "at"}``, see `make_override`)
    is given; the reason then goes into the report (`report_review_fields`). Decisions for ids no longer in
    the queue are ignored.

    Example:
        >>> q = [ReviewItem.make("gap", 5, 1, "...")]
        >>> export_allowed(q, {})
        (False, '1 of 1 review item(s) undecided (1 gap); decide each one or give an override reason')
        >>> export_allowed(q, {"gap:5:1": "accepted"})[0]
        True
    """
    undecided = _undecided(queue, decisions)
    if not undecided:
        return True, f"all {len(queue)} review item(s) decided"
    kinds: dict[str, int] = {}
    for i in undecided:
        kinds[i.kind] = kinds.get(i.kind, 0) + 1
    # "(10 track)", not "(track: 10)", which read as the track numbered 10
    detail = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items(), key=lambda kv: -PRIORITY[kv[0]]))
    reason = _reason(override_reason)
    if reason:
        return True, f"override with {len(undecided)} undecided review item(s) ({detail}): {reason}"
    return False, (f"{len(undecided)} of {len(queue)} review item(s) undecided ({detail}); "
                   f"decide each one or give an override reason")


def require_export_allowed(
    queue: Sequence[ReviewItem], decisions: Mapping[str, str], override_reason: str | Mapping | None = None
) -> str:
    """`export_allowed`, raising `ExportBlocked` (one actionable line) when export is refused.

    Returns:
        ``why``: one line for the analyst and the report.

    Raises:
        ExportBlocked: items are undecided and no override reason was given.
    """
    ok, why = export_allowed(queue, decisions, override_reason)
    if not ok:
        raise ExportBlocked(f"export blocked: {why}")
    return why


def gate_summary(
    queue: Sequence[ReviewItem], decisions: Mapping[str, str], override_reason: str | Mapping | None = None
) -> dict:
    """The review figures of a case: counts by kind and decision, no frames, no coordinates."""
    ok, why = export_allowed(queue, decisions, override_reason)
    by_kind: dict[str, dict[str, int]] = {}
    for i in queue:
        d = decisions.get(i.id)
        d = d if d in DECISIONS else "undecided"
        k = by_kind.setdefault(i.kind, {"items": 0, **{x: 0 for x in DECISIONS}, "undecided": 0})
        k["items"] += 1
        k[d] += 1
    undecided = len(_undecided(queue, decisions))
    return {
        "items": len(queue),
        "decided": len(queue) - undecided,
        "undecided": undecided,
        "by_kind": by_kind,
        "export_allowed": ok,
        "override_reason": (_reason(override_reason) or None) if undecided else None,
        "gate": why,
    }


# --- review status ----------------------------------------------------------------------------------
#
# The review state is the case file's ``review`` object (`anonlab.case.Review.to_dict`):
#   {"status", "reviewer", "at", "decisions": {item_id: decision}, "override": None | {"reason", "by", "at"},
#    "history": [{"status", "by", "at", "note"?}]}

STATUSES: tuple[str, ...] = ("draft", "reviewed", "approved")
#: Allowed transitions: forward one step, or back to draft (reopened after an edit).
_TRANSITIONS = {("draft", "reviewed"), ("reviewed", "approved"), ("reviewed", "draft"), ("approved", "draft")}


def new_review_state() -> dict:
    """The review state of a new case: draft, nobody, no decisions (the case file's ``review`` layout)."""
    return {"status": "draft", "reviewer": None, "at": None, "decisions": {}, "override": None, "history": []}


def _stamp(now: datetime | None) -> str:
    """UTC time as the case file writes it: ISO 8601 to the second, ``+00:00``."""
    now = datetime.now(timezone.utc) if now is None else now.astimezone(timezone.utc)
    return now.isoformat(timespec="seconds")


def _person(name, what: str) -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise AnonlabError(f"{what} needs the reviewer's name")
    if len(name) > 200:
        raise AnonlabError("the reviewer's name is longer than 200 characters")
    return name


def advance_status(review_state: Mapping, to: str, reviewer: str, *, note: str | None = None,
                   now: datetime | None = None, distinct_approver: bool = False) -> dict:
    """A new review state moved to ``to`` by ``reviewer`` (the input is not modified).

    Allowed: draft -> reviewed -> approved, and reviewed/approved -> draft (reopen). Anything else
    (approved straight from draft, the same status again, an unknown status) raises `AnonlabError`, as does
    an empty reviewer name. With ``distinct_approver`` the approver must differ from whoever set the case to
    reviewed (four eyes). Whether the queue is decided is the export gate's business (`export_allowed`).

    Returns:
        A copy of ``review_state`` with ``status``, ``reviewer`` and ``at`` (UTC, ISO 8601) set and the step
        appended to ``history`` as ``{"status", "by", "at"}`` (plus ``note`` if given). Other keys are kept.

    Raises:
        AnonlabError: an unknown status (asked for, or held by the case), a step not allowed, an empty or
            overlong reviewer name, or (with ``distinct_approver``) the reviewer approving their own review.

    Example:
        >>> s = advance_status(new_review_state(), "reviewed", "A. Analyst")
        >>> s["status"], s["reviewer"], s["history"][0]["by"]
        ('reviewed', 'A. Analyst', 'A. Analyst')
    """
    current = review_state.get("status", "draft") or "draft"
    if to not in STATUSES:
        raise AnonlabError(f"unknown review status {to!r}; expected one of {', '.join(STATUSES)}")
    if current not in STATUSES:
        raise AnonlabError(f"the case holds an unknown review status {current!r}")
    name = _person(reviewer, "a review step")
    if (current, to) not in _TRANSITIONS:
        hint = " (it must be reviewed first)" if (current, to) == ("draft", "approved") else ""
        raise AnonlabError(f"cannot move a case from {current} to {to}{hint}")
    if distinct_approver and to == "approved":
        last_review = next((h for h in reversed(review_state.get("history") or []) if h.get("status") == "reviewed"),
                           None)
        if last_review is not None and last_review.get("by") == name:
            raise AnonlabError("the approver must be another person than the reviewer")
    stamp = _stamp(now)
    step = {"status": to, "by": name, "at": stamp}
    if note and note.strip():
        step["note"] = " ".join(note.split())
    out = dict(review_state)
    out["history"] = [*(review_state.get("history") or []), step]
    if to == "draft":
        out.update(status="draft", reviewer=None, at=None)
    else:
        out.update(status=to, reviewer=name, at=stamp)
    return out


def make_override(reason: str, by: str, *, now: datetime | None = None) -> dict:
    """The case file's override record ``{"reason", "by", "at"}``; a blank reason or name is refused.

    Raises:
        AnonlabError: the reason is blank, or the name is blank or longer than 200 characters.
    """
    text = _reason(reason)
    if not text:
        raise AnonlabError("an export override needs a reason (it is recorded in the report)")
    return {"reason": text, "by": _person(by, "an export override"), "at": _stamp(now)}


def report_review_fields(review_state: Mapping, queue: Sequence[ReviewItem], risk: Mapping | None = None) -> dict:
    """The ``review`` argument of `anonlab.report.make_report` for a case: scalars only, no coordinates.

    ``signed_off_by``/``signed_off_at`` are the last reviewer and time; ``reviewed_items``/``total_items``
    count the decided queue items; ``residual_risk`` is `risk_bound`'s statement; ``note`` carries the
    override reason when export went ahead with undecided items.
    """
    # the case file's form is {id: {"decision", "by", "at"}}; a bare {id: decision} is accepted too (a workbench
    # export read every decision of the file's form as undecided: "0 of 3 reviewed" after all were accepted)
    decisions = {k: (v.get("decision") if isinstance(v, Mapping) else v)
                 for k, v in (review_state.get("decisions") or {}).items()}
    summary = gate_summary(queue, decisions, review_state.get("override"))
    out = {
        "status": review_state.get("status", "draft"),
        "signed_off_by": review_state.get("reviewer"),
        "signed_off_at": review_state.get("at"),
        "reviewed_items": summary["decided"],
        "total_items": summary["items"],
    }
    if risk is not None:
        out["residual_risk"] = risk["statement"]
    if summary["override_reason"]:
        override = review_state.get("override") or {}
        by = f" by {override['by']}" if isinstance(override, Mapping) and override.get("by") else ""
        out["note"] = (f"exported with {summary['undecided']} undecided review item(s), override{by}: "
                       f"{summary['override_reason']}")
    return out
