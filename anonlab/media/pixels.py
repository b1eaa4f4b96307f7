"""Pixel conversions between decoded video frames and the BGR images detectors and masks work on.

Two facts shape this module:

* **Determinism.** swscale's threaded slices gave different pixels for the same frame while the machine was
  busy (measured: the same case rendered 141 times under load gave five different files; the frames handed to
  the encoder differed by up to 3 levels). Every conversion here runs in one thread, through a
  `VideoReformatter` kept per reader or writer (it caches swscale's context).
* **Fidelity.** Masks are drawn on 8-bit BGR, but the output keeps the source's pixel format, bit depth and
  chroma: `Converter.composite` writes the masked BGR back into the decoded frame (a writable copy) only where
  the mask changed pixels (a chroma sample where any pixel it covers changed). Everything outside the masks
  is the decoder's output, bit for bit, whatever the depth; frames without masks are never converted at all.

Colour conversions use the frame's own matrix and range both ways, so the colours inside a mask match the
picture around it.
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import ColorRange, VideoReformatter

#: FFmpeg matrix codes (AVCOL_SPC_*) -> swscale colourspaces (SWS_CS_*); others use swscale's default (BT.601).
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


def _range(code: int | None) -> ColorRange:
    return ColorRange(code) if code in (1, 2) else ColorRange.UNSPECIFIED


def _plane_array(plane, itemsize: int) -> np.ndarray:
    """A writable ``(height, width)`` view of one plane (rows padded to ``line_size`` in memory)."""
    flat = np.frombuffer(plane, np.uint8 if itemsize == 1 else np.uint16)
    return flat.reshape(plane.height, plane.line_size // itemsize)[:, : plane.width]


def _itemsize(fmt: av.VideoFormat) -> int:
    return 2 if max(c.bits for c in fmt.components) > 8 else 1


def _block_any(changed: np.ndarray, sy: int, sx: int, shape: tuple[int, int]) -> np.ndarray:
    """Which samples of a plane subsampled by ``(sy, sx)`` cover at least one changed pixel."""
    h, w = shape
    padded = np.zeros((h * sy, w * sx), bool)
    padded[: changed.shape[0], : changed.shape[1]] = changed[: h * sy, : w * sx]
    return padded.reshape(h, sy, w, sx).any(axis=(1, 3))


class Converter:
    """Single-threaded BGR <-> frame conversions for one stream (not shared between threads).

    Args:
        colorspace: the stream's matrix (FFmpeg ``AVCOL_SPC_*`` code; unspecified uses BT.601 as swscale does).
        color_range: FFmpeg ``AVCOL_RANGE_*`` code (1 limited, 2 full, 0 unknown).
    """

    def __init__(self, colorspace: int = 2, color_range: int = 0) -> None:
        self.matrix = _SWS_MATRIX.get(int(colorspace))
        self.range = _range(color_range)
        self._to_bgr = VideoReformatter()
        self._from_bgr = VideoReformatter()

    def to_bgr(self, frame: av.VideoFrame) -> np.ndarray:
        """``(H, W, 3)`` uint8 BGR of a decoded frame (coded orientation)."""
        rgb = self._to_bgr.reformat(frame, format="bgr24", src_colorspace=self.matrix, src_color_range=self.range,
                                    threads=1)
        return rgb.to_ndarray()

    def from_bgr(self, image: np.ndarray, pix_fmt: str) -> av.VideoFrame:
        """A frame of ``pix_fmt`` holding ``image`` (BGR uint8), in this stream's matrix and range."""
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        return self._from_bgr.reformat(vf, format=pix_fmt, dst_colorspace=self.matrix, dst_color_range=self.range,
                                       threads=1)

    def convert(self, frame: av.VideoFrame, pix_fmt: str) -> av.VideoFrame:
        """``frame`` in ``pix_fmt`` (the frame itself when it already is), in this stream's matrix and range.

        The frame's properties (field order flags, pts) come along: x264 codes each frame with the field
        order its flags say. Encoders are told separately not to copy side data such as captions
        (`anonlab.media.streams.plan_video`).
        """
        if frame.format.name == pix_fmt:
            return frame
        return self._from_bgr.reformat(frame, format=pix_fmt, src_colorspace=self.matrix, dst_colorspace=self.matrix,
                                       src_color_range=self.range, dst_color_range=self.range, threads=1)

    def composite(self, base: av.VideoFrame, masked_bgr: np.ndarray, original_bgr: np.ndarray | None,
                  boxes: np.ndarray | None = None) -> bool:
        """Write ``masked_bgr`` into ``base`` where it differs from ``original_bgr``; True if anything changed.

        ``base`` is a frame (`convert`) whose pixels decode to ``original_bgr``; it is made writable here (a
        copy when the decoder still holds its buffers). Only the bounding rectangle of the changed pixels is
        converted, aligned to the chroma grid. ``original_bgr`` None: every pixel is replaced.

        ``boxes`` (``(N, 4)`` ``x1, y1, x2, y2``, end-exclusive, coded pixels): where ``masked_bgr`` may differ
        from ``original_bgr`` (the masks' rectangles, `anonlab.render.mask.mask_boxes`); only there are the two
        compared and converted, each group of overlapping boxes on its own (`box_groups`), so the cost follows
        the masks' area rather than the frame's (measured on a 720p crowd clip: 25 ms a frame for the whole
        frame, see `anonlab.media.video.write_video`). None: anywhere in the frame.
        """
        height, width = masked_bgr.shape[:2]
        if original_bgr is not None and boxes is not None:
            sx, sy = _chroma_steps(base)
            groups = box_groups(boxes, sx, sy, width, height)
        else:
            groups = [(0, 0, width, height)]
        done = False
        for x0, y0, x1, y1 in groups:
            masked = masked_bgr[y0:y1, x0:x1]
            if original_bgr is None:
                changed = np.ones(masked.shape[:2], bool)
            else:
                changed = _differs(masked, original_bgr[y0:y1, x0:x1])
            if not done and changed.any():
                base.make_writable()
            done |= self._write(base, masked_bgr, changed, x0, y0)
        return done

    def _write(self, base: av.VideoFrame, masked_bgr: np.ndarray, changed: np.ndarray, ox: int, oy: int) -> bool:
        """Convert the bounding rectangle of ``changed`` (a part of the frame whose top-left corner, on the chroma
        grid, is ``ox, oy``) and write the samples that cover a changed pixel into ``base`` (writable)."""
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        if not len(rows):
            return False
        fmt = base.format
        sx, sy = _chroma_steps(base)
        y0, x0 = oy + rows[0] // sy * sy, ox + cols[0] // sx * sx
        y1 = min(oy + -(-(rows[-1] + 1) // sy) * sy, masked_bgr.shape[0])
        x1 = min(ox + -(-(cols[-1] + 1) // sx) * sx, masked_bgr.shape[1])
        patch = self.from_bgr(masked_bgr[y0:y1, x0:x1], fmt.name)
        size = _itemsize(fmt)
        part = changed[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        for i, (dst, src) in enumerate(zip(base.planes, patch.planes)):
            py, px = (1, 1) if i == 0 else (sy, sx)
            target = _plane_array(dst, size)[y0 // py : y0 // py + src.height, x0 // px : x0 // px + src.width]
            values = _plane_array(src, size)[: target.shape[0], : target.shape[1]]
            where = _block_any(part, py, px, values.shape)
            target[where] = values[where]
        return True


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Which pixels of two ``(H, W, C)`` images differ in any channel (as ``np.any(a != b, axis=2)``, in a
    third of its time: an exclusive-or per channel, or-ed together)."""
    d = a ^ b
    out = d[..., 0].copy()
    for c in range(1, d.shape[2]):
        out |= d[..., c]
    return out.astype(bool)


def _chroma_steps(frame: av.VideoFrame) -> tuple[int, int]:
    """Pixels per chroma sample across and down (1, 1 for 4:4:4 and single-plane formats)."""
    fmt = frame.format
    if len(frame.planes) <= 1:
        return 1, 1
    return max(1, 16 // max(1, fmt.chroma_width(16))), max(1, 16 // max(1, fmt.chroma_height(16)))


def box_groups(boxes: np.ndarray, sx: int, sy: int, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """``boxes`` grown outward to the chroma grid (``sx`` by ``sy`` pixels) and clipped to the frame, overlapping
    ones joined into the rectangle that holds them: parts of a frame that convert independently (no chroma
    sample lies in two of them). Empty boxes are dropped.

    Example:
        >>> box_groups(np.array([[1, 1, 5, 5], [4, 4, 9, 9], [20, 0, 21, 1], [3, 3, 3, 8]]), 2, 2, 24, 10)
        [(0, 0, 10, 10), (20, 0, 22, 2)]
    """
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    x0 = np.clip(boxes[:, 0] // sx * sx, 0, width)
    y0 = np.clip(boxes[:, 1] // sy * sy, 0, height)
    x1 = np.clip(-(-boxes[:, 2] // sx) * sx, 0, width)
    y1 = np.clip(-(-boxes[:, 3] // sy) * sy, 0, height)
    groups = [list(b) for b in zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist()) if b[2] > b[0] and b[3] > b[1]]
    merged = True
    while merged:  # join until no two groups overlap (a join can make a group reach a third one)
        merged = False
        out: list[list[int]] = []
        for g in groups:
            for o in out:
                if g[0] < o[2] and o[0] < g[2] and g[1] < o[3] and o[1] < g[3]:
                    o[:] = [min(g[0], o[0]), min(g[1], o[1]), max(g[2], o[2]), max(g[3], o[3])]
                    merged = True
                    break
            else:
                out.append(g)
        groups = out
    return [tuple(g) for g in groups]


def coded_boxes(boxes: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """Boxes of the displayed frame (``np.rot90(coded, turns)``) in the coded frame's pixels (``width`` x
    ``height`` coded), end-exclusive ``x1, y1, x2, y2`` both ways.

    Example:
        >>> coded_boxes(np.array([[0, 0, 2, 1]]), 1, 4, 3).tolist()   # top-left of the display: top-right coded
        [[3, 0, 4, 2]]
    """
    b = np.asarray(boxes, np.int64).reshape(-1, 4)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    turns %= 4
    if turns == 0:
        out = (x1, y1, x2, y2)
    elif turns == 1:  # displayed (x, y) <- coded (width - 1 - y, x)
        out = (width - y2, x1, width - y1, x2)
    elif turns == 2:
        out = (width - x2, height - y2, width - x1, height - y1)
    else:  # displayed (x, y) <- coded (y, height - 1 - x)
        out = (y1, height - x2, y2, height - x1)
    return np.stack(out, axis=1)


# --- a view of PQ (HDR10) video for the analysis -------------------------------------------------------------
#: SMPTE ST 2084 (PQ) constants.
_M1, _M2, _C1, _C2, _C3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
#: Luminance shown as SDR white (ITU-R BT.2408's HDR reference white).
REFERENCE_WHITE_NITS = 203.0


def pq_view_lut() -> np.ndarray:
    """256-entry table from PQ-coded 8-bit values to an SDR-looking view (BT.1886-like gamma 2.4).

    PQ codes absolute luminance: SDR white sits near code 150 of 255, so PQ video decoded as it is looks dark
    and flat, and small faces in it score lower. The analysis (and the workbench's picture) see this view;
    masks are drawn in the video's own PQ values. ST 2084 EOTF, reference white 203 cd/m² at 1.0, highlights
    above it clipped (Reinhard-style roll-off above 0.8).
    """
    v = np.arange(256, dtype=np.float64) / 255.0
    p = np.power(v, 1 / _M2)
    nits = 10000.0 * np.power(np.maximum(p - _C1, 0) / (_C2 - _C3 * p), 1 / _M1)
    rel = nits / REFERENCE_WHITE_NITS
    knee = 0.8
    rolled = np.where(rel <= knee, rel, knee + (1 - knee) * (rel - knee) / (rel - knee + (1 - knee)))
    return np.clip(np.round(255.0 * np.power(np.clip(rolled, 0, 1), 1 / 2.4)), 0, 255).astype(np.uint8)
