"""A small ByteTrack: constant-velocity Kalman filter + greedy IoU association, low-score second pass.

After Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box" (ECCV 2022), written
to be read in one sitting (in the spirit of tryolabs/norfair). Differences from the paper's tracker, all for
anonymisation, where a region that is not output is a face shown bare:

* **Every detection is output.** ByteTrack drops unmatched low-score boxes and never starts tracks from them;
  here each unmatched detection starts a (tentative) track, so every region the detector returns keeps a
  track id and is masked. The high/low split only decides the *order* of association, so that a weak box does
  not steal a track from a strong one.
* **Output boxes are the detector's boxes**, not the filter's smoothed estimate (the filter only predicts
  where to look next).
* **Labels never mix**: a face detection can only continue a face track, a plate a plate track.
* **Greedy matching** by descending IoU instead of the Hungarian algorithm (no SciPy dependency; with
  Kalman-predicted boxes the two agree in practice, norfair matches greedily too).

Three verbs:

* `Tracker.update` — a frame with full detection: associate, start and age tracks;
* `Tracker.predict` — a frame without detection: the filter's boxes of the tracks seen at the last step;
* `Tracker.correct` — measurements for tracks already known by id (optical flow, an analyst's box).

`Tracker.mark_lost` stops following tracks between detections (the caller's optical flow lost them);
`Tracker.reset` forgets every track at a scene cut; ids keep counting up, so a track never spans a cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anonlab.regions import NO_TRACK, TRACKER, Regions, iou_matrix

# Noise of the Kalman filter relative to the box size (ByteTrack's values, applied to width and height).
_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)  # x_{t+1} = x_t + v_t
_H = np.eye(4, 8)


class KalmanBoxFilter:
    """Constant-velocity Kalman filter on ``cx, cy, w, h`` (state: those four and their velocities).

    Process and measurement noise scale with the box size, so a large near face and a small far plate are
    filtered alike. One instance per track: ``mean`` ``(8,)`` and ``covariance`` ``(8, 8)``.
    """

    def __init__(self, xyxy: np.ndarray):
        z = _xyxy_to_cxcywh(xyxy)
        self.mean = np.concatenate([z, np.zeros(4)])
        w, h = z[2], z[3]
        std = np.array([2 * _STD_POSITION * w, 2 * _STD_POSITION * h] * 2 + [10 * _STD_VELOCITY * w,
                                                                            10 * _STD_VELOCITY * h] * 2)
        self.covariance = np.diag(std**2)

    def predict(self) -> None:
        """Advance the state by one frame."""
        w, h = max(self.mean[2], 1.0), max(self.mean[3], 1.0)
        std = np.array([_STD_POSITION * w, _STD_POSITION * h] * 2 + [_STD_VELOCITY * w, _STD_VELOCITY * h] * 2)
        self.mean = _F @ self.mean
        self.covariance = _F @ self.covariance @ _F.T + np.diag(std**2)

    def update(self, xyxy: np.ndarray) -> None:
        """Fold in one measured box."""
        z = _xyxy_to_cxcywh(xyxy)
        w, h = max(self.mean[2], 1.0), max(self.mean[3], 1.0)
        r = np.diag(np.array([_STD_POSITION * w, _STD_POSITION * h] * 2) ** 2)
        s = _H @ self.covariance @ _H.T + r
        gain = np.linalg.solve(s, _H @ self.covariance).T  # P H^T S^-1 (S and P symmetric)
        self.mean = self.mean + gain @ (z - _H @ self.mean)
        self.covariance = self.covariance - gain @ s @ gain.T

    @property
    def xyxy(self) -> np.ndarray:
        cx, cy, w, h = self.mean[:4]
        w, h = max(w, 1.0), max(h, 1.0)
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def _xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = np.asarray(xyxy, np.float64)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


@dataclass
class Track:
    """One tracked object.

    Attributes:
        id: stable track id (unique within one `Tracker`, also across `Tracker.reset`).
        label: label code; a track only ever takes detections of its own label.
        kf: the motion model.
        frame: frame index the filter state refers to.
        last_detected: last frame a *detection* was associated (flow corrections do not count).
        hits: number of detections associated.
        confirmed: seen in `min_hits` frames (or started by a high-score detection).
        tracked: associated at the last step (False: lost, kept for re-identification).
        misses: full detections in a row that did not find this track.
        score: score of the last detection.
        turn: the last detection's ``Regions.turn`` (quarter turns that stand the object upright).
    """

    id: int
    label: int
    kf: KalmanBoxFilter
    frame: int
    last_detected: int
    hits: int = 1
    confirmed: bool = False
    tracked: bool = True
    misses: int = 0
    score: float = 1.0
    turn: int = 0

    def advance(self, frame: int) -> None:
        """Predict the filter forward to ``frame`` (no-op if it is already there)."""
        while self.frame < frame:
            self.kf.predict()
            self.frame += 1


def greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs ``(row, col)`` by descending IoU, each row and column used once, IoU >= ``threshold``.

    Example:
        >>> greedy_match(np.array([[0.9, 0.5], [0.6, 0.1]]), 0.3)
        [(0, 0)]
    """
    if iou.size == 0:
        return []
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_r, used_c, pairs = set(), set(), []
    for r, c in zip(rows[order].tolist(), cols[order].tolist()):
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


class Tracker:
    """ByteTrack-style multi-object tracker over `Regions`.

    Args:
        high_thresh: detections scoring at least this are associated first (and confirm a track at once).
        match_iou: minimum IoU between a track's predicted box and a high-score detection.
        low_match_iou: minimum IoU for the second pass (low-score detections, tracks still unmatched). 0.3
            rather than ByteTrack's 0.5: detector boxes on 15-25 px faces jitter by a third of their size from
            frame to frame, and 0.5 broke their tracks (semi-synthetic clips: 15 id switches instead of 5).
        tentative_match_iou: minimum IoU to continue a tentative track.
        track_buffer: frames a confirmed track survives without detection (it can be re-found meanwhile).
            Keep it at least ``Settings.max_gap`` so gaps that interpolation can fill keep one id.
        tentative_buffer: full detections (`update` calls) a tentative track may miss before it is dropped;
            counted in detections, not frames, so it means the same whatever ``detect_every`` is.
        min_hits: detections that confirm a track started by a low-score box.

    Example:
        >>> t = Tracker()
        >>> a = t.update(Regions(xyxy=[[10, 10, 50, 50]], score=[0.9]), 0)
        >>> b = t.update(Regions(xyxy=[[12, 10, 52, 50]], score=[0.9]), 1)
        >>> int(a.track_id[0]) == int(b.track_id[0])
        True
    """

    def __init__(
        self,
        *,
        high_thresh: float = 0.5,
        match_iou: float = 0.2,
        low_match_iou: float = 0.3,
        tentative_match_iou: float = 0.3,
        track_buffer: int = 30,
        tentative_buffer: int = 1,
        min_hits: int = 2,
    ):
        self.high_thresh = high_thresh
        self.match_iou = match_iou
        self.low_match_iou = low_match_iou
        self.tentative_match_iou = tentative_match_iou
        self.track_buffer = track_buffer
        self.tentative_buffer = tentative_buffer
        self.min_hits = min_hits
        self.tracks: list[Track] = []
        self.frame = -1
        self._next_id = 0

    # --- the three verbs ---------------------------------------------------------------------------
    def update(self, regions: Regions, frame_index: int | None = None) -> Regions:
        """Associate one frame's detections with the tracks; return them with ``track_id`` set.

        Every input row is returned (same order, boxes, scores and sources), with ``frame`` set to
        ``frame_index``. Tracks not associated become lost; lost tracks older than their buffer are dropped.
        """
        n = self._frame_index(regions, frame_index)
        self._forget(n)
        for t in self.tracks:
            t.advance(n)
        ids = np.full(len(regions), NO_TRACK, np.int64)
        free = np.ones(len(regions), bool)
        high = regions.score >= self.high_thresh
        matched: set[int] = set()

        def associate(tracks: list[Track], rows: np.ndarray, threshold: float) -> None:
            rows = rows[free[rows]]
            tracks = [t for t in tracks if t.id not in matched]
            if not len(rows) or not tracks:
                return
            iou = iou_matrix(np.stack([t.kf.xyxy for t in tracks]), regions.xyxy[rows])
            iou[np.array([t.label for t in tracks])[:, None] != regions.label[rows][None, :]] = 0.0
            for ti, ri in greedy_match(iou, threshold):
                track, row = tracks[ti], int(rows[ri])
                track.kf.update(regions.xyxy[row])
                track.last_detected, track.tracked, track.score = n, True, float(regions.score[row])
                track.turn = int(regions.turn[row])
                track.misses = 0
                track.hits += 1
                track.confirmed = track.confirmed or track.hits >= self.min_hits
                ids[row], free[row] = track.id, False
                matched.add(track.id)

        confirmed = [t for t in self.tracks if t.confirmed]
        # 1. high-score detections against every confirmed track, tracked or lost (ByteTrack's first pass)
        associate(confirmed, np.flatnonzero(high), self.match_iou)
        # 2. low-score detections against the confirmed tracks still tracked at the last step
        associate([t for t in confirmed if t.tracked], np.flatnonzero(~high), self.low_match_iou)
        # 3. what is left against the tentative tracks
        associate([t for t in self.tracks if not t.confirmed], np.flatnonzero(free), self.tentative_match_iou)
        # 4. every detection still free starts a track (privacy: nothing the detector found goes untracked)
        for row in np.flatnonzero(free).tolist():
            track = Track(
                id=self._next_id, label=int(regions.label[row]), kf=KalmanBoxFilter(regions.xyxy[row]), frame=n,
                last_detected=n, score=float(regions.score[row]), confirmed=bool(high[row]) or self.min_hits <= 1,
                turn=int(regions.turn[row]),
            )
            self._next_id += 1
            self.tracks.append(track)
            ids[row] = track.id
            matched.add(track.id)
        for t in self.tracks:
            t.tracked = t.id in matched
            t.misses = 0 if t.tracked else t.misses + 1
        self._forget(n)
        self.frame = n
        return regions.replace(track_id=ids, frame=n)

    def predict(self, frame_index: int | None = None, track_ids=None) -> Regions:
        """Boxes the motion model expects at ``frame_index`` for the tracks tracked at the last step.

        Args:
            frame_index: the frame to predict (default: the frame after the last one seen).
            track_ids: predict these tracks (tracked or lost) instead.

        Rows have ``source`` = tracker and the track's last detection score. Lost tracks are not returned by
        default (temporal safety bridges them once they are found again). Track states other than the filter's
        position do not change: a frame without detection neither confirms nor loses a track.
        """
        n = self.frame + 1 if frame_index is None else int(frame_index)
        if track_ids is None:
            live = [t for t in self.tracks if t.tracked]
        else:
            wanted = {int(i) for i in track_ids}
            live = [t for t in self.tracks if t.id in wanted]
        for t in live:
            t.advance(n)
        self.frame = max(self.frame, n)
        if not live:
            return Regions.empty()
        return Regions(
            xyxy=np.stack([t.kf.xyxy for t in live]), score=[t.score for t in live], label=[t.label for t in live],
            track_id=[t.id for t in live], source=np.full(len(live), TRACKER), frame=np.full(len(live), n),
            turn=[t.turn for t in live],
        )

    def mark_lost(self, track_ids) -> None:
        """Mark tracks as lost (no longer followed between detections; still found again by `update`)."""
        wanted = {int(i) for i in track_ids}
        for t in self.tracks:
            if t.id in wanted:
                t.tracked = False

    def correct(self, regions: Regions, frame_index: int | None = None) -> None:
        """Fold in boxes measured for known tracks (``regions.track_id`` names them), e.g. by optical flow.

        Rows naming an unknown track or another label are ignored. A correction keeps a track tracked but does
        not count as a detection: it neither confirms a track nor extends its survival buffer.
        """
        n = self._frame_index(regions, frame_index)
        by_id = {t.id: t for t in self.tracks}
        for box, tid, label in zip(regions.xyxy, regions.track_id.tolist(), regions.label.tolist()):
            t = by_id.get(tid)
            if t is None or t.label != label:
                continue
            t.advance(n)
            t.kf.update(box)
            t.tracked = True
        self.frame = max(self.frame, n)

    def reset(self) -> None:
        """Forget every track (scene cut). Ids keep counting, so no id spans the cut."""
        self.tracks = []

    # --- helpers ------------------------------------------------------------------------------------
    def _forget(self, n: int) -> None:
        """Drop confirmed tracks undetected for over ``track_buffer`` frames at frame ``n``, and tentative tracks
        that missed over ``tentative_buffer`` detections."""
        def keep(t: Track) -> bool:
            return n - t.last_detected <= self.track_buffer if t.confirmed else t.misses <= self.tentative_buffer

        self.tracks = [t for t in self.tracks if keep(t)]

    def _frame_index(self, regions: Regions, frame_index: int | None) -> int:
        if frame_index is not None:
            return int(frame_index)
        return int(regions.frame[0]) if len(regions) else self.frame + 1

    @property
    def next_id(self) -> int:
        """The id the next new track will get."""
        return self._next_id
