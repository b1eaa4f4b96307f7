"""The review queue: one card per track, ranked by risk, and what it costs the analyst to decide it.

`build_queue` asks for one decision per *track*, not per event: a track's flags (`track_flags`: regions the
detector was unsure of, interpolated runs and holes, a short track, its start and end, the analyst's edits
and deletions) are listed on its card and its flagged frames form the card's filmstrip. A card whose flags
are all routine (`ROUTINE_FLAGS`: the track is masked throughout) is accepted a page at a time after a look at
the thumbnails (`review_pages`); a hole, a long guessed run, a deleted or unmasked track, a disagreement
between the face detectors (`find_disagreements`), the first frame of a shot and every red-team finding are
decisions of their own, ranked by risk. This keeps the number of clicks (`decisions_needed`) proportional to
the number of tracks rather than to the number of events (`event_count`), while every flagged frame stays
one click away. Reasons carry frame numbers, counts, labels and scores only, never coordinates.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from anonlab.regions import ANALYST, DETECTOR, INTERPOLATED, LABELS, NO_TRACK, TRACKER, Regions, iou_matrix
from anonlab.review.items import DECISIONS, Flag, ReviewItem, _span
from anonlab.review.redteam import Finding, findings_to_items

log = logging.getLogger(__name__)

__all__ = [
    "LONG_GAP",
    "PAGE_SIZE",
    "ROUTINE_FLAGS",
    "build_queue",
    "decisions_needed",
    "event_count",
    "find_disagreements",
    "review_pages",
    "track_flags",
]


#: Flags that concern a track masked throughout: its card may be accepted with a page of others after a look at
#: the thumbnails. Every other flag (something may be visible: a hole, a long guessed run, a red-team find, a
#: deleted or unmasked track) makes the card one decision of its own. Gaps are routine up to `LONG_GAP` frames;
#: ``edited`` only on tracks the analyst drew alone (a found box changed by hand is a decision of its own).
ROUTINE_FLAGS = frozenset({"low_score", "gap", "short_track", "edited", "track_start", "track_end"})
#: An interpolated run longer than this (frames) is a decision of its own (recall first: the mask is a guess).
LONG_GAP = 6
#: Routine track cards shown and accepted together (`review_pages`).
PAGE_SIZE = 12


def _runs(frames: np.ndarray) -> list[tuple[int, int]]:
    """Sorted unique frames -> inclusive ``(first, last)`` runs of consecutive frames."""
    frames = np.unique(np.asarray(frames, np.int64))
    if not len(frames):
        return []
    cut = np.flatnonzero(np.diff(frames) > 1) + 1
    return [(int(c[0]), int(c[-1])) for c in np.split(frames, cut)]


def _tracks(regions: Regions):
    tracked = regions[regions.track_id != NO_TRACK]
    for tid in np.unique(tracked.track_id).tolist():
        yield int(tid), tracked[tracked.track_id == tid]


def track_flags(track: Regions, n_frames: int, *, low_score: float = 0.5, short_track: int = 5,
                long_gap: int = LONG_GAP) -> list[Flag]:
    """The flags of one track (all its rows, one track id), most urgent first.

    Holes with no mask (``unmasked_gap``), interpolated runs (``gap``; routine up to ``long_gap`` frames),
    runs of detector/tracker rows scoring below ``low_score``, fewer than ``short_track`` observed frames
    (tracks holding analyst boxes are ``edited`` instead), where the track starts and ends, analyst boxes.
    A photo (``n_frames == 1``) has no starts, ends or short tracks.
    """
    lab = LABELS[int(track.label[0])]
    frames = np.unique(track.frame)
    observed = track[np.isin(track.source, (DETECTOR, TRACKER))]
    out: list[Flag] = []
    for a, b in _runs(track.frame[track.source == INTERPOLATED]):
        out.append(Flag("gap", a, b, f"{_span(a, b)} interpolated ({b - a + 1} frames)", b - a + 1 <= long_gap))
    if len(frames) > 1:
        missing = np.setdiff1d(np.arange(frames[0], frames[-1] + 1), frames)
        for a, b in _runs(missing):
            out.append(Flag("unmasked_gap", a, b, f"no mask in {_span(a, b)} ({b - a + 1} frames) between two "
                                                  "detections"))
    low = observed[observed.score < low_score]
    for a, b in _runs(low.frame):
        run = low[(low.frame >= a) & (low.frame <= b)]
        out.append(Flag("low_score", a, b, f"score below {low_score:g} in {_span(a, b)} "
                                           f"(lowest {float(run.score.min()):.2f})", True))
    has_analyst = bool((track.source == ANALYST).any())
    first, last = int(frames[0]), int(frames[-1])
    if n_frames > 1:
        n_obs = len(np.unique(observed.frame))
        if n_obs < short_track and not has_analyst:
            out.append(Flag("short_track", first, first, f"detected in {n_obs} frame(s) only "
                                                         f"(fewer than {short_track})", True))
        if first > 0:
            out.append(Flag("track_start", first, first, f"starts at frame {first} (first masked frame)", True))
        if last < n_frames - 1:
            out.append(Flag("track_end", last, last, f"ends at frame {last} (last masked frame)", True))
    # A box the analysis placed and the analyst moved or resized may no longer cover what was found there (a
    # careless drag moved a face's mask off the face, and a page of routine cards accepted it): a card of its own.
    # Tracks the analyst drew alone are routine.
    found = bool(len(observed))
    for a, b in _runs(track.frame[track.source == ANALYST]):
        out.append(Flag("edited", a, b, f"analyst changed the found boxes in {_span(a, b)}" if found
                        else f"analyst boxes in {_span(a, b)}", not found))
    if lab == "text" and not has_analyst:
        # Text is a proposal: a sign or a headline may be public, a badge or a screen personal. The analyst
        # accepts (mask) or dismisses (leave, with a name) each text track on its own card.
        out.append(Flag("text_proposal", first, last, "text found by the model: mask it, or dismiss if it is not "
                                                       "personal"))
    return sorted(out, key=lambda f: (-f.priority, f.first, f.kind))


def _card(tid: int, lab: str, first: int, last: int, flags: Sequence[Flag]) -> ReviewItem:
    risky = [f for f in flags if not f.routine]
    head = f"{lab} track {tid}, {_span(first, last)}"
    if not flags:
        reason = f"{head}: no flags"
    else:
        shown = "; ".join(f.reason for f in flags[:4]) + (f"; {len(flags) - 4} more" if len(flags) > 4 else "")
        reason = f"{head}: {shown}"
    if risky:
        top = risky[0]
        return ReviewItem.make(top.kind, top.first, tid, reason, id=f"track:{tid}", flags=flags)
    return ReviewItem.make("track", first, tid, reason, id=f"track:{tid}", flags=flags, routine=True)


def build_queue(
    regions: Regions,
    n_frames: int,
    *,
    scene_cuts: Iterable[int] = (),
    disagreement_frames: Iterable[int] = (),
    edited: Iterable = (),
    findings: Iterable["Finding"] = (),
    excluded: Mapping[int, Regions] | None = None,
    analysed: bool = False,
    low_score: float = 0.5,
    short_track: int = 5,
    long_gap: int = LONG_GAP,
) -> list["ReviewItem"]:
    """The review queue of one video (or photo, ``n_frames=1``): one card per track, most urgent first.

    Review tracks, not events: every track is one decision, whatever number of flags it raised;
    its flagged frames are the card's filmstrip (`ReviewItem.frames`). Cards with routine flags only (a track
    masked throughout: `ROUTINE_FLAGS`) are accepted a page at a time (`review_pages`). Frame-level items
    (scene cuts, detector disagreements, red-team findings, deleted tracks, an analysis that found nothing)
    are decisions of their own.

    Args:
        regions: all frames' masked regions (sources detector, tracker, interpolated, extended, analyst), as
            the case holds them (`anonlab.case.Case.effective_regions`).
        n_frames: frames in the video.
        scene_cuts: first frames of new shots (`anonlab.track.scenecut.SceneCutDetector` said True).
        disagreement_frames: frames from `find_disagreements`.
        edited: what the analyst changed: track ids (int) and/or ``(frame, track_id)`` pairs where a box or a
            whole track was deleted (`anonlab.case.Case.review_edits`). A deletion is ``deleted`` (on the
            track's card, or a frame-level item when the whole track is gone).
        findings: red-team `Finding`s (see `findings_to_items`).
        excluded: tracks left unmasked on purpose, ``{track_id: its rows}``: each is a card of its own
            (``excluded``), so a second person sees every such decision.
        analysed: the input was analysed; with no track at all, one ``nothing_found`` item asks for a look.
        low_score: detector/tracker rows scoring below this are flagged (one flag per run of frames).
        short_track: tracks with fewer observed frames (detector/tracker rows) than this are flagged.
        long_gap: interpolated runs longer than this many frames make the card a decision of its own.

    Returns:
        `ReviewItem`s sorted by priority (highest first), then frame and track. Ids are unique.

    Example:
        >>> r = Regions(xyxy=[[0, 0, 9, 9]] * 2, track_id=[1, 1], frame=[3, 4])
        >>> [(i.id, i.kind, [f.kind for f in i.flags]) for i in build_queue(r, 10)]
        [('track:1', 'track', ['short_track', 'track_start', 'track_end'])]
    """
    n_frames = int(n_frames)
    items: dict[str, ReviewItem] = {}

    def add(item: ReviewItem) -> None:
        old = items.get(item.id)
        if old is not None:
            if item.reason in old.reason:
                return
            item = ReviewItem.make(item.kind, item.frame, item.track_id, f"{old.reason}; {item.reason}", id=item.id,
                                   flags=old.flags + item.flags, routine=old.routine and item.routine)
        items[item.id] = item

    extra: dict[int, list[Flag]] = {}
    loose_edits: list[tuple[int, int]] = []
    for e in edited:
        if isinstance(e, (tuple, list)) and len(e) == 2:
            loose_edits.append((int(e[0]), int(e[1])))
        else:
            extra.setdefault(int(e), [])
    present = set(np.unique(regions.track_id[regions.track_id != NO_TRACK]).tolist())
    for n, tid in loose_edits:
        if tid in present:
            extra.setdefault(tid, []).append(Flag("deleted", n, n, f"a box deleted by the analyst at frame {n}"))
        elif tid not in (excluded or {}):
            add(ReviewItem.make("deleted", n, tid, f"track {tid} deleted by the analyst (its mask is gone)"))

    for tid, track in _tracks(regions):
        flags = track_flags(track, n_frames, low_score=low_score, short_track=short_track, long_gap=long_gap)
        more = extra.get(tid, [])
        if tid in extra and not (track.source == ANALYST).any() and not any(f.kind == "edited" for f in flags):
            more = [*more, Flag("edited", int(track.frame.min()), int(track.frame.min()), "edited by the analyst",
                                True)]
        flags = sorted([*flags, *more], key=lambda f: (-f.priority, f.first, f.kind))
        add(_card(tid, LABELS[int(track.label[0])], int(track.frame.min()), int(track.frame.max()), flags))
    for tid, rows in sorted((excluded or {}).items()):
        if not len(rows):
            continue
        a, b = int(rows.frame.min()), int(rows.frame.max())
        add(ReviewItem.make("excluded", a, tid, f"{LABELS[int(rows.label[0])]} track {tid}, {_span(a, b)}: left "
                                                f"unmasked on purpose", id=f"track:{tid}",
                            flags=[Flag("excluded", a, b, "left unmasked on purpose")]))

    # untracked rows (photos, or before tracking): low scores and analyst boxes frame by frame
    loose = regions[regions.track_id == NO_TRACK]
    obs = np.isin(loose.source, (DETECTOR, TRACKER))
    for n in np.unique(loose.frame[obs & (loose.score < low_score)]).tolist():
        rows = loose[(loose.frame == n) & np.isin(loose.source, (DETECTOR, TRACKER)) & (loose.score < low_score)]
        add(ReviewItem.make("low_score", n, NO_TRACK, f"{len(rows)} untracked region(s) below {low_score:g} "
                                                      f"(lowest {float(rows.score.min()):.2f})"))
    for n in np.unique(loose.frame[loose.source == ANALYST]).tolist():
        add(ReviewItem.make("edited", n, NO_TRACK, "analyst box(es) without a track"))

    for n in sorted({int(c) for c in scene_cuts}):
        if 0 <= n < n_frames:
            add(ReviewItem.make("scene_cut", n, NO_TRACK, "first frame after a scene cut (tracks restart here)"))
    for n in sorted({int(f) for f in disagreement_frames}):
        if 0 <= n < n_frames:
            add(ReviewItem.make("disagreement", n, NO_TRACK,
                                "one face detector finds a face that the other and the masks miss"))
    for item in findings_to_items(findings):
        add(item)
    if analysed and not len(regions) and not excluded:
        add(ReviewItem.make("nothing_found", 0, NO_TRACK, "the analysis found no face or plate at all: look through "
                                                          "it (dark, upside down, tiny?) before you publish it"))
    return sorted(items.values(), key=lambda i: (-i.priority, i.frame, i.track_id, i.id))


def review_pages(queue: Sequence[ReviewItem], decisions: Mapping[str, str] = {}, *,
                 size: int = PAGE_SIZE) -> list[list[ReviewItem]]:
    """The undecided routine cards in pages of ``size``, low scores and short tracks first within the order.

    A page is accepted with one decision after its thumbnails were shown (`ReviewSession.accept_page`).
    """
    todo = [i for i in queue if i.routine and decisions.get(i.id) not in DECISIONS]
    todo.sort(key=lambda i: (-max((f.priority for f in i.flags), default=0), i.frame, i.track_id))
    return [todo[k:k + size] for k in range(0, len(todo), size)]


def decisions_needed(queue: Sequence[ReviewItem], *, page_size: int = PAGE_SIZE) -> int:
    """Clicks to decide the whole queue: one per non-routine item, one per page of routine cards."""
    routine = sum(1 for i in queue if i.routine)
    return sum(1 for i in queue if not i.routine) + math.ceil(routine / page_size)


def event_count(queue: Sequence[ReviewItem]) -> int:
    """Decisions a per-event queue (one item per flag) would ask for the same case: one per flag or item."""
    return sum(i.n_events for i in queue)


# --- disagreement between the face detectors --------------------------------------------------------


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
