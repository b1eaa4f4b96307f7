"""Temporal safety: pure functions over a whole video's tracked `Regions`.

One face left bare in one frame discloses a person, and detectors blink. Three measures, all on by default
(`Settings.max_gap`, `Settings.lead`, `Settings.trail`):

* **gap filling** — a track missing for up to ``max_gap`` frames between two observations is filled by linear
  interpolation of the boxes (``source`` = interpolated);
* **lead / trail** — a mask starts ``lead`` frames before each stretch of a track and ends ``trail`` frames
  after it (``source`` = extended). A stretch is a run of observations whose gaps are at most ``max_gap``, so a
  long gap that is *not* filled still gets trail and lead on either side. The extended box is the union of the
  box held from the boundary observation and the box extrapolated with the track's velocity there, so both a
  standing and a moving object stay covered;
* **spatial padding** is *not* applied here: the masker grows every box by `Settings.mask_scale` when it
  draws. Regions keep the detector's tight boxes (for evaluation, review and export), and nothing is padded
  twice.

Rows already marked interpolated or extended are derived data: `apply_temporal_safety` drops and recomputes
them, so it can be rerun after an analyst's edit or after stitching chunks without compounding. Rows without a
track (``track_id`` = -1) pass through unchanged. Extended boxes are not clipped to the image (the masker
clips); frames are clipped to ``[0, n_frames)``.
"""

from __future__ import annotations

import numpy as np

from anonlab.regions import EXTENDED, INTERPOLATED, NO_TRACK, Regions

#: Observations (at most this many frames into a stretch) used to estimate the velocity for extrapolation.
VELOCITY_WINDOW = 5


def _observed(regions: Regions) -> Regions:
    return regions[~np.isin(regions.source, (INTERPOLATED, EXTENDED))]


def per_frame_boxes(track: Regions) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One track's ``(frames, boxes, scores, label)``, one box per frame sorted by frame.

    Several rows in one frame (e.g. an analyst's box beside the detector's) count as their union box and their
    lowest score.
    """
    frames, inverse = np.unique(track.frame, return_inverse=True)
    boxes = np.empty((len(frames), 4), np.float32)
    boxes[:, :2] = np.inf
    boxes[:, 2:] = -np.inf
    np.minimum.at(boxes[:, :2], inverse, track.xyxy[:, :2])
    np.maximum.at(boxes[:, 2:], inverse, track.xyxy[:, 2:])
    scores = np.full(len(frames), np.inf, np.float32)
    np.minimum.at(scores, inverse, track.score)
    return frames, boxes, scores, int(track.label[0])


def one_row_per_frame(regions: Regions) -> Regions:
    """The rows of one track in one frame joined into one: their union box, with the other columns of the row
    from the most direct source (detector before tracker before interpolated...: `anonlab.regions.SOURCES`).

    The analysis may give a track two boxes in a frame (the detector's box of a partly hidden face and the box
    of the face seen whole; a track followed back over frames it already had); downstream every track has one
    box a frame (a case file splits a second row into a track of its own). Untracked rows stay as they are.
    Order: tracked rows by track id then frame, then the untracked rows.

    Example:
        >>> r = Regions(xyxy=[[0, 0, 10, 10], [5, 5, 20, 20]], track_id=[1, 1], frame=[3, 3], source=[1, 0])
        >>> one = one_row_per_frame(r)
        >>> one.xyxy.tolist(), one.source.tolist()
        ([[0.0, 0.0, 20.0, 20.0]], [0])
    """
    tracked = regions.track_id != NO_TRACK
    rows = regions[tracked]
    if not len(rows):
        return regions
    order = np.lexsort((rows.source, rows.frame, rows.track_id))
    rows = rows[order]
    pairs = np.stack([rows.track_id, rows.frame], axis=1)
    first = np.flatnonzero(np.r_[True, (pairs[1:] != pairs[:-1]).any(axis=1)])
    if len(first) == len(rows):
        return Regions.merge([rows, regions[~tracked]])
    group = np.cumsum(np.r_[True, (pairs[1:] != pairs[:-1]).any(axis=1)]) - 1
    xyxy = rows.xyxy[first].copy()
    np.minimum.at(xyxy[:, :2], group, rows.xyxy[:, :2])
    np.maximum.at(xyxy[:, 2:], group, rows.xyxy[:, 2:])
    return Regions.merge([rows[first].replace(xyxy=xyxy), regions[~tracked]])


def iter_tracks(regions: Regions):
    """``(track_id, rows)`` for every track, in id order."""
    tracked = regions[regions.track_id != NO_TRACK]
    order = np.argsort(tracked.track_id, kind="stable")
    ids = tracked.track_id[order]
    bounds = np.flatnonzero(np.diff(ids)) + 1
    for chunk in np.split(order, bounds) if len(order) else []:
        yield int(tracked.track_id[chunk[0]]), tracked[chunk]


def _rows(xyxy, score, label, track_id, source, frames, turn) -> Regions:
    k = len(frames)
    return Regions(xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4), score=np.broadcast_to(score, k),
                   label=np.full(k, label), track_id=np.full(k, track_id), source=np.full(k, source),
                   frame=np.asarray(frames), turn=np.full(k, turn))


def fill_gaps(regions: Regions, max_gap: int) -> Regions:
    """The input plus interpolated rows for every gap of at most ``max_gap`` frames inside a track.

    The interpolated box moves linearly between the boxes that bound the gap; its score is the lower of
    their two scores (the review queue treats it as uncertain).

    Example:
        >>> r = Regions(xyxy=[[0, 0, 10, 10], [30, 0, 40, 10]], track_id=[1, 1], frame=[0, 3])
        >>> fill_gaps(r, 5).frame.tolist()
        [0, 3, 1, 2]
    """
    new = []
    for tid, track in iter_tracks(_observed(regions)):
        frames, boxes, scores, label = per_frame_boxes(track)
        steps = np.diff(frames)
        for i in np.flatnonzero((steps > 1) & (steps <= max_gap + 1)).tolist():
            d = int(steps[i])
            t = (np.arange(1, d, dtype=np.float32) / d)[:, None]
            xyxy = boxes[i] + t * (boxes[i + 1] - boxes[i])
            new.append(_rows(xyxy, min(scores[i], scores[i + 1]), label, tid, INTERPOLATED,
                             frames[i] + np.arange(1, d), int(track.turn[0])))
    return Regions.merge([regions, *new])


def end_velocity(frames: np.ndarray, boxes: np.ndarray, forward: bool) -> np.ndarray:
    """Box velocity (pixels a frame, all four coordinates) over the first (``forward``) or last
    `VELOCITY_WINDOW` frames of a stretch of observations; zero for a single observation."""
    if len(frames) < 2:
        return np.zeros(4, np.float32)
    if forward:
        j = max(int(np.searchsorted(frames, frames[0] + VELOCITY_WINDOW, side="right")) - 1, 1)
        return (boxes[j] - boxes[0]) / float(frames[j] - frames[0])
    j = min(int(np.searchsorted(frames, frames[-1] - VELOCITY_WINDOW, side="left")), len(frames) - 2)
    return (boxes[-1] - boxes[j]) / float(frames[-1] - frames[j])


def extend_tracks(regions: Regions, n_frames: int, lead: int, trail: int, max_gap: int) -> Regions:
    """The input plus extended rows: ``lead`` frames before and ``trail`` after every stretch of a track.

    A stretch is a run of a track's observations whose gaps are at most ``max_gap`` frames. Extended rows never
    fall on a frame where the track already has a row, nor outside ``[0, n_frames)``; where a trail and the
    next stretch's lead meet in one frame, one row holds the union of both boxes.

    Example:
        >>> r = Regions(xyxy=[[0, 0, 10, 10]], track_id=[1], frame=[5])
        >>> extend_tracks(r, n_frames=7, lead=2, trail=2, max_gap=0).frame.tolist()
        [5, 3, 4, 6]
    """
    new = []
    for tid, rows in iter_tracks(regions):
        track = _observed(rows)
        if not len(track):
            continue
        frames, boxes, scores, label = per_frame_boxes(track)
        occupied = set(rows.frame.tolist())
        cut = np.flatnonzero(np.diff(frames) > max_gap + 1) + 1
        extra: dict[int, tuple[np.ndarray, float]] = {}
        for f, b, s in zip(np.split(frames, cut), np.split(boxes, cut), np.split(scores, cut)):
            for sign, count, anchor, box, score in ((-1, lead, f[0], b[0], s[0]), (1, trail, f[-1], b[-1], s[-1])):
                v = end_velocity(f, b, forward=sign < 0)
                for j in range(1, count + 1):
                    n = int(anchor) + sign * j
                    if not 0 <= n < n_frames or n in occupied:
                        continue
                    moved = box + sign * j * v
                    union = np.concatenate([np.minimum(box[:2], moved[:2]), np.maximum(box[2:], moved[2:])])
                    row_score = float(score)
                    if n in extra:
                        old, old_score = extra[n]
                        union = np.concatenate([np.minimum(old[:2], union[:2]), np.maximum(old[2:], union[2:])])
                        row_score = min(row_score, old_score)
                    extra[n] = (union, row_score)
        if extra:
            keys = sorted(extra)
            new.append(_rows([extra[k][0] for k in keys], np.array([extra[k][1] for k in keys], np.float32), label,
                             tid, EXTENDED, keys, int(track.turn[0])))
    return Regions.merge([regions, *new])


def sort_regions(regions: Regions) -> Regions:
    """Rows ordered by frame, then track id (stable)."""
    return regions[np.lexsort((regions.track_id, regions.frame))]


def apply_temporal_safety(regions: Regions, n_frames: int, settings) -> Regions:
    """Gap filling, then lead/trail extension, with ``settings.max_gap``, ``settings.lead``, ``settings.trail``.

    Derived rows (interpolated, extended) in the input are dropped and recomputed from the others, so the
    result is the same whether or not the input already went through this function; several rows of one track
    in one frame become one (`one_row_per_frame`). Rows come back sorted by
    frame, then track id. Spatial padding is left to the masker (`Settings.mask_scale`).

    Args:
        regions: tracked regions of a whole video (``frame`` and ``track_id`` set).
        n_frames: frames in the video; extended rows stay inside ``[0, n_frames)``.
        settings: an `anonlab.settings.Settings` (or anything with ``max_gap``, ``lead``, ``trail``).
    """
    observed = one_row_per_frame(_observed(regions))
    filled = fill_gaps(observed, int(settings.max_gap))
    extended = extend_tracks(filled, n_frames, int(settings.lead), int(settings.trail), int(settings.max_gap))
    return sort_regions(extended)
