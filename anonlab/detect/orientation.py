"""Content that is upside down or sideways without metadata: detect in the orientation where faces stand upright.

A camera mounted inverted, a phone held sideways whose rotation flag was lost, a scanned print fed in the wrong
way: the frame is displayed as stored, and the people in it lie on their side or stand on their heads. Both face
models were trained on upright faces; turned by 180° they find about a third of them (measured on rotated copies
of the evaluation faces (`models/README.md`), ``benchmarks/eval_orientation.py``).

Every `anonlab.detect.Detector` has ``choose(frame) -> (turn, regions)``: it runs the detector on the frame as it
is and turned by 90°, 180° and 270°, and keeps the turn whose faces are the most plainly upright (`evidence`,
`choose_turn`); and ``at(turn)``: the detector run on frames turned that way (`Turned`), boxes mapped back to
the frame's own pixels. The analysis loop (`anonlab.track.analyse.Analyser`) calls ``choose`` where a shot
begins and detects the rest of the shot ``at`` the chosen turn, so a video pays the three extra passes once per
shot (and again about once a second while a shot shows no clear face in any orientation); a photo is one shot.
Called as it is, a detector never turns anything (per-frame callers such as the moviepy effect pay nothing).

Turns count quarter turns counter-clockwise, as `numpy.rot90` does: turn 1 shows the frame rotated 90° to the
left, which puts upright a scene whose camera was rolled 90° to the right.
"""

from __future__ import annotations

import numpy as np

from anonlab.regions import FACE, Regions

#: The quarter turns `Oriented.choose` tries, the frame as it is first.
TURNS = (0, 1, 2, 3)


def turn_frame(frame: np.ndarray, turns: int) -> np.ndarray:
    """``frame`` rotated by ``turns`` quarter turns counter-clockwise (a view where possible, as `numpy.rot90`)."""
    return np.rot90(frame, int(turns) % 4)


def turn_boxes(xyxy: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """Boxes of a ``width`` x ``height`` image moved into ``turn_frame(image, turns)``: ``(N, 4)`` float32 xyxy.

    Exact for pixel-edge coordinates (x2/y2 exclusive): the box of a block of pixels maps to the box of the same
    block after `turn_frame`. Example:
        >>> turn_boxes(np.array([[0, 0, 2, 1]]), 1, width=4, height=3).tolist()   # top-left 2x1 -> bottom-left
        [[0.0, 2.0, 1.0, 4.0]]
    """
    b = np.asarray(xyxy, np.float32).reshape(-1, 4)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    t = int(turns) % 4
    if t == 0:
        out = b.copy()
    elif t == 1:  # (x, y) -> (y, W - x)
        out = np.stack([y1, width - x2, y2, width - x1], axis=1)
    elif t == 2:  # (x, y) -> (W - x, H - y)
        out = np.stack([width - x2, height - y2, width - x1, height - y1], axis=1)
    else:  # (x, y) -> (H - y, x)
        out = np.stack([height - y2, x1, height - y1, x2], axis=1)
    return out.astype(np.float32)


def unturn_boxes(xyxy: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """Boxes found in ``turn_frame(image, turns)`` moved back into the ``width`` x ``height`` image."""
    t = int(turns) % 4
    w, h = (height, width) if t % 2 else (width, height)  # size of the turned image
    return turn_boxes(xyxy, (4 - t) % 4, w, h)


def unturn_regions(regions: Regions, turns: int, width: int, height: int) -> Regions:
    """Regions found in ``turn_frame(image, turns)`` moved back into the ``width`` x ``height`` image: boxes as
    `unturn_boxes`, and each row's ``turn`` (what stands its content upright) composed with ``turns``: content
    upright in the turned image needs ``turns`` more quarter turns in the image itself.

    Example:
        >>> r = unturn_regions(Regions(xyxy=[[0, 0, 2, 1]]), 2, width=4, height=3)
        >>> r.xyxy.tolist(), r.turn.tolist()
        ([[2.0, 2.0, 4.0, 3.0]], [2])
    """
    if not len(regions):
        return regions
    return regions.replace(xyxy=unturn_boxes(regions.xyxy, turns, width, height),
                           turn=(regions.turn.astype(np.int64) + int(turns)) % 4)


#: Faces scoring above this count as evidence of an orientation (the tracker's high-score line and the review's
#: low-score line are both 0.5: below it a box is unsure, and a turned frame is full of unsure boxes).
SURE = 0.5


def evidence(regions: Regions) -> float:
    """How plainly a pass sees upright faces: the sum over face boxes of ``max(0, score - SURE)``.

    Unsure boxes add nothing, so the false boxes a turned frame is full of do not outvote a few clear faces;
    every clear face adds by how clear it is. Chosen on rotated copies of the evaluation faces (`models/README.md`) among a sum
    of scores, of squared scores, of scores above 0.5 or 0.7 (``benchmarks/eval_orientation.py``): all pick the
    upright turn for 410-424 of 427 photos; this one for 421-422 in every rotation.
    """
    s = regions.score[regions.label == FACE].astype(np.float64)
    return float(np.clip(s - SURE, 0.0, None).sum())


def choose_turn(run, turns=TURNS, probe=None) -> tuple[int, Regions, int]:
    """Keep the turn under which faces are most plainly upright (the most `evidence`).

    Args:
        run: ``run(turn) -> Regions``, the detector at a turn.
        turns: the turns to try, the frame as it is first; ties go to the earliest, so content without a clear
            face anywhere stays as it is.
        probe: ``probe(turn) -> Regions`` that finds the faces only, for the turns other than the first (a
            detector of faces and plates need not look for plates three more times); ``run`` then runs again
            at the chosen turn. Default: ``run`` itself.

    Returns:
        ``(turn, its regions from run, passes run)``.
    """
    first = run(turns[0])
    best_turn, best, best_ev, passes = turns[0], first, evidence(first), 1
    for t in turns[1:]:
        r = (probe or run)(t)
        passes += 1
        e = evidence(r)
        if e > best_ev:
            best_turn, best, best_ev = t, r, e
    if probe is not None and best_turn != turns[0]:
        best, passes = run(best_turn), passes + 1
    return int(best_turn), best, passes
