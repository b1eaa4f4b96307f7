"""The analysis loop that the CLI, the workbench and batch jobs share: frames in, tracked regions out.

For each frame, in decoding order (each frame decoded once):

1. scene-cut check on a downscaled copy (`SceneCutDetector`); at a cut the tracker is reset;
2. **full detection** on every ``settings.detect_every``-th frame, at every cut and after any jump in the
   frame numbers; the detections go through `Tracker.update`. Given the frame rate, only the keyframes at
   a cut and ``settings.thorough_per_second`` a second run the detector's thorough pass; the others run its
   ``quick`` pass (the fused face detector asks its second model only where the first is unsure);
3. **optical flow** follows boxes where there is no detection: on the frames between full detections (the
   live tracks), and on any frame where the detector misses a confirmed track. Each box is moved by the
   median Lucas-Kanade flow of a grid of points inside it, forward-backward checked (the MedianFlow idea,
   Kalal et al. 2010); where the flow is unreliable too (a partial occlusion, motion blur), the box is
   **held** where it was last measured and grows with the frames since (a partly occluded face
   is not lost). A track is followed for at most ``max(max_gap, detect_every - 1)`` frames
   after its last detection (`Analyser.max_follow`), or until its box has left the frame. Nothing in
   view shrinks faster than `SIZE_RATE` a frame: a detection smaller than that is the visible part of a
   partly hidden object, and the track is masked at the size it was last seen whole; once it is seen larger
   again, its earlier frames are followed back at that size (`Analyser._whole`);
4. each **new track is followed backwards** through the shot's last frames, by optical flow or held the same
   way, so the frames before its first detection (a face too small, blurred, turned or partly hidden to be
   detected yet, or one that appeared between two full detections) are masked too;
5. where a shot begins, detectors that can (`anonlab.detect.Detector.choose`) find which way up the content
   stands, and the shot is detected that way (a camera mounted upside down; `anonlab.detect.orientation`).

Followed rows have ``source`` = tracker. At the end, `apply_temporal_safety` fills remaining gaps and adds
lead/trail frames; with ``detect_every`` = k the lead is at least k-1 frames, for objects that flow could not
follow back to where they appeared.

**What ``detect_every`` > 1 trades**: between full detections, objects are carried by optical flow rather
than found; an object that enters and that flow cannot follow back, or a track that flow loses, is covered
only by the lead/trail extension. A higher k is faster and relies more on flow. Recall against k is measured
by ``benchmarks/eval_tracking.py``.

Long videos processed in chunks (batch) are joined with `stitch_chunks`.

The module is long because its steps share one piece of state per track (the size seen whole, the frames
buffered for following back, the last measured box): split up, each part would reach into the others'.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Iterable

import cv2
import numpy as np

from anonlab.detect.orientation import evidence
from anonlab.regions import (DETECTOR, EXTENDED, FACE, INTERPOLATED, NO_TRACK, TRACKER, Regions, RegionsLog, iou_matrix,
                             label_code)
from anonlab.track.bytetrack import Tracker, greedy_match
from anonlab.track.flow import FLOW_MAX_WIDTH, at_least, grow_boxes, median_flow
from anonlab.track.scenecut import SceneCutDetector
from anonlab.track.temporal import (VELOCITY_WINDOW, apply_temporal_safety, end_velocity, iter_tracks,
                                    per_frame_boxes)

Detector = Callable[[np.ndarray], Regions]

#: A shot in which no orientation showed a clear face is checked again (at a thorough keyframe) this many
#: seconds after its last check once a face box (however unsure) has turned up since, and after
#: `ORIENT_IDLE_SECONDS` in any case: a check costs the face detector three more passes, so footage without
#: faces (a dashcam) pays for one every few seconds, not at every keyframe.
ORIENT_RECHECK_SECONDS = 1.0
ORIENT_IDLE_SECONDS = 4.0

#: A face or plate changes its size in the image by at most this share a frame (someone walking at 1.5 m/s
#: three metres from the camera, at 25 fps): a detection that shrinks faster shows only the part of the object
#: that is not hidden, and one that grows faster shows more of it than the track's earlier boxes did.
SIZE_RATE = 0.02
#: Width or height changes within this share of a track's size are the detector's jitter, not a partial view.
SIZE_JITTER = 0.1
#: A detection whose box comes this close to the frame's border (pixels) is cut by it: detectors clip their boxes
#: to the frame and place an edge to a pixel or so.
BORDER_PX = 1.5


def effective_settings(settings):
    """``settings`` with the lead raised to ``detect_every - 1`` (see the module docstring)."""
    k = int(settings.detect_every)
    return settings.replace(lead=max(int(settings.lead), k - 1)) if k > 1 else settings


#: At least this many full detections per second of video, whatever ``detect_every`` says: optical flow
#: carries boxes between close frames, not across the long gaps of time-lapse or 1-fps footage (measured:
#: the 1-fps dashcam sequence falls from recall 1.0 at k=1 to 0.76 at k=6).
MIN_DETECTIONS_PER_SECOND = 4

#: Thorough full detections per second of video by default (every model on the whole frame; `Detector.quick` on
#: the keyframes between): a face that only the second face model sees is found within half a second.
#: ``Settings.thorough_per_second`` sets it per run (the speed profiles, `anonlab.settings.SPEED_PROFILES`).
THOROUGH_PER_SECOND = 2


def thorough_every(settings, fps: float | None) -> int:
    """Every how many keyframes the thorough pass runs (1: all of them; also when the rate is unknown)."""
    if not fps or fps <= 0:
        return 1
    per_second = float(getattr(settings, "thorough_per_second", THOROUGH_PER_SECOND))
    return max(1, int(fps / (int(settings.detect_every) * per_second)))


def settings_for_rate(settings, fps: float):
    """``settings`` with ``detect_every`` capped so that low-frame-rate footage is detected often enough."""
    cap = max(1, int(fps // MIN_DETECTIONS_PER_SECOND)) if fps and fps > 0 else 1
    k = min(int(settings.detect_every), cap)
    return settings if k == settings.detect_every else settings.replace(detect_every=k)


def seam_margin(settings) -> int:
    """Frames around a seam that decide the regions on its other side, for chunked analysis (batch).

    A new track is followed back up to ``max(max_gap, detect_every - 1)`` frames once it is confirmed, which can
    take ``tentative_buffer + 1`` more full detections (the default `Tracker`'s); a lost track is carried as far
    forward. A chunk that analyses this many frames past its stop and before its start gets the rows an
    unchunked run would give it.

    Args:
        settings: the `Settings` the video is analysed with (after `settings_for_rate`).

    Returns:
        a number of frames, >= 1.
    """
    k = max(1, int(settings.detect_every))
    return max(int(settings.max_gap), k - 1) + k * (Tracker().tentative_buffer + 1) + 1


class Analyser:
    """Incremental analysis of one video: `feed` each frame in order, then `result`.

    Args:
        detector: ``detector(frame_bgr) -> Regions`` (one frame's rows; ``frame`` is set here).
        settings: an `anonlab.settings.Settings` (``what``, ``detect_every``, ``max_gap``, ``lead``, ``trail``).
        tracker: a `Tracker` to use (default: a new one with ``track_buffer`` >= ``settings.max_gap``).
        cut_detector: a `SceneCutDetector` (default: a new one), or None to disable cut detection.
        fps: the video's frame rate; with it, keyframes between the thorough ones (see `thorough_every`)
            use the detector's ``quick`` pass where it has one. None: every keyframe is thorough.
        orient: find which way up each shot stands where the detector can (`anonlab.detect.Detector.choose`:
            four passes where a shot begins, see `anonlab.detect.orientation`) and detect the shot that way.

    Attributes:
        scene_cuts: frame indices where a cut was detected (the review queue looks at them).
        turns: ``(frame, turn)`` where the content was found to need ``turn`` quarter turns (counter-clockwise)
            to stand upright, and was detected that way from there on (`anonlab.detect.orientation`).
        keyframes: frame indices that had a full detection.
        max_follow: frames a track is still followed (by flow, or held) after its last detection, and followed
            back before its first: ``max(max_gap, detect_every - 1)``. Memory holds about this many grey frames
            of the shot (at most 960 px wide).
        timings: seconds spent in ``detect``, ``propagate``, ``scene_cut``, ``track``; ``frames`` fed.

    Example:
        >>> from anonlab.settings import Settings
        >>> a = Analyser(lambda f: Regions(xyxy=[[8, 8, 24, 24]], score=[0.9]), Settings(detect_every=1))
        >>> for n in range(3):
        ...     _ = a.feed(n, np.zeros((32, 32, 3), np.uint8))
        >>> a.result().track_id.tolist()
        [0, 0, 0]
    """

    def __init__(self, detector: Detector, settings, *, tracker: Tracker | None = None,
                 cut_detector: SceneCutDetector | None | bool = True, fps: float | None = None,
                 orient: bool = True):
        self.detector = detector
        self.thorough_every = thorough_every(settings, fps)
        self._quick_since = 0  # keyframes since the last thorough one
        # orientation (detectors with ``choose``, `anonlab.detect.orientation`): the detector of this shot (turned
        # the way its faces stand), and when a shot still undecided was last checked
        self.orient = bool(orient)
        self._shot_detector = detector
        self._orient_checked: int | None = None  # last check of a shot still undecided (None: decided)
        self._face_since_check = False
        self._turn = 0
        self._rate = fps if fps and fps > 0 else 25.0
        self.settings = settings
        self.k = int(settings.detect_every)
        self.max_follow = max(int(settings.max_gap), self.k - 1)
        self.tracker = tracker or Tracker(track_buffer=max(30, self.max_follow + 1))
        self.cut_detector = SceneCutDetector() if cut_detector is True else (cut_detector or None)
        self._labels = np.array([label_code(w) for w in settings.what])
        self.scene_cuts: list[int] = []
        self.turns: list[tuple[int, int]] = []
        self.keyframes: list[int] = []
        self.timings = {"detect": 0.0, "propagate": 0.0, "scene_cut": 0.0, "track": 0.0, "frames": 0}
        # every frame's rows, keyed by the frame being fed when they were added (a part holds no later frames);
        # merged in runs, so an hour of video holds its rows, not 90,000 objects
        self._parts = RegionsLog()
        self._in_order = True  # frames fed in increasing order: what streaming (`settled`) needs
        self._last_n: int | None = None
        self._last_key = -(10**9)
        # this shot's last frames (newest last): enough to follow a track back max_follow frames from its first
        # detection once it is confirmed, which can take tentative_buffer + 1 more full detections
        self._grays: deque[np.ndarray] = deque(
            maxlen=self.max_follow + 1 + self.k * (self.tracker.tentative_buffer + 1))
        self._firsts: dict[int, Regions] = {}  # first detection of each tentative track
        # per track with a row at the last frame fed: its box there without the hold's growth (measured, or the
        # motion model's while held), its last measured box, and the frames since that measurement
        self._core: dict[int, np.ndarray] = {}
        self._anchor: dict[int, np.ndarray] = {}
        self._unseen: dict[int, int] = {}
        # per followed track: its size (width, height in pixels) when last seen whole and that frame (see
        # `_whole`), and the frame of its first detection in this shot (how far back a grown track is followed)
        self._size: dict[int, tuple[np.ndarray, int]] = {}
        self._since: dict[int, int] = {}
        self._max_n = -1

    def feed(self, n: int, frame: np.ndarray) -> Regions:
        """Analyse frame ``n``; return its tracked regions (before temporal safety and backward following)."""
        self._in_order = self._in_order and n > self._max_n
        t0 = time.perf_counter()
        cut = self.cut_detector is not None and self.cut_detector.update(frame)
        if cut:
            self.tracker.reset()
            self.scene_cuts.append(n)
        self.timings["scene_cut"] += time.perf_counter() - t0
        follows = self._last_n is not None and n == self._last_n + 1 and not cut
        if not follows:
            self._grays.clear()
            self._firsts.clear()
            self._core, self._anchor, self._unseen = {}, {}, {}
            self._size, self._since = {}, {}
        t1 = time.perf_counter()
        self._grays.append(self._gray(frame))
        if not follows or n - self._last_key >= self.k:
            self.timings["propagate"] += time.perf_counter() - t1
            t1 = time.perf_counter()
            confirmed = {t.id for t in self.tracker.tracks if t.confirmed}
            regions = self._detect(frame, n, thorough=not follows or self._quick_since + 1 >= self.thorough_every,
                                   shot_start=not follows)
            t2 = time.perf_counter()
            out = self.tracker.update(regions, n)
            self.timings["detect"] += t2 - t1
            self.timings["track"] += time.perf_counter() - t2
            self._last_key = n
            self.keyframes.append(n)
            t1 = time.perf_counter()
            detected = {int(i): box for i, box in zip(out.track_id, out.xyxy)}
            # confirmed tracks the detector missed here are followed by optical flow or held (see `_carry`) ...
            missed = [t.id for t in self.tracker.tracks if t.confirmed and not t.tracked]
            if follows and missed:
                out = Regions.merge([out, self._carry(n, frame, missed)])
            whole, grown = self._whole(n, detected, frame.shape)
            for i, box in detected.items():
                self._core[i], self._anchor[i], self._unseen[i] = whole.get(i, box), whole.get(i, box), 0
                self._since.setdefault(i, n)
            if whole:  # a partial view is masked at the size the track was last seen whole
                rows = out[np.isin(out.track_id, list(whole))]
                ids = rows.track_id.tolist()
                out = Regions.merge([out, rows.replace(xyxy=np.stack([whole[i] for i in ids]),
                                                       source=np.full(len(rows), TRACKER))])
            self._keep_cores(out)
            if grown and follows:  # ... and its earlier frames, partial views too, at the size it is seen now
                born = out[np.isin(out.track_id, grown) & (out.source == DETECTOR)]
                self._parts.append(self._follow_back(born, n, frame.shape,
                                                     {i: n - self._since.get(i, n) for i in grown}), key=n)
            # ... and tracks confirmed here are followed back to the frames before their first detection
            self._parts.append(self._confirmed_now(out, confirmed, frame.shape), key=n)
        else:
            out = self._carry(n, frame, [t.id for t in self.tracker.tracks if t.tracked])
            self._keep_cores(out)
        self.timings["propagate"] += time.perf_counter() - t1
        self._last_n = n
        self._max_n = max(self._max_n, n)
        self._parts.append(out, key=n)
        self.timings["frames"] += 1
        return out

    def tracked(self) -> Regions:
        """All frames' regions as the detector and tracker gave them, before temporal safety."""
        return self._parts.merged()

    def result(self, n_frames: int | None = None) -> Regions:
        """All frames' regions with temporal safety applied (``n_frames`` default: last frame fed + 1)."""
        n_frames = self._max_n + 1 if n_frames is None else int(n_frames)
        return apply_temporal_safety(self.tracked(), n_frames, effective_settings(self.settings))

    # --- streaming: regions of early frames while later ones are still being analysed ------------------
    def _reach(self) -> int:
        """Frames on either side of frame t whose rows decide t's rows after temporal safety.

        Gap filling looks ``max_gap`` + 1 frames each way, lead/trail ``lead``/``trail`` frames and the
        velocity at a stretch's end `VELOCITY_WINDOW` frames into it (see `anonlab.track.temporal`).
        """
        s = effective_settings(self.settings)
        return max(int(s.max_gap) + 1, int(s.lead), int(s.trail)) + VELOCITY_WINDOW + 1

    def settled(self) -> int:
        """Frames before this index are final: `result` will give them exactly the rows `settled_rows` gives.

        Following a new track backwards adds rows up to the length of the buffered shot behind the newest
        frame; temporal safety then reaches `_reach` frames further.
        """
        if self._last_n is None or not self._in_order:
            return 0
        return max(0, self._max_n + 1 - self._grays.maxlen - self._reach())

    def settled_rows(self, start: int, stop: int, n_frames: int) -> Regions:
        """`result` restricted to frames ``start <= n < stop`` (``stop`` at most `settled`), from nearby rows only.

        Equal to ``result(n_frames)`` on those frames (tests check it), at a cost that does not grow with the
        length of the video; for rendering while the analysis goes on (`anonlab.pipeline.anonymize`).
        """
        if stop > self.settled():
            raise ValueError(f"frames up to {stop} are not settled yet (settled: {self.settled()})")
        lo = start - self._reach()
        rows = self._parts.since(lo)  # every part fed at frame f holds frames <= f only
        rows = rows[(rows.frame >= lo) & (rows.frame < stop + self._reach())]
        safe = apply_temporal_safety(rows, n_frames, effective_settings(self.settings))
        return safe[(safe.frame >= start) & (safe.frame < stop)]

    # --- steps ---------------------------------------------------------------------------------------
    def _detect(self, frame: np.ndarray, n: int, thorough: bool = True, shot_start: bool = False) -> Regions:
        choose = getattr(self.detector, "choose", None) if self.orient else None
        detector = self._shot_detector
        quick = getattr(detector, "quick", None)
        if choose is not None and thorough and (shot_start or self._orientation_due(n)):
            # which way up is this shot? (`anonlab.detect.orientation`)
            self._quick_since = 0
            turn, regions = choose(frame)
            self._shot_detector = self.detector.at(turn)
            self._orient_checked = None if evidence(regions) > 0 else n  # undecided: ask again later
            self._face_since_check = False
            if turn != self._turn:
                self.turns.append((n, int(turn)))
                self._turn = int(turn)
        elif thorough or quick is None:
            self._quick_since = 0
            regions = detector(frame)
        else:
            self._quick_since += 1
            regions = quick(frame)
        self._face_since_check |= bool((regions.label == FACE).any())
        regions = regions[np.isin(regions.label, self._labels)]
        return regions.replace(frame=n, track_id=NO_TRACK)

    def _orientation_due(self, n: int) -> bool:
        """A shot in which no turn showed a clear face is checked again (four passes instead of one): about
        `ORIENT_RECHECK_SECONDS` after its last check once some face box has turned up since, else after
        `ORIENT_IDLE_SECONDS` (someone may have come into view; footage without faces pays little)."""
        if self._orient_checked is None:
            return False
        since = (n - self._orient_checked) / self._rate
        return since >= ORIENT_IDLE_SECONDS or (self._face_since_check and since >= ORIENT_RECHECK_SECONDS)

    def _gray(self, frame: np.ndarray) -> np.ndarray:
        """Grayscale for optical flow, halved until no wider than `FLOW_MAX_WIDTH`."""
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        while gray.shape[1] > FLOW_MAX_WIDTH:
            gray = cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return gray

    def _keep_cores(self, out: Regions) -> None:
        """Forget the cores of tracks without a row at this frame (they are no longer followed)."""
        live = set(out.track_id.tolist())
        self._core = {i: b for i, b in self._core.items() if i in live}
        self._anchor = {i: b for i, b in self._anchor.items() if i in live}
        self._unseen = {i: u for i, u in self._unseen.items() if i in live}
        self._size = {i: s for i, s in self._size.items() if i in live}
        self._since = {i: f for i, f in self._since.items() if i in live}

    def _not_shrunk(self, n: int, ids: list[int], xyxy: np.ndarray) -> np.ndarray:
        """Boxes of tracks followed without a detection, grown about their centres to at least the size the
        track was last seen whole, less `SIZE_RATE` a frame since: where something slides over part of a face,
        the points of the flow on it pull the measured scale down, and a box of the visible part would leave the
        rest bare when the occluder moves on."""
        out = np.asarray(xyxy, np.float32).copy()
        for j, i in enumerate(ids):
            if i in self._size:
                size, at = self._size[i]
                out[j] = at_least(out[j:j + 1], size * (1 - SIZE_RATE) ** (n - at))[0]
        return out

    def _whole(self, n: int, detected: dict[int, np.ndarray],
               shape: tuple[int, ...]) -> tuple[dict[int, np.ndarray], list[int]]:
        """Partial views among this keyframe's detections, and tracks seen larger than before.

        An object shrinks in the image by at most `SIZE_RATE` a frame: a detection smaller than that (beyond the
        `SIZE_JITTER`) in width or height is the part of a face left visible by something in front of it, or by
        the blur of a shake. Such a track keeps the size it was last seen whole (shrinking at `SIZE_RATE` a frame
        while it is not), centred where it was at the previous frame, joined with the detection: the box of what
        is hidden stays masked, and so does what shows again when the occluder moves on. Where the frame's border
        cuts the detection's box (within `BORDER_PX`), the size does not shrink and the whole box reaches beyond
        that border (see the comments below). A detection larger than the track's size by more than the jitter
        and `SIZE_RATE` a frame is the object seen whole again after a partial view: its earlier frames are
        followed back at that size (see `_follow_back`).

        Args:
            n: the keyframe.
            detected: ``{track id: xyxy box}`` of the detections at frame n (pixels).
            shape: the frame's shape (height, width, ...).

        Returns:
            ``({track id: xyxy box at frame n}, [track ids seen larger])``.
        """
        whole, grown = {}, []
        height, width = shape[:2]
        for i, box in detected.items():
            wh = box[2:] - box[:2]
            if i not in self._size:
                self._size[i] = (wh, n)
                continue
            size, at = self._size[i]
            # the size shrinks at SIZE_RATE a frame while only smaller boxes are seen because a smaller box may be
            # the object moving away as well as a part of it: the size follows the fastest a real object can go.
            # A box cut by the frame's border is known to be a part (what lies beyond the border is not seen, and
            # a detector's box of a face cut off is narrower too), whatever the object's distance: it is no
            # evidence that the object shrank, and the track keeps the size it was last seen whole (both sides,
            # for as long as a box touches the border: more mask, never less)
            low, high = box[:2] <= BORDER_PX, box[2:] >= np.array([width, height]) - BORDER_PX  # per axis x, y
            allowed = size if (low | high).any() else size * (1 - SIZE_RATE) ** (n - at)
            if (wh > size * (1 + SIZE_JITTER) * (1 + SIZE_RATE) ** (n - at)).any() and i in self._core:
                grown.append(i)
            self._size[i] = (np.maximum(wh, allowed), n)
            if (wh < allowed).any() and i in self._core:
                centre = (self._core[i][:2] + self._core[i][2:]) / 2
                # across a border that cuts the box, the rest of the object lies beyond the border: the whole box
                # reaches out from the detection's inner edge (it follows an object leaving the frame, where one
                # centred as before would stay behind over what the object has left)
                # (a box cut on both sides of an axis is larger than the frame that way: centred as before)
                lo = np.where(low & ~high, box[2:] - allowed, np.where(high & ~low, box[:2], centre - allowed / 2))
                whole[i] = np.concatenate([np.minimum(lo, box[:2]), np.maximum(lo + allowed, box[2:])]).astype(
                    np.float32)
        return whole, grown

    def _carry(self, n: int, frame: np.ndarray, track_ids: list[int]) -> Regions:
        """Rows at frame ``n`` for tracks followed without a detection here: moved by optical flow, or held.

        Each track's box at frame n-1 is moved by `median_flow`, and its mask grows on every side by `HOLD_GROWTH`
        of its size times the square root of the frames since the track's last detection (flow's errors add up
        from frame to frame); neither box is smaller than the track's size seen whole (`_not_shrunk`). Where the
        flow is unreliable too (a partial occlusion, motion blur, the object turning), the track is *held*: its
        mask is the box enclosing where it
        was last measured (by the detector or by reliable flow) and where the motion model (`Tracker.predict`)
        expects it now, grown on every side by `HOLD_GROWTH` of its size for each frame without a measurement, up
        to `HOLD_MAX_GROWTH`: an object that stopped behind what hides it and one that walked on are both covered,
        and the longer nothing is seen, the less is known of where it is. A track is followed this way for at
        most `max_follow` frames after its last detection, or until its box has left the frame: the detector
        losing a face for a while leaves it masked, and the mask of something that has gone ends after a bounded
        time.
        """
        by_id = {t.id: t for t in self.tracker.tracks}
        follow = [i for i in track_ids if i in self._core and n - by_id[i].last_detected <= self.max_follow]
        self.tracker.mark_lost(set(track_ids) - set(follow))
        if not follow:
            return Regions.empty()
        predicted = self.tracker.predict(n, follow)  # same order as the tracker's list
        ids = predicted.track_id.tolist()
        scale = self._grays[-1].shape[1] / frame.shape[1]
        core = np.stack([self._core[i] for i in ids]).astype(np.float32)
        moved, ok = median_flow(self._grays[-2], self._grays[-1], core * scale)
        moved /= scale
        self.tracker.correct(predicted[ok].replace(xyxy=moved[ok]), n)
        core = np.where(ok[:, None], moved, predicted.xyxy)  # held: where the motion model expects it
        core = self._not_shrunk(n, ids, core)
        anchor = np.where(ok[:, None], moved, np.stack([self._anchor[i] for i in ids]))
        unseen = np.array([0 if o else self._unseen.get(i, 0) + 1 for i, o in zip(ids, ok)])
        held = np.concatenate([np.minimum(core[:, :2], anchor[:, :2]), np.maximum(core[:, 2:], anchor[:, 2:])], axis=1)
        # a box carried by flow is not measured either: each step's error adds to the last, so it grows as a
        # held box does, but with the square root of the frames since the detection (the spread of a sum of
        # independent errors): 14 % a side after 50 frames, against the hold's 50 %
        drift = np.sqrt([n - by_id[i].last_detected for i in ids]).astype(np.float32)
        out = predicted.replace(xyxy=grow_boxes(np.where(ok[:, None], core, held), np.where(ok, drift, unseen)))
        inside = out.clip(frame.shape[1], frame.shape[0])
        keep = np.isin(out.track_id, inside.track_id)
        self.tracker.mark_lost([i for i, k in zip(ids, keep) if not k])
        for i, c, a, u, k in zip(ids, core, anchor, unseen.tolist(), keep):
            if k:
                self._core[i], self._anchor[i], self._unseen[i] = c, a, u
        return inside

    def _confirmed_now(self, out: Regions, confirmed_before: set[int], shape: tuple[int, ...]) -> Regions:
        """Backward rows for the tracks confirmed at this full detection (see `_follow_back`).

        Only confirmed tracks are followed back, so a one-off false detection costs no optical flow.
        """
        n = int(out.frame[0]) if len(out) else self._last_key
        for row in out[out.source == DETECTOR]:
            self._firsts.setdefault(int(row.track_id[0]), row)
        tracks = {t.id: t for t in self.tracker.tracks}
        new = [tid for tid, t in tracks.items() if t.confirmed and tid not in confirmed_before and tid in self._firsts]
        firsts = [self._firsts.pop(tid) for tid in new]
        self._firsts = {tid: row for tid, row in self._firsts.items() if tid in tracks and not tracks[tid].confirmed}
        parts = []
        for f in sorted({int(r.frame[0]) for r in firsts}):
            parts.append(self._follow_back(Regions.merge([r for r in firsts if int(r.frame[0]) == f]), n, shape))
        return Regions.merge(parts)

    def _follow_back(self, born: Regions, n: int, shape: tuple[int, ...],
                     limit: dict[int, int] | None = None) -> Regions:
        """Rows for new tracks in the frames before their first detection, found by optical flow backwards.

        A face is often detected only some frames after it came into view (too small, blurred, turned, partly
        hidden, or between two full detections): each new track is followed back up to ``max_follow`` frames
        through this shot's buffered frames while its box stays in the frame; where the flow is unreliable the
        box is held and grows, as in `_carry`. As forwards (`_not_shrunk`), no box is smaller than the detection it
        is followed back from, less `SIZE_RATE` a frame. A track seen larger than before (whole after a partial
        view, `_whole`) is followed back the same way over its own earlier frames (``limit``).

        Args:
            born: first detections of the tracks, all in one frame.
            n: the newest frame fed (the last buffered gray frame).
            limit: frames to follow back per track id (default and at most ``max_follow``).
        """
        first = int(born.frame[0])
        back = n - first  # position of the first frame from the newest end of the buffer
        scale = self._grays[-1].shape[1] / shape[1]
        boxes, rows = born.xyxy * scale, []
        born_wh = boxes[:, 2:] - boxes[:, :2]
        alive = np.ones(len(born), bool)
        unseen = np.zeros(len(born), np.int64)
        steps = np.array([min(self.max_follow, (limit or {}).get(int(i), self.max_follow)) for i in born.track_id])
        for step in range(1, min(int(steps.max(initial=0)), len(self._grays) - 1 - back) + 1):
            alive &= steps >= step
            a, b = self._grays[-1 - back - step + 1], self._grays[-1 - back - step]
            moved, ok = median_flow(a, b, boxes[alive])
            idx = np.flatnonzero(alive)
            boxes[idx[ok]] = moved[ok]
            # nothing in view changes size faster than SIZE_RATE a frame, backwards in time too: where flow
            # measures a shrinking scale (points on an occluder or at the frame's edge), the box keeps the
            # size of the detection it was followed back from, less SIZE_RATE a frame
            boxes[idx] = at_least(boxes[idx], born_wh[idx] * (1 - SIZE_RATE) ** step)
            unseen[idx] = np.where(ok, 0, unseen[idx] + 1)
            found = born[alive].replace(xyxy=grow_boxes(boxes[alive], unseen[alive]) / scale, source=TRACKER,
                                        frame=first - step)
            found = found.clip(shape[1], shape[0])
            alive &= np.isin(born.track_id, found.track_id)
            if not len(found):
                break
            rows.append(found)
        return Regions.merge(rows)


def analyse_frames(
    frames: Iterable[tuple[int, np.ndarray]],
    detector: Detector,
    settings,
    n_frames: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_frame: Callable[[int, np.ndarray, Regions], None] | None = None,
    fps: float | None = None,
) -> Regions:
    """Detect, track and apply temporal safety over a sequence of frames.

    Args:
        frames: ``(frame_index, frame_bgr)`` in decoding order (e.g. ``VideoReader(path).frames()``).
        detector: ``detector(frame_bgr) -> Regions``.
        settings: an `anonlab.settings.Settings`.
        n_frames: frames in the video (trail extension stops before it); default: the last
            index seen + 1.
        progress: called as ``progress(1)`` after each frame (tqdm's ``update``).
        on_frame: called as ``on_frame(index, frame, regions)`` with each frame's tracked regions (before
            temporal safety, and without the rows that following a new track backwards adds later), e.g. for
            a live preview.
        fps: the frame rate (see `Analyser`).

    Returns:
        Every frame's regions: ``track_id`` set, ``source`` detector / tracker / interpolated / extended.

    Example:
        >>> from anonlab.settings import Settings
        >>> frames = ((n, np.zeros((32, 32, 3), np.uint8)) for n in range(4))
        >>> det = lambda f: Regions(xyxy=[[8, 8, 24, 24]], score=[0.9])
        >>> analyse_frames(frames, det, Settings()).frame.tolist()
        [0, 1, 2, 3]
    """
    analyser = Analyser(detector, settings, fps=fps)
    for n, frame in frames:
        regions = analyser.feed(n, frame)
        if on_frame is not None:
            on_frame(n, frame, regions)
        if progress is not None:
            progress(1)
    return analyser.result(n_frames)


def stitch_chunks(chunks: Iterable[tuple[int, Regions]], n_frames: int, settings,
                  iou_threshold: float = 0.3) -> Regions:
    """Join the regions of consecutive chunks of one video into the regions of the whole video.

    Each chunk was analysed on its own (e.g. by a batch worker): frame numbers start at 0 in the chunk and
    track ids are the chunk's own. Frames are shifted by the chunk's offset, ids renumbered to be unique, and a
    track that ends near the seam continues as a track that starts near it when their boxes overlap (the
    earlier box moved on with its velocity, IoU >= ``iou_threshold``, same label, at most ``max_gap`` frames
    apart). Temporal safety is then recomputed over the whole, so a gap across a seam is filled and lead/trail
    cross the seam as in an unchunked run.

    Args:
        chunks: ``(offset, regions)`` with ``offset`` the chunk's first frame in the video.
        n_frames: frames in the whole video.
        settings: the `Settings` the chunks were analysed with.
    """
    max_gap = int(settings.max_gap)
    parts: list[Regions] = []
    next_id = 0
    previous: Regions = Regions.empty()
    for offset, regions in sorted(chunks, key=lambda c: c[0]):
        obs = regions[~np.isin(regions.source, (INTERPOLATED, EXTENDED))]
        obs = obs.replace(frame=obs.frame + int(offset))
        local = np.unique(obs.track_id[obs.track_id != NO_TRACK])
        mapping = {int(t): next_id + i for i, t in enumerate(local)}
        next_id += len(local)
        mapping.update(_join_at_seam(previous, obs, int(offset), max_gap, iou_threshold))
        ids = np.array([mapping.get(int(t), NO_TRACK) for t in obs.track_id], np.int64)
        obs = obs.replace(track_id=ids)
        parts.append(obs)
        previous = obs
    return apply_temporal_safety(Regions.merge(parts), n_frames, effective_settings(settings))


def _join_at_seam(before: Regions, after: Regions, seam: int, max_gap: int, iou_threshold: float) -> dict[int, int]:
    """Local track id in ``after`` -> global id in ``before`` for tracks that continue across ``seam``."""
    ends = [(tid, *per_frame_boxes(rows)) for tid, rows in iter_tracks(before[before.frame >= seam - 1 - max_gap])]
    starts = [(tid, *per_frame_boxes(rows)) for tid, rows in iter_tracks(after[after.frame <= seam + max_gap])]
    if not ends or not starts:
        return {}
    iou = np.zeros((len(ends), len(starts)), np.float32)
    for i, (_, f0, b0, _, lab0) in enumerate(ends):
        v = end_velocity(f0, b0, forward=False)
        for j, (_, f1, b1, _, lab1) in enumerate(starts):
            gap = int(f1[0] - f0[-1])
            if lab0 == lab1 and 0 < gap <= max_gap + 1:
                iou[i, j] = iou_matrix(b0[-1] + gap * v, b1[0])[0, 0]
    return {int(starts[j][0]): int(ends[i][0]) for i, j in greedy_match(iou, iou_threshold)}
