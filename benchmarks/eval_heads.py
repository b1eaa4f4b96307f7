"""Head recall of the person model (`anonlab.detect.persons.PersonDetector`): do head boxes cover the faces?

    nice -n 10 .venv/bin/python benchmarks/eval_heads.py [--eval-dir ../shared/eval] [--cache DIR] [--limit N]
        [--tile-fraction 0.6] [--no-faces] [--timing-runs 20] [--union | --union-only]

No evaluation set labels heads or persons (``../shared/eval``: ``faces/`` labels faces, ``plates*/`` plates), so
what is measured is what the face labels allow, honestly named:

* **face coverage**: the share of labelled faces (``faces/``, 427 photos, 2065 faces) that a head box covers:
  IoU ≥ 0.3 with the face box, or ≥ 80 % of the face box's area inside the head box (a head box is larger than
  the face it holds, so coverage is the fair test, IoU alone is not). Per source, per face size (smaller side,
  the buckets of `anonlab.evaluation.images`) and per person threshold (a curve: poses are computed once at
  0.05 and re-thresholded, head and person boxes of one pose carry its score);
* **the same photos made harder**, in memory only: mirrored (a sanity check: the figure should not move), and
  with every labelled face **blurred out** (Gaussian, σ = half the face's smaller side, over the face box grown
  by 10 %) or **filled** with its mean colour: a stand-in for a head seen from behind or turned away, whose face
  carries no face evidence. The default face detector (`anonlab.detect.build_detector`) is run on the blurred
  and filled copies too, to show that they defeat it, and the union "face or head box" is given;
* **head boxes that cover no labelled face**, per photo: not a false-positive rate (the set does not label the
  backs of heads, nor every background face), an upper bound of one;
* **time** per 1280×720 frame (a frame of ``videos/facenet_pytorch_video.mp4``, pedestrians, scaled to 720p):
  median and minimum over ``--timing-runs`` runs, with the number of model runs (views) and the load average.

* with ``--union`` (``--union-only``: this alone, original photos only), **head boxes as face boxes**: the
  default face detector's boxes ∪ head boxes as one face detector, over the person threshold, the face threshold
  (the default run's boxes re-thresholded by size) and a rule (every head box, or only head boxes holding no face
  box, or none of their scale). Recall: a face box matches (IoU ≥ 0.3, greedy, as `anonlab.evaluation.images`)
  or a head box covers the face. Precision three ways, since a head box over a face a face box already found is
  neither a find nor a false mask: boxes on any labelled face / all boxes; one box a face (eval_detection.py's
  rule: the duplicate is false); duplicates left out of both counts. Per size, per source (one here, split by
  crowd size: the model returns at most 6 people a view), and chosen on the even / odd half, checked on the other.

``--cache DIR`` keeps the poses per photo and variant (JSON), keyed by the detector's settings, and the face
boxes (keyed by ``--limit`` only: clear it when the face detector changes).

The module is long because both studies read the same cached poses and the same coverage rule: split, they would
each carry a copy of the loading, caching and box arithmetic.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anonlab.detect.persons import HEAD_NMS_IOU, TILE_MIN_SIDE, PersonDetector, views  # noqa: E402
from anonlab.evaluation.images import SIZE_BUCKETS, load_jsonl, read_image, size_bucket  # noqa: E402
from anonlab.regions import LABELS, ios_matrix, iou_matrix, nms  # noqa: E402

FLOOR = 0.05
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
VARIANTS = ("original", "mirrored", "face blurred", "face filled")
COVER_IOU, COVER_SHARE = 0.3, 0.8


def log(*args) -> None:
    print(*args, flush=True)


def load() -> str:
    return "load average %.2f / %.2f / %.2f" % os.getloadavg()


def face_boxes(row: dict) -> np.ndarray:
    b = [(x, y, x + w, y + h) for label, x, y, w, h, _ in row["boxes"] if label == "face"]
    return np.asarray(b, np.float32).reshape(-1, 4)


def make_variant(image: np.ndarray, faces: np.ndarray, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """The photo made harder, and the face boxes in its pixels."""
    import cv2

    h, w = image.shape[:2]
    if variant == "original":
        return image, faces
    if variant == "mirrored":
        out = faces.copy()
        out[:, [0, 2]] = w - faces[:, [2, 0]]
        return np.ascontiguousarray(image[:, ::-1]), out
    out = image.copy()
    for x1, y1, x2, y2 in faces:
        gx, gy = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
        a, b = int(max(0, x1 - gx)), int(max(0, y1 - gy))
        c, d = int(min(w, np.ceil(x2 + gx))), int(min(h, np.ceil(y2 + gy)))
        if c <= a or d <= b:
            continue
        if variant == "face blurred":
            sigma = max(1.0, 0.5 * min(x2 - x1, y2 - y1))
            pad = int(3 * sigma)
            A, B, C, D = max(0, a - pad), max(0, b - pad), min(w, c + pad), min(h, d + pad)
            blurred = cv2.GaussianBlur(image[B:D, A:C], (0, 0), sigma)
            out[b:d, a:c] = blurred[b - B : d - B, a - A : c - A]
        elif variant == "face filled":
            out[b:d, a:c] = image[b:d, a:c].reshape(-1, 3).mean(axis=0).astype(np.uint8)
    return out, faces


def cover_matrix(faces: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """(F, H) bool: head box h has IoU ≥ 0.3 with face f or holds ≥ 80 % of it."""
    if not len(faces) or not len(heads):
        return np.zeros((len(faces), len(heads)), bool)
    iou = iou_matrix(faces, heads)
    from anonlab.regions import _intersections  # noqa: PLC2701 - the shared box arithmetic

    inter, area_f, _ = _intersections(faces, heads)
    share = inter / np.maximum(area_f[:, None], 1e-9)
    return (iou >= COVER_IOU) | (share >= COVER_SHARE)


def covered(faces: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """(F,) bool: a head box has IoU ≥ 0.3 with the face or holds ≥ 80 % of it."""
    return cover_matrix(faces, heads).any(axis=1)


def heads_at(p: dict, thresh: float) -> np.ndarray:
    score, head, ok = np.asarray(p["score"]), np.asarray(p["head"]).reshape(-1, 4), np.asarray(p["head_ok"], bool)
    keep = (score >= thresh) & ok
    xyxy, s = head[keep], score[keep]
    if not len(s):
        return np.zeros((0, 4), np.float32)
    return xyxy[nms(xyxy, s, HEAD_NMS_IOU)]


def run_poses(rows, folder: Path, det: PersonDetector, cache: Path | None, tag: str,
              variants: tuple[str, ...] = VARIANTS) -> dict:
    """Poses at the floor threshold for every photo and variant: ``{variant: [pose dict per photo]}``."""
    path = None
    if cache is not None:
        path = cache / f"heads.{tag}.json"
        if path.exists():
            return json.loads(path.read_text())
        if variants != VARIANTS:  # a run of every variant holds these too
            path = cache / f"heads.{'+'.join(variants).replace(' ', '_')}.{tag}.json"
            if (cache / f"heads.{tag}.json").exists():
                return json.loads((cache / f"heads.{tag}.json").read_text())
            if path.exists():
                return json.loads(path.read_text())
    out = {v: [] for v in variants}
    t0 = time.perf_counter()
    for i, row in enumerate(rows):
        image = read_image(folder / row["image"])
        faces = face_boxes(row)
        for v in variants:
            img, _ = make_variant(image, faces, v)
            p = det.poses(img, thresh=FLOOR)
            if v == "mirrored":  # back to the photo's pixels, where the face labels are
                p["head"][:, [0, 2]] = img.shape[1] - p["head"][:, [2, 0]]
            out[v].append({k: np.asarray(p[k]).tolist() for k in ("score", "head", "head_ok")})
        if (i + 1) % 50 == 0:
            log(f"  {i + 1}/{len(rows)} photos, {(time.perf_counter() - t0) / (i + 1) / len(variants) * 1000:.0f} "
                f"ms a pass ({load()})")
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out))
    return out


def run_faces(rows, folder: Path, cache: Path | None, limit_tag: str) -> dict:
    """The default face detector on the blurred and filled copies (and the originals): boxes per photo."""
    from anonlab.detect import build_detector
    from anonlab.settings import Settings

    path = None
    if cache is not None:
        path = cache / f"heads.faces.{limit_tag}.json"
        if path.exists():
            return json.loads(path.read_text())
    det = build_detector(Settings(what=("face",)))
    out = {v: [] for v in ("original", "face blurred", "face filled")}
    for i, row in enumerate(rows):
        image = read_image(folder / row["image"])
        faces = face_boxes(row)
        for v in out:
            img, _ = make_variant(image, faces, v)
            out[v].append(det(img).xyxy.tolist())
        if (i + 1) % 100 == 0:
            log(f"  faces: {i + 1}/{len(rows)} photos ({load()})")
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out))
    return out


def table(title: str, header: list[str], lines: list[list]) -> None:
    log(f"\n{title}")
    log("| " + " | ".join(header) + " |")
    log("|" + "---|" * len(header))
    for line in lines:
        log("| " + " | ".join(str(x) for x in line) + " |")


def f3(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def coverage(rows, poses: list[dict], thresh: float, extra: list | None = None) -> dict:
    """Covered share overall, per source, per size; head boxes covering no face per photo."""
    tally: dict[str, list[int]] = {}
    stray = n_heads = 0

    def add(key: str, hit: np.ndarray) -> None:
        t = tally.setdefault(key, [0, 0])
        t[0] += int(hit.sum())
        t[1] += len(hit)

    for i, row in enumerate(rows):
        faces = face_boxes(row)
        heads = heads_at(poses[i], thresh)
        hit = covered(faces, heads)
        if extra is not None:
            boxes = np.asarray(extra[i], np.float32).reshape(-1, 4)
            hit = hit | (iou_matrix(faces, boxes) >= COVER_IOU).any(axis=1) if len(boxes) and len(faces) else hit
        add("all", hit)
        add(row.get("source", "?"), hit)
        sides = np.minimum(faces[:, 2] - faces[:, 0], faces[:, 3] - faces[:, 1])
        for name, _, _ in SIZE_BUCKETS:
            sel = np.array([size_bucket(s) == name for s in sides], bool)
            if sel.any():
                add(name, hit[sel])
        n_heads += len(heads)
        if len(heads):
            cov = ios_matrix(heads, faces).max(axis=1) if len(faces) else np.zeros(len(heads))
            stray += int((cov < 0.5).sum())
    out = {k: v[0] / v[1] for k, v in tally.items() if v[1]}
    out["n"] = {k: v[1] for k, v in tally.items()}
    out["heads_per_image"] = n_heads / max(1, len(rows))
    out["stray_per_image"] = stray / max(1, len(rows))
    return out


def face_recall(rows, boxes: list) -> dict:
    tally: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        faces = face_boxes(row)
        pred = np.asarray(boxes[i], np.float32).reshape(-1, 4)
        hit = np.zeros(len(faces), bool)
        if len(pred) and len(faces):
            hit = (iou_matrix(faces, pred) >= COVER_IOU).any(axis=1)
        t = tally.setdefault("all", [0, 0])
        t[0] += int(hit.sum())
        t[1] += len(hit)
        sides = np.minimum(faces[:, 2] - faces[:, 0], faces[:, 3] - faces[:, 1])
        for j, s in enumerate(sides):
            t = tally.setdefault(size_bucket(s), [0, 0])
            t[0] += int(hit[j])
            t[1] += 1
    return {k: v[0] / v[1] for k, v in tally.items() if v[1]}


# --- head boxes as face boxes: recall and precision of the union --------------------------------------------
#: Face thresholds of the union (the fused detector's 16-px threshold; 0.25 is its default): the default run's
#: boxes re-thresholded by size as `anonlab.detect.fusion.keep_by_size` does.
FACE_THRESHOLDS = (0.25, 0.3, 0.35, 0.4)
RULES = ("every head box", "head boxes holding no face box", "head boxes holding no face of their scale")
#: A face box is a head box's own face (rule 3) when its smaller side is at least this share of the head box's:
#: a face is about 0.4-0.5 of the head box (`anonlab.detect.persons.HEAD_MARGIN`); smaller face boxes inside a
#: large head box are other people's, behind it, in a crowd.
OWN_FACE_SHARE = 0.2
GOAL_PRECISION, GOAL_RECALL, GOAL_SMALL = 0.66, 0.95, 0.85
MASKED = "masked share"
MASK_SCALE = 1.3  # Settings.mask_scale's default


def run_face_scores(rows, folder: Path, cache: Path | None, limit_tag: str) -> list[dict]:
    """The default face detector on the original photos: ``[{"xyxy", "score"}]`` per photo."""
    from anonlab.detect import build_detector
    from anonlab.settings import Settings

    path = None if cache is None else cache / f"heads.facescores.{limit_tag}.json"
    if path is not None and path.exists():
        return json.loads(path.read_text())
    det = build_detector(Settings(what=("face",)))
    out = []
    for row in rows:
        r = det(read_image(folder / row["image"]))
        out.append({"xyxy": r.xyxy.tolist(), "score": r.score.tolist()})
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out))
    return out


def group_of(row: dict, n_faces: int) -> str:
    """Source, split by crowd size (the set has one source; MoveNet returns at most 6 people a view)."""
    return f"{row.get('source') or '?'}, {'≤ 6' if n_faces <= 6 else '> 6'} faces"


def union_tally(rows, poses: list[dict], faces: list[dict], t_face: float, t_person: float | None, rule: str,
                idx=None) -> dict:
    """Face boxes ∪ head boxes as one face detector, on the photos ``idx`` (default all).

    A labelled face is found when a face box matches it (greedy, IoU ≥ 0.3, as `anonlab.evaluation.images`) or a
    head box covers it (`cover_matrix`). Precision: a face box is right when matched; a head box when it covers a
    labelled face (``tp``), or, strictly (``tp1``), a labelled face no face box matched and no higher-scoring head
    box took (one prediction per face, the rule of ``eval_detection.py``). Every photo of the set is exhaustive
    for `anonlab.evaluation.images` (no ``exhaustive`` flag, no recall-only source), so all count.
    ``t_person`` None: face boxes alone. Keys: ``all``, size buckets, groups; each ``[n_gt, found, n_pred, tp,
    tp1, n_head]`` (sizes: recall by true size, precision by predicted size); and `MASKED`: ``[sum over photos of
    the share of the photo the boxes mask, grown as the default mask is (``Settings.mask_scale``), photos]``, the
    cost precision does not see (a head box is several times a face's area).
    """
    from anonlab.detect.fusion import size_factor
    from anonlab.evaluation.images import match

    tally: dict[str, list[int]] = {}

    def add(key: str, i: int, v: int) -> None:
        tally.setdefault(key, [0] * 6)[i] += v

    for i in range(len(rows)) if idx is None else idx:
        row, gt = rows[i], face_boxes(rows[i])
        fx = np.asarray(faces[i]["xyxy"], np.float32).reshape(-1, 4)
        fs = np.asarray(faces[i]["score"], np.float32)
        if len(fx):
            fx = fx[fs >= t_face * size_factor(np.minimum(fx[:, 2] - fx[:, 0], fx[:, 3] - fx[:, 1])) - 1e-9]
        heads = np.zeros((0, 4), np.float32) if t_person is None else heads_at(poses[i], t_person)
        if len(heads):
            heads = np.clip(heads, 0, [row["width"], row["height"], row["width"], row["height"]]).astype(np.float32)
            heads = heads[(heads[:, 2] - heads[:, 0] >= 1) & (heads[:, 3] - heads[:, 1] >= 1)]
            if rule in RULES[1:] and len(fx):
                holds = cover_matrix(fx, heads)
                if rule == RULES[2]:
                    f_side = np.minimum(fx[:, 2] - fx[:, 0], fx[:, 3] - fx[:, 1])
                    h_side = np.minimum(heads[:, 2] - heads[:, 0], heads[:, 3] - heads[:, 1])
                    holds &= f_side[:, None] >= OWN_FACE_SHARE * h_side[None, :]
                heads = heads[~holds.any(axis=0)]
        pairs = match(gt, fx, COVER_IOU)
        taken = np.zeros(len(gt), bool)
        taken[[g for g, _, _ in pairs]] = True
        matched_p = {p for _, p, _ in pairs}
        cov = cover_matrix(gt, heads)
        found = taken | cov.any(axis=1)
        head_tp = cov.any(axis=0)
        head_tp1 = np.zeros(len(heads), bool)
        for h in range(len(heads)):  # heads_at returns them by decreasing score (NMS order)
            free = np.nonzero(cov[:, h] & ~taken)[0]
            if len(free):
                taken[free[0]] = head_tp1[h] = True
        g_side = np.minimum(gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1])
        preds = np.concatenate([fx, heads]).reshape(-1, 4)
        p_side = np.minimum(preds[:, 2] - preds[:, 0], preds[:, 3] - preds[:, 1])
        p_tp = np.concatenate([[p in matched_p for p in range(len(fx))], head_tp]).astype(bool)
        p_tp1 = np.concatenate([p_tp[: len(fx)], head_tp1]).astype(bool)
        p_head = np.arange(len(preds)) >= len(fx)
        for key in ("all", group_of(row, len(gt))):
            for j, v in enumerate((len(gt), int(found.sum()), len(preds), int(p_tp.sum()), int(p_tp1.sum()),
                                   len(heads))):
                add(key, j, v)
        for j in range(len(gt)):
            add(size_bucket(g_side[j]), 0, 1)
            add(size_bucket(g_side[j]), 1, int(found[j]))
        for j in range(len(preds)):
            for k, v in ((2, 1), (3, int(p_tp[j])), (4, int(p_tp1[j])), (5, int(p_head[j]))):
                add(size_bucket(p_side[j]), k, v)
        masked = tally.setdefault(MASKED, [0.0, 0])
        masked[0] += masked_share(preds, row["width"], row["height"])
        masked[1] += 1
    return tally


def masked_share(xyxy: np.ndarray, width: int, height: int, scale: float = MASK_SCALE) -> float:
    """Share of a ``width`` × ``height`` image inside the union of the boxes, grown ``scale`` times about their
    centres."""
    mask = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in xyxy:
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * scale, (y2 - y1) * scale
        mask[max(0, int(cy - h / 2)) : max(0, int(np.ceil(cy + h / 2))),
             max(0, int(cx - w / 2)) : max(0, int(np.ceil(cx + w / 2)))] = True
    return float(mask.mean()) if mask.size else 0.0


def rates(t: list[int] | None) -> tuple:
    """(recall, precision, 1:1 precision, precision with duplicates left out) of a `union_tally` entry (None where
    not measurable). The last counts boxes on a face no other box took as right, boxes on no labelled face as
    false, and leaves out boxes on a face another box already took (a second mask on a masked face costs
    nothing and finds nothing): ``tp1 / (tp1 + n_pred - tp)``."""
    if t is None:
        return None, None, None, None
    n_gt, found, n_pred, tp, tp1, _ = t
    return (found / n_gt if n_gt else None, tp / n_pred if n_pred else None, tp1 / n_pred if n_pred else None,
            tp1 / (tp1 + n_pred - tp) if tp1 + n_pred - tp else None)


def settings_grid() -> list[tuple]:
    grid = [(tf, None, "face boxes alone") for tf in FACE_THRESHOLDS]
    return grid + [(tf, tp, rule) for tf in FACE_THRESHOLDS for rule in RULES for tp in THRESHOLDS]


def union_line(tally: dict, n_images: int) -> list[str]:
    sizes = [name for name, _, _ in SIZE_BUCKETS]
    r, p, p1, pd = rates(tally["all"])
    fp = tally["all"][2] - tally["all"][3]
    return ([f3(r)] + [f3(rates(tally.get(s))[0]) for s in sizes] + [f3(p), f3(p1), f3(pd), f"{fp / n_images:.2f}",
            f"{tally['all'][5] / n_images:.2f}", f"{tally[MASKED][0] / max(1, tally[MASKED][1]):.3f}"])


def meets(tally: dict, which: int = 2) -> bool:
    """The goal, on precision ``which`` of `rates` (1: boxes on any labelled face; 2: one prediction a face,
    eval_detection.py's rule; 3: duplicates left out)."""
    r, p = rates(tally["all"])[0], rates(tally["all"])[which]
    small = rates(tally.get("<16"))[0]
    return None not in (r, p, small) and p >= GOAL_PRECISION and r >= GOAL_RECALL and small >= GOAL_SMALL


def name_of(g: tuple) -> str:
    return f"{g[0]:g} / {'—' if g[1] is None else f'{g[1]:g}'} / {g[2]}"


def union_section(rows, poses: list[dict], faces: list[dict]) -> None:
    """Tables of the union "face box or head box" as a face detector: curve, per size, per source, halves."""
    sizes = [name for name, _, _ in SIZE_BUCKETS]
    header = (["face thresh", "person thresh", "head boxes", "recall"] + [f"R {s} px" for s in sizes]
              + ["P (covers any face)", "P 1:1", "P dups left out", "boxes on no face / photo",
                 "head boxes / photo", "share of photo masked"])
    grid = settings_grid()
    tallies = {g: union_tally(rows, poses, faces, *g) for g in grid}
    lines = [[f"{g[0]:g}", "—" if g[1] is None else f"{g[1]:g}", g[2]] + union_line(tallies[g], len(rows))
             for g in grid if g[0] == FACE_THRESHOLDS[0] or g[1] in (None, 0.1, 0.2, 0.3)]
    table(f"Face boxes ∪ head boxes as a face detector, all {len(rows)} photos (found: a face box at IoU ≥ 0.3 "
          "or a head box covering the face; P: boxes matching or covering a labelled face / all boxes; 1:1: one box a "
          "face, as eval_detection.py; dups left out: boxes on a face another box took are left out)", header, lines)
    picks = [g for g in grid if g[1] in (None, 0.1, 0.2, 0.3) and g[0] == FACE_THRESHOLDS[0]]
    lines = []
    for g in picks:
        t = tallies[g]
        lines.append([name_of(g)] + ["%s / %s / %s / %d" % (*map(f3, [rates(t.get(s))[k] for k in (0, 2, 3)]),
                                                            t.get(s, [0] * 6)[2] - t.get(s, [0] * 6)[3])
                                     for s in sizes])
    table("By size: recall (true face size) / P 1:1 / P dups left out (predicted box size) / boxes on no face",
          ["face / person thresh / head boxes"] + [f"{s} px" for s in sizes], lines)
    groups = sorted(k for k in tallies[grid[0]] if k not in ("all", MASKED) and k not in sizes)
    lines = [[name_of(g)] + ["%s / %s / %s" % tuple(f3(rates(tallies[g].get(k))[j]) for j in (0, 2, 3))
                             for k in groups] for g in picks]
    table("By source and crowd (recall / P 1:1 / P dups left out)", ["face / person thresh / head boxes"] + groups,
          lines)
    # Tuned on one half, checked on the other: the setting with the highest recall at precision ≥ 0.66.
    idx = {"even": range(0, len(rows), 2), "odd": range(1, len(rows), 2)}
    on = {half: {g: union_tally(rows, poses, faces, *g, idx=idx[half]) for g in grid} for half in idx}
    lines = []
    for which, pname in ((1, "P covers any"), (2, "P 1:1"), (3, "P dups left out")):
        for tune, check in (("even", "odd"), ("odd", "even")):
            ok = [g for g in grid if (rates(on[tune][g]["all"])[which] or 0) >= GOAL_PRECISION]
            best = max(ok, key=lambda g: (rates(on[tune][g]["all"])[0], rates(on[tune][g]["all"])[which]),
                       default=grid[0])
            for g in [grid[0]] + ([best] if best != grid[0] else []):
                for half in (tune, check):
                    t = on[half][g]
                    lines.append([f"{pname}: {tune} → {half}" + (" (held out)" if half == check else " (tuning)"),
                                  name_of(g)] + union_line(t, len(idx[half])) + ["yes" if meets(t, which) else "no"])
    table(f"Halves: the setting with the highest recall at precision ≥ {GOAL_PRECISION} on one half, checked on the "
          "other", ["chosen by: half", "face / person thresh / head boxes"] + header[3:]
          + [f"goal (R ≥ {GOAL_RECALL}, <16 ≥ {GOAL_SMALL}, that P ≥ {GOAL_PRECISION})"], lines)
    for which, pname in ((1, "P (covers any face)"), (2, "P 1:1"), (3, "P dups left out")):
        best = max((g for g in grid if (rates(tallies[g]["all"])[which] or 0) >= GOAL_PRECISION),
                   key=lambda g: rates(tallies[g]["all"])[0], default=None)
        if best is None:
            log(f"all photos: no setting reaches {pname} ≥ {GOAL_PRECISION}")
            continue
        log(f"all photos, highest recall at {pname} ≥ {GOAL_PRECISION}: {name_of(best)}: "
            + ", ".join(union_line(tallies[best], len(rows))) + f"; meets the goal: {meets(tallies[best], which)}")


CLIPS = ("facenet_pytorch_video.mp4", "face_recognition_short_hamilton_clip.mp4")


def video_section(det: PersonDetector, eval_dir: Path, n_frames: int) -> None:
    """Real footage without head labels: the faces the default face detector finds stand in for the truth."""
    import cv2

    from anonlab.detect import build_detector
    from anonlab.settings import Settings

    faces_det = build_detector(Settings(what=("face",)))
    whole = PersonDetector(det.thresh, tile_fraction=None, labels=tuple(det.labels.values()))
    sizes = [name for name, _, _ in SIZE_BUCKETS]
    lines = []
    for clip in CLIPS:
        path = eval_dir / "videos" / clip
        if not path.exists():
            continue
        cap = cv2.VideoCapture(str(path))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        frames = []
        for idx in np.linspace(0, total - 1, n_frames).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(idx))
            ok, frame = cap.read()
            if ok:
                if max(frame.shape[:2]) > 1280:
                    g = 1280 / max(frame.shape[:2])
                    frame = cv2.resize(frame, (round(frame.shape[1] * g), round(frame.shape[0] * g)),
                                       interpolation=cv2.INTER_AREA)
                frames.append(frame)
        cap.release()
        faces = [faces_det(f).xyxy for f in frames]
        for name, d in (("whole frame only", whole), (f"whole + tiles {det.tile_fraction}", det)):
            tally: dict[str, list[int]] = {}
            extra = n_heads = 0
            for f, fx in zip(frames, faces):
                p = d.poses(f)
                heads = p["head"][p["head_ok"]]
                heads = heads[nms(heads, p["score"][p["head_ok"]], HEAD_NMS_IOU)] if len(heads) else heads
                hit = covered(fx, heads)
                n_heads += len(heads)
                if len(heads):
                    extra += int((ios_matrix(heads, fx).max(axis=1) < 0.5).sum()) if len(fx) else len(heads)
                sides = np.minimum(fx[:, 2] - fx[:, 0], fx[:, 3] - fx[:, 1])
                for key, h in [("all", hit)] + [(size_bucket(sd), hit[j : j + 1]) for j, sd in enumerate(sides)]:
                    t = tally.setdefault(key, [0, 0])
                    t[0] += int(h.sum())
                    t[1] += len(h)
            share = {k: v[0] / v[1] for k, v in tally.items() if v[1]}
            lines.append([f"{clip} ({frames[0].shape[1]}×{frames[0].shape[0]}, {len(frames)} frames, "
                          f"{tally.get('all', [0, 0])[1]} faces)", name, f3(share.get("all"))]
                         + [f3(share.get(s)) for s in sizes]
                         + [f"{n_heads / len(frames):.1f}", f"{extra / len(frames):.1f}"])
    table(f"Clips: faces the default face detector finds, covered by a head box (threshold {det.thresh:g})",
          ["clip", "views", "all"] + [f"{s} px" for s in sizes] + ["head boxes / frame",
                                                                   "head boxes on no found face / frame"], lines)


def timing(det: PersonDetector, eval_dir: Path, runs: int) -> None:
    import cv2

    frame = None
    video = eval_dir / "videos" / "facenet_pytorch_video.mp4"
    if video.exists():
        cap = cv2.VideoCapture(str(video))
        cap.set(cv2.CAP_PROP_POS_FRAMES, 50)
        ok, frame = cap.read()
        cap.release()
        frame = cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_AREA) if ok else None
    if frame is None:
        frame = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    det(frame)  # warm-up
    before = load()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = det(frame)
        times.append(time.perf_counter() - t0)
    log(f"\n1280×720 frame ({'facenet_pytorch_video.mp4 frame 50' if video.exists() else 'noise'}): "
        f"{len(views(1280, 720, det.tile_fraction, det.tile_min_side))} model runs, median "
        f"{np.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms over {runs} runs; {len(r)} boxes "
        f"(heads and persons); {before} before, {load()} after")
    one = []
    for _ in range(runs):
        t0 = time.perf_counter()
        det.run_view(frame)
        one.append(time.perf_counter() - t0)
    log(f"one model run at 256 px (the whole frame alone): median {np.median(one) * 1000:.1f} ms, "
        f"min {min(one) * 1000:.1f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--tile-fraction", type=float, default=0.6, help="0: the whole frame only")
    ap.add_argument("--tile-min-side", type=int, default=TILE_MIN_SIDE, help="smaller frames: no tiles")
    ap.add_argument("--thresh", type=float, help="threshold of the per-size tables (default: the detector's)")
    ap.add_argument("--no-faces", action="store_true", help="skip the face detector on the made-harder copies")
    ap.add_argument("--timing-runs", type=int, default=20)
    ap.add_argument("--clip-frames", type=int, default=12, help="frames per clip in the clip section (0: none)")
    ap.add_argument("--union", action="store_true",
                    help="also the union 'face box or head box' as a face detector: recall and precision")
    ap.add_argument("--union-only", action="store_true", help="the union section alone (original photos only)")
    args = ap.parse_args(argv)
    labels = args.eval_dir / "faces" / "labels.jsonl"
    if not labels.exists():
        log(f"{labels} is missing: nothing to measure")
        return 1
    labels_known = ("head", "person") if "head" in LABELS and "person" in LABELS else ("face", "plate")
    det = PersonDetector(tile_fraction=args.tile_fraction or None, tile_min_side=args.tile_min_side,
                         labels=labels_known)
    thresh = det.thresh if args.thresh is None else args.thresh
    rows = load_jsonl(labels, "labels")
    if args.limit:
        rows = rows[: args.limit]
    tag = hashlib.sha256(json.dumps([2, str(labels), args.limit, det.tile_fraction, det.tile_min_side, det.kp_thresh,
                                     det.head_margin, det.box_fallback, det.models[0]["sha256"]]).encode()).hexdigest()[:16]
    log(f"{det!r}, tiles {det.tile_fraction} above {det.tile_min_side} px, {len(rows)} photos; {load()}")
    t0 = time.perf_counter()
    poses = run_poses(rows, labels.parent, det, args.cache, tag, ("original",) if args.union_only else VARIANTS)
    log(f"poses: {time.perf_counter() - t0:.0f} s")
    if args.union or args.union_only:
        t0 = time.perf_counter()
        scores = run_face_scores(rows, labels.parent, args.cache, f"{args.limit}")
        log(f"face boxes: {time.perf_counter() - t0:.0f} s ({load()})")
        union_section(rows, poses["original"], scores)
        if args.union_only:
            return 0
    faces = None if args.no_faces else run_faces(rows, labels.parent, args.cache, f"{args.limit}")

    sizes = [name for name, _, _ in SIZE_BUCKETS]
    sources = sorted({r.get("source", "?") for r in rows})
    curve = []
    for v in VARIANTS:
        for t in THRESHOLDS:
            c = coverage(rows, poses[v], t)
            curve.append([v, t, f3(c["all"])] + [f3(c.get(s)) for s in sizes] +
                         [f"{c['heads_per_image']:.2f}", f"{c['stray_per_image']:.2f}"])
    n = coverage(rows, poses["original"], thresh)["n"]
    table("Faces covered by a head box (IoU ≥ 0.3 or ≥ 80 % inside), by person threshold "
          f"(faces: {n['all']}; " + ", ".join(f"{s}: {n.get(s, 0)}" for s in sizes) + ")",
          ["copy", "thresh", "all"] + [f"{s} px" for s in sizes] + ["head boxes / photo", "covering no face / photo"],
          curve)
    lines = []
    for v in VARIANTS:
        c = coverage(rows, poses[v], thresh)
        lines.append([v] + [f3(c.get(s)) for s in sources])
    table(f"Per source at the threshold {thresh:g}", ["copy"] + sources, lines)
    if faces is not None:
        lines = []
        for v in ("original", "face blurred", "face filled"):
            fr = face_recall(rows, faces[v])
            hc = coverage(rows, poses[v], thresh)
            un = coverage(rows, poses[v], thresh, extra=faces[v])
            for name, d in (("face detector (default)", fr), (f"head boxes at {thresh:g}", hc),
                            ("face detector or head box", un)):
                lines.append([v, name, f3(d.get("all"))] + [f3(d.get(s)) for s in sizes])
        table("Made harder: does the face detector still see the face, does a head box still cover it?",
              ["copy", "what", "all"] + [f"{s} px" for s in sizes], lines)
    if args.clip_frames:
        video_section(det, args.eval_dir, args.clip_frames)
    if args.timing_runs:
        timing(det, args.eval_dir, args.timing_runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
