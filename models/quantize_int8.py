"""Make the int8 copies behind ``--int8`` (``centerface_int8.onnx``, ``plate_yolov8n_1280x736_int8.onnx``).

Run once, outside the product, in an environment with anonlab installed plus the conversion-only packages:

    python -m venv /tmp/qvenv && /tmp/qvenv/bin/pip install -e . onnx==1.23.2 scikit-image==0.26.0
    /tmp/qvenv/bin/python models/quantize_int8.py /tmp/int8      # writes the two files there

Method: onnxruntime static quantization, QDQ format, uint8 activations, int8 per-channel weights, percentile
(99.999) calibration. Each model is first brought to opset 13 (per-channel QDQ needs it) and through
onnxruntime's ``quant_pre_process`` (shape inference; folds CenterFace's batch norms). The plate model's box
decoding (every ``/model.22/`` node outside its ``cv2``/``cv3`` conv branches) stays in float: quantized, it
puts pixel coordinates (0-1280) and 0-1 scores into one int8 scale and every score becomes 0.

Calibration (none of it from ../shared/eval, which is kept for evaluation): the tensors anonlab itself feeds
each session (its upscaling, padding, letterboxing and grey input) for 48 images: ``sample_media/portrait.jpg``,
every 10th frame of ``sample_media/street.mp4``, nine scikit-image sample images (astronaut, coffee, chelsea,
camera, rocket, motorcycle_left, horse, color, hubble_deep_field), 160 faces of scikit-image's LFW subset
pasted at 8-40 px into four 1280x720 backgrounds, and downscaled, cropped, darkened and brightened copies.

Measured (``models/README.md``): CenterFace 1.8x and the plate model 1.5x faster per 720p frame on an AVX512-VNNI
CPU, plate recall unchanged, face recall 0.933 against 0.935. Without VNNI, int8 may be slower than float.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SK_IMAGES = ["astronaut.png", "coffee.png", "chelsea.png", "camera.png", "rocket.jpg", "motorcycle_left.png",
             "horse.png", "color.png", "hubble_deep_field.jpg"]


# --- calibration images and the tensors anonlab makes of them ----------------------------------------------


def _bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def calibration_images() -> list[tuple[str, np.ndarray]]:
    import av
    import skimage

    sk = Path(skimage.__file__).parent / "data"
    images = [("portrait", _bgr(cv2.imread(str(REPO / "sample_media" / "portrait.jpg"), cv2.IMREAD_COLOR)))]
    with av.open(str(REPO / "sample_media" / "street.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 10 == 0:
                images.append((f"street{i:03d}", frame.to_ndarray(format="bgr24")))
    images += [(name.split(".")[0], _bgr(cv2.imread(str(sk / name), cv2.IMREAD_UNCHANGED))) for name in SK_IMAGES]
    named = dict(images)
    rng = np.random.default_rng(0)
    out = list(images)
    for name, img in images:
        h, w = img.shape[:2]
        if name in ("portrait", "astronaut", "street000", "street050", "coffee", "motorcycle_left"):
            for s in (0.5, 0.25):
                out.append((f"{name}_x{s}", cv2.resize(img, (max(32, int(w * s)), max(32, int(h * s))),
                                                       interpolation=cv2.INTER_AREA)))
        if name in ("portrait", "astronaut", "street030", "chelsea"):
            out.append((f"{name}_dark", np.clip(img.astype(np.float32) * 0.5, 0, 255).astype(np.uint8)))
            out.append((f"{name}_bright", np.clip(img.astype(np.float32) * 1.6, 0, 255).astype(np.uint8)))
        if name in ("portrait", "street070", "rocket"):
            y0, x0 = rng.integers(0, h // 3), rng.integers(0, w // 3)
            out.append((f"{name}_crop", np.ascontiguousarray(img[y0: y0 + h // 2, x0: x0 + w // 2])))
    portrait = named["portrait"]
    tile = cv2.resize(portrait, (320, int(320 * portrait.shape[0] / portrait.shape[1])))
    mosaic = np.concatenate([np.concatenate([tile] * 4, 1)] * 4, 0)
    out.append(("portrait_mosaic", cv2.resize(mosaic, (1280, 720), interpolation=cv2.INTER_AREA)))
    lfw = np.load(sk / "lfw_subset.npy")  # (200, 25, 25) grey faces in [0, 1]
    for k, background in enumerate(("coffee", "street020", "motorcycle_left", "astronaut")):
        bg = cv2.resize(named[background], (1280, 720))
        for j in range(40):
            face = (lfw[(k * 40 + j) % len(lfw)] * 255).astype(np.uint8)
            s = int(rng.integers(8, 41))
            face = cv2.cvtColor(cv2.resize(face, (s, s)), cv2.COLOR_GRAY2BGR)
            y, x = int(rng.integers(0, 720 - s)), int(rng.integers(0, 1280 - s))
            bg[y: y + s, x: x + s] = face
        out.append((f"lfw_on_{background}", bg))
    return out


class _Recorder:
    """Stands in for a session: records every input tensor, then runs the real session."""

    def __init__(self, session, store: list) -> None:
        self.session, self.store = session, store

    def run(self, names, feeds, *args, **kwargs):
        self.store.extend(np.array(v, np.float32, copy=True) for v in feeds.values())
        return self.session.run(names, feeds, *args, **kwargs)

    def __getattr__(self, item):
        return getattr(self.session, item)


def calibration_tensors() -> dict[str, list[np.ndarray]]:
    from anonlab.detect import build_detector
    from anonlab.settings import Settings

    faces = build_detector(Settings(what=("face",)))
    centerface = faces.detectors[0].base  # FusedFaces -> [AutoScale(CenterFace), AutoScale(YuNet)]
    plates = build_detector(Settings(what=("plate",)))
    store: dict[str, list[np.ndarray]] = {"centerface": [], "plate": []}
    centerface.session = _Recorder(centerface.session, store["centerface"])
    plates.session = _Recorder(plates.session, store["plate"])
    for _, image in calibration_images():
        faces(image)
        plates(image)
    return store


# --- quantization --------------------------------------------------------------------------------------------


def _float_post_processing(model_path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(model_path)).graph
    return sorted(n.name for n in graph.node
                  if "/model.22/" in n.name and "/cv2." not in n.name and "/cv3." not in n.name)


def _one_sample_at_a_time() -> None:
    """onnxruntime 1.32's histogram calibrators keep every intermediate tensor of every sample (gigabytes at
    720p) and its batching helper drops data; feed them one sample per call (the histograms merge)."""
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.calibrate import HistogramCalibrater

    original = HistogramCalibrater.collect_data
    if getattr(original, "_one_at_a_time", False):
        return

    def collect_data(self, data_reader):
        while (sample := data_reader.get_next()):
            class One(CalibrationDataReader):
                def __init__(self):
                    self.items = [sample]

                def get_next(self):
                    return self.items.pop() if self.items else None

            original(self, One())
            self.intermediate_outputs = []

    collect_data._one_at_a_time = True
    HistogramCalibrater.collect_data = collect_data


def quantize(name: str, source: Path, input_name: str, tensors: list[np.ndarray], out: Path, work: Path) -> None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(source))
    if model.opset_import[0].version < 13:
        model = version_converter.convert_version(model, 13)
    opset13 = work / f"{name}_op13.onnx"
    onnx.save(model, str(opset13))
    prepared = work / f"{name}_prep.onnx"
    quant_pre_process(str(opset13), str(prepared), skip_symbolic_shape=True)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(tensors)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {input_name: x}

    _one_sample_at_a_time()
    quantize_static(
        str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8, per_channel=True, calibrate_method=CalibrationMethod.Percentile,
        nodes_to_exclude=_float_post_processing(prepared) if name == "plate" else [],
        extra_options={"ActivationSymmetric": False, "CalibPercentile": 99.999},
    )


def main(argv: list[str]) -> int:
    from anonlab.detect.centerface import dynamic_dims

    out_dir = Path(argv[0]) if argv else REPO / "models"
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = calibration_tensors()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        centerface = work / "centerface_dynamic.onnx"  # anonlab's own rewrite: symbolic batch, height, width
        centerface.write_bytes(dynamic_dims((REPO / "models" / "centerface.onnx").read_bytes()))
        quantize("centerface", centerface, "input.1", tensors["centerface"], out_dir / "centerface_int8.onnx", work)
        quantize("plate", REPO / "models" / "plate_yolov8n_1280x736.onnx", "images", tensors["plate"],
                 out_dir / "plate_yolov8n_1280x736_int8.onnx", work)
    for f in ("centerface_int8.onnx", "plate_yolov8n_1280x736_int8.onnx"):
        import hashlib

        print(f, hashlib.sha256((out_dir / f).read_bytes()).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
