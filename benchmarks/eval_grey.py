"""Faces on grey copies of the evaluation photos: the curve behind `anonlab.detect.build.FACE_GREY_FACTOR`.

    nice -n 10 .venv/bin/python benchmarks/eval_grey.py [--eval-dir ../shared/eval] [--out out/eval_grey]

Black-and-white footage, grey scans and 16-bit grey TIFFs reach the detector as grey frames, a look the models
were not trained on. Each labelled photo of ``faces/`` is detected in colour and as a grey copy (BGR -> grey ->
BGR, in memory) by the default face detector at `FLOOR` times its threshold (on grey frames the detector's own
grey factor applies on top, so `FLOOR` is below it); each row then keeps the boxes whose score reaches ``f``
times the size-dependent threshold (`anonlab.detect.fusion.size_factor`), as the detector would at ``f`` times
its threshold. Printed per factor: recall, precision, false boxes per image and recall under 16 px, for colour
and for grey, then per source. ``FACE_GREY_FACTOR`` is the factor at which grey precision equals the colour
precision at 1. Predictions are cached under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import anonlab.evaluation.images as images  # noqa: E402
from anonlab.detect.build import FACE_GREY_FACTOR  # noqa: E402
from anonlab.detect.fusion import DEFAULT_THRESH, size_factor  # noqa: E402
from anonlab.evaluation.images import evaluate_rows, load_jsonl  # noqa: E402
from anonlab.settings import Settings  # noqa: E402

#: Detections are made at this factor times the threshold; every row filters them.
FLOOR = 0.5
FACTORS = (0.6, 0.7, 0.8, 0.85, FACE_GREY_FACTOR, 0.9, 1.0)


def grey(image):
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def predictions(labels: Path, out: Path, look: str) -> list[dict]:
    path = out / f"{look}.jsonl"
    if not path.exists():
        read = images.read_image
        if look == "grey":
            images.read_image = lambda p: grey(read(p))
        try:
            images.detect_labelled_set(labels, path, Settings(what=("face",), thresh=DEFAULT_THRESH * FLOOR),
                                       progress=False)
        finally:
            images.read_image = read
    return load_jsonl(path, "predictions")


def at_factor(preds: list[dict], factor: float) -> list[dict]:
    """Each row's boxes that the detector keeps at ``factor`` times its threshold (box: label, x, y, w, h, score)."""
    need = lambda b: factor * DEFAULT_THRESH * float(size_factor(min(b[3], b[4])))  # noqa: E731
    return [{**r, "boxes": [b for b in r["boxes"] if b[5] >= need(b) - 1e-9]} for r in preds]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_eval = Path(os.environ.get("ANONLAB_EVAL", REPO.parent / "shared" / "eval"))
    p.add_argument("--eval-dir", type=Path, default=default_eval)
    p.add_argument("--out", type=Path, default=REPO / "out" / "eval_grey")
    args = p.parse_args(argv)
    labels = args.eval_dir / "faces" / "labels.jsonl"
    args.out.mkdir(parents=True, exist_ok=True)
    truth = load_jsonl(labels, "labels")
    print(f"faces of {labels} ({len(truth)} photos), IoU >= 0.3; grey copies made in memory")
    print(f"{'look':6} {'factor':>6} {'recall':>7} {'precis.':>7} {'FP/img':>7} {'<16 px':>7}")
    for look in ("colour", "grey"):
        preds = predictions(labels, args.out, look)
        for f in FACTORS:
            res = evaluate_rows(truth, at_factor(preds, f))["by_label"]["face"]
            a, small = res["overall"], next(iter(res["by_size"].values()))
            mark = "  <- FACE_GREY_FACTOR" if look == "grey" and f == FACE_GREY_FACTOR else ""
            print(f"{look:6} {f:6.2f} {a['recall']:7.3f} {a['precision']:7.3f} {a['fp_per_image']:7.2f} "
                  f"{small['recall']:7.3f}{mark}")
        for source, t in sorted(evaluate_rows(truth, at_factor(preds, 1.0))["by_label"]["face"]["by_source"].items()):
            print(f"{look:6}   1.00 source {source}: recall {t['recall']:.3f}, precision {t['precision']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
