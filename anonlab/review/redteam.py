"""The red-team pass: run the detectors again on the rendered output and report what it still gives away.

`red_team` runs CenterFace, YuNet and the plate model (`red_team_detectors`) on the *output* at a lowered
threshold and compares what they find with the masks that were applied (`coverage_mask`, the masker's own
geometry). A face or plate found outside the masks is *exposed*; one found inside a mask means the mask is
*too weak* to hide it. Detections of one object by several detectors are merged per frame
(`_merge_detections`) and an object's detections across frames are grouped into one `Finding`
(`group_findings`), so one false plate seen frame after frame is one line, not hundreds; findings are then
ranked (`rank_findings`). A finding is *sure* when a detector reached the analysis' own threshold or two
detectors agree, *doubtful* otherwise: it still goes to the review queue (`findings_to_items`), ranked
lower, but only sure findings fail ``anonlab anonymize --red-team``. `Finding.summary` and `Finding.to_dict`
carry frames, labels, scores and coverage only; `Finding.box` exists for the workbench and stays out of
every summary unless asked for.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from anonlab.detect import detector_for, face_detectors, plate_detector
from anonlab.media import open_media
from anonlab.regions import LABELS, NO_TRACK, Regions, iou_matrix
from anonlab.render.mask import mask_boxes, mask_extent, shape_alpha
from anonlab.review.items import Flag, ReviewItem, _span

log = logging.getLogger(__name__)

__all__ = [
    "INSIDE_FRACTION",
    "RED_TEAM_FACTOR",
    "Finding",
    "coverage_mask",
    "findings_to_items",
    "group_findings",
    "rank_findings",
    "red_team",
    "red_team_detectors",
]


#: The red-team pass runs each detector at this fraction of the threshold the analysis used.
RED_TEAM_FACTOR = 0.5
#: A detection with at least this fraction of its area under masks counts as inside a mask (weak mask);
#: below it, part of the object is outside every mask (exposed).
INSIDE_FRACTION = 0.8


@dataclass
class Finding:
    """Something the red-team pass found in the rendered output: one object, over the frames it was seen in.

    Attributes:
        frame: first frame it was found in (output frame numbers).
        kind: ``exposed`` (outside the masks, at least in part, in at least one frame) or ``weak_mask`` (the
            detector fires inside a mask).
        label: ``face`` or ``plate``.
        score: best detector score over its frames.
        detectors: names of the detectors that found it.
        coverage: smallest fraction of the detected box under masks over its frames (0 = fully outside).
        box: ``x1, y1, x2, y2`` at ``best_frame``, for the workbench only; never in `summary` or `to_dict`
            (unless asked).
        last_frame: last frame it was found in (None: ``frame``).
        n_frames: frames it was found in.
        best_frame: the frame of the best score (None: ``frame``).
        sure: True when it reached the analysis' own threshold in one detector or was found by two detectors in
            one frame: a real exposure or a real weak mask. False: one detector only, between the lowered and
            the analysis threshold (often a false plate seen frame after frame). Only sure findings make
            ``anonlab anonymize --red-team`` exit 4; every finding goes to the review queue.
        strength: best score over the threshold that makes it sure (1 or more when sure by score).
    """

    frame: int
    kind: str
    label: str
    score: float
    detectors: tuple[str, ...] = ()
    coverage: float = 0.0
    box: tuple[float, float, float, float] | None = field(default=None, repr=False, compare=False)
    last_frame: int | None = None
    n_frames: int = 1
    best_frame: int | None = None
    sure: bool = True
    strength: float = float("inf")

    @property
    def last(self) -> int:
        return self.frame if self.last_frame is None else self.last_frame

    @property
    def best(self) -> int:
        return self.frame if self.best_frame is None else self.best_frame

    def summary(self) -> str:
        """One line for logs and reports, without coordinates."""
        what = "found outside the masks" if self.kind == "exposed" else "still detected inside a mask"
        where = (f"frame {self.frame}" if self.last == self.frame else
                 f"frames {self.frame}-{self.last} ({self.n_frames} frame(s) where found)")
        best = "" if self.last == self.frame else f" at frame {self.best}"
        doubt = "" if self.sure else "; doubtful: one detector, below the analysis threshold"
        return (f"{where}: {self.label} {what} (best score {self.score:.2f}{best}, {round(100 * self.coverage)} % "
                f"masked, {'+'.join(self.detectors) or 'detector'}{doubt})")

    def to_dict(self, *, with_box: bool = False) -> dict:
        d = {"frame": self.frame, "last_frame": self.last, "n_frames": self.n_frames, "best_frame": self.best,
             "kind": self.kind, "label": self.label, "score": round(float(self.score), 4),
             "detectors": list(self.detectors), "coverage": round(float(self.coverage), 3), "sure": self.sure}
        if with_box and self.box is not None:
            d["box"] = [round(float(v), 1) for v in self.box]
        return d


def rank_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Most urgent first: sure before doubtful, exposed before weak masks, faces before plates, then stronger,
    longer and earlier. A real exposure stands out from repeated low-score noise this way."""
    return sorted(findings, key=lambda f: (not f.sure, f.kind != "exposed", f.label != "face", -min(f.strength, 1e9),
                                          -f.n_frames, f.frame))


def findings_to_items(findings: Iterable[Finding]) -> list[ReviewItem]:
    """Red-team findings as review items: one per object (its frames the filmstrip), doubtful ones ranked lower.

    Sure findings become ``exposed`` / ``weak_mask`` items; doubtful ones ``doubtful``. Ids are
    ``kind:first_frame:-1`` (``:2``, ``:3`` ... for a second object starting in the same frame).
    """
    items: list[ReviewItem] = []
    used: set[str] = set()
    for f in rank_findings(findings):
        kind = f.kind if f.sure else "doubtful"
        base = f"{kind}:{f.frame}:{NO_TRACK}"
        k, item_id = 1, base
        while item_id in used:
            k += 1
            item_id = f"{base}:{k}"
        used.add(item_id)
        what = "outside the masks" if f.kind == "exposed" else "inside a mask that does not hide it"
        span = _span(f.frame, f.last)
        reason = (f"red team: {f.label} {what} in {span} (found in {f.n_frames} frame(s); best score {f.score:.2f}, "
                  f"{round(100 * f.coverage)} % masked)" + ("" if f.sure else "; one detector, below the analysis "
                                                                             "threshold"))
        flags = [Flag(kind, f.frame, f.last, reason)]
        if f.best not in (f.frame, f.last):
            flags.append(Flag(kind, f.best, f.best, f"best score at frame {f.best}"))
        items.append(ReviewItem.make(kind, f.frame, NO_TRACK, reason, id=item_id, flags=flags))
    return items


def coverage_mask(regions: Regions, settings, width: int, height: int) -> np.ndarray:
    """Boolean ``(height, width)``: the pixels `anonlab.render.mask.mask_frame` changes for ``regions``.

    The same geometry as the masker (growth by ``mask_scale``, ellipse, feather); a feathered pixel counts as
    masked where its coverage is at least one half.
    """
    covered = np.zeros((height, width), bool)
    if not len(regions):
        return covered
    boxes = mask_boxes(regions, settings, width, height)
    grown = mask_extent(regions, settings)
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
    """CenterFace and YuNet (always both) for faces, the plate model, and the detector of each other label asked
    for (text, heads, persons), at a lowered threshold.

    ``thresh`` None: each model at `RED_TEAM_FACTOR` times the threshold the analysis used
    (``settings.thresh`` or the model's default); a number: every model at that threshold. Each detector
    carries ``sure_thresh``: the threshold the analysis used, at or above which one detector's finding is sure.

    Raises:
        AnonlabError: a model file is missing or damaged (`anonlab.detect.models`).
    """
    s = settings.replace(second_face_detector=True)
    dets = []
    if "face" in s.what:
        dets += face_detectors(s)
    if "plate" in s.what:
        dets.append(plate_detector(s))
    dets += [detector_for(label, s) for label in s.what if label not in ("face", "plate")]
    out = []
    for d in dets:
        low = d.with_threshold(thresh) if thresh is not None else d.lowered(RED_TEAM_FACTOR)
        low.sure_thresh = float(d.thresh)
        out.append(low)
    return out


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
    link_iou: float = 0.2,
) -> list[Finding]:
    """Look for faces and plates the rendered output still shows: one ranked `Finding` per object.

    Runs every detector on every (chosen) frame of ``output_path`` and compares what they find with the
    masks that were applied: a detection less than ``inside`` under masks is *exposed*; one at least
    ``inside`` under a mask means the mask is *too weak* (a good blur/pixelate/solid mask leaves the
    detectors nothing to fire on, even at half their threshold). Detections of one object by several
    detectors are merged into one per frame; an object's detections in neighbouring checked frames (same
    label, IoU at least ``link_iou``, at most two sampling steps apart) are one finding with its frame span,
    best score and smallest coverage (so one false plate seen frame after frame is one finding, not
    hundreds). Each finding says whether it is *sure* (`Finding.sure`): a detector reached the threshold
    the analysis used (``sure_thresh`` of `red_team_detectors`), or two detectors found it in one frame.

    Args:
        output_path: the rendered photo or video.
        applied_regions: the regions `anonlab.pipeline.render` masked (all frames, displayed pixels).
        settings: the render settings (``what``, ``mask_scale``, ``shape``, ``feather``, thresholds).
        thresh: detector threshold for the pass; None: `RED_TEAM_FACTOR` times the analysis threshold.
        detectors: detectors to run instead of `red_team_detectors` (each ``frame -> Regions``; one without
            a ``sure_thresh`` attribute makes every finding sure).
        frames: frames to check (None: all; a long video may be checked on a sample).
        whole_frames: frames rendered fully masked (damaged frames, ``mask_whole``).
        inside: fraction of a detection under masks from which it counts as inside a mask.
        merge_iou: detections of one label in one frame overlapping this much are one object.
        link_iou: an object's boxes in neighbouring checked frames overlapping this much are one finding.

    Returns:
        `Finding`s ranked by `rank_findings` (sure exposures first); empty when the output gives nothing
        away to these detectors.

    Raises:
        MediaError: the output cannot be read as a photo or video (`anonlab.media.open_media`).
        AnonlabError: with ``detectors`` None, a model file is missing or damaged (`red_team_detectors`).
    """
    if detectors is None:
        detectors = red_team_detectors(settings, thresh)
    detectors = list(detectors)
    names = [str(getattr(d, "name", f"detector{i}")) for i, d in enumerate(detectors)]
    sure_at = {name: float(getattr(d, "sure_thresh", 0.0) or 0.0) for name, d in zip(names, detectors)}
    wanted = None if frames is None else {int(f) for f in frames}
    whole = {int(f) for f in whole_frames}
    per_frame: list[Finding] = []
    checked: list[int] = []
    media = open_media(output_path)
    try:
        applied = applied_regions.by_frame(media.n_frames)
        for n, frame in media.frames():
            if wanted is not None and n not in wanted:
                continue
            checked.append(n)
            h, w = frame.shape[:2]
            covered = np.ones((h, w), bool) if n in whole else coverage_mask(applied[n], settings, w, h)
            parts = []
            for name, d in zip(names, detectors):
                r = d(frame)
                r = r[np.isin(r.label, [LABELS.index(x) for x in settings.what])] if len(r) else r
                parts += [(name, r[i]) for i in range(len(r))]
            per_frame += _merge_detections(n, parts, covered, inside, merge_iou, sure_at)
    finally:
        media.close()
    steps = np.diff(np.asarray(checked, np.int64))
    max_gap = max(3, 2 * int(np.median(steps))) if len(steps) else 3
    found = rank_findings(group_findings(per_frame, link_iou=link_iou, max_gap=max_gap))
    n_sure = sum(f.sure for f in found)
    log.info("red team: %d frame(s) checked, %d object(s) found (%d sure: %d exposed, %d weak mask), %d doubtful",
             len(checked), len(found), n_sure, sum(f.sure and f.kind == "exposed" for f in found),
             sum(f.sure and f.kind != "exposed" for f in found), len(found) - n_sure)
    return found


def group_findings(per_frame: Iterable[Finding], *, link_iou: float = 0.2, max_gap: int = 3) -> list[Finding]:
    """One-frame findings -> one finding per object across frames (greedy, in frame order, per label).

    A finding joins the open group of its label whose last box overlaps it most (IoU at least ``link_iou``)
    and was seen at most ``max_gap`` frames before. The group is exposed if any of its frames was, sure if
    any was; its score, box and best frame are those of its best detection, its coverage the smallest.
    """
    groups: list[list[Finding]] = []
    open_: list[list[Finding]] = []
    for f in sorted(per_frame, key=lambda f: (f.frame, -f.score)):
        open_ = [g for g in open_ if f.frame - g[-1].frame <= max_gap]
        best, best_iou = None, link_iou
        for g in open_:
            last = g[-1]
            if last.label != f.label or last.frame == f.frame or f.box is None or last.box is None:
                continue
            iou = float(iou_matrix(np.asarray([f.box], np.float32), np.asarray([last.box], np.float32))[0, 0])
            if iou >= best_iou:
                best, best_iou = g, iou
        if best is None:
            best = [f]
            groups.append(best)
            open_.append(best)
        else:
            best.append(f)
    out = []
    for g in groups:
        top = max(g, key=lambda f: f.score)
        out.append(Finding(
            frame=g[0].frame, kind="exposed" if any(f.kind == "exposed" for f in g) else "weak_mask",
            label=g[0].label, score=top.score, detectors=tuple(sorted({d for f in g for d in f.detectors})),
            coverage=min(f.coverage for f in g), box=top.box, last_frame=g[-1].frame,
            n_frames=len({f.frame for f in g}), best_frame=top.frame, sure=any(f.sure for f in g),
            strength=max(f.strength for f in g)))
    return out


def _merge_detections(n: int, parts: list[tuple[str, Regions]], covered: np.ndarray, inside: float,
                      merge_iou: float, sure_at: Mapping[str, float] | None = None) -> list[Finding]:
    """One `Finding` per object in frame ``n``: detections of one label overlapping by ``merge_iou`` are grouped.

    Sure when one detector's score reaches its ``sure_at`` threshold or two detectors found the object.
    """
    if not parts:
        return []
    sure_at = sure_at or {}
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
        names = {parts[j][0] for j in group}
        strength = max(float(scores[j]) / sure_at[parts[j][0]] if sure_at.get(parts[j][0], 0.0) > 0 else float("inf")
                       for j in group)
        out.append(Finding(
            frame=int(n), kind="weak_mask" if cov >= inside else "exposed", label=LABELS[int(labels[i])],
            score=float(scores[i]), detectors=tuple(sorted(names)), coverage=cov,
            box=tuple(float(v) for v in boxes[i]), sure=strength >= 1.0 or len(names) >= 2, strength=strength,
        ))
    return out
