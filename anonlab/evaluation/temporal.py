"""Temporal metrics of a whole video's `Regions`: with and without per-frame ground truth.

Without ground truth (any clip):

* **masking interruptions** — a track masked at t-1 and t+1 but not at t (the flicker that shows a face for
  one frame); also every gap inside a track (any length) and **spatial interruptions**, which ignore track ids:
  an area masked at t-1 and t+1 (IoU >= 0.3, same label) with no overlapping mask at t;
* **fragmentation** — tracks, their lengths, short tracks;
* **regions per frame**.

With ground truth (a `Regions` of true boxes with ``frame`` set, and ``track_id`` = object id where known):

* **per-frame recall** — true object-frames matched by a region (same label, IoU >= 0.3, one to one per frame);
* **hidden** (with ``mask_scale``) — true object-frames at least 90 % inside the masks as drawn (region boxes
  grown as `anonlab.render.mask.mask_extent` grows them with that ``mask_scale``, rectangles, any label): what a
  viewer of the output cannot see, whatever the box fit;
* **critical error rate** — missed object-frames per minute of video;
* **id switches / tracks per object** where the truth has object ids;
* **exposure runs** where the truth has object ids: the longest run of consecutive frames in which one object
  is missed (``longest_miss``) or, with ``mask_scale``, not hidden (``longest_exposed``: less than
  `HIDDEN_SHARE` of it under the masks) or bare (``longest_bare``: less than `BARE_SHARE` of it under the
  masks), and how many objects have such a run longer than `EXPOSED_RUN` frames (the goal: none).

Recall matches regions as boxes, before the masker's ``mask_scale`` padding; ``hidden`` applies it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from anonlab.errors import AnonlabError
from anonlab.render.mask import mask_extent
from anonlab.regions import LABELS, NO_TRACK, Regions, iou_matrix
from anonlab.settings import Settings
from anonlab.track.bytetrack import greedy_match

#: IoU at which a region counts as covering a true box (the evaluation sets' convention).
MATCH_IOU = 0.3
#: Tracks at most this long count as short in `temporal_metrics` (frames).
SHORT_TRACK = 5
#: Share of a true box that must lie under masks for `hidden_fraction` to call it hidden.
HIDDEN_SHARE = 0.9
#: An object missed in more than this many consecutive frames counts in ``objects_exposed_long``.
EXPOSED_RUN = 3
#: A true object-frame with less than this share under the masks is bare (shown more than masked).
BARE_SHARE = 0.5
_GRID = (np.arange(8, dtype=np.float32) + 0.5) / 8  # 8 x 8 sample points per true box


def track_gaps(regions: Regions) -> np.ndarray:
    """Lengths (frames) of every gap inside every track: frames between two rows of a track with none."""
    tracked = regions[regions.track_id != NO_TRACK]
    if not len(tracked):
        return np.zeros(0, np.int64)
    pairs = np.unique(np.stack([tracked.track_id, tracked.frame], axis=1), axis=0)  # sorted by id, then frame
    same = pairs[1:, 0] == pairs[:-1, 0]
    steps = (pairs[1:, 1] - pairs[:-1, 1])[same]
    return steps[steps > 1] - 1


def masking_interruptions(regions: Regions) -> int:
    """Frames t where a track has a row at t-1 and at t+1 but none at t.

    Example:
        >>> masking_interruptions(Regions(xyxy=[[0, 0, 9, 9]] * 2, track_id=[4, 4], frame=[0, 2]))
        1
    """
    return int((track_gaps(regions) == 1).sum())


def spatial_interruptions(regions: Regions, n_frames: int, iou_threshold: float = MATCH_IOU) -> int:
    """Areas masked at t-1 and t+1 (same label, IoU >= threshold) but not at t.

    At t the area counts as masked if a region of its label overlaps it (IoU >= threshold) or regions of any
    label cover at least `HIDDEN_SHARE` of it. Unlike `masking_interruptions` this ignores track ids, so it
    also sees the flicker where a track ends and a new one starts two frames later.
    """
    frames = regions.by_frame(n_frames)
    count = 0
    for t in range(1, n_frames - 1):
        before, now, after = frames[t - 1], frames[t], frames[t + 1]
        if not len(before) or not len(after):
            continue
        link = _label_iou(before, after) >= iou_threshold
        rows, cols = np.nonzero(link)
        if not len(rows):
            continue
        if len(now):
            covered = (_label_iou(before, now) >= iou_threshold).any(axis=1)[rows] | (
                _label_iou(after, now) >= iou_threshold).any(axis=1)[cols]
            covered |= (covered_share(before.xyxy[rows], now.xyxy) >= HIDDEN_SHARE) | (
                covered_share(after.xyxy[cols], now.xyxy) >= HIDDEN_SHARE)
        else:
            covered = np.zeros(len(rows), bool)
        count += len(np.unique(rows[~covered]))
    return count


def _label_iou(a: Regions, b: Regions) -> np.ndarray:
    iou = iou_matrix(a.xyxy, b.xyxy)
    iou[a.label[:, None] != b.label[None, :]] = 0.0
    return iou


def temporal_metrics(regions: Regions, n_frames: int, fps: float | None = None) -> dict:
    """Metrics that need no ground truth.

    Returns:
        dict with ``frames``, ``regions``, ``regions_per_frame`` (mean), ``max_regions_per_frame``, ``tracks``,
        ``tracks_per_minute`` (if ``fps``), ``median_track_length`` (frames spanned), ``short_tracks``
        (spanning at most `SHORT_TRACK` frames), ``interruptions``, ``gaps``, ``gap_frames``,
        ``spatial_interruptions``.
    """
    counts = np.bincount(regions.frame[(regions.frame >= 0) & (regions.frame < n_frames)], minlength=n_frames)
    tracked = regions[regions.track_id != NO_TRACK]
    lengths = np.zeros(0, np.int64)
    if len(tracked):
        ids, inverse = np.unique(tracked.track_id, return_inverse=True)
        first = np.full(len(ids), np.iinfo(np.int64).max)
        last = np.full(len(ids), -1)
        np.minimum.at(first, inverse, tracked.frame)
        np.maximum.at(last, inverse, tracked.frame)
        lengths = last - first + 1
    gaps = track_gaps(regions)
    out = {
        "frames": int(n_frames),
        "regions": len(regions),
        "regions_per_frame": float(counts.mean()) if n_frames else 0.0,
        "max_regions_per_frame": int(counts.max()) if n_frames else 0,
        "tracks": len(lengths),
        "median_track_length": float(np.median(lengths)) if len(lengths) else 0.0,
        "short_tracks": int((lengths <= SHORT_TRACK).sum()),
        "interruptions": int((gaps == 1).sum()),
        "gaps": len(gaps),
        "gap_frames": int(gaps.sum()),
        "spatial_interruptions": spatial_interruptions(regions, n_frames),
    }
    if fps:
        out["tracks_per_minute"] = len(lengths) / (n_frames / fps / 60.0) if n_frames else 0.0
    return out


def match_frame(regions: Regions, truth: Regions, iou_threshold: float = MATCH_IOU) -> np.ndarray:
    """For each true box of one frame, the index of the region matched to it (one to one, same label), or -1."""
    matched = np.full(len(truth), -1, np.int64)
    if len(regions) and len(truth):
        for ti, ri in greedy_match(_label_iou(truth, regions), iou_threshold):
            matched[ti] = ri
    return matched


def covered_share(truth_xyxy: np.ndarray, mask_xyxy: np.ndarray) -> np.ndarray:
    """For each true box, the share of it inside the union of the mask boxes (sampled on an 8 x 8 grid)."""
    truth_xyxy = np.asarray(truth_xyxy, np.float32).reshape(-1, 4)
    mask_xyxy = np.asarray(mask_xyxy, np.float32).reshape(-1, 4)
    if not len(truth_xyxy) or not len(mask_xyxy):
        return np.zeros(len(truth_xyxy))
    wh = truth_xyxy[:, 2:] - truth_xyxy[:, :2]
    gx = truth_xyxy[:, 0:1] + _GRID[None] * wh[:, 0:1]  # (T, 8)
    gy = truth_xyxy[:, 1:2] + _GRID[None] * wh[:, 1:2]
    px = np.repeat(gx, 8, axis=1)[:, :, None]  # (T, 64, 1)
    py = np.tile(gy, (1, 8))[:, :, None]
    m = mask_xyxy[None, None]
    inside = ((px >= m[..., 0]) & (px < m[..., 2]) & (py >= m[..., 1]) & (py < m[..., 3])).any(axis=2)
    return inside.mean(axis=1)


def recall_metrics(regions: Regions, truth: Regions, n_frames: int, fps: float,
                   iou_threshold: float = MATCH_IOU, mask_scale: float | None = None) -> dict:
    """Per-frame recall and critical error rate against per-frame ground truth.

    Args:
        regions: the video's regions (after temporal safety, as they will be masked).
        truth: true boxes, ``frame`` set; ``track_id`` = object id where known (enables ``id_switches``).
        n_frames: frames in the video; fps: frame rate (for the per-minute rate).
        mask_scale: the masker's box growth (`Settings.mask_scale`); given, ``hidden`` is reported too (masks
            drawn as rectangles, `anonlab.render.mask.mask_extent`).

    Returns:
        dict with ``object_frames``, ``found``, ``missed``, ``recall``, ``critical_error_rate`` (missed
        object-frames per minute), ``recall_<label>`` per label present, ``missed_frames`` (sorted frame indices
        with a miss), with object ids ``objects``, ``id_switches``, ``tracks_per_object``, and with
        ``mask_scale`` ``hidden`` (share of object-frames at least `HIDDEN_SHARE` under the masks); with object
        ids also ``longest_miss`` and ``objects_miss_long`` (objects missed in more than `EXPOSED_RUN`
        consecutive frames) and, with ``mask_scale``, ``longest_exposed`` / ``objects_exposed_long`` (the same
        for frames where the object is not hidden) and ``longest_bare`` / ``objects_bare_long``.
    """
    if fps <= 0:
        raise AnonlabError(f"fps must be positive; got {fps}")
    found = np.zeros(len(truth), bool)
    share = np.zeros(len(truth))
    track_of = np.full(len(truth), NO_TRACK, np.int64)
    order = np.argsort(truth.frame, kind="stable")
    truth = truth[order]
    by_frame_r = regions.by_frame(n_frames)
    bounds = np.searchsorted(truth.frame, np.arange(n_frames + 1))
    for t in range(n_frames):
        lo, hi = bounds[t], bounds[t + 1]
        if lo == hi:
            continue
        m = match_frame(by_frame_r[t], truth[lo:hi], iou_threshold)
        found[lo:hi] = m >= 0
        if mask_scale is not None and len(by_frame_r[t]):
            grown = mask_extent(by_frame_r[t], Settings(mask_scale=mask_scale))
            share[lo:hi] = covered_share(truth.xyxy[lo:hi], grown)
        track_of[lo:hi][m >= 0] = by_frame_r[t].track_id[m[m >= 0]]
    hidden = share >= HIDDEN_SHARE
    minutes = n_frames / fps / 60.0
    missed = int((~found).sum())
    out = {
        "object_frames": len(truth),
        "found": int(found.sum()),
        "missed": missed,
        "recall": float(found.mean()) if len(truth) else 1.0,
        "critical_error_rate": missed / minutes if minutes else 0.0,
        "missed_frames": sorted(set(truth.frame[~found].tolist())),
    }
    if mask_scale is not None:
        out["hidden"] = float(hidden.mean()) if len(truth) else 1.0
    for code, name in enumerate(LABELS):
        sel = truth.label == code
        if sel.any():
            out[f"recall_{name}"] = float(found[sel].mean())
    if (truth.track_id != NO_TRACK).any():
        switches, per_object = 0, []
        objects = np.unique(truth.track_id[truth.track_id != NO_TRACK])
        for obj in objects:
            seq = track_of[(truth.track_id == obj) & found]  # frame order
            seq = seq[seq != NO_TRACK]
            switches += int((seq[1:] != seq[:-1]).sum())
            per_object.append(len(np.unique(seq)))
        out.update(objects=len(objects), id_switches=switches, tracks_per_object=float(np.mean(per_object)))
        runs = [("miss", ~found)]
        if mask_scale is not None:
            runs += [("exposed", ~hidden), ("bare", share < BARE_SHARE)]
        for name, bad in runs:
            longest = [longest_run(truth.frame[truth.track_id == obj], bad[truth.track_id == obj]) for obj in objects]
            out[f"longest_{name}"] = int(max(longest, default=0))
            out[f"objects_{name}_long"] = int(sum(r > EXPOSED_RUN for r in longest))
    return out


def longest_run(frames: np.ndarray, bad: np.ndarray) -> int:
    """The longest run of consecutive frames that are all ``bad`` (a frame missing from ``frames`` ends a run).

    Example:
        >>> longest_run(np.array([0, 1, 2, 4, 5, 6]), np.array([True, True, False, True, True, True]))
        3
    """
    best = run = 0
    last = None
    for f, b in zip(np.asarray(frames).tolist(), np.asarray(bad).tolist()):
        run = run + 1 if b and last is not None and f == last + 1 and run else (1 if b else 0)
        best = max(best, run)
        last = f
    return best


def load_frame_labels(path: str | Path, frame_key: str = "frame") -> tuple[Regions, dict]:
    """Read per-frame ground truth: one JSON line per frame, ``boxes`` as in ``labels.jsonl``.

    Lines carry ``frame`` (written by `anonlab.evaluation.synth`); where they do not (e.g. a labelled image sequence) the
    line number is the frame. A box's ``object`` becomes ``track_id``.

    Returns:
        ``(truth, meta)`` with ``meta`` = ``{"n_frames", "width", "height"}`` from the lines.
    """
    parts, width, height, n = [], None, None, 0
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AnonlabError(f"{Path(path).name} line {line_no + 1}: not JSON ({exc.msg})") from None
            frame = int(rec.get(frame_key, line_no))
            width, height = rec.get("width", width), rec.get("height", height)
            boxes = rec.get("boxes", [])
            r = Regions.from_records(boxes, frame=frame)
            r.track_id[:] = [int(b.get("object", NO_TRACK)) for b in boxes]
            parts.append(r)
            n = max(n, frame + 1)
    return Regions.merge(parts), {"n_frames": n, "width": width, "height": height}
