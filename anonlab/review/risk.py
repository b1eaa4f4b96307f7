"""Residual risk: a random sample of frames for the analyst to check, and exact bounds from what they found.

After review the question is how much the analysis may still have missed. The analyst checks a stratified
random sample of frames (`sample_frames`: every frame has the same chance, every shot and stretch of time
is visited) and counts the missed objects; `risk_bound` turns that count into exact one-sided upper
confidence bounds on the miss rate per frame (binomial, Clopper-Pearson) and on missed object-frames per
minute (Poisson, Garwood). The bounds are computed in plain Python (log-space sums and bisection), with the
standard library only: scipy is not a dependency of anonlab. Results carry counts and rates only: no frame
numbers, no coordinates.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Iterable

from anonlab.errors import AnonlabError

__all__ = ["binomial_upper", "poisson_upper", "risk_bound", "sample_frames"]


def sample_frames(n_frames: int, k: int, *, scene_cuts: Iterable[int] = (), seed: int,
                  cover_scenes: bool = True) -> list[int]:
    """A stratified random sample of ``k`` frames for the residual-risk check, spread over time and shots.

    The video is cut into shots at ``scene_cuts``; each shot gets a share of ``k`` proportional to its
    length (largest remainders), and each shot's share is spread over equal stretches of it with one frame
    drawn uniformly at random from each stretch. So every frame has (up to rounding) the same chance k/N of
    being drawn, which is what `risk_bound` assumes, and no long stretch of time goes unchecked. With
    ``cover_scenes`` (and ``k`` at least the number of shots) every shot gets at least one frame, taken from
    the shots sampled most.

    Args:
        n_frames: frames in the video.
        k: frames to draw (all frames if ``k >= n_frames``).
        scene_cuts: first frames of new shots.
        seed: random seed; record it (the case file) so the sample can be reproduced.

    Returns:
        Sorted distinct frame numbers.

    Example:
        >>> sample_frames(100, 4, seed=1) == sample_frames(100, 4, seed=1)
        True
    """
    n_frames, k = int(n_frames), int(k)
    if n_frames <= 0 or k <= 0:
        return []
    if k >= n_frames:
        return list(range(n_frames))
    rng = random.Random(seed)
    bounds = [0, *sorted({int(c) for c in scene_cuts if 0 < int(c) < n_frames}), n_frames]
    lengths = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
    quota = [k * L / n_frames for L in lengths]
    alloc = [int(math.floor(q)) for q in quota]
    order = sorted(range(len(lengths)), key=lambda i: (-(quota[i] - alloc[i]), rng.random()))
    for i in order[: k - sum(alloc)]:
        alloc[i] += 1
    if cover_scenes and k >= len(lengths):
        for i in [i for i in range(len(lengths)) if alloc[i] == 0]:
            donor = max((j for j in range(len(lengths)) if alloc[j] > 1), key=lambda j: alloc[j] - quota[j])
            alloc[donor] -= 1
            alloc[i] = 1
    out = []
    for (start, _), length, m in zip(zip(bounds[:-1], bounds[1:]), lengths, alloc):
        m = min(m, length)
        for i in range(m):
            lo, hi = start + (i * length) // m, start + ((i + 1) * length) // m
            out.append(rng.randrange(lo, hi))
    return sorted(out)


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    return min(1.0, math.fsum(math.exp(base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq)
                              for i in range(k + 1)))


def _poisson_cdf(k: int, mu: float) -> float:
    """P(X <= k) for X ~ Poisson(mu)."""
    if mu <= 0.0:
        return 1.0
    lm = math.log(mu)
    return min(1.0, math.fsum(math.exp(-mu + i * lm - math.lgamma(i + 1)) for i in range(k + 1)))


def _bisect_decreasing(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """The x in [lo, hi] where the decreasing function f crosses ``target`` (returned on the safe, upper side)."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


def binomial_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """Exact one-sided Clopper–Pearson upper bound on a binomial proportion after ``k`` events in ``n`` trials.

    The p at which observing ``k`` or fewer events has probability ``1 - confidence``. ``k = 0`` gives
    ``1 - (1 - confidence) ** (1 / n)``, about ``3 / n`` at 95 % (the rule of three).

    Raises:
        AnonlabError: ``n`` is not positive, ``k`` lies outside ``0..n``, or ``confidence`` outside (0, 1).

    Example:
        >>> round(binomial_upper(0, 300), 5)
        0.00994
    """
    k, n = int(k), int(n)
    if n <= 0 or not 0 <= k <= n:
        raise AnonlabError(f"need 0 <= events <= trials and trials > 0; got {k} of {n}")
    if not 0.0 < confidence < 1.0:
        raise AnonlabError(f"confidence must lie between 0 and 1; got {confidence}")
    alpha = 1.0 - confidence
    if k == n:
        return 1.0
    if k == 0:
        return -math.expm1(math.log(alpha) / n)
    return _bisect_decreasing(lambda p: _binomial_cdf(k, n, p), alpha, 0.0, 1.0)


def poisson_upper(k: int, confidence: float = 0.95) -> float:
    """Exact one-sided upper bound (Garwood) on a Poisson mean after observing ``k`` events.

    ``k = 0`` gives ``-ln(1 - confidence)`` (2.996 at 95 %).

    Raises:
        AnonlabError: ``k`` is negative or ``confidence`` lies outside (0, 1).
    """
    k = int(k)
    if k < 0:
        raise AnonlabError(f"event count must be 0 or more; got {k}")
    if not 0.0 < confidence < 1.0:
        raise AnonlabError(f"confidence must lie between 0 and 1; got {confidence}")
    alpha = 1.0 - confidence
    if k == 0:
        return -math.log(alpha)
    hi = k + 10.0 + 10.0 * math.sqrt(k)
    while _poisson_cdf(k, hi) > alpha:
        hi *= 2
    return _bisect_decreasing(lambda mu: _poisson_cdf(k, mu), alpha, 0.0, hi)


def risk_bound(
    n_sampled_frames: int,
    n_missed_objects: int,
    n_frames: int,
    fps: float,
    confidence: float = 0.95,
    *,
    n_frames_with_miss: int | None = None,
) -> dict:
    """Upper confidence bounds on what the analysis missed, from a checked random sample of frames.

    The analyst looked at ``n_sampled_frames`` frames drawn by `sample_frames` and counted
    ``n_missed_objects`` *object-frames* left unmasked (a face visible and unmasked in 3 of the sampled frames
    counts 3; two such faces in one frame count 2). Two exact one-sided bounds follow:

    1. **Miss rate per frame (binomial, Clopper–Pearson).** Each sampled frame is one trial, and a trial
       fails when the frame shows at least one missed object. ``p`` is the share of the video's frames that
       show a missed object. ``k`` = frames with a miss (``n_frames_with_miss``; by default the object count,
       which can only over-count and so keeps the bound conservative). From it: exposed frames per minute
       ``p_up * fps * 60`` and in the whole video ``p_up * n_frames``.
    2. **Missed object-frames per minute (Poisson, Garwood)** — the "critical error rate". The count of
       missed objects in a frame is modelled as Poisson with mean ``mu`` per frame; ``mu_up * fps * 60`` bounds
       missed object-frames per minute, ``mu_up * n_frames`` in the whole video. For the same count this bound
       is never below bound 1 (the Poisson upper limit exceeds the binomial one), and with zero misses both
       are about ``3 / n`` per frame at 95 % (rule of three).

    Assumptions, to state beside the figures: the sampled frames are a random sample of the video's frames
    with equal chances (`sample_frames`: proportional stratified sampling, treated as simple random sampling
    with replacement, which makes the bound slightly conservative for a finite video); the analyst sees
    every miss in a checked frame; bound 2 further assumes misses in a frame do not come in clumps (several
    faces missed together, e.g. a crowd, break the Poisson model: count a crowd frame with care, or rely on
    bound 1, which needs no such assumption but counts frames, not objects). Misses are correlated in time
    (one missed face is usually missed in neighbouring frames): that does not invalidate the bounds, which
    are about the video's frames, because the *sample* is random; it is why the figures are per frame and
    per minute, not per person.

    Args:
        n_sampled_frames: frames checked (``n``).
        n_missed_objects: missed object-frames found in them (``k``).
        n_frames: frames in the whole video.
        fps: frames per second (average for VFR video).
        confidence: one-sided confidence level.
        n_frames_with_miss: sampled frames with at least one miss (default: ``min(k, n)``).

    Returns:
        A JSON-ready dict: the inputs, ``miss_rate_per_frame`` ``{"observed", "upper"}``,
        ``exposed_frames_per_minute_upper``, ``exposed_frames_upper``, ``missed_objects_per_frame_upper``,
        ``missed_objects_per_minute_upper`` (the headline), ``missed_objects_upper``, ``methods`` and
        ``statement`` (one sentence for the report). No frame numbers, no coordinates.

    Raises:
        AnonlabError: no frame was checked, a count is negative or out of range, more frames were checked
            than the video has, ``fps`` is not positive, or ``confidence`` lies outside (0, 1).

    Example:
        >>> r = risk_bound(300, 0, n_frames=9000, fps=25)
        >>> round(r["miss_rate_per_frame"]["upper"] * 300, 2)      # rule of three
        2.98
    """
    n, k = int(n_sampled_frames), int(n_missed_objects)
    if n <= 0:
        raise AnonlabError("the residual-risk check needs at least one checked frame")
    if k < 0:
        raise AnonlabError(f"missed objects must be 0 or more; got {k}")
    if int(n_frames) < n:
        raise AnonlabError(f"checked {n} frames but the video has only {n_frames}")
    if not fps or fps <= 0:
        raise AnonlabError(f"fps must be positive; got {fps}")
    kf = min(k, n) if n_frames_with_miss is None else int(n_frames_with_miss)
    if not 0 <= kf <= min(k, n):
        raise AnonlabError(f"frames with a miss ({kf}) must lie between 0 and min(missed objects, checked frames)")
    p_up = binomial_upper(kf, n, confidence)
    mu_up = poisson_upper(k, confidence) / n
    per_min = 60.0 * float(fps)
    minutes = int(n_frames) / float(fps) / 60.0
    pct = f"{100 * confidence:g} %"
    statement = (f"With {pct} confidence, at most {mu_up * per_min:.3g} missed object-frames per minute "
                 f"({mu_up * int(n_frames):.3g} in the whole video) and at most {100 * p_up:.3g} % of frames showing "
                 f"a missed object, from {k} missed object(s) in {n} randomly sampled frame(s).")
    return {
        "confidence": confidence,
        "sampled_frames": n,
        "missed_objects": k,
        "frames_with_miss": kf,
        "video_frames": int(n_frames),
        "fps": float(fps),
        "video_minutes": minutes,
        "miss_rate_per_frame": {"observed": kf / n, "upper": p_up},
        "exposed_frames_per_minute_upper": p_up * per_min,
        "exposed_frames_upper": p_up * int(n_frames),
        "missed_objects_per_frame_upper": mu_up,
        "missed_objects_per_minute_upper": mu_up * per_min,
        "missed_objects_upper": mu_up * int(n_frames),
        "methods": {
            "miss_rate_per_frame": "one-sided exact binomial (Clopper-Pearson); trial = sampled frame, "
                                   "failure = frame shows >= 1 missed object",
            "missed_objects": "one-sided exact Poisson (Garwood) on missed object-frames per frame",
            "sampling": "stratified random frames, proportional allocation, treated as simple random sampling",
        },
        "statement": statement,
    }
