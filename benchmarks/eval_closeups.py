"""Faces that fill much of the frame: is each one covered whole by the mask as drawn?

    nice -n 10 .venv/bin/python benchmarks/eval_closeups.py [--eval-dir ../shared/eval] [--pass quick] [--turn 2]

Close-up crops are made in memory, never written:

* ``portrait`` — ``sample_media/portrait.jpg`` (upright), cropped so that the face fills 40 %, 55 %, 70 %, 85 % and
  100 % of the crop's height, each crop at its own size and scaled to 480, 720 and 1080 px high. The face box
  (brow to chin, ear to ear: x 160-370, y 125-340 of the upright 512x600 photo) was set by eye;
* ``eval faces`` — every face of ``faces/`` whose smaller side is at least ``--min-side`` px (64), cropped the same
  way (fills 40-100 %) and scaled to 720 px high (an upscale: softer than a real close-up, the same geometry).

For each crop: the default face detector's boxes (its thorough pass, or with ``--pass quick`` the cheaper pass
video keyframes between thorough ones run), masked as `anonlab.render.mask.mask_boxes` grows them (default
settings: rect, mask_scale 1.3). Figures per source and per fill: the share of the face box's pixels under the
masks (mean and the worst), the crops whose face is fully covered (>= 99 % of its pixels), and recall (a box with
IoU >= 0.3).

With ``--turn K`` every crop is shown turned by K quarter turns (counter-clockwise, `numpy.rot90`): content upside
down (2) or sideways (1, 3) with no metadata to say so. The detector then gets what a photo gets, its orientation
check (`Detector.choose`, `anonlab.detect.orientation`), and the figures are those of the turned crops; the line
"turns chosen" says how often each turn was kept (the right one stands the face upright: ``(4 - K) % 4``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anonlab.detect import build_detector  # noqa: E402
from anonlab.detect.orientation import turn_boxes, turn_frame  # noqa: E402
from anonlab.evaluation.images import load_jsonl, read_image  # noqa: E402
from anonlab.render.mask import mask_boxes  # noqa: E402
from anonlab.regions import FACE, Regions, iou_matrix  # noqa: E402
from anonlab.settings import Settings  # noqa: E402

FILLS = (0.4, 0.55, 0.7, 0.85, 1.0)
#: Grace Hopper's face in the upright sample portrait (512x600), set by eye.
PORTRAIT_FACE = (160, 125, 370, 340)


def log(*args) -> None:
    print(*args, flush=True)


def load() -> str:
    return "load %.1f/%.1f/%.1f" % os.getloadavg()


def crop_around(image: np.ndarray, face, fill: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A crop centred on ``face`` in which the face is ``fill`` of the crop's height (and at most its width);
    the face box in the crop. None where the image is too small to centre such a crop."""
    x1, y1, x2, y2 = face
    fw, fh = x2 - x1, y2 - y1
    ch = fh / fill
    cw = max(ch * 4 / 3 * 0.75, fw / fill)  # about square: a close-up frame
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    h, w = image.shape[:2]
    cx1, cy1 = int(round(max(0, min(cx - cw / 2, w - cw)))), int(round(max(0, min(cy - ch / 2, h - ch))))
    cx2, cy2 = int(round(min(w, cx1 + cw))), int(round(min(h, cy1 + ch)))
    if cx2 - cx1 < fw or cy2 - cy1 < fh:
        return None
    return image[cy1:cy2, cx1:cx2], np.array([x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1], np.float32)


def scaled(crop: np.ndarray, box: np.ndarray, height: int | None):
    if height is None:
        return crop, box
    s = height / crop.shape[0]
    size = (max(1, int(round(crop.shape[1] * s))), height)
    return cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA), box * s


def coverage(regions: Regions, box: np.ndarray, width: int, height: int) -> float:
    """Share of the face box's pixels under the masks as drawn."""
    m = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in mask_boxes(regions, Settings(), width, height).tolist():
        m[y1:y2, x1:x2] = True
    x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
    x2, y2 = int(np.ceil(min(box[2], width))), int(np.ceil(min(box[3], height)))
    inside = m[max(0, y1):y2, max(0, x1):x2]
    return float(inside.mean()) if inside.size else 1.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--eval-dir", type=Path, default=Path(os.environ.get("ANONLAB_EVAL", REPO.parent / "shared" / "eval")))
    p.add_argument("--min-side", type=int, default=64, help="eval faces at least this large (smaller side, px)")
    p.add_argument("--limit", type=int, default=0, help="at most this many eval faces (0: all)")
    p.add_argument("--step", type=int, default=1, help="every STEP-th eval face (before --limit)")
    p.add_argument("--turn", type=int, default=0, choices=(0, 1, 2, 3),
                   help="show every crop turned by this many quarter turns; the detector checks the orientation")
    p.add_argument("--pass", dest="which", choices=("thorough", "quick"), default="thorough",
                   help="the detector's thorough pass (photos, scene cuts) or its quick pass (video keyframes between)")
    args = p.parse_args(argv)
    detector = build_detector(Settings(what=("face",)))
    run = detector if args.which == "thorough" else detector.quick
    if args.turn and args.which == "quick":
        p.error("--turn checks the orientation as photos and scene cuts do: the thorough pass")
    log(f"detector: {detector}, {args.which} pass, crops turned {args.turn}\nmachine: {os.cpu_count()} CPUs, {load()}")
    cases: list[tuple[str, float, np.ndarray, np.ndarray]] = []
    from anonlab.media import open_media

    media = open_media(REPO / "sample_media" / "portrait.jpg")
    portrait = next(iter(media.frames()))[1]
    media.close()
    for fill in FILLS:
        made = crop_around(portrait, PORTRAIT_FACE, fill)
        if made is None:
            continue
        for height in (None, 480, 720, 1080):
            image, box = scaled(*made, height)
            cases.append((f"portrait {'own size' if height is None else f'{height} px'}", fill, image, box))
    labels = args.eval_dir / "faces" / "labels.jsonl"
    faces = []
    if labels.exists():
        for row in load_jsonl(labels):
            for b in row["boxes"]:
                if b[0] == "face" and min(b[3], b[4]) >= args.min_side:
                    faces.append((row["image"], (b[1], b[2], b[1] + b[3], b[2] + b[4])))
        faces = faces[::max(1, args.step)]
        if args.limit:
            faces = faces[:args.limit]
        for image_name, face in faces:
            image = read_image(labels.parent / image_name)
            for fill in FILLS:
                made = crop_around(image, face, fill)
                if made is not None:
                    cases.append(("eval faces 720 px", fill, *scaled(*made, 720)))
    log(f"{len(cases)} close-up crops ({len(faces)} eval faces of >= {args.min_side} px)")
    rows: dict[tuple[str, float], list[tuple[float, bool]]] = {}
    chosen = np.zeros(4, int)
    for source, fill, image, box in cases:
        if args.turn:
            h, w = image.shape[:2]
            image = np.ascontiguousarray(turn_frame(image, args.turn))
            box = turn_boxes(box[None], args.turn, w, h)[0]
            turn, r = detector.choose(image)
            chosen[turn] += 1
        else:
            r = run(image)
        r = r[r.label == FACE]
        found = bool(len(r)) and float(iou_matrix(box[None], r.xyxy).max()) >= 0.3
        rows.setdefault((source, fill), []).append((coverage(r, box, image.shape[1], image.shape[0]), found))
    log("\nsource | face fills | crops | share of the face under masks: mean / worst | fully covered (>= 99 %) | recall")
    by_source: dict[str, list] = {}
    for (source, fill), vals in sorted(rows.items()):
        cov = np.array([v[0] for v in vals])
        found = np.array([v[1] for v in vals])
        by_source.setdefault(source, []).extend(vals)
        log(f"{source} | {fill:.0%} | {len(vals)} | {cov.mean():.3f} / {cov.min():.3f} | {(cov >= 0.99).sum()}/{len(vals)} "
            f"| {found.mean():.3f}")
    log("")
    for source, vals in by_source.items():
        cov = np.array([v[0] for v in vals])
        log(f"{source} (all fills) | {len(vals)} | {cov.mean():.3f} / {cov.min():.3f} | {(cov >= 0.99).sum()}/{len(vals)} | "
            f"{np.mean([v[1] for v in vals]):.3f}")
    if args.turn:
        log(f"turns chosen (0-3): {chosen.tolist()}; the upright one is {(4 - args.turn) % 4}")
    log(f"\n{load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
