"""Detection evaluation: run detectors over a labelled image set, match, and measure.

Labels and predictions share one JSON-lines format, one image a line (the ``labels.jsonl`` of an evaluation set):
``{"image": "images/x.jpg", "width": W, "height": H, "source": "...", "boxes": [{"label", "x", "y", "w", "h",
"score"?}]}`` (pixels, top-left origin; ``image`` relative to the labels file). `detect_labelled_set` writes
predictions in that format (plus ``ms``, the detection time of the image).

Matching is greedy by IoU: all (prediction, truth) pairs of one image and label at or above ``iou`` are
taken in decreasing IoU, each box used once. Figures:

- recall (all images), precision / F1 / false positives per image (only on *exhaustive* images: sets that
  label one object per image even where more are visible measure recall only), mean IoU of matches;
- recall by size of the true box's smaller side (``<16``, ``16-32``, ``32-64``, ``>=64`` px) and precision by
  size of the predicted box;
- the same by ``source``; ms per image.

A source is recall-only when it is in `RECALL_ONLY_SOURCES` or its lines carry ``"exhaustive": false``.

Example:
    >>> result = evaluate("faces/labels.jsonl", "pred.jsonl")          # doctest: +SKIP
    >>> print(format_summary(result))                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from anonlab import detect
from anonlab.errors import AnonlabError
from anonlab.regions import LABELS, iou_matrix

#: Sources that label exactly one object per image even where several are visible (see the eval README).
RECALL_ONLY_SOURCES = frozenset({"openalpr_us", "openalpr_eu", "openalpr_br"})

#: Size buckets of a box's smaller side, in pixels: ``(name, low, high)``, low inclusive.
SIZE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<16", 0.0, 16.0),
    ("16-32", 16.0, 32.0),
    ("32-64", 32.0, 64.0),
    (">=64", 64.0, math.inf),
)

DEFAULT_IOU = 0.3


# --- loading ---------------------------------------------------------------------------------------


def _box(rec, where: str, need_score: bool) -> tuple[str, float, float, float, float, float]:
    if not isinstance(rec, dict):
        raise AnonlabError(f"{where}: a box must be an object with label, x, y, w, h")
    try:
        label = rec["label"]
        x, y, w, h = (float(rec[k]) for k in ("x", "y", "w", "h"))
        score = float(rec["score"]) if "score" in rec else (None if need_score else 1.0)
    except KeyError as exc:
        raise AnonlabError(f"{where}: box lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError):
        raise AnonlabError(f"{where}: box coordinates and score must be numbers") from None
    if score is None:
        raise AnonlabError(f"{where}: prediction box lacks 'score'")
    if label not in LABELS:
        raise AnonlabError(f"{where}: unknown label {label!r}; expected one of {', '.join(LABELS)}")
    if not all(map(math.isfinite, (x, y, w, h, score))) or w < 0 or h < 0:
        raise AnonlabError(f"{where}: box has a negative size or a non-finite number")
    return label, x, y, w, h, score


def load_jsonl(path: str | os.PathLike, kind: str = "labels") -> list[dict]:
    """Read a labels or predictions file strictly.

    Each line must be a JSON object with ``image`` (string) and ``boxes`` (list of boxes with ``label``,
    ``x``, ``y``, ``w``, ``h`` and, for ``kind="pred"``, ``score``); blank lines are skipped; an image may
    appear once only.

    Returns:
        One dict per image: ``image``, ``source`` (``""`` when absent), ``exhaustive`` (bool or None),
        ``ms`` (float or None), ``boxes`` as a list of ``(label, x, y, w, h, score)``.

    Raises:
        AnonlabError: naming the file and line of the first malformed line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnonlabError(f"{kind} file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnonlabError(f"cannot read {kind} file {str(path)!r}: {exc}") from None
    rows, seen = [], set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnonlabError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise AnonlabError(f"{where}: expected a JSON object per line")
        image = obj.get("image")
        if not isinstance(image, str) or not image:
            raise AnonlabError(f"{where}: missing 'image' (a path relative to the file)")
        if image in seen:
            raise AnonlabError(f"{where}: image {image!r} appears twice")
        seen.add(image)
        boxes = obj.get("boxes")
        if not isinstance(boxes, list):
            raise AnonlabError(f"{where}: missing 'boxes' (a list, empty when the image has none)")
        exhaustive = obj.get("exhaustive")
        if exhaustive is not None and not isinstance(exhaustive, bool):
            raise AnonlabError(f"{where}: 'exhaustive' must be true or false")
        ms = obj.get("ms")
        rows.append({
            "image": image,
            "source": str(obj.get("source", "")),
            "exhaustive": exhaustive,
            "width": obj.get("width"),
            "height": obj.get("height"),
            "ms": float(ms) if isinstance(ms, (int, float)) else None,
            "boxes": [_box(b, where, need_score=(kind == "pred")) for b in boxes],
        })
    if not rows:
        raise AnonlabError(f"{kind} file {str(path)!r} holds no images")
    return rows


# --- matching --------------------------------------------------------------------------------------


def _xyxy(boxes: Sequence[tuple]) -> np.ndarray:
    a = np.asarray([b[1:5] for b in boxes], np.float64).reshape(-1, 4)
    return np.concatenate([a[:, :2], a[:, :2] + a[:, 2:]], axis=1)


def match(gt_xyxy: np.ndarray, pred_xyxy: np.ndarray, iou: float = DEFAULT_IOU) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching: pairs ``(gt_index, pred_index, iou)`` taken by decreasing IoU >= ``iou``."""
    if not len(gt_xyxy) or not len(pred_xyxy):
        return []
    m = iou_matrix(gt_xyxy, pred_xyxy)
    gi, pi = np.nonzero(m >= iou)
    order = np.argsort(-m[gi, pi], kind="stable")
    used_g, used_p, pairs = set(), set(), []
    for k in order:
        g, p = int(gi[k]), int(pi[k])
        if g in used_g or p in used_p:
            continue
        used_g.add(g)
        used_p.add(p)
        pairs.append((g, p, float(m[g, p])))
    return pairs


def size_bucket(smaller_side: float) -> str:
    """Name of the size bucket of a box whose smaller side is ``smaller_side`` px."""
    for name, lo, hi in SIZE_BUCKETS:
        if lo <= smaller_side < hi:
            return name
    return SIZE_BUCKETS[-1][0]


class _Tally:
    __slots__ = ("n_gt", "tp", "n_pred_ex", "tp_pred_ex", "iou_sum", "images", "images_ex", "n_gt_ex", "tp_ex")

    def __init__(self) -> None:
        self.n_gt = self.tp = self.n_pred_ex = self.tp_pred_ex = self.images = self.images_ex = 0
        self.n_gt_ex = self.tp_ex = 0
        self.iou_sum = 0.0

    def result(self) -> dict:
        recall = self.tp / self.n_gt if self.n_gt else None
        precision = self.tp_pred_ex / self.n_pred_ex if self.n_pred_ex else None
        recall_ex = self.tp_ex / self.n_gt_ex if self.n_gt_ex else None
        f1 = None
        if precision is not None and recall_ex is not None and precision + recall_ex > 0:
            f1 = 2 * precision * recall_ex / (precision + recall_ex)
        fp = self.n_pred_ex - self.tp_pred_ex
        return {
            "images": self.images,
            "n_gt": self.n_gt,
            "tp": self.tp,
            "fn": self.n_gt - self.tp,
            "recall": recall,
            "images_exhaustive": self.images_ex,
            "n_pred": self.n_pred_ex,
            "fp": fp if self.images_ex else None,
            "precision": precision,
            "f1": f1,
            "fp_per_image": fp / self.images_ex if self.images_ex else None,
            "mean_iou": self.iou_sum / self.tp if self.tp else None,
        }


def _is_exhaustive(row: dict, recall_only: frozenset) -> bool:
    if row["exhaustive"] is not None:
        return row["exhaustive"]
    return row["source"] not in recall_only


def evaluate_rows(labels: list[dict], preds: list[dict], iou: float = DEFAULT_IOU, thresh: float | None = None,
                  recall_only: Iterable[str] = RECALL_ONLY_SOURCES, labels_to_score: Iterable[str] | None = None) -> dict:
    """`evaluate` on rows already loaded with `load_jsonl` (the curve helper calls this many times)."""
    recall_only = frozenset(recall_only)
    pred_by_image = {r["image"]: r for r in preds}
    missing = [r["image"] for r in labels if r["image"] not in pred_by_image]
    if missing:
        raise AnonlabError(f"predictions lack {len(missing)} of the {len(labels)} labelled images "
                           f"(first: {missing[0]}); run detection on the whole set")
    present = sorted({b[0] for r in labels for b in r["boxes"]}, key=LABELS.index)
    scored = list(labels_to_score) if labels_to_score is not None else present
    by_label: dict[str, dict] = {}
    for label in scored:
        overall = _Tally()
        sizes = {name: _Tally() for name, _, _ in SIZE_BUCKETS}
        sources: dict[str, _Tally] = {}
        for row in labels:
            prow = pred_by_image[row["image"]]
            gt = [b for b in row["boxes"] if b[0] == label]
            pr = [b for b in prow["boxes"] if b[0] == label and (thresh is None or b[5] >= thresh)]
            gxy, pxy = _xyxy(gt), _xyxy(pr)
            pairs = match(gxy, pxy, iou)
            ex = _is_exhaustive(row, recall_only)
            matched_g = {g: v for g, _, v in pairs}
            matched_p = {p for _, p, _ in pairs}
            src = sources.setdefault(row["source"], _Tally())
            for t in (overall, src):
                t.images += 1
                t.n_gt += len(gt)
                t.tp += len(pairs)
                t.iou_sum += sum(matched_g.values())
                if ex:
                    t.images_ex += 1
                    t.n_gt_ex += len(gt)
                    t.tp_ex += len(pairs)
                    t.n_pred_ex += len(pr)
                    t.tp_pred_ex += len(pairs)
            for g, b in enumerate(gt):
                t = sizes[size_bucket(min(b[3], b[4]))]
                t.n_gt += 1
                if g in matched_g:
                    t.tp += 1
                    t.iou_sum += matched_g[g]
                if ex:
                    t.n_gt_ex += 1
                    t.tp_ex += g in matched_g
            if ex:
                for p, b in enumerate(pr):
                    t = sizes[size_bucket(min(b[3], b[4]))]
                    t.n_pred_ex += 1
                    t.tp_pred_ex += p in matched_p
                for t in sizes.values():
                    t.images_ex += 1
            for t in sizes.values():
                t.images += 1
        by_label[label] = {
            "overall": overall.result(),
            "by_size": {k: v.result() for k, v in sizes.items()},
            "by_source": {k: v.result() for k, v in sorted(sources.items())},
        }
    times = [pred_by_image[r["image"]]["ms"] for r in labels]
    times = [t for t in times if t is not None]
    labelled = {r["image"] for r in labels}
    return {
        "iou": iou,
        "thresh": thresh,
        "images": len(labels),
        "extra_pred_images": sum(1 for r in preds if r["image"] not in labelled),
        "ms_per_image": float(np.mean(times)) if times else None,
        "recall_only_sources": sorted({r["source"] for r in labels if not _is_exhaustive(r, recall_only)}),
        "by_label": by_label,
    }


def evaluate(labels_path: str | os.PathLike, pred_path: str | os.PathLike, iou: float = DEFAULT_IOU,
             thresh: float | None = None, recall_only: Iterable[str] = RECALL_ONLY_SOURCES) -> dict:
    """Compare predictions with labels.

    Args:
        labels_path: the labelled set (``labels.jsonl``).
        pred_path: predictions for the same images (`detect_labelled_set` output).
        iou: IoU at or above which a prediction matches a true box.
        thresh: ignore predictions scoring below this (None: keep all).
        recall_only: sources whose images are not exhaustively labelled (no precision there).

    Returns:
        ``{"iou", "thresh", "images", "ms_per_image", "recall_only_sources", "by_label": {label: {"overall",
        "by_size", "by_source"}}}``; each leaf holds ``n_gt, tp, fn, recall, n_pred, fp, precision, f1,
        fp_per_image, mean_iou, images, images_exhaustive`` (None where not measurable).
    """
    if not 0.0 < iou <= 1.0:
        raise AnonlabError(f"--iou must lie in (0, 1]; got {iou}")
    result = evaluate_rows(load_jsonl(labels_path, "labels"), load_jsonl(pred_path, "pred"), iou, thresh, recall_only)
    result["labels_file"] = str(labels_path)
    result["pred_file"] = str(pred_path)
    return result


def threshold_curve(labels_path: str | os.PathLike, pred_path: str | os.PathLike,
                    thresholds: Sequence[float] | None = None, iou: float = DEFAULT_IOU,
                    recall_only: Iterable[str] = RECALL_ONLY_SOURCES) -> dict[str, list[dict]]:
    """Precision/recall against the score threshold, one row per threshold, per label.

    The predictions must have been made at a threshold no higher than the lowest one asked for.

    Returns:
        ``{label: [{"thresh", "recall", "precision", "f1", "fp_per_image", "recall_<16", ...}, ...]}``
        ready for a plot or a table.
    """
    labels = load_jsonl(labels_path, "labels")
    preds = load_jsonl(pred_path, "pred")
    if thresholds is None:
        thresholds = [round(t, 2) for t in np.arange(0.05, 0.96, 0.05)]
    curves: dict[str, list[dict]] = {}
    for t in thresholds:
        res = evaluate_rows(labels, preds, iou, float(t), recall_only)
        for label, r in res["by_label"].items():
            o = r["overall"]
            row = {"thresh": float(t), "recall": o["recall"], "precision": o["precision"], "f1": o["f1"],
                   "fp_per_image": o["fp_per_image"], "mean_iou": o["mean_iou"]}
            for name, s in r["by_size"].items():
                row[f"recall_{name}"] = s["recall"]
            curves.setdefault(label, []).append(row)
    return curves


def pick_threshold(curve: Sequence[dict], min_recall: float) -> dict | None:
    """The highest-threshold row of a `threshold_curve` whose recall is at least ``min_recall``."""
    ok = [r for r in curve if r["recall"] is not None and r["recall"] >= min_recall]
    return max(ok, key=lambda r: r["thresh"]) if ok else None


# --- running detection over a labelled set ---------------------------------------------------------


def read_image(path: Path) -> np.ndarray:
    """A labelled image as uint8 BGR, EXIF orientation applied (labels are in displayed pixels)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise AnonlabError(f"cannot read image {str(path)!r} (missing, or not an image OpenCV decodes)")
    return image


def detect_labelled_set(labels_path: str | os.PathLike, out_path: str | os.PathLike, settings,
                        progress: bool = True, detector=None) -> dict:
    """Run the detector of ``settings`` on every image of a labelled set and write predictions.

    Args:
        labels_path: ``labels.jsonl``; image paths in it are relative to its folder.
        out_path: predictions file to write (JSON lines ``{"image", "boxes": [{"label", "x", "y", "w", "h",
            "score"}], "ms"}``), written to a temporary file and renamed when complete.
        settings: `anonlab.settings.Settings`; ``what`` and ``thresh`` choose detectors and threshold.
        progress: show a progress bar.
        detector: a ready detector to use instead of ``build_detector(settings)`` (benchmarks, red team).

    Returns:
        ``{"images", "boxes", "ms_per_image", "detector", "models", "out"}``.
    """
    labels_path, out_path = Path(labels_path), Path(out_path)
    rows = load_jsonl(labels_path, "labels")
    if out_path.resolve() == labels_path.resolve():
        raise AnonlabError("--out must not be the labels file")
    # Looked up through the module at call time, so a patched anonlab.detect.build_detector is the one used.
    detector = detector if detector is not None else detect.build_detector(settings)
    base = labels_path.parent
    iterator: Iterable[dict] = rows
    if progress:
        from tqdm import tqdm

        iterator = tqdm(rows, desc="detect", unit="image")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.part")
    total_ms, n_boxes = 0.0, 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for row in iterator:
                image = read_image(base / row["image"])
                t0 = time.perf_counter()
                regions = detector(image)
                ms = (time.perf_counter() - t0) * 1000
                total_ms += ms
                n_boxes += len(regions)
                boxes = regions.to_records(with_track=False, ndigits=1)
                f.write(json.dumps({"image": row["image"], "boxes": boxes, "ms": round(ms, 2)}) + "\n")
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"images": len(rows), "boxes": n_boxes, "ms_per_image": total_ms / len(rows),
            "detector": repr(detector), "models": detector.models, "out": str(out_path)}


# --- formatting ------------------------------------------------------------------------------------


def _f(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}"


def format_summary(result: dict) -> str:
    """A readable table of an `evaluate` result: overall, by size, by source, per label."""
    lines = [f"IoU >= {result['iou']:g}   threshold {'as predicted' if result['thresh'] is None else result['thresh']}"
             f"   {result['images']} images   ms/image {_f(result.get('ms_per_image'), 1)}"]
    if result.get("recall_only_sources"):
        lines.append(f"recall only (not exhaustively labelled): {', '.join(result['recall_only_sources'])}")
    head = f"  {'':<22}{'truth':>6}{'found':>7}{'recall':>8}{'preds':>7}{'precis.':>8}{'F1':>7}{'FP/img':>8}{'mIoU':>7}"
    for label, r in result["by_label"].items():
        lines += ["", f"{label}", head]

        def line(name: str, m: dict) -> str:
            return (f"  {name:<22}{m['n_gt']:>6}{m['tp']:>7}{_f(m['recall']):>8}{_f(m['n_pred'] if m['images_exhaustive'] else None):>7}"
                    f"{_f(m['precision']):>8}{_f(m['f1']):>7}{_f(m['fp_per_image'], 2):>8}{_f(m['mean_iou']):>7}")

        lines.append(line("all", r["overall"]))
        for name, m in r["by_size"].items():
            m = dict(m, fp_per_image=None)
            lines.append(line(f"size {name} px", m))
        for name, m in r["by_source"].items():
            lines.append(line(f"src {name or '(none)'}"[:22], m))
    lines.append("")
    lines.append("size: smaller side of the true box (recall) / of the predicted box (precision)")
    return "\n".join(lines)
