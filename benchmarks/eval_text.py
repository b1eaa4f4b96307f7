"""Recall of the ``text`` label on generated documents, badges and screens, its cost, and its false boxes.

    nice -n 10 .venv/bin/python benchmarks/eval_text.py [--scenes 20] [--eval-dir ../shared/eval]

No labelled set of personal text (badges, forms, chats) can be redistributed, so the scenes are drawn by
`anonlab.evaluation.textscenes` (Pillow's bundled font, made-up names, a camera's defocus, noise and JPEG):
each line of text is one true box. A line counts as found when the union of the detector's boxes covers 80 %
of it (`text_coverage`; what masking needs). Seeds 0..N-1 are the development scenes the defaults were chosen
on (`anonlab.detect.build.TEXT_LABEL_MAX_SIDE`, `TEXT_LABEL_THRESH`); seeds 1000.. are held back and only
checked. Printed per kind and per letter height, at 720p and 1080p, with the median ms per frame and the load
average. With ``--eval-dir``, frames of the clips in ``videos/`` (street and office footage) give the false
text boxes per frame where the default labels run (boxes there may be real text: signs, plates; an upper bound).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anonlab.detect import detector_for  # noqa: E402
from anonlab.evaluation.textscenes import KINDS, make_text_scene, text_coverage  # noqa: E402
from anonlab.settings import Settings  # noqa: E402

BUCKETS = ((0, 10, "<10 px"), (10, 14, "10-14 px"), (14, 20, "14-20 px"), (20, 1e9, ">=20 px"))


def run(det, seeds, size):
    per_kind, per_height, times = {}, {b[2]: [] for b in BUCKETS}, []
    for kind in KINDS:
        for seed in seeds:
            scene = make_text_scene(kind, seed, size)
            t0 = time.perf_counter()
            r = det(scene.image)
            times.append(time.perf_counter() - t0)
            hit = text_coverage(scene.boxes, r.xyxy, size[0], size[1]) >= 0.8
            per_kind.setdefault(kind, []).extend(hit.tolist())
            for h, ok in zip(scene.heights * 720.0 / size[1], hit):
                per_height[next(name for lo, hi, name in BUCKETS if lo <= h < hi)].append(bool(ok))
    return per_kind, per_height, float(np.median(times)) * 1000


def fmt(d):
    return "  ".join(f"{k} {np.mean(v):.3f} ({len(v)})" for k, v in d.items() if v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=20, help="scenes per kind and seed set")
    ap.add_argument("--eval-dir", type=Path, default=None)
    args = ap.parse_args()
    det = detector_for("text", Settings(what=("text",)))
    print(f"text detector: {det!r}; load average {os.getloadavg()[0]:.2f}")
    for name, seeds in (("development", range(args.scenes)), ("held back", range(1000, 1000 + args.scenes))):
        for size in ((1280, 720), (1920, 1080)):
            kinds, heights, ms = run(det, seeds, size)
            print(f"{name:11s} {size[0]}x{size[1]}: {ms:.0f} ms/frame | by kind: {fmt(kinds)}")
            print(f"{'':11s} {'':9s}  by letter height (at 720p): {fmt(heights)}")
    if args.eval_dir is not None:
        import av

        for clip in sorted((args.eval_dir / "videos").glob("*.mp4")):
            boxes, frames = 0, 0
            with av.open(str(clip)) as c:
                for i, frame in enumerate(c.decode(video=0)):
                    if i % 10:
                        continue
                    boxes += len(det(frame.to_ndarray(format="bgr24")))
                    frames += 1
                    if frames >= 20:
                        break
            print(f"text boxes per frame on {clip.name}: {boxes / max(frames, 1):.2f} ({frames} frames)")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
