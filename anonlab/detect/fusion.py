"""Face-detector fusion: calibrated scores, agreement boost, and a score threshold that depends on box size.

The default face detector (`FusedFaces`, built by `anonlab.detect.build_detector`) runs CenterFace and YuNet
at low floors and decides per fused box, with three principles measured on the precision/recall curves of
``benchmarks/eval_detection.py --curves`` (see ``models/README.md``):

1. **Calibration**: each detector's score ``s`` is mapped to ``p = clip((s - offset) / (1 - offset), 0, 1)``.
   CenterFace's heatmap is used as it is (offset 0); YuNet's confidence is compressed by its offset, so a box
   YuNet alone finds needs a higher raw score than one CenterFace alone finds.
2. **Agreement**: boxes of the detectors that overlap (IoU above ``iou``) form one face; its score is the
   noisy-or of the detectors' calibrated scores, ``1 - Π(1 - p_k)``: a face both models see scores higher
   than either alone; its box is the score-weighted mean (weighted box fusion).
3. **Size-dependent threshold**: a fused box is kept when its score reaches ``threshold_for(side)``, where
   ``side`` is the smaller side of the box in frame pixels. Small faces give weak evidence and are what the
   detectors miss, so the threshold falls from ``thresh`` (boxes of ``large_side`` px and more) to
   ``thresh * small_factor`` (``small_side`` px and less), linearly in log-size between.

4. **Close-ups**: a face that fills much of a large frame is beyond both models' range (they were trained on
   faces up to a few hundred pixels): on a 720-px-high close-up of the sample portrait CenterFace boxed the eyes
   and brow only and left the chin, YuNet found two half-faces; a 400-px crop, which the members enlarge 2x,
   fared no better. So frames whose shorter side, as the members see it, exceeds `CLOSEUP_SIDE` /
   `CLOSEUP_MAX_SCALE` are also seen whole at a reduced size (shorter side `CLOSEUP_SIDE` px, or the frame's
   own size: a fifth of a 720p pass or less; the thorough pass also at `CLOSEUP_SMALL_SIDE`), and each large
   face found there (at least `CLOSEUP_MIN` of the frame's
   shorter side) absorbs the boxes of the full-size pass that lie mostly inside it, as the box enclosing them
   all (`absorb`): the mask covers the whole face and every part the full-size pass found.

``with_threshold(t)`` moves the whole curve (``t`` is the large-box threshold; the small-box one stays
``t * small_factor``); ``lowered(f)`` multiplies it by ``f``. Members run at floors low enough for any
threshold the curve can ask for.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np

from anonlab.detect.base import Detector
from anonlab.detect.tiling import Tiled, context_crops
from anonlab.regions import FACE, Regions, ios_matrix, iou_matrix

#: Default fusion parameters (chosen on the even-indexed half of the evaluation faces, checked on the odd half).
DEFAULT_THRESH = 0.25
SMALL_FACTOR = 0.7
SMALL_SIDE = 8.0
LARGE_SIDE = 16.0
YUNET_OFFSET = 0.5
FUSE_IOU = 0.4
#: Lowest CenterFace heatmap value ever decoded (its members' floor never goes below this).
MIN_FLOOR = 0.03
#: `FusedFaces.detect_quick`: context around an unsure box (times its longer side, plus px), and the share of
#: the frame above which the second model runs on the whole frame instead of on crops.
QUICK_EXPAND = 1.0
QUICK_MARGIN = 16
QUICK_MAX_AREA = 0.5
#: ... and the score from which a box is sure without a second opinion (the tracker's high-score line and the
#: review's low-score line are both 0.5).
QUICK_SURE = 0.5


#: The close-up view (principle 4): shorter side in pixels, the largest scale at which it is worth running
#: (frames smaller than CLOSEUP_SIDE / CLOSEUP_MAX_SCALE are seen whole at a size the models handle), the
#: smallest face it keeps (share of the frame's shorter side) and the share of a full-size box that must lie
#: inside a close-up face for the box to be absorbed.
CLOSEUP_SIDE = 288
#: The thorough pass's second, smaller close-up view (shorter side, pixels): a face filling a frame is at the top
#: of the models' range even at 288 px; seen at two sizes 1.8x apart, more of the faces are found whole (on 1005
#: close-up crops, `benchmarks/eval_closeups.py`: covered whole 938 -> 967, none found at all 5 -> 4; 288 px
#: alone, 224, 192 or 160 px alone: 938-953). The quick pass keeps one view; the tracker holds a face at the size
#: the last thorough pass saw it whole (`anonlab.track.analyse`).
CLOSEUP_SMALL_SIDE = 160
CLOSEUP_MAX_SCALE = 0.6
CLOSEUP_MIN = 0.3
CLOSEUP_INSIDE = 0.5


def absorb(regions: Regions, big: Regions, inside: float = CLOSEUP_INSIDE) -> Regions:
    """``regions`` with every box that mostly overlaps a box of ``big`` (at least ``inside`` of the smaller of the
    two) replaced, together with it, by the box enclosing them (score: the best of them); other rows unchanged.

    Example:
        >>> part = Regions(xyxy=[[10, 10, 50, 30], [200, 200, 220, 220]], score=[0.7, 0.9])
        >>> absorb(part, Regions(xyxy=[[5, 0, 60, 70]], score=[0.6])).xyxy.tolist()
        [[200.0, 200.0, 220.0, 220.0], [5.0, 0.0, 60.0, 70.0]]
    """
    if not len(big):
        return regions
    if not len(regions):
        return big
    # intersection over the smaller box: a part's share inside the face, or the face's inside a looser box of it
    share = ios_matrix(regions.xyxy, big.xyxy)
    owner = np.where(share.max(axis=1) >= inside, share.argmax(axis=1), -1)
    xyxy, score = big.xyxy.copy(), big.score.copy()
    for i, j in enumerate(owner.tolist()):
        if j >= 0:
            xyxy[j, :2] = np.minimum(xyxy[j, :2], regions.xyxy[i, :2])
            xyxy[j, 2:] = np.maximum(xyxy[j, 2:], regions.xyxy[i, 2:])
            score[j] = max(score[j], regions.score[i])
    return Regions.merge([regions[owner < 0], big.replace(xyxy=xyxy, score=score)])


def size_factor(side, small_factor: float = SMALL_FACTOR, small_side: float = SMALL_SIDE,
                large_side: float = LARGE_SIDE) -> np.ndarray:
    """Threshold multiplier for boxes whose smaller side is ``side`` px: ``small_factor`` .. 1, log-linear."""
    side = np.maximum(np.asarray(side, np.float64), 1e-3)
    if large_side <= small_side:
        return np.where(side >= large_side, 1.0, small_factor)
    t = np.clip(np.log(side / small_side) / math.log(large_side / small_side), 0.0, 1.0)
    return small_factor + (1.0 - small_factor) * t


def calibrate(score, offset: float) -> np.ndarray:
    """``clip((score - offset) / (1 - offset), 0, 1)``: a detector's score on the common scale."""
    score = np.asarray(score, np.float64)
    if offset <= 0:
        return np.clip(score, 0.0, 1.0)
    return np.clip((score - offset) / (1.0 - offset), 0.0, 1.0)


def fuse(parts: Sequence[Regions], offsets: Sequence[float], iou: float = FUSE_IOU) -> Regions:
    """Fuse the boxes of several detectors of one frame: one box per face, noisy-or of calibrated scores.

    Greedy by calibrated score: the best remaining box and every remaining box overlapping it by more than
    ``iou`` form a cluster; per detector the cluster keeps its best calibrated score ``p_k``; the fused score
    is ``1 - Π(1 - p_k)`` and the box the ``p``-weighted mean of the cluster's boxes. Boxes whose calibrated
    score is 0 are dropped. Columns other than box and score come from the cluster's best box.
    """
    if len(parts) != len(offsets):
        raise ValueError("one calibration offset per detector")
    rows = [r.replace(score=calibrate(r.score, o).astype(np.float32)) for r, o in zip(parts, offsets)]
    who = np.concatenate([np.full(len(r), k) for k, r in enumerate(rows)]) if rows else np.zeros(0, int)
    allr = Regions.merge(rows) if rows else Regions.empty()
    keep = allr.score > 0
    allr, who = allr[np.nonzero(keep)[0]], who[keep]
    if len(allr) == 0:
        return Regions.empty()
    p = allr.score.astype(np.float64)
    order = np.argsort(-p, kind="stable")
    overlap = iou_matrix(allr.xyxy, allr.xyxy)
    taken = np.zeros(len(allr), bool)
    out_rows, out_xyxy, out_score = [], [], []
    for i in order:
        if taken[i]:
            continue
        members = np.union1d(np.nonzero(~taken & (overlap[i] > iou) & (allr.label == allr.label[i])
                                        & (allr.frame == allr.frame[i]))[0], [i])
        taken[members] = True
        miss = 1.0
        for k in np.unique(who[members]):
            miss *= 1.0 - p[members[who[members] == k]].max()
        w = p[members] + 1e-6
        out_rows.append(int(i))
        out_xyxy.append((allr.xyxy[members] * w[:, None]).sum(0) / w.sum())
        out_score.append(1.0 - miss)
    kept = allr[np.asarray(out_rows, np.int64)]
    return kept.replace(xyxy=np.asarray(out_xyxy, np.float32), score=np.asarray(out_score, np.float32))


def keep_by_size(regions: Regions, thresh: float, small_factor: float = SMALL_FACTOR,
                 small_side: float = SMALL_SIDE, large_side: float = LARGE_SIDE) -> Regions:
    """The boxes whose score reaches the size-dependent threshold ``thresh * size_factor(smaller side)``."""
    if len(regions) == 0:
        return regions
    wh = regions.xyxy[:, 2:] - regions.xyxy[:, :2]
    need = thresh * size_factor(wh.min(axis=1), small_factor, small_side, large_side)
    return regions[np.nonzero(regions.score >= need - 1e-9)[0]]


class FusedFaces(Detector):
    """Several face detectors fused by calibrated noisy-or, kept by a size-dependent threshold.

    Args:
        detectors: the member detectors (e.g. ``AutoScale(CenterFace)``, ``AutoScale(YuNet)``); their own
            thresholds are replaced by floors derived from the curve.
        offsets: calibration offset of each member (0: its score as it is).
        thresh: fused-score threshold for boxes of ``large_side`` px and more.
        small_factor, small_side, large_side: the threshold curve (see `size_factor`).
        iou: IoU above which boxes of different members are one face.
    """
    label = FACE

    def __init__(self, detectors: Sequence[Detector], offsets: Sequence[float], thresh: float = DEFAULT_THRESH,
                 small_factor: float = SMALL_FACTOR, small_side: float = SMALL_SIDE, large_side: float = LARGE_SIDE,
                 iou: float = FUSE_IOU, name: str = "faces") -> None:
        if not detectors or len(detectors) != len(offsets):
            raise ValueError("FusedFaces needs detectors and one calibration offset each")
        if not 0.0 < small_factor <= 1.0:
            raise ValueError("small_factor must lie in (0, 1]")
        self.name = name
        self.offsets = [float(o) for o in offsets]
        self.small_factor = float(small_factor)
        self.small_side = float(small_side)
        self.large_side = float(large_side)
        self.iou = float(iou)
        self.default_thresh = float(thresh)
        self.models = [m for d in detectors for m in d.models]
        self._base = list(detectors)
        self._set(float(thresh))

    def _set(self, thresh: float) -> None:
        self.thresh = thresh
        lowest = thresh * self.small_factor
        # A member's box can only pass if its calibrated score alone, or with the others' help, reaches the
        # lowest threshold; with help it may need less, so the floor is half that (never below MIN_FLOOR).
        floors = [max(MIN_FLOOR, o + (1.0 - o) * lowest * 0.5) for o in self.offsets]
        self.detectors = [d.with_threshold(f) for d, f in zip(self._base, floors)]

    def threshold_for(self, side) -> np.ndarray:
        """The fused-score threshold of a box whose smaller side is ``side`` px."""
        return self.thresh * size_factor(side, self.small_factor, self.small_side, self.large_side)

    def detect(self, frame: np.ndarray) -> Regions:
        fused = self._decide([d(frame) for d in self.detectors])
        return absorb(fused, self.closeups(frame, (CLOSEUP_SIDE, CLOSEUP_SMALL_SIDE)))

    def closeups(self, frame: np.ndarray, sides: Sequence[int] = (CLOSEUP_SIDE,)) -> Regions:
        """Large faces seen in the close-up view (principle 4 of the module docstring), in frame pixels.

        ``sides``: the view's shorter side, pixels (one or more, each > 0); with several, the frame is seen at
        each size and a face found in more than one is the box enclosing them (`absorb`). Empty for frames
        small enough that the members, which enlarge small frames, already see a frame-filling face whole at the
        largest of ``sides``; a small frame that they enlarge is seen here at its own size.
        """
        h, w = frame.shape[:2]
        # the members see the frame enlarged where it is small (`AutoScale`): what counts is its size there
        seen = min(h, w) * max(getattr(d, "scale_for", lambda *_: 1.0)(w, h) for d in self.detectors)
        if max(sides) > CLOSEUP_MAX_SCALE * seen:
            return Regions.empty()
        found = Regions.empty()
        for view_side in sides:
            scale = min(1.0, view_side / max(1, min(h, w)))
            # the members themselves, without their small-face upscale: this view is for faces that are too large
            view = self._decide([Tiled(getattr(d, "base", d), scale=scale)(frame) for d in self.detectors])
            side = (view.xyxy[:, 2:] - view.xyxy[:, :2]).min(axis=1) if len(view) else np.zeros(0)
            found = absorb(found, view[np.flatnonzero(side >= CLOSEUP_MIN * min(h, w))])
        return found

    def detect_quick(self, frame: np.ndarray) -> Regions:
        """The first member on the whole frame; the others only around the boxes it is unsure of.

        A box the first member (CenterFace) scores at or above its size's threshold is kept whatever the
        others say (noisy-or only raises a score), and at `QUICK_SURE` or more it is also a confident
        detection for the tracker and the review; so the others' second opinion is needed only around the
        boxes below that: they run on `context_crops` around those, at the frame's own scale. When the crops cover
        more than `QUICK_MAX_AREA` of the frame (crowds) the full pass is cheaper. What this pass can miss
        is a face that only the second model sees at all; the thorough pass, which the analyser runs at
        least twice a second, finds those (measured on the evaluation faces: 1 face of 2065, see
        ``models/README.md``).
        """
        h, w = frame.shape[:2]
        first = self.detectors[0](frame)
        side = (first.xyxy[:, 2:] - first.xyxy[:, :2]).min(axis=1) if len(first) else np.zeros(0)
        sure = np.maximum(self.threshold_for(side), QUICK_SURE)
        unsure = first[np.flatnonzero(calibrate(first.score, self.offsets[0]) < sure)]
        crops = context_crops(unsure.xyxy, w, h, QUICK_EXPAND, QUICK_MARGIN)
        if ((crops[:, 2:] - crops[:, :2]).prod(axis=1).sum() > QUICK_MAX_AREA * w * h
                or not all(hasattr(d, "detect_in") for d in self.detectors[1:])):
            fused = self._decide([first] + [d(frame) for d in self.detectors[1:]])
        else:
            fused = self._decide([first] + [d.detect_in(frame, crops) for d in self.detectors[1:]])
        return absorb(fused, self.closeups(frame))

    def _decide(self, parts: list[Regions]) -> Regions:
        fused = fuse(parts, self.offsets, self.iou)
        return keep_by_size(fused, self.thresh, self.small_factor, self.small_side, self.large_side)

    def with_threshold(self, thresh: float) -> "FusedFaces":
        out = copy.copy(self)
        out._set(float(thresh))
        return out

    def lowered(self, factor: float = 0.5) -> "FusedFaces":
        return self.with_threshold(self.thresh * factor)

    def __repr__(self) -> str:
        return (f"FusedFaces({', '.join(repr(d) for d in self.detectors)}, offsets={self.offsets}, "
                f"thresh={self.thresh:g} x{self.small_factor:g} under {self.small_side:g} px, "
                f"x1 from {self.large_side:g} px, close-ups at {CLOSEUP_SIDE} and {CLOSEUP_SMALL_SIDE} px)")
