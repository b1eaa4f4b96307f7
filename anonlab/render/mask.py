"""Pure pixel functions that make regions unrecognisable: blur, pixelate (mosaic) or solid fill.

One verb, ``mask_frame(frame, regions, settings) -> new frame``; the input array is never modified. Each
region is processed on its own crop with OpenCV/numpy (no Python loop over pixels).

Strength is tied to the size of the *object* (the detected box before padding), never to the frame and
never to ``mask_scale``, so a 400 px face is as unrecognisable as a 20 px one and widening the padding
does not weaken the mask:

- ``blur``: a Gaussian with ``sigma = object_size / BLUR_DIVISOR`` (= size / 3). Its transfer function is
  ``exp(-2 pi^2 sigma^2 f^2)``: 0.11 at 1 cycle across the object, 7e-3 at 1.5 cycles, 1.5e-4 at 2 cycles,
  3e-9 at 3. From 2 cycles across the face up (the eyes' spacing; nose, mouth and texture are finer) the
  signal ends below the half-level rounding of 8-bit output (0.5/255 = 2e-3 of full scale): it is stored
  as zero, gone rather than attenuated, and no deconvolution brings it back. Computed as area-downscale
  (object -> 16 px), Gaussian at that scale, linear upscale: the same low-pass at O(pixels) cost whatever
  the box size.
- ``pixelate``: square cells of ``ceil(object_size / MOSAIC_CELLS)`` pixels, i.e. 2.5 cells across the
  object's longer side (each cell 40 % of it). McPherson et al. (arXiv 1609.00408) still recognise 71 % of
  faces through mosaics of about 7 cells across, and the detectors agree: measured on 60 labelled photos of
  the evaluation faces (`models/README.md`) (images 100-159), YuNet at its normal threshold still found 71 of 248 faces
  (29 %) through a 6-cell mosaic, 26 (11 %) through 4 cells, 15 through 3, 8 through 2.5, against 2 through
  a solid fill; CenterFace (recall-first 0.2) 151 / 103 / 71 / 55 of 285 against 44 for solid. 2.5 is the
  finest of these mosaics whose figures come near solid's (2 cells: 7 and 49).
- ``solid``: a flat fill (black by default); nothing of the region survives.

The figures for ``blur`` on the same photos: sigma = size/4 left 13 faces detectable by YuNet and 71 by
CenterFace, size/3 9 and 50, against 2 and 44 after a solid fill (images 160-219: size/3 0 and 39
against 2 and 34); hence /3. What a detector still finds after a solid fill is the head's silhouette
(hair, ears, a dark face-sized box), which no mask confined to the box can remove
(``tests/test_mask_irreversible.py``).

Shape: with ``ellipse``, blur and mosaic leave a face-coloured oval, which detectors flag more often than
a black one although it holds no more detail than the rectangle (same photos, CenterFace / YuNet: blur 99 /
22, mosaic 121 / 20, solid ellipse 58 / 3). ``rect`` is the default shape for that reason.

Default style: ``blur`` (the `Settings` default) is kept on purpose. It leaves less for a detector than a
mosaic at any usable cell size, and it is the safer choice for *video*: a mosaic samples the face on a
grid whose phase moves with every jitter of the box, so consecutive frames sample different phases and
multi-frame super-resolution can recover detail above the cell size; a band-limited blur has no aliasing
to exploit. ``solid`` is the only style with a guarantee that does not rest on an argument about
frequencies; use it for the highest-risk material.

Geometry: a face's box flatter than `FACE_ASPECT` (height over width) is first extended down to that height: a
box much flatter is part of a face, the eyes above a medical mask or a scarf, a face whose lower half a hand
hides (the boxes the face detectors give the 1931 evaluation faces they find are 1.24 tall per unit of width at
the median, 1.18 at the 25th percentile: about 30 % of boxes of whole faces are extended too, by 2 % of their
height on average; on 1005 close-up crops of those faces the chin was left bare most often under flat boxes:
`benchmarks/eval_closeups.py`, faces covered whole 913 -> 938). "Down" is the face's own, for this rule and
`FACE_CHIN`: content found sideways or upside down (`anonlab.detect.orientation`) carries the turn that stands
it upright (`anonlab.regions.Regions.turn`), and the rules apply in that turned frame (an upside-down face's
mask grows towards its chin, at the top of the frame; `benchmarks/eval_closeups.py --step 5 --limit 40 --turn K`,
200 crops of 40 evaluation faces: covered whole 194 upright, 191 turned by 180° and 191 by 90°; the same crops
with the frame's "down", as before `Regions.turn`: 169 and 163). The
object box ``x1, y1, x2, y2`` is then grown about its centre by ``settings.mask_scale`` (1.3 =
15 % each side); a face's box is then extended downward by `FACE_CHIN` of its height (the whole head: the
face detectors' boxes reach well above the brow but stop short of the chin: over the 1931 faces they find
in the evaluation faces (`models/README.md`), the box ends a median 0.10 and a tenth of the time over 0.19 of the face's height
above the labelled chin, at every size; with the even growth alone the chin of about one face in four was
partly left bare, most visibly on close-ups). A face's mask reaches at least `MIN_FACE_MARGIN` pixels past
its box on every side: where a detector places a box's edges is uncertain by a few pixels however small the
face (its output stride, the blur and compression of video), so the even growth, 1.5 px a side for a 10 px
face, leaves tiny faces partly bare (measured on the semi-synthetic clips of `benchmarks/eval_tracking.py`,
its "box fit" over 2246 detected face-frames: the true edge furthest outside the detector's box lies a median
2.7 px out for faces under 12 px, 3.8 px for 12-16 px and 3.5 px for 16-24 px, 4.6-6 px at the 90th
percentile, with no trend with the size). Then it is rounded outward to whole pixels and clipped to
the frame. For ``shape="ellipse"`` the
factor is at least sqrt(2), the smallest ellipse (of the box's aspect ratio) that contains the whole object
box; a smaller ellipse would leave the box's corners (forehead, chin) unmasked. ``feather`` softens the
edge over a band of ``feather * min(side)`` of the grown box, inside it; the object box itself always stays
fully masked, so feathering can only show padding, never the object.

Example:
    >>> import numpy as np
    >>> from anonlab.regions import Regions
    >>> frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    >>> out = mask_frame(frame, Regions(xyxy=[[40, 30, 80, 90]]))
    >>> out.shape == frame.shape and not np.array_equal(out[30:90, 40:80], frame[30:90, 40:80])
    True
    >>> np.array_equal(out[:, :30], frame[:, :30])      # outside the padded box: untouched
    True
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from anonlab.regions import FACE, Regions
from anonlab.settings import MASK_SHAPES, MASK_STYLES, Settings

__all__ = [
    "BLUR_DIVISOR",
    "ELLIPSE_MIN_SCALE",
    "FACE_ASPECT",
    "FACE_CHIN",
    "MIN_FACE_MARGIN",
    "MOSAIC_CELLS",
    "SOLID_COLOR",
    "blur",
    "mask_boxes",
    "mask_extent",
    "mask_frame",
    "mask_whole_frame",
    "pixelate",
    "shape_alpha",
    "solid",
]

#: Mosaic cells across the longer side of the object (the detected box before padding); see the module
#: docstring for the measurements behind 2.5.
MOSAIC_CELLS = 2.5
#: Gaussian sigma = object size / BLUR_DIVISOR (see the module docstring for why 3).
BLUR_DIVISOR = 3.0
#: The blur runs at the scale where the object spans this many pixels (cost independent of box size;
#: 16 px keep 8 cycles, far above the < 2 cycles the Gaussian lets through).
_BLUR_GRID = 16.0
#: Fill colour of ``solid`` (BGR).
SOLID_COLOR: tuple[int, int, int] = (0, 0, 0)
#: An ellipse must be at least this many times the box to contain the box's corners.
ELLIPSE_MIN_SCALE = math.sqrt(2.0)
#: A face's mask reaches this share of its box's height further down than the even growth (module docstring).
FACE_CHIN = 0.1
#: A face's mask covers at least this many times its box's width below the box's top (module docstring).
FACE_ASPECT = 1.2
#: A face's mask reaches at least this many pixels past its box on every side (module docstring): above a
#: 27 px face (at the default ``mask_scale`` 1.3) the even growth is larger and this adds nothing.
MIN_FACE_MARGIN = 4.0


# --- styles: crop -> new crop of the same shape and dtype -------------------------------------------
def blur(crop: np.ndarray, size: float, *, divisor: float = BLUR_DIVISOR) -> np.ndarray:
    """Gaussian blur with ``sigma = size / divisor`` pixels; ``size`` is the object's longer side.

    Example:
        >>> crop = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        >>> out = blur(crop, 64)
        >>> out.shape, out.dtype.name, float(np.abs(np.diff(out.astype(float), axis=1)).max()) < 8
        ((64, 64, 3), 'uint8', True)
    """
    h, w = crop.shape[:2]
    if h == 0 or w == 0:
        return crop.copy()
    size = max(float(size), 1.0)
    # Resample so the object spans _BLUR_GRID px (area averaging: itself a low-pass, no aliasing),
    # blur there, interpolate back up. Upscaling a band-limited image adds no detail of the original.
    f = max(size / _BLUR_GRID, 1.0)
    sw, sh = max(1, round(w / f)), max(1, round(h / f))
    small = crop.astype(np.float32)
    if (sw, sh) != (w, h):
        small = cv2.resize(small, (sw, sh), interpolation=cv2.INTER_AREA)
    sigma = size / divisor / (w / sw)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    if (sw, sh) != (w, h):
        small = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.rint(small), 0, 255).astype(crop.dtype).reshape(crop.shape)


def pixelate(crop: np.ndarray, size: float, *, cells: float = MOSAIC_CELLS) -> np.ndarray:
    """Mosaic of square cells of ``ceil(size / cells)`` pixels (each the mean of its pixels).

    The grid starts at the crop's top-left corner; edge cells that the crop cuts are averaged over the
    pixels they hold (plus replicated edge pixels).

    Example:
        >>> crop = np.arange(36 * 36 * 3, dtype=np.uint8).reshape(36, 36, 3)
        >>> out = pixelate(crop, 36, cells=6)            # 6 px cells
        >>> len(np.unique(out[0, :, 0]))                  # 6 cells across the first row
        6
    """
    h, w = crop.shape[:2]
    if h == 0 or w == 0:
        return crop.copy()
    c = max(1, math.ceil(float(size) / cells))
    nh, nw = math.ceil(h / c), math.ceil(w / c)
    padded = cv2.copyMakeBorder(crop, 0, nh * c - h, 0, nw * c - w, cv2.BORDER_REPLICATE)
    # Integer ratios: INTER_AREA is the exact block mean, INTER_NEAREST the exact block repeat.
    small = cv2.resize(padded, (nw, nh), interpolation=cv2.INTER_AREA)
    big = cv2.resize(small, (nw * c, nh * c), interpolation=cv2.INTER_NEAREST)
    return big[:h, :w].reshape(crop.shape)


def solid(crop: np.ndarray, size: float = 0.0, *, color: tuple[int, ...] = SOLID_COLOR) -> np.ndarray:
    """A flat fill of ``color`` (BGR; alpha, where present, made opaque). ``size`` is ignored.

    Example:
        >>> solid(np.full((2, 2, 3), 200, np.uint8))[0, 0].tolist()
        [0, 0, 0]
    """
    channels = 1 if crop.ndim == 2 else crop.shape[2]
    if channels == 1:
        fill = np.asarray([round(float(np.mean(color[:3])))])
    else:
        fill = np.asarray((tuple(color[:3]) + (255,) * channels)[:channels])
    return np.broadcast_to(fill.astype(crop.dtype), (*crop.shape[:2], channels)).reshape(crop.shape).copy()


_STYLES = {"blur": blur, "pixelate": pixelate, "solid": solid}
assert set(_STYLES) == set(MASK_STYLES)


# --- geometry ---------------------------------------------------------------------------------------
def _scale_for(settings: Settings) -> float:
    return max(settings.mask_scale, ELLIPSE_MIN_SCALE) if settings.shape == "ellipse" else settings.mask_scale


def _grown(xyxy: np.ndarray, scale: float) -> np.ndarray:
    """Boxes grown about their centres by ``scale`` (float, unclipped)."""
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) * (scale / 2)
    return np.concatenate([centre - half, centre + half], axis=1)


def _turned(xyxy: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """Each box rotated about the origin by its ``turn`` quarter turns counter-clockwise (as `numpy.rot90`
    turns an image: ``(x, y) -> (y, -x)`` for one turn); ``(4 - turn) % 4`` turns it back. Float, unclipped."""
    x1, y1, x2, y2 = xyxy.T
    out = xyxy.copy()
    for t, box in ((1, (y1, -x2, y2, -x1)), (2, (-x2, -y2, -x1, -y1)), (3, (-y2, x1, -y1, x2))):
        rows = turn == t
        if rows.any():
            out[rows] = np.stack(box, axis=1)[rows]
    return out


def mask_extent(regions: Regions, settings: Settings | None = None) -> np.ndarray:
    """The shape's bounding box for each region, before rounding and clipping: ``(N, 4)`` float64 xyxy.

    The object box (for a face, at least `FACE_ASPECT` times as tall as wide: a flatter one extended down)
    grown by ``mask_scale`` (at least sqrt(2) for ellipses) about its centre; for faces, at
    least `MIN_FACE_MARGIN` pixels a side (boxes with an area, whatever ``mask_scale``), then extended down by
    `FACE_CHIN` of the box's height (module docstring). "Down" is the face's own: towards the bottom of the
    content stood upright by the row's ``turn`` (`anonlab.regions.Regions.turn`), the frame's bottom for
    upright content. Evaluations use it to say what the masks as drawn hide. Units: pixels of the frame.

    Example:
        >>> from anonlab.regions import PLATE
        >>> extent = lambda r: np.round(mask_extent(r, Settings()), 1).tolist()
        >>> extent(Regions(xyxy=[[10, 10, 40, 46]] * 2, label=[0, PLATE]))  # a face, a plate
        [[5.5, 4.6, 44.5, 55.0], [5.5, 4.6, 44.5, 51.4]]
        >>> extent(Regions(xyxy=[[10, 10, 20, 22]], label=[0]))  # a tiny face
        [[6.0, 6.0, 24.0, 27.2]]
        >>> extent(Regions(xyxy=[[0, 0, 100, 50]], label=[0]))  # the eyes of a face: extended to 120 px
        [[-15.0, -18.0, 115.0, 150.0]]
        >>> extent(Regions(xyxy=[[0, 70, 100, 120]], label=[0], turn=[2]))  # the same, upside down: upwards
        [[-15.0, -30.0, 115.0, 138.0]]
    """
    settings = settings or Settings()
    # the rules below are written for upright faces: apply them where each row's content stands upright
    turn = regions.turn.astype(np.int64)
    xyxy = _turned(regions.xyxy.astype(np.float64), turn)
    # a box without area stays without (nothing was found there to pad)
    face = (regions.label == FACE) & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    # a face box flatter than a face is part of one: the rest lies below (module docstring)
    xyxy[face, 3] = np.maximum(xyxy[face, 3], xyxy[face, 1] + FACE_ASPECT * (xyxy[face, 2] - xyxy[face, 0]))
    g = _grown(xyxy, _scale_for(settings))
    g[face, :2] = np.minimum(g[face, :2], xyxy[face, :2] - MIN_FACE_MARGIN)
    g[face, 2:] = np.maximum(g[face, 2:], xyxy[face, 2:] + MIN_FACE_MARGIN)
    g[:, 3] += np.where(face, FACE_CHIN * (xyxy[:, 3] - xyxy[:, 1]), 0.0)
    return _turned(g, (4 - turn) % 4)


def mask_boxes(regions: Regions, settings: Settings | None, width: int, height: int) -> np.ndarray:
    """The pixels `mask_frame` may change for each region: ``(N, 4)`` int64 ``x1, y1, x2, y2``.

    `mask_extent` rounded outward and clipped to the frame; ``x2``/``y2`` exclusive. A region wholly
    outside the frame gives an empty box (``x1 == x2``).

    Example:
        >>> from anonlab.regions import PLATE
        >>> r = Regions(xyxy=[[10, 10, 40, 46], [-50, 0, -10, 48], [10, 10, 40, 40]], label=[0, 0, PLATE])
        >>> mask_boxes(r, Settings(), 100, 100).tolist()
        [[5, 4, 45, 55], [0, 0, 0, 60], [5, 5, 45, 45]]
    """
    settings = settings or Settings()
    g = mask_extent(regions, settings)
    # Round outward (floor / ceil): a half-covered pixel is masked, never left.
    out = np.concatenate([np.floor(g[:, :2] + 1e-6), np.ceil(g[:, 2:] - 1e-6)], axis=1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    out[:, 2:] = np.maximum(out[:, 2:], out[:, :2])
    # A sliver thinner than the rounding tolerance still touches a pixel row/column: mask one.
    for lo, hi, size in ((0, 2, width), (1, 3, height)):
        thin = (out[:, hi] <= out[:, lo]) & (g[:, hi] > g[:, lo]) & (g[:, hi] > 0) & (g[:, lo] < size)
        out[thin, hi] = np.minimum(out[thin, lo] + 1, size)
        out[thin, lo] = out[thin, hi] - 1
    return out.astype(np.int64)


def shape_alpha(
    height: int,
    width: int,
    box: tuple[float, float, float, float],
    *,
    shape: str = "rect",
    feather: float = 0.0,
    inner: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Coverage ``(height, width)`` float32 in [0, 1] of a crop by a rectangle or ellipse.

    Args:
        height, width: crop size.
        box: the shape's bounding box in crop pixels (may reach outside the crop where it was clipped).
        shape: ``rect`` or ``ellipse`` (inscribed in ``box``).
        feather: width of the soft edge as a fraction of ``box``'s shorter side; the ramp runs inward
            from the shape's edge. 0 = hard edge.
        inner: a box (crop pixels) that is always fully covered: the object itself.

    Example:
        >>> a = shape_alpha(10, 10, (0, 0, 10, 10), shape="ellipse")
        >>> float(a[0, 0]), float(a[5, 5])                # corner outside, centre inside
        (0.0, 1.0)
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    xs = np.arange(width, dtype=np.float32) + 0.5  # pixel centres
    ys = np.arange(height, dtype=np.float32) + 0.5
    bw, bh = max(x2 - x1, 1e-6), max(y2 - y1, 1e-6)
    band = float(feather) * min(bw, bh)
    if shape == "rect":
        dx = np.minimum(xs - x1, x2 - xs)
        dy = np.minimum(ys - y1, y2 - ys)
        depth = np.minimum.outer(dy, dx)  # distance (px) inside the nearest edge
    elif shape == "ellipse":
        a, b = bw / 2, bh / 2
        u = (xs - (x1 + a)) / a
        v = (ys - (y1 + b)) / b
        r = np.sqrt(np.add.outer(v * v, u * u))
        depth = (1.0 - r) * min(a, b)  # radial approximation of the distance to the edge, in px
    else:
        raise ValueError(f"unknown mask shape {shape!r}; expected one of {', '.join(MASK_SHAPES)}")
    if band > 0:
        alpha = np.clip(depth / band, 0.0, 1.0).astype(np.float32)
    else:
        alpha = (depth >= 0).astype(np.float32)
    if inner is not None:
        ix1, iy1 = max(0, math.floor(inner[0])), max(0, math.floor(inner[1]))
        ix2, iy2 = min(width, math.ceil(inner[2])), min(height, math.ceil(inner[3]))
        if ix2 > ix1 and iy2 > iy1:
            alpha[iy1:iy2, ix1:ix2] = 1.0
    return alpha


# --- frames -----------------------------------------------------------------------------------------
def _check_frame(frame) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError(f"frames are uint8 numpy arrays; got {getattr(frame, 'dtype', type(frame).__name__)}")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise ValueError(f"frames are (H, W, 3) BGR arrays; got shape {frame.shape}")
    return frame


def mask_frame(frame: np.ndarray, regions: Regions, settings: Settings | None = None) -> np.ndarray:
    """A masked copy of ``frame``: every region made unrecognisable per ``settings``.

    Uses ``settings.mask`` (blur / pixelate / solid), ``shape`` (rect / ellipse), ``mask_scale`` and
    ``feather``; strength follows each region's own size (module docstring). Boxes partly outside the
    frame are clipped; regions wholly outside or without area are skipped. ``regions`` must be this
    frame's rows (``frame`` column not consulted). The input array is never modified.

    Example:
        >>> frame = np.full((50, 50, 3), 255, np.uint8)
        >>> out = mask_frame(frame, Regions(xyxy=[[10, 10, 20, 20]]), Settings(mask="solid"))
        >>> int(out[15, 15].sum()), int(frame[15, 15].sum())
        (0, 765)
    """
    frame = _check_frame(frame)
    settings = settings or Settings()
    out = frame.copy()
    if len(regions) == 0:
        return out
    height, width = frame.shape[:2]
    style = _STYLES[settings.mask]
    xyxy = regions.xyxy.astype(np.float64)
    grown = mask_extent(regions, settings)
    boxes = mask_boxes(regions, settings, width, height)
    sizes = (xyxy[:, 2:] - xyxy[:, :2]).max(axis=1)
    for (x1, y1, x2, y2), obj, shape_box, size in zip(boxes.tolist(), xyxy, grown, sizes.tolist()):
        if x2 <= x1 or y2 <= y1 or size <= 0:
            continue
        crop = out[y1:y2, x1:x2]
        styled = style(crop, size)
        if settings.shape == "rect" and settings.feather == 0:
            out[y1:y2, x1:x2] = styled
            continue
        offset = np.array([x1, y1, x1, y1], np.float64)
        alpha = shape_alpha(
            y2 - y1, x2 - x1, tuple(shape_box - offset), shape=settings.shape, feather=settings.feather,
            inner=tuple(obj - offset),
        )
        if crop.ndim == 3:
            alpha = alpha[:, :, None]
        blended = styled.astype(np.float32) * alpha + crop.astype(np.float32) * (1.0 - alpha)
        out[y1:y2, x1:x2] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def mask_whole_frame(frame: np.ndarray, style: str = "solid", *, color: tuple[int, ...] = SOLID_COLOR) -> np.ndarray:
    """A copy of ``frame`` masked edge to edge: for frames that could not be analysed.

    ``solid`` (default) leaves nothing; ``blur``/``pixelate`` treat the whole frame as the object
    (sigma = a third of its longer side; 2.5 cells across), which keeps only the scene's overall colour.

    Example:
        >>> mask_whole_frame(np.full((4, 6, 3), 90, np.uint8)).max()
        np.uint8(0)
    """
    frame = _check_frame(frame)
    if style not in _STYLES:
        raise ValueError(f"unknown mask style {style!r}; expected one of {', '.join(MASK_STYLES)}")
    size = max(frame.shape[:2])
    if style == "solid":
        return solid(frame, color=color)
    return _STYLES[style](frame, size)
