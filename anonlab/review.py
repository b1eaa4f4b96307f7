"""Verification: the review queue, the export gate, review statuses, the red-team pass and the residual risk.

Detection proposes, tracking smooths, and a person verifies. This module holds the pure logic of that last
step; the workbench (`anonlab.widgets`) and the case file (`anonlab.case`) call it.

* **Review queue** — `build_queue` lists what a person should look at: regions the detector was unsure of,
  interpolated runs and holes inside tracks, short tracks, track starts and ends, frames where the two face
  detectors disagree (`find_disagreements`), the first frame of every shot, the analyst's own edits, and what
  the red-team pass found. Each item has a stable id (``kind:frame:track``) so decisions survive a reload.
* **Export gate** — `export_allowed`: no export while an item is undecided, unless the analyst gives an
  override reason (`make_override`), which goes into the report (`report_review_fields`).
* **Review status** — `advance_status`: draft -> reviewed -> approved (or back to draft), with the reviewer's
  name and the UTC time of each step, on the case file's ``review`` object.
* **Red-team pass** — `red_team` runs CenterFace, YuNet and the plate model again on the *rendered output* at
  a lower threshold. A face or plate found outside the applied masks is *exposed*; one found inside a mask
  means the mask is *too weak* to hide it.
* **Residual risk** — the analyst checks a stratified random sample of frames (`sample_frames`) and counts
  missed objects; `risk_bound` turns that into exact upper confidence bounds on the miss rate and on missed
  object-frames per minute of the whole video.

Privacy: item reasons, `Finding.summary`, `gate_summary` and `risk_bound` carry frame numbers, counts, labels
and scores only, never coordinates. `Finding.box` exists for the workbench and stays out of every summary.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from anonlab.errors import AnonlabError
from anonlab.regions import (ANALYST, DETECTOR, INTERPOLATED, LABELS, NO_TRACK, TRACKER, Regions,
                             iou_matrix)

log = logging.getLogger(__name__)

__all__ = [
    "DECISIONS",
    "INSIDE_FRACTION",
    "PRIORITY",
    "RED_TEAM_FACTOR",
    "STATUSES",
    "ExportBlocked",
    "Finding",
    "ReviewItem",
    "advance_status",
    "binomial_upper",
    "build_queue",
    "coverage_mask",
    "export_allowed",
    "find_disagreements",
    "findings_to_items",
    "gate_summary",
    "make_override",
    "new_review_state",
    "poisson_upper",
    "red_team",
    "red_team_detectors",
    "report_review_fields",
    "require_export_allowed",
    "risk_bound",
    "sample_frames",
]

# --- the review queue -------------------------------------------------------------------------------

#: Priority of each kind of review item (higher = look first). The first three mean a possible exposure.
PRIORITY: dict[str, int] = {
    "exposed": 100,        # red team: a face/plate found in the output outside every mask
    "weak_mask": 95,       # red team: the detector still fires inside a mask
    "unmasked_gap": 90,    # frames inside a track with no mask at all (a gap too long to interpolate)
    "disagreement": 80,    # one face detector finds a face that the other and the tracks do not cover
    "scene_cut": 70,       # first frame of a shot: the tracker starts from nothing
    "low_score": 60,       # a run of detections below the low-score line
    "gap": 50,             # an interpolated run: the mask is guessed, not detected
    "short_track": 45,     # few detections: a false positive, or a face seen only briefly
    "edited": 40,          # the analyst's own edits get a second look
    "track_start": 30,     # does the mask start early enough?
    "track_end": 30,       # does it end late enough?
}

#: What an analyst may decide about an item.
DECISIONS: tuple[str, ...] = ("accepted", "fixed", "dismissed")


@dataclass(frozen=True)
class ReviewItem:
    """One thing a person must look at before export.

    Attributes:
        id: stable key ``"kind:frame:track_id"`` (decisions in the case file are keyed by it).
        kind: one of `PRIORITY`'s keys.
        frame: the frame to show (first frame of a run).
        track_id: the track concerned, `NO_TRACK` (-1) for frame-level items.
        reason: one line for the analyst: frames, counts, scores; never coordinates.
        priority: higher first (`PRIORITY`).
    """

    id: str
    kind: str
    frame: int
    track_id: int
    reason: str
    priority: int

    @classmethod
    def make(cls, kind: str, frame: int, track_id: int = NO_TRACK, reason: str = "") -> "ReviewItem":
        if kind not in PRIORITY:
            raise ValueError(f"unknown review item kind {kind!r}")
        frame, track_id = int(frame), int(track_id)
        return cls(id=f"{kind}:{frame}:{track_id}", kind=kind, frame=frame, track_id=track_id, reason=reason,
                   priority=PRIORITY[kind])

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "frame": self.frame, "track_id": self.track_id,
                "reason": self.reason, "priority": self.priority}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ReviewItem":
        return cls.make(d["kind"], d["frame"], d.get("track_id", NO_TRACK), d.get("reason", ""))


def _runs(frames: np.ndarray) -> list[tuple[int, int]]:
    """Sorted unique frames -> inclusive ``(first, last)`` runs of consecutive frames."""
    frames = np.unique(np.asarray(frames, np.int64))
    if not len(frames):
        return []
    cut = np.flatnonzero(np.diff(frames) > 1) + 1
    return [(int(c[0]), int(c[-1])) for c in np.split(frames, cut)]


def _span(a: int, b: int) -> str:
    return f"frame {a}" if a == b else f"frames {a}-{b}"


def _tracks(regions: Regions):
    tracked = regions[regions.track_id != NO_TRACK]
    for tid in np.unique(tracked.track_id).tolist():
        yield int(tid), tracked[tracked.track_id == tid]


def build_queue(
    regions: Regions,
    n_frames: int,
    *,
    scene_cuts: Iterable[int] = (),
    disagreement_frames: Iterable[int] = (),
    edited: Iterable = (),
    findings: Iterable["Finding"] = (),
    low_score: float = 0.5,
    short_track: int = 5,
) -> list["ReviewItem"]:
    """The review queue of one video (or photo, ``n_frames=1``), most urgent first.

    Args:
        regions: all frames' regions after tracking and temporal safety (sources detector, tracker,
            interpolated, extended, analyst), as the case holds them.
        n_frames: frames in the video.
        scene_cuts: first frames of new shots (`anonlab.track.scenecut.SceneCutDetector` said True).
        disagreement_frames: frames from `find_disagreements`.
        edited: what the analyst changed beyond rows marked ``source=analyst``: track ids (int) of edited
            tracks and/or ``(frame, track_id)`` pairs (e.g. a deleted box, which leaves no row).
        findings: red-team `Finding`s (become ``exposed`` / ``weak_mask`` items, see `findings_to_items`).
        low_score: detector/tracker rows scoring below this are reviewed (one item per run of frames).
        short_track: tracks with fewer observed frames (detector/tracker rows) than this are reviewed
            (tracks holding analyst boxes are reviewed as edits instead).

    Returns:
        `ReviewItem`s sorted by priority (highest first), then frame, track and kind. Ids are unique; two
        reasons for the same ``kind:frame:track`` are joined into one item.

    Example:
        >>> r = Regions(xyxy=[[0, 0, 9, 9]] * 2, track_id=[1, 1], frame=[3, 4])
        >>> [i.id for i in build_queue(r, 10, short_track=5)]
        ['short_track:3:1', 'track_start:3:1', 'track_end:4:1']
    """
    n_frames = int(n_frames)
    items: dict[str, ReviewItem] = {}

    def add(kind: str, frame: int, track_id: int = NO_TRACK, reason: str = "") -> None:
        item = ReviewItem.make(kind, frame, track_id, reason)
        old = items.get(item.id)
        if old is not None and reason and reason not in old.reason:
            item = ReviewItem.make(kind, frame, track_id, f"{old.reason}; {reason}")
        elif old is not None:
            return
        items[item.id] = item

    observed_src = (DETECTOR, TRACKER)
    for tid, track in _tracks(regions):
        lab = LABELS[int(track.label[0])]
        frames = np.unique(track.frame)
        observed = track[np.isin(track.source, observed_src)]
        obs_frames = np.unique(observed.frame)
        # interpolated runs: masked by a guess between two detections
        for a, b in _runs(track.frame[track.source == INTERPOLATED]):
            add("gap", a, tid, f"{lab} track {tid}: {_span(a, b)} interpolated ({b - a + 1} frames)")
        # holes: frames between the track's first and last row with no row at all -> no mask there
        if len(frames) > 1:
            missing = np.setdiff1d(np.arange(frames[0], frames[-1] + 1), frames)
            for a, b in _runs(missing):
                add("unmasked_gap", a, tid, f"{lab} track {tid}: no mask in {_span(a, b)} ({b - a + 1} frames) "
                                            f"between two detections")
        # low-score runs among detector/tracker rows
        low = observed[observed.score < low_score]
        for a, b in _runs(low.frame):
            run = low[(low.frame >= a) & (low.frame <= b)]
            add("low_score", a, tid, f"{lab} track {tid}: score below {low_score:g} in {_span(a, b)} "
                                     f"(lowest {float(run.score.min()):.2f})")
        has_analyst = bool((track.source == ANALYST).any())  # reviewed as an edit instead
        if len(obs_frames) < short_track and not has_analyst:
            add("short_track", int(frames[0]), tid,
                f"{lab} track {tid}: detected in {len(obs_frames)} frame(s) only (fewer than {short_track})")
        first, last = int(frames[0]), int(frames[-1])
        if first > 0:
            add("track_start", first, tid, f"{lab} track {tid} starts (first masked frame)")
        if last < n_frames - 1:
            add("track_end", last, tid, f"{lab} track {tid} ends (last masked frame)")
        for a, b in _runs(track.frame[track.source == ANALYST]):
            add("edited", a, tid, f"{lab} track {tid}: analyst boxes in {_span(a, b)}")

    # untracked rows (photos, or before tracking): low scores and analyst boxes frame by frame
    loose = regions[regions.track_id == NO_TRACK]
    for n in np.unique(loose.frame[np.isin(loose.source, observed_src) & (loose.score < low_score)]).tolist():
        rows = loose[(loose.frame == n) & np.isin(loose.source, observed_src) & (loose.score < low_score)]
        add("low_score", n, NO_TRACK, f"{len(rows)} untracked region(s) below {low_score:g} "
                                      f"(lowest {float(rows.score.min()):.2f})")
    for n in np.unique(loose.frame[loose.source == ANALYST]).tolist():
        add("edited", n, NO_TRACK, "analyst box(es) without a track")

    for e in edited:
        if isinstance(e, (tuple, list)) and len(e) == 2:
            n, tid = int(e[0]), int(e[1])
            add("edited", n, tid, f"edited by the analyst (track {tid})" if tid != NO_TRACK else "edited by the analyst")
        else:
            tid = int(e)
            rows = regions[regions.track_id == tid]
            n = int(rows.frame.min()) if len(rows) else 0
            add("edited", n, tid, f"track {tid} edited by the analyst" + ("" if len(rows) else " (now empty)"))

    for n in sorted({int(c) for c in scene_cuts}):
        if 0 <= n < n_frames:
            add("scene_cut", n, NO_TRACK, "first frame after a scene cut (tracks restart here)")
    for n in sorted({int(f) for f in disagreement_frames}):
        if 0 <= n < n_frames:
            add("disagreement", n, NO_TRACK, "one face detector finds a face that the other and the masks miss")
    for item in findings_to_items(findings):
        add(item.kind, item.frame, item.track_id, item.reason)

    return sorted(items.values(), key=lambda i: (-i.priority, i.frame, i.track_id, i.kind))


# --- geometry shared by disagreement and red team ---------------------------------------------------


def _covered_fraction(boxes: np.ndarray, by: np.ndarray) -> np.ndarray:
    """For each box in ``boxes``: the largest fraction of its area inside one box of ``by``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    by = np.asarray(by, np.float64).reshape(-1, 4)
    if not len(boxes) or not len(by):
        return np.zeros(len(boxes))
    lt = np.maximum(boxes[:, None, :2], by[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], by[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area = np.maximum((boxes[:, 2:] - boxes[:, :2]).prod(axis=1), 1e-9)
    return (inter / area[:, None]).max(axis=1)


def _is_covered(boxes: np.ndarray, by: np.ndarray, iou: float, cover: float) -> np.ndarray:
    """A box is covered by ``by`` if one box there has IoU >= ``iou`` with it or holds ``cover`` of its area."""
    if not len(boxes):
        return np.zeros(0, bool)
    if not len(by):
        return np.zeros(len(boxes), bool)
    return (iou_matrix(boxes, by).max(axis=1) >= iou) | (_covered_fraction(boxes, by) >= cover)


def find_disagreements(
    reader,
    detectors: Sequence[Callable[[np.ndarray], Regions]],
    frames: Iterable[int],
    *,
    regions: Regions | None = None,
    iou: float = 0.3,
    cover: float = 0.5,
) -> list[int]:
    """Frames where one face detector finds a face that neither the other detector(s) nor the regions cover.

    Args:
        reader: anything with ``get(n) -> frame`` (`anonlab.media.open_media`'s readers).
        detectors: the individual face detectors (`anonlab.detect.face_detectors(settings)`), each run alone.
        frames: frames to check (all, or a sample such as every 5th frame or `sample_frames`).
        regions: the tracked regions of the video (what will be masked); None to compare detectors only.
        iou, cover: a box counts as covered by another if their IoU is at least ``iou`` or at least
            ``cover`` of its area lies inside the other (the two models draw boxes of different sizes).

    Returns:
        Sorted frame numbers, for ``build_queue(disagreement_frames=...)``.
    """
    detectors = list(detectors)
    out = []
    for n in sorted({int(f) for f in frames}):
        frame = reader.get(n)
        found = [d(frame) for d in detectors]
        found = [r.with_label("face") if len(r) else r for r in found]
        masked = regions.at_frame(n).with_label("face").xyxy if regions is not None else np.zeros((0, 4))
        for i, r in enumerate(found):
            if not len(r):
                continue
            others = [found[j].xyxy for j in range(len(found)) if j != i] + [masked]
            by = np.concatenate([np.asarray(o, np.float32).reshape(-1, 4) for o in others])
            if not _is_covered(r.xyxy, by, iou, cover).all():
                out.append(n)
                break
    log.info("disagreement check: %d of %d frames flagged", len(out), len({int(f) for f in frames}))
    return out


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
        (False, '1 of 1 review item(s) undecided (gap: 1); decide each one or give an override reason')
        >>> export_allowed(q, {"gap:5:1": "accepted"})[0]
        True
    """
    undecided = _undecided(queue, decisions)
    if not undecided:
        return True, f"all {len(queue)} review item(s) decided"
    kinds: dict[str, int] = {}
    for i in undecided:
        kinds[i.kind] = kinds.get(i.kind, 0) + 1
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items(), key=lambda kv: -PRIORITY[kv[0]]))
    reason = _reason(override_reason)
    if reason:
        return True, f"override with {len(undecided)} undecided review item(s) ({detail}): {reason}"
    return False, (f"{len(undecided)} of {len(queue)} review item(s) undecided ({detail}); "
                   f"decide each one or give an override reason")


def require_export_allowed(
    queue: Sequence[ReviewItem], decisions: Mapping[str, str], override_reason: str | Mapping | None = None
) -> str:
    """`export_allowed`, raising `ExportBlocked` (one actionable line) when export is refused."""
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
    """The case file's override record ``{"reason", "by", "at"}``; a blank reason or name is refused."""
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
    decisions = review_state.get("decisions") or {}
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


# --- red-team pass ----------------------------------------------------------------------------------

#: The red-team pass runs each detector at this fraction of the threshold the analysis used.
RED_TEAM_FACTOR = 0.5
#: A detection with at least this fraction of its area under masks counts as inside a mask (weak mask);
#: below it, part of the object is outside every mask (exposed).
INSIDE_FRACTION = 0.8


@dataclass
class Finding:
    """Something the red-team pass found in the rendered output.

    Attributes:
        frame: frame number in the output.
        kind: ``exposed`` (outside the masks, at least in part) or ``weak_mask`` (the detector fires
            inside a mask).
        label: ``face`` or ``plate``.
        score: highest detector score among the detectors that found it.
        detectors: names of the detectors that found it.
        coverage: fraction of the detected box under masks (0 = fully outside).
        box: ``x1, y1, x2, y2`` for the workbench only; never in `summary` or `to_dict` (unless asked).
    """

    frame: int
    kind: str
    label: str
    score: float
    detectors: tuple[str, ...] = ()
    coverage: float = 0.0
    box: tuple[float, float, float, float] | None = field(default=None, repr=False, compare=False)

    def summary(self) -> str:
        """One line for logs and reports, without coordinates."""
        what = "found outside the masks" if self.kind == "exposed" else "still detected inside a mask"
        return (f"frame {self.frame}: {self.label} {what} (score {self.score:.2f}, "
                f"{round(100 * self.coverage)} % masked, {'+'.join(self.detectors) or 'detector'})")

    def to_dict(self, *, with_box: bool = False) -> dict:
        d = {"frame": self.frame, "kind": self.kind, "label": self.label, "score": round(float(self.score), 4),
             "detectors": list(self.detectors), "coverage": round(float(self.coverage), 3)}
        if with_box and self.box is not None:
            d["box"] = [round(float(v), 1) for v in self.box]
        return d


def findings_to_items(findings: Iterable[Finding]) -> list[ReviewItem]:
    """Red-team findings as review items (one per frame and kind; reasons joined)."""
    grouped: dict[tuple[str, int], list[Finding]] = {}
    for f in findings:
        grouped.setdefault((f.kind, f.frame), []).append(f)
    items = []
    for (kind, n), fs in sorted(grouped.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        labels = sorted({f.label for f in fs})
        best = max(f.score for f in fs)
        what = "outside the masks" if kind == "exposed" else "inside a mask that does not hide it"
        items.append(ReviewItem.make(kind, n, NO_TRACK, f"red team: {len(fs)} {'/'.join(labels)} detection(s) "
                                                        f"{what} (best score {best:.2f})"))
    return items


def coverage_mask(regions: Regions, settings, width: int, height: int) -> np.ndarray:
    """Boolean ``(height, width)``: the pixels `anonlab.mask.mask_frame` changes for ``regions``.

    The same geometry as the masker (growth by ``mask_scale``, ellipse, feather); a feathered pixel counts as
    masked where its coverage is at least one half.
    """
    from anonlab.mask import _grown, _scale_for, mask_boxes, shape_alpha

    covered = np.zeros((height, width), bool)
    if not len(regions):
        return covered
    boxes = mask_boxes(regions, settings, width, height)
    grown = _grown(regions.xyxy.astype(np.float64), _scale_for(settings))
    for (x1, y1, x2, y2), obj, shape_box in zip(boxes.tolist(), regions.xyxy.astype(np.float64), grown):
        if x2 <= x1 or y2 <= y1:
            continue
        if settings.shape == "rect" and settings.feather == 0:
            covered[y1:y2, x1:x2] = True
            continue
        offset = np.array([x1, y1, x1, y1], np.float64)
        alpha = shape_alpha(y2 - y1, x2 - x1, tuple(shape_box - offset), shape=settings.shape,
                            feather=settings.feather, inner=tuple(obj - offset))
        covered[y1:y2, x1:x2] |= alpha >= 0.5
    return covered


def _box_coverage(box: np.ndarray, covered: np.ndarray) -> float:
    h, w = covered.shape
    x1, y1 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x2, y2 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    if x2 <= x1 or y2 <= y1:
        return 0.0
    return float(covered[y1:y2, x1:x2].mean())


def red_team_detectors(settings, thresh: float | None = None) -> list:
    """CenterFace and YuNet (always both) for faces and the plate model, at a lowered threshold.

    ``thresh`` None: each model at `RED_TEAM_FACTOR` times the threshold the analysis used
    (``settings.thresh`` or the model's default); a number: every model at that threshold.
    """
    from anonlab.detect import face_detectors, plate_detector

    s = settings.replace(second_face_detector=True)
    dets = []
    if "face" in s.what:
        dets += face_detectors(s)
    if "plate" in s.what:
        dets.append(plate_detector(s))
    return [d.with_threshold(thresh) if thresh is not None else d.lowered(RED_TEAM_FACTOR) for d in dets]


def red_team(
    output_path,
    applied_regions: Regions,
    settings,
    *,
    thresh: float | None = None,
    detectors: Sequence[Callable[[np.ndarray], Regions]] | None = None,
    frames: Iterable[int] | None = None,
    whole_frames: Iterable[int] = (),
    inside: float = INSIDE_FRACTION,
    merge_iou: float = 0.3,
) -> list[Finding]:
    """Look for faces and plates the rendered output still shows.

    Runs every detector on every (chosen) frame of ``output_path`` and compares what they find with the
    masks that were applied: a detection less than ``inside`` under masks is *exposed*; one at least
    ``inside`` under a mask means the mask is *too weak* (a good blur/pixelate/solid mask leaves the
    detectors nothing to fire on, even at half their threshold). Detections of one object by several
    detectors are merged into one finding.

    Args:
        output_path: the rendered photo or video.
        applied_regions: the regions `anonlab.pipeline.render` masked (all frames, displayed pixels).
        settings: the render settings (``what``, ``mask_scale``, ``shape``, ``feather``, thresholds).
        thresh: detector threshold for the pass; None: `RED_TEAM_FACTOR` times the analysis threshold.
        detectors: detectors to run instead of `red_team_detectors` (each ``frame -> Regions``).
        frames: frames to check (None: all; a long video may be checked on a sample).
        whole_frames: frames rendered fully masked (damaged frames, ``mask_whole``).
        inside: fraction of a detection under masks from which it counts as inside a mask.
        merge_iou: detections of one label overlapping this much are one object.

    Returns:
        `Finding`s sorted by frame; empty when the output gives nothing away to these detectors.
    """
    from anonlab.media import open_media

    if detectors is None:
        detectors = red_team_detectors(settings, thresh)
    detectors = list(detectors)
    names = [str(getattr(d, "name", f"detector{i}")) for i, d in enumerate(detectors)]
    wanted = None if frames is None else {int(f) for f in frames}
    whole = {int(f) for f in whole_frames}
    findings: list[Finding] = []
    checked = 0
    media = open_media(output_path)
    try:
        per_frame = applied_regions.by_frame(media.n_frames)
        for n, frame in media.frames():
            if wanted is not None and n not in wanted:
                continue
            checked += 1
            h, w = frame.shape[:2]
            covered = np.ones((h, w), bool) if n in whole else coverage_mask(per_frame[n], settings, w, h)
            parts = []
            for name, d in zip(names, detectors):
                r = d(frame)
                r = r[np.isin(r.label, [LABELS.index(x) for x in settings.what])] if len(r) else r
                parts += [(name, r[i]) for i in range(len(r))]
            findings += _merge_detections(n, parts, covered, inside, merge_iou)
    finally:
        media.close()
    findings.sort(key=lambda f: (f.frame, f.kind, f.label))
    n_exposed = sum(f.kind == "exposed" for f in findings)
    log.info("red team: %d frame(s) checked, %d exposed, %d weak-mask finding(s)", checked, n_exposed,
             len(findings) - n_exposed)
    return findings


def _merge_detections(n: int, parts: list[tuple[str, Regions]], covered: np.ndarray, inside: float,
                      merge_iou: float) -> list[Finding]:
    """One `Finding` per object: detections of one label overlapping by ``merge_iou`` are grouped."""
    if not parts:
        return []
    boxes = np.concatenate([r.xyxy for _, r in parts])
    scores = np.concatenate([r.score for _, r in parts])
    labels = np.concatenate([r.label for _, r in parts])
    order = np.argsort(-scores, kind="stable")
    used = np.zeros(len(parts), bool)
    out = []
    ious = iou_matrix(boxes, boxes)
    for i in order.tolist():
        if used[i]:
            continue
        group = [j for j in order.tolist() if not used[j] and labels[j] == labels[i] and ious[i, j] >= merge_iou]
        used[group] = True
        # the object is as exposed as its least-covered detection
        cov = min(_box_coverage(boxes[j], covered) for j in group)
        out.append(Finding(
            frame=int(n), kind="weak_mask" if cov >= inside else "exposed", label=LABELS[int(labels[i])],
            score=float(scores[i]), detectors=tuple(sorted({parts[j][0] for j in group})), coverage=cov,
            box=tuple(float(v) for v in boxes[i]),
        ))
    return out


# --- residual risk ----------------------------------------------------------------------------------


def sample_frames(n_frames: int, k: int, *, scene_cuts: Iterable[int] = (), seed: int,
                  cover_scenes: bool = True) -> list[int]:
    """A stratified random sample of ``k`` frames for the residual-risk check, spread over time and shots.

    The video is cut into shots at ``scene_cuts``; each shot gets a share of ``k`` proportional to its
    length (largest remainders), and each shot's share is spread over equal stretches of it with one frame
    drawn uniformly at random from each stretch. So every frame has (up to rounding) the same chance k/N of
    being drawn, which is what `risk_bound` assumes, and no long stretch of time goes unchecked. With
    ``cover_scenes`` (and ``k`` at least the number of shots) every shot gets at least one frame, taken from
    the shots sampled most.

    Args:
        n_frames: frames in the video.
        k: frames to draw (all frames if ``k >= n_frames``).
        scene_cuts: first frames of new shots.
        seed: random seed; record it (the case file) so the sample can be reproduced.

    Returns:
        Sorted distinct frame numbers.

    Example:
        >>> sample_frames(100, 4, seed=1) == sample_frames(100, 4, seed=1)
        True
    """
    n_frames, k = int(n_frames), int(k)
    if n_frames <= 0 or k <= 0:
        return []
    if k >= n_frames:
        return list(range(n_frames))
    rng = random.Random(seed)
    bounds = [0, *sorted({int(c) for c in scene_cuts if 0 < int(c) < n_frames}), n_frames]
    lengths = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
    quota = [k * L / n_frames for L in lengths]
    alloc = [int(math.floor(q)) for q in quota]
    order = sorted(range(len(lengths)), key=lambda i: (-(quota[i] - alloc[i]), rng.random()))
    for i in order[: k - sum(alloc)]:
        alloc[i] += 1
    if cover_scenes and k >= len(lengths):
        for i in [i for i in range(len(lengths)) if alloc[i] == 0]:
            donor = max((j for j in range(len(lengths)) if alloc[j] > 1), key=lambda j: alloc[j] - quota[j])
            alloc[donor] -= 1
            alloc[i] = 1
    out = []
    for (start, _), length, m in zip(zip(bounds[:-1], bounds[1:]), lengths, alloc):
        m = min(m, length)
        for i in range(m):
            lo, hi = start + (i * length) // m, start + ((i + 1) * length) // m
            out.append(rng.randrange(lo, hi))
    return sorted(out)


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    return min(1.0, math.fsum(math.exp(base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq)
                              for i in range(k + 1)))


def _poisson_cdf(k: int, mu: float) -> float:
    """P(X <= k) for X ~ Poisson(mu)."""
    if mu <= 0.0:
        return 1.0
    lm = math.log(mu)
    return min(1.0, math.fsum(math.exp(-mu + i * lm - math.lgamma(i + 1)) for i in range(k + 1)))


def _bisect_decreasing(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """The x in [lo, hi] where the decreasing function f crosses ``target`` (returned on the safe, upper side)."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


def binomial_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """Exact one-sided Clopper–Pearson upper bound on a binomial proportion after ``k`` events in ``n`` trials.

    The p at which observing ``k`` or fewer events has probability ``1 - confidence``. ``k = 0`` gives
    ``1 - (1 - confidence) ** (1 / n)``, about ``3 / n`` at 95 % (the rule of three).

    Example:
        >>> round(binomial_upper(0, 300), 5)
        0.00994
    """
    k, n = int(k), int(n)
    if n <= 0 or not 0 <= k <= n:
        raise AnonlabError(f"need 0 <= events <= trials and trials > 0; got {k} of {n}")
    if not 0.0 < confidence < 1.0:
        raise AnonlabError(f"confidence must lie between 0 and 1; got {confidence}")
    alpha = 1.0 - confidence
    if k == n:
        return 1.0
    if k == 0:
        return -math.expm1(math.log(alpha) / n)
    return _bisect_decreasing(lambda p: _binomial_cdf(k, n, p), alpha, 0.0, 1.0)


def poisson_upper(k: int, confidence: float = 0.95) -> float:
    """Exact one-sided upper bound (Garwood) on a Poisson mean after observing ``k`` events.

    ``k = 0`` gives ``-ln(1 - confidence)`` (2.996 at 95 %).
    """
    k = int(k)
    if k < 0:
        raise AnonlabError(f"event count must be 0 or more; got {k}")
    if not 0.0 < confidence < 1.0:
        raise AnonlabError(f"confidence must lie between 0 and 1; got {confidence}")
    alpha = 1.0 - confidence
    if k == 0:
        return -math.log(alpha)
    hi = k + 10.0 + 10.0 * math.sqrt(k)
    while _poisson_cdf(k, hi) > alpha:
        hi *= 2
    return _bisect_decreasing(lambda mu: _poisson_cdf(k, mu), alpha, 0.0, hi)


def risk_bound(
    n_sampled_frames: int,
    n_missed_objects: int,
    n_frames: int,
    fps: float,
    confidence: float = 0.95,
    *,
    n_frames_with_miss: int | None = None,
) -> dict:
    """Upper confidence bounds on what the analysis missed, from a checked random sample of frames.

    The analyst looked at ``n_sampled_frames`` frames drawn by `sample_frames` and counted
    ``n_missed_objects`` *object-frames* left unmasked (a face visible and unmasked in 3 of the sampled frames
    counts 3; two such faces in one frame count 2). Two exact one-sided bounds follow:

    1. **Miss rate per frame (binomial, Clopper–Pearson).** Each sampled frame is one trial, and a trial
       fails when the frame shows at least one missed object. ``p`` is the share of the video's frames that
       show a missed object. ``k`` = frames with a miss (``n_frames_with_miss``; by default the object count,
       which can only over-count and so keeps the bound conservative). From it: exposed frames per minute
       ``p_up * fps * 60`` and in the whole video ``p_up * n_frames``.
    2. **Missed object-frames per minute (Poisson, Garwood)** — the "critical error rate". The count of
       missed objects in a frame is modelled as Poisson with mean ``mu`` per frame; ``mu_up * fps * 60`` bounds
       missed object-frames per minute, ``mu_up * n_frames`` in the whole video. For the same count this bound
       is never below bound 1 (the Poisson upper limit exceeds the binomial one), and with zero misses both
       are about ``3 / n`` per frame at 95 % (rule of three).

    Assumptions, to state beside the figures: the sampled frames are a random sample of the video's frames
    with equal chances (`sample_frames`: proportional stratified sampling, treated as simple random sampling
    with replacement, which makes the bound slightly conservative for a finite video); the analyst sees
    every miss in a checked frame; bound 2 further assumes misses in a frame do not come in clumps (several
    faces missed together, e.g. a crowd, break the Poisson model: count a crowd frame with care, or rely on
    bound 1, which needs no such assumption but counts frames, not objects). Misses are correlated in time
    (one missed face is usually missed in neighbouring frames): that does not invalidate the bounds, which
    are about the video's frames, because the *sample* is random; it is why the figures are per frame and
    per minute, not per person.

    Args:
        n_sampled_frames: frames checked (``n``).
        n_missed_objects: missed object-frames found in them (``k``).
        n_frames: frames in the whole video.
        fps: frames per second (average for VFR video).
        confidence: one-sided confidence level.
        n_frames_with_miss: sampled frames with at least one miss (default: ``min(k, n)``).

    Returns:
        A JSON-ready dict: the inputs, ``miss_rate_per_frame`` ``{"observed", "upper"}``,
        ``exposed_frames_per_minute_upper``, ``exposed_frames_upper``, ``missed_objects_per_frame_upper``,
        ``missed_objects_per_minute_upper`` (the headline), ``missed_objects_upper``, ``methods`` and
        ``statement`` (one sentence for the report). No frame numbers, no coordinates.

    Example:
        >>> r = risk_bound(300, 0, n_frames=9000, fps=25)
        >>> round(r["miss_rate_per_frame"]["upper"] * 300, 2)      # rule of three
        2.98
    """
    n, k = int(n_sampled_frames), int(n_missed_objects)
    if n <= 0:
        raise AnonlabError("the residual-risk check needs at least one checked frame")
    if k < 0:
        raise AnonlabError(f"missed objects must be 0 or more; got {k}")
    if int(n_frames) < n:
        raise AnonlabError(f"checked {n} frames but the video has only {n_frames}")
    if not fps or fps <= 0:
        raise AnonlabError(f"fps must be positive; got {fps}")
    kf = min(k, n) if n_frames_with_miss is None else int(n_frames_with_miss)
    if not 0 <= kf <= min(k, n):
        raise AnonlabError(f"frames with a miss ({kf}) must lie between 0 and min(missed objects, checked frames)")
    p_up = binomial_upper(kf, n, confidence)
    mu_up = poisson_upper(k, confidence) / n
    per_min = 60.0 * float(fps)
    minutes = int(n_frames) / float(fps) / 60.0
    pct = f"{100 * confidence:g} %"
    statement = (f"With {pct} confidence, at most {mu_up * per_min:.3g} missed object-frames per minute "
                 f"({mu_up * int(n_frames):.3g} in the whole video) and at most {100 * p_up:.3g} % of frames showing "
                 f"a missed object, from {k} missed object(s) in {n} randomly sampled frame(s).")
    return {
        "confidence": confidence,
        "sampled_frames": n,
        "missed_objects": k,
        "frames_with_miss": kf,
        "video_frames": int(n_frames),
        "fps": float(fps),
        "video_minutes": minutes,
        "miss_rate_per_frame": {"observed": kf / n, "upper": p_up},
        "exposed_frames_per_minute_upper": p_up * per_min,
        "exposed_frames_upper": p_up * int(n_frames),
        "missed_objects_per_frame_upper": mu_up,
        "missed_objects_per_minute_upper": mu_up * per_min,
        "missed_objects_upper": mu_up * int(n_frames),
        "methods": {
            "miss_rate_per_frame": "one-sided exact binomial (Clopper-Pearson); trial = sampled frame, "
                                   "failure = frame shows >= 1 missed object",
            "missed_objects": "one-sided exact Poisson (Garwood) on missed object-frames per frame",
            "sampling": "stratified random frames, proportional allocation, treated as simple random sampling",
        },
        "statement": statement,
    }
