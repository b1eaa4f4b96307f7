"""Helpers for the teaching notebooks: a generated labelled face set, misses as thumbnails, a blinking detector.

The evaluation notebook (``notebooks/evaluate.ipynb``) must run in CI without the evaluation data, on real
detectors, and say something true about them. So the generated set pastes a *real* face, the public-domain
portrait in ``sample_media/portrait.jpg`` (Grace Hopper), into textured backgrounds at sizes from 5 px to
80 px wide, mirrored, lit differently and JPEG-compressed; the box of the face in the portrait is known, so
every pasted face has an exact label. Faces under 16 px are where detectors miss, and the set has them.

It is a teaching set, not a benchmark: one identity, one pose, clean backgrounds. Figures on it show how
the harness works and how recall falls with size; figures to trust come from the evaluation sets (`benchmarks/`).

Example:
    >>> import tempfile
    >>> labels = make_labelled_set(tempfile.mkdtemp(), n_images=2, seed=1)     # doctest: +SKIP
    >>> labels.name                                                             # doctest: +SKIP
    'labels.jsonl'
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from anonlab.errors import AnonlabError
from anonlab.evaluation.images import _xyxy, load_jsonl, match
from anonlab.media import read_photo
from anonlab.regions import FACE, Regions, iou_matrix

__all__ = [
    "PORTRAIT",
    "PORTRAIT_FACE_BOX",
    "BlinkingDetector",
    "CachedDetector",
    "make_labelled_set",
    "make_scene",
    "missed_boxes",
    "portrait_head",
    "subset_labels",
    "thumbnail",
]

#: The bundled public-domain portrait (displayed orientation after EXIF).
PORTRAIT = Path(__file__).resolve().parents[2] / "sample_media" / "portrait.jpg"
#: Face box ``x1, y1, x2, y2`` in the displayed portrait (512 x 600): hairline to chin, cheek to cheek. Set by
#: hand between the boxes CenterFace (171, 127, 348, 334) and YuNet (178, 119, 355, 338) draw on it.
PORTRAIT_FACE_BOX = (174.0, 122.0, 352.0, 336.0)
#: Margin around the face kept when the head is cut out, as a fraction of the face size on each side.
HEAD_MARGIN = 0.45


def portrait_head(path: str | Path | None = None) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The portrait's head and shoulders cut out: ``(image_bgr, face_box_in_the_cut)``."""
    path = Path(path) if path else PORTRAIT
    if not path.exists():
        raise AnonlabError(f"{path}: the sample portrait is missing (it ships in the repository's sample_media/)")
    image = read_photo(path).image
    x1, y1, x2, y2 = PORTRAIT_FACE_BOX
    mw, mh = (x2 - x1) * HEAD_MARGIN, (y2 - y1) * HEAD_MARGIN
    cx1, cy1 = int(max(0, x1 - mw)), int(max(0, y1 - mh))
    cx2, cy2 = int(min(image.shape[1], x2 + mw)), int(min(image.shape[0], y2 + mh))
    return image[cy1:cy2, cx1:cx2].copy(), (x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1)


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    coarse = rng.uniform(30, 200, (max(2, height // 24), max(2, width // 24), 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_scene(width: int = 320, height: int = 240, face_sides: Sequence[float] = (24, 48), *, seed: int = 0,
               head: tuple[np.ndarray, tuple] | None = None) -> tuple[np.ndarray, Regions]:
    """One generated photo with the portrait's face pasted once per entry of ``face_sides`` (face width, px).

    Heads do not overlap; a head that finds no room after 200 tries is left out. Returns
    ``(image_bgr, boxes)`` with exact face boxes (label face).
    """
    rng = np.random.default_rng(seed)
    head_img, (fx1, fy1, fx2, fy2) = head or portrait_head()
    image = _background(width, height, rng)
    placed: list[tuple[int, int, int, int]] = []
    boxes = []
    for side in face_sides:
        s = float(side) / (fx2 - fx1)
        hw, hh = max(1, round(head_img.shape[1] * s)), max(1, round(head_img.shape[0] * s))
        if hw > width or hh > height:
            continue
        for _ in range(200):
            x, y = int(rng.integers(0, width - hw + 1)), int(rng.integers(0, height - hh + 1))
            if all(x + hw <= a or c <= x or y + hh <= b or d <= y for a, b, c, d in placed):
                break
        else:
            continue
        patch = cv2.resize(head_img, (hw, hh), interpolation=cv2.INTER_AREA)
        box = np.array([fx1 * s, fy1 * s, fx2 * s, fy2 * s])
        if rng.random() < 0.5:  # mirrored
            patch = patch[:, ::-1]
            box = np.array([hw - box[2], box[1], hw - box[0], box[3]])
        gain, bias = rng.uniform(0.35, 1.2), rng.uniform(-30, 20)  # lighting, from dim to bright
        patch = np.clip(patch.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        image[y:y + hh, x:x + hw] = patch
        placed.append((x, y, x + hw, y + hh))
        boxes.append(box + [x, y, x, y])
    regions = Regions(xyxy=np.array(boxes, np.float32).reshape(-1, 4), label=np.full(len(boxes), FACE))
    return image, regions


def make_labelled_set(folder: str | Path, n_images: int = 10, *, size: tuple[int, int] = (320, 240),
                      faces_per_image: int = 3, face_sides: tuple[float, float] = (5.0, 80.0), seed: int = 0,
                      jpeg_quality: int = 85) -> Path:
    """Write a generated labelled face set (``images/*.jpg`` + ``labels.jsonl``) and return the labels path.

    Face widths are drawn log-uniformly from ``face_sides``, so every size bucket of the harness
    (``<16``, ``16-32``, ``32-64``, ``>=64`` px) gets faces. Lighting runs from dim to bright, some images are
    out of focus, all carry sensor noise. The format
    is the one of the evaluation sets (source ``synthetic_portrait``, exhaustively labelled).
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    head = portrait_head()
    lo, hi = math.log(face_sides[0]), math.log(face_sides[1])
    lines = []
    for i in range(n_images):
        sides = np.exp(rng.uniform(lo, hi, faces_per_image))
        image, boxes = make_scene(size[0], size[1], sides, seed=int(rng.integers(1 << 31)), head=head)
        if rng.random() < 0.4:  # out of focus
            image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.6, 2.0)))
        noise = rng.normal(0, rng.uniform(2, 10), image.shape)  # sensor noise
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
        name = f"images/synthetic_{i:03d}.jpg"
        if not cv2.imwrite(str(folder / name), image, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]):
            raise AnonlabError(f"cannot write {folder / name}")
        records = [{k: r[k] for k in ("label", "x", "y", "w", "h")} for r in boxes.to_records(with_track=False, ndigits=1)]
        lines.append({"image": name, "width": size[0], "height": size[1], "source": "synthetic_portrait",
                      "exhaustive": True, "boxes": records})
    labels = folder / "labels.jsonl"
    labels.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return labels


def subset_labels(labels_path: str | Path, out_path: str | Path, limit: int, *, seed: int = 0) -> Path:
    """A random subset of ``limit`` images of a labelled set, image paths made absolute (runs anywhere)."""
    labels_path, out_path = Path(labels_path), Path(out_path)
    lines = [json.loads(line) for line in labels_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if limit < len(lines):
        lines = [lines[i] for i in sorted(random.Random(seed).sample(range(len(lines)), limit))]
    for line in lines:
        line["image"] = str((labels_path.parent / line["image"]).resolve())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return out_path


def missed_boxes(labels_path: str | Path, pred_path: str | Path, *, label: str = "face", thresh: float | None = None,
                 iou: float = 0.3) -> list[dict]:
    """True boxes no prediction matched (same greedy matching as `anonlab.evaluation.images.evaluate`).

    Returns:
        One dict per miss: ``image`` (path as in the labels), ``box`` ``(x, y, w, h)``, ``side`` (smaller side,
        px) and ``best_iou`` (of the closest prediction of that label at that threshold), smallest first.
    """
    labels = load_jsonl(labels_path, "labels")
    preds = {r["image"]: r for r in load_jsonl(pred_path, "pred")}
    out = []
    for row in labels:
        gt = [b for b in row["boxes"] if b[0] == label]
        pr = [b for b in preds.get(row["image"], {"boxes": []})["boxes"]
              if b[0] == label and (thresh is None or b[5] >= thresh)]
        gxy, pxy = _xyxy(gt), _xyxy(pr)
        matched = {g for g, _, _ in match(gxy, pxy, iou)}
        ious = iou_matrix(gxy, pxy) if len(pxy) else np.zeros((len(gxy), 0))
        for g, b in enumerate(gt):
            if g not in matched:
                out.append({"image": row["image"], "box": tuple(b[1:5]), "side": float(min(b[3], b[4])),
                            "best_iou": float(ious[g].max()) if ious.shape[1] else 0.0})
    return sorted(out, key=lambda m: m["side"])


def thumbnail(image: np.ndarray, box: Sequence[float], size: int = 72, margin: float = 0.5) -> np.ndarray:
    """A square RGB thumbnail of ``box`` (``x, y, w, h``) with ``margin`` context, for a matplotlib grid."""
    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    x1, y1 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x2, y2 = int(round(cx + side / 2)), int(round(cy + side / 2))
    pad = max(0, -x1, -y1, x2 - image.shape[1], y2 - image.shape[0])
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0)) if pad else image
    crop = padded[y1 + pad:y2 + pad, x1 + pad:x2 + pad]
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_NEAREST if side < size else cv2.INTER_AREA)
    bx1, by1 = (x - x1) * size / side, (y - y1) * size / side
    cv2.rectangle(crop, (int(bx1), int(by1)), (int(bx1 + w * size / side), int(by1 + h * size / side)), (0, 0, 255), 1)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


def _key(frame: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest()


class CachedDetector:
    """Wraps a detector and remembers its answer per frame content, so a clip can be re-analysed for free."""

    def __init__(self, detector: Callable[[np.ndarray], Regions]):
        self.detector = detector
        self.name = getattr(detector, "name", "detector")
        self.models = getattr(detector, "models", [])
        self.cache: dict[bytes, Regions] = {}

    def __call__(self, frame: np.ndarray) -> Regions:
        key = _key(frame)
        if key not in self.cache:
            self.cache[key] = self.detector(frame)
        return self.cache[key].copy()


class BlinkingDetector:
    """A detector that returns nothing on a random ``rate`` of frames: the failure tracking must survive.

    Which frames blink depends on the frame content and ``seed`` only, so re-runs agree.
    """

    def __init__(self, detector: Callable[[np.ndarray], Regions], rate: float = 0.25, seed: int = 0):
        self.detector, self.rate, self.seed = detector, float(rate), int(seed)
        self.name = f"{getattr(detector, 'name', 'detector')} (blinking {rate:.0%})"
        self.models = getattr(detector, "models", [])

    def __call__(self, frame: np.ndarray) -> Regions:
        h = int.from_bytes(hashlib.blake2b(_key(frame) + self.seed.to_bytes(8, "little"), digest_size=8).digest(), "little")
        if h / 2**64 < self.rate:
            return Regions.empty()
        return self.detector(frame)
