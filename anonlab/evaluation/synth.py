"""Semi-synthetic video clips with exact per-frame ground truth, made from one labelled photo.

A virtual camera pans and zooms over the photo (no rotation, so every box maps exactly to a box); each
output frame averages several renders across the shutter time (motion blur); the clip is encoded with
libx264 (compression artefacts). The true boxes are transformed with the same camera and written as one JSON
line per frame (the ``labels.jsonl`` box format plus ``frame`` and ``object``, the box's index in the photo, so
identity is known too).

The output frame has the photo's size by default and the zoom stays in ``zoom`` (default 1.0-1.35), so
objects keep roughly their size in the photo: per-frame recall on the clip is comparable with the detector's
per-image recall on the photo. A box is part of a frame's truth while at least ``min_visible`` of it is inside
the frame (then clipped to the frame).

Two kinds of event make a clip hard for the detector in the way real footage is (a face partly
hidden behind a passer-by can stay bare for seconds): an `Occlusion` slides a textured shape (a shoulder, a
pole) over part of one object and away again, and a `Shake` smears every frame of a stretch with a strong
linear motion blur (a shaken camera, a fast pan). During an occlusion the object's truth is the part still
visible: what a viewer of the output could see unless it is masked.

`synthetic_photo` draws a labelled photo (textured background, face-like ellipses, plate-like rectangles), so
tests and notebooks can make clips without the evaluation data.

Example:
    >>> photo, boxes = synthetic_photo(320, 180, n_faces=2, n_plates=1, seed=1)
    >>> clip = SynthClip.plan(photo.shape[1], photo.shape[0], n_frames=4, seed=1)
    >>> frames = list(render_frames(photo, boxes, clip))
    >>> len(frames), frames[0][1].shape
    (4, (180, 320, 3))
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
from av.video.reformatter import VideoReformatter
import numpy as np

from anonlab.errors import AnonlabError
from anonlab.regions import FACE, PLATE, Regions


#: Sides an `Occlusion` can come from.
SIDES = ("left", "right", "top", "bottom")


@dataclass(frozen=True)
class Occlusion:
    """Something passing in front of one object (frames ``start`` to ``stop - 1``).

    It slides in from ``side`` over ``ramp`` frames until it hides ``cover`` of the object's width (left/right)
    or height (top/bottom), stays, and slides out over the last ``ramp`` frames. Its shape reaches well beyond
    the object (half the object's size outward and a third of it along the other axis on both ends, as a
    shoulder or a pole does) and carries its own texture (``seed``), so it moves differently from the object.

    Attributes:
        obj: index of the object in the photo's boxes.
        start, stop: first frame and the frame after the last (end-exclusive, like every range in anonlab).
        cover: largest share of the object hidden, in (0, 1): a partial occlusion leaves something to mask.
        side: one of `SIDES`.
        ramp: frames to slide in (and out).
        seed: texture seed.
    """

    obj: int
    start: int
    stop: int
    cover: float = 0.6
    side: str = "left"
    ramp: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.side not in SIDES or not 0.0 < self.cover < 1.0 or self.stop <= self.start or self.ramp < 1:
            raise AnonlabError(f"an occlusion needs a side in {SIDES}, 0 < cover < 1, start < stop and ramp >= 1")

    def share(self, n: int) -> float:
        """Share of the object hidden at frame ``n``."""
        if not self.start <= n < self.stop:
            return 0.0
        return self.cover * min(1.0, (n - self.start + 1) / self.ramp, (self.stop - n) / self.ramp)

    def rect(self, box: np.ndarray, n: int) -> np.ndarray | None:
        """The occluder at frame ``n`` over an object whose (unclipped) box is ``box``: float xyxy, or None."""
        share = self.share(n)
        if share <= 0:
            return None
        x1, y1, x2, y2 = (float(v) for v in box)
        w, h = x2 - x1, y2 - y1
        if self.side in ("left", "right"):
            depth, across = self.cover * w + 0.5 * w, (y1 - h / 3, y2 + h / 3)
            edge = x1 + share * w if self.side == "left" else x2 - share * w
            lo, hi = (edge - depth, edge) if self.side == "left" else (edge, edge + depth)
            return np.array([lo, across[0], hi, across[1]], np.float32)
        depth, across = self.cover * h + 0.5 * h, (x1 - w / 3, x2 + w / 3)
        edge = y1 + share * h if self.side == "top" else y2 - share * h
        lo, hi = (edge - depth, edge) if self.side == "top" else (edge, edge + depth)
        return np.array([across[0], lo, across[1], hi], np.float32)

    def visible(self, box: np.ndarray, n: int) -> np.ndarray:
        """The part of ``box`` the occluder leaves visible at frame ``n`` (xyxy)."""
        share = self.share(n)
        x1, y1, x2, y2 = (float(v) for v in box)
        w, h = x2 - x1, y2 - y1
        cut = {"left": (x1 + share * w, y1, x2, y2), "right": (x1, y1, x2 - share * w, y2),
               "top": (x1, y1 + share * h, x2, y2), "bottom": (x1, y1, x2, y2 - share * h)}[self.side]
        return np.array(cut, np.float32)


@dataclass(frozen=True)
class Shake:
    """A strong linear motion blur over frames ``start`` to ``stop - 1``: a shaken camera, a fast pan.

    Attributes:
        length: blur length in output pixels (the detectors lose faces of ~30 px from about 12 px on).
        angle: direction of the smear in degrees (0: horizontal).
    """

    start: int
    stop: int
    length: float = 15.0
    angle: float = 0.0

    def kernel(self) -> np.ndarray:
        """The normalised line kernel (odd size)."""
        size = max(3, int(np.ceil(self.length)) | 1)
        k = np.zeros((size, size), np.float32)
        c = size // 2
        t = np.linspace(-self.length / 2, self.length / 2, 4 * size)
        a = np.deg2rad(self.angle)
        xs = np.clip(np.rint(c + t * np.cos(a)).astype(int), 0, size - 1)
        ys = np.clip(np.rint(c + t * np.sin(a)).astype(int), 0, size - 1)
        k[ys, xs] = 1.0
        return k / k.sum()


@dataclass(frozen=True)
class SynthClip:
    """A camera path over a photo: per frame, scale ``s`` and window origin ``(x0, y0)`` in photo pixels.

    A photo point ``(x, y)`` appears at ``(s * (x - x0), s * (y - y0))`` in the frame.

    Attributes:
        width, height: output frame size (even, for yuv420p).
        fps: frame rate.
        path: ``(n_frames, 3)`` array of ``s, x0, y0`` at the middle of each frame's exposure.
        photo_size: ``(width, height)`` of the photo.
        shutter: exposure as a fraction of the frame interval (motion blur length).
        blur_samples: renders averaged per frame (1 = no motion blur).
        occlusions: `Occlusion` events (see `with_events`).
        shakes: `Shake` events.
    """

    width: int
    height: int
    fps: float
    path: np.ndarray
    photo_size: tuple[int, int]
    shutter: float = 0.5
    blur_samples: int = 5
    occlusions: tuple = ()
    shakes: tuple = ()

    def with_events(self, occlusions=(), shakes=()) -> "SynthClip":
        """This clip with occlusions and shakes (`Occlusion`, `Shake`) added."""
        return dataclasses.replace(self, occlusions=self.occlusions + tuple(occlusions),
                                   shakes=self.shakes + tuple(shakes))

    @property
    def n_frames(self) -> int:
        return len(self.path)

    @classmethod
    def plan(cls, photo_width: int, photo_height: int, n_frames: int = 60, *, fps: float = 25.0,
             size: tuple[int, int] | None = None, zoom: tuple[float, float] = (1.0, 1.35), keypoints: int = 3,
             shutter: float = 0.5, blur_samples: int = 5, seed: int = 0) -> "SynthClip":
        """A smooth random pan/zoom: ``keypoints`` random camera poses joined by eased interpolation.

        Args:
            photo_width, photo_height: photo size in pixels.
            n_frames, fps: clip length and rate.
            size: output ``(width, height)``; default the photo size (rounded down to even).
            zoom: range of the zoom, 1.0 = the output just covers the photo's width or height.
            keypoints: camera poses visited (more = faster, more varied motion).
            seed: random seed (same seed, same path).
        """
        if n_frames < 1 or keypoints < 1:
            raise AnonlabError("a synthetic clip needs at least one frame and one keypoint")
        w, h = size or (photo_width, photo_height)
        w, h = max(2, int(w) // 2 * 2), max(2, int(h) // 2 * 2)
        cover = max(w / photo_width, h / photo_height)  # scale at which the frame just fits in the photo
        rng = np.random.default_rng(seed)
        poses = np.column_stack([rng.uniform(*zoom, keypoints), rng.uniform(0, 1, keypoints),
                                 rng.uniform(0, 1, keypoints)])
        path = np.stack([cls._pose(poses, t, cover, (w, h), (photo_width, photo_height))
                         for t in np.linspace(0, 1, n_frames)])
        return cls(w, h, float(fps), path, (int(photo_width), int(photo_height)), float(shutter),
                   max(1, int(blur_samples)))

    @staticmethod
    def _pose(poses: np.ndarray, t: float, cover: float, size, photo) -> np.ndarray:
        """``s, x0, y0`` at normalised time ``t`` in [0, 1]."""
        if len(poses) == 1:
            z, u, v = poses[0]
        else:
            x = t * (len(poses) - 1)
            i = min(int(x), len(poses) - 2)
            a = x - i
            a = 0.5 - 0.5 * np.cos(np.pi * a)  # ease in and out between poses
            z, u, v = poses[i] + a * (poses[i + 1] - poses[i])
        s = cover * z
        slack_x, slack_y = photo[0] - size[0] / s, photo[1] - size[1] / s
        return np.array([s, u * max(slack_x, 0.0), v * max(slack_y, 0.0)])

    def pose_at(self, frame: float) -> np.ndarray:
        """Camera ``s, x0, y0`` at a fractional frame index (linear between planned frames; for motion blur)."""
        if self.n_frames == 1:
            return self.path[0]
        f = float(np.clip(frame, 0, self.n_frames - 1))
        i = min(int(f), self.n_frames - 2)
        a = f - i
        return self.path[i] + a * (self.path[i + 1] - self.path[i])

    def placed(self, boxes: Regions, frame: int) -> Regions:
        """The photo's boxes moved into ``frame``, unclipped; ``track_id`` = index in the photo."""
        s, x0, y0 = self.path[frame]
        xyxy = (boxes.xyxy - np.array([x0, y0, x0, y0], np.float32)) * np.float32(s)
        return boxes.replace(xyxy=xyxy, track_id=np.arange(len(boxes)), frame=frame)

    def transform(self, boxes: Regions, frame: int, min_visible: float = 0.5) -> Regions:
        """The photo's boxes as they appear in ``frame``: moved, clipped; ``track_id`` = index in the photo.

        A box stays while at least ``min_visible`` of it is inside the frame; an occluded box is cut to the part
        the occluder leaves visible (kept whatever its size: a part of a face is still a face).
        """
        full = self.placed(boxes, frame)
        clipped = full.clip(self.width, self.height)
        if not len(clipped):
            return clipped
        area_full = full.area[np.isin(full.track_id, clipped.track_id)]
        kept = clipped[clipped.area >= min_visible * area_full]
        for occ in self.occlusions:
            rows = np.flatnonzero(kept.track_id == occ.obj)
            if len(rows) and occ.share(frame) > 0:
                xyxy = kept.xyxy.copy()
                xyxy[rows] = occ.visible(full.xyxy[occ.obj], frame)
                kept = kept.replace(xyxy=xyxy).clip(self.width, self.height)
        return kept

    def occluders(self, boxes: Regions, frame: int) -> list[tuple[np.ndarray, int]]:
        """``(rect xyxy, texture seed)`` of every occluder in ``frame``, in the order they are drawn."""
        full = self.placed(boxes, frame)
        out = []
        for occ in self.occlusions:
            if 0 <= occ.obj < len(full):
                rect = occ.rect(full.xyxy[occ.obj], frame)
                if rect is not None:
                    out.append((rect, occ.seed))
        return out

    def matrix(self, pose: np.ndarray) -> np.ndarray:
        s, x0, y0 = pose
        return np.array([[s, 0.0, -s * x0], [0.0, s, -s * y0]], np.float64)


def render_frames(photo: np.ndarray, boxes: Regions, clip: SynthClip,
                  min_visible: float = 0.5) -> Iterator[tuple[int, np.ndarray, Regions]]:
    """Yield ``(n, frame_bgr, truth)`` for each frame of ``clip`` (uncompressed)."""
    if photo.shape[1] != clip.photo_size[0] or photo.shape[0] != clip.photo_size[1]:
        raise AnonlabError("the clip was planned for a photo of another size")
    m = clip.blur_samples
    offsets = (np.linspace(-0.5, 0.5, m) * clip.shutter) if m > 1 else np.zeros(1)
    for n in range(clip.n_frames):
        acc = np.zeros((clip.height, clip.width, 3), np.float32)
        for off in offsets:
            pose = clip.pose_at(n + off)
            acc += cv2.warpAffine(photo, clip.matrix(pose), (clip.width, clip.height), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT_101).astype(np.float32)
        frame = np.clip(acc / len(offsets) + 0.5, 0, 255).astype(np.uint8)
        for shake in clip.shakes:
            if shake.start <= n < shake.stop:
                frame = cv2.filter2D(frame, -1, shake.kernel(), borderType=cv2.BORDER_REFLECT_101)
        for rect, seed in clip.occluders(boxes, n):
            draw_occluder(frame, rect, seed)
        yield n, frame, clip.transform(boxes, n, min_visible)


def draw_occluder(frame: np.ndarray, rect: np.ndarray, seed: int) -> None:
    """Paint an opaque textured shape (cloth-like: a dark colour with coarse folds) over ``rect``, in place.

    The texture is tied to the shape's own corner, so it moves with the shape and not with the scene.
    """
    x1, y1, x2, y2 = (int(round(float(v))) for v in rect)
    w, h = x2 - x1, y2 - y1
    if w <= 0 or h <= 0:
        return
    rng = np.random.default_rng(seed)
    color = rng.uniform(30, 110, 3)
    folds = cv2.resize(rng.uniform(0.6, 1.3, (max(2, h // 6), max(2, w // 6))).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_LINEAR)
    patch = np.clip(folds[:, :, None] * color[None, None], 0, 255).astype(np.uint8)
    fx1, fy1, fx2, fy2 = max(x1, 0), max(y1, 0), min(x2, frame.shape[1]), min(y2, frame.shape[0])
    if fx2 > fx1 and fy2 > fy1:
        frame[fy1:fy2, fx1:fx2] = patch[fy1 - y1:fy2 - y1, fx1 - x1:fx2 - x1]


def write_clip(photo: np.ndarray, boxes: Regions, clip: SynthClip, out: str | Path, *, crf: int = 23,
               labels_out: str | Path | None = None, source: str = "synthetic", min_visible: float = 0.5) -> Regions:
    """Render ``clip`` and encode it with libx264 (yuv420p, ``crf``) to ``out``; return the truth of all frames.

    ``labels_out`` (default: ``out`` with ``.labels.jsonl``) receives one JSON line per frame:
    ``{"frame", "width", "height", "source", "boxes": [{"label", "x", "y", "w", "h", "object"}]}``.
    """
    out = Path(out)
    labels_out = Path(labels_out) if labels_out else out.with_suffix(".labels.jsonl")
    truth = []
    with av.open(str(out), "w") as container, open(labels_out, "w", encoding="utf-8") as fh:
        stream = container.add_stream("libx264", rate=_fps_fraction(clip.fps))
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
        # one thread for the colour conversion and the encoder: threaded swscale and frame-threaded x264 gave
        # different bytes from run to run, and a benchmark must see the same clip every time
        # (and no MB-tree: it made x264 give other bytes for the same frames, 8 of 18 clips between two runs)
        stream.options = {"crf": str(int(crf)), "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
        reformatter = VideoReformatter()
        for n, frame, gt in render_frames(photo, boxes, clip, min_visible):
            yuv = reformatter.reformat(av.VideoFrame.from_ndarray(frame, format="bgr24"), format="yuv420p", threads=1)
            for packet in stream.encode(yuv):
                container.mux(packet)
            boxes_json = [{**{k: rec[k] for k in ("label", "x", "y", "w", "h")}, "object": int(obj)}
                          for rec, obj in zip(gt.to_records(with_track=False, ndigits=2), gt.track_id.tolist())]
            fh.write(json.dumps({"frame": n, "width": clip.width, "height": clip.height, "source": source,
                                 "boxes": boxes_json}) + "\n")
            truth.append(gt)
        for packet in stream.encode():
            container.mux(packet)
    return Regions.merge(truth)


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def load_labelled_photo(labels_path: str | Path, index: int) -> tuple[np.ndarray, Regions, str]:
    """Line ``index`` of a ``labels.jsonl`` set: ``(image_bgr, boxes, image_path)``."""
    labels_path = Path(labels_path)
    with open(labels_path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i == index:
                rec = json.loads(line)
                break
        else:
            raise AnonlabError(f"{labels_path.name} has no line {index + 1}")
    image_path = labels_path.parent / rec["image"]
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise AnonlabError(f"cannot read {image_path.name}")
    return image, Regions.from_records(rec["boxes"]), str(image_path)


def synthetic_photo(width: int = 640, height: int = 360, n_faces: int = 3, n_plates: int = 1,
                    seed: int = 0, face_size: tuple[int, int] = (24, 64)) -> tuple[np.ndarray, Regions]:
    """A generated labelled photo: smooth random texture with face-like ellipses and plate-like rectangles.

    Objects do not overlap. Returns ``(image_bgr, boxes)`` (faces first, then plates).
    """
    rng = np.random.default_rng(seed)
    # muted texture (grey 40-190 with a little colour): optical flow has something to follow, and no
    # background pixel looks like the skin or plate colours below
    coarse = rng.uniform(40, 160, (max(2, height // 8), max(2, width // 8), 1))
    tint = rng.uniform(-15, 15, (max(2, height // 8), max(2, width // 8), 3))
    image = cv2.resize((coarse + tint).astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    image = np.clip(image + rng.uniform(0, 30, (height, width, 1)), 0, 255).astype(np.uint8)
    boxes, labels = [], []

    def place(w: int, h: int) -> tuple[int, int] | None:
        for _ in range(200):
            x, y = int(rng.integers(0, max(1, width - w))), int(rng.integers(0, max(1, height - h)))
            if all(x + w <= b[0] or b[2] <= x or y + h <= b[1] or b[3] <= y for b in boxes):
                return x, y
        return None

    for _ in range(n_faces):
        w = int(rng.integers(*face_size))
        h = int(w * 1.25)
        spot = place(w, h)
        if spot is None:
            continue
        x, y = spot
        centre, axes = (x + w // 2, y + h // 2), (w // 2, h // 2)
        cv2.ellipse(image, centre, axes, 0, 0, 360, (120, 160, 210), -1, cv2.LINE_AA)
        for ex in (x + w * 0.32, x + w * 0.68):
            cv2.circle(image, (int(ex), int(y + h * 0.4)), max(1, w // 12), (40, 30, 30), -1, cv2.LINE_AA)
        cv2.ellipse(image, (centre[0], int(y + h * 0.72)), (max(1, w // 6), max(1, h // 16)), 0, 0, 360,
                    (60, 60, 150), -1, cv2.LINE_AA)
        boxes.append((x, y, x + w, y + h))
        labels.append(FACE)
    for _ in range(n_plates):
        w = int(rng.integers(60, 120))
        h = max(8, w // 4)
        spot = place(w, h)
        if spot is None:
            continue
        x, y = spot
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), (235, 235, 235), -1)
        text = "".join(rng.choice(list("ABCDEFGHJKLMNPRSTUVXYZ0123456789"), 6))
        cv2.putText(image, text, (x + 3, y + h - 3), cv2.FONT_HERSHEY_SIMPLEX, h / 32, (20, 20, 20), 1,
                    cv2.LINE_AA)
        boxes.append((x, y, x + w, y + h))
        labels.append(PLATE)
    return image, Regions(xyxy=np.array(boxes, np.float32).reshape(-1, 4), label=labels)
