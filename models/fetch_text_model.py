"""Take the PP-OCRv4 text-detection model (DB) out of the ``rapidocr-onnxruntime==1.4.4`` wheel, once.

Run by hand when the file has to be restored (anonlab never imports rapidocr; CI does not run this script):

    .venv/bin/python models/fetch_text_model.py                 # pip download the wheel, extract, check
    .venv/bin/python models/fetch_text_model.py --wheel FILE    # an already downloaded wheel

What it does:
1. fetches the wheel with ``pip download --no-deps rapidocr-onnxruntime==1.4.4`` into a temporary folder (or
   takes ``--wheel``) and checks the wheel's sha256 against the one measured when the file was bundled;
2. reads ``rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx`` out of the zip, checks its sha256 against
   the wheel's own RECORD and against the registry (`anonlab.models`), and writes it to
   ``models/ch_PP-OCRv4_det_infer.onnx`` (bytes unchanged: no conversion).

The weights are PaddleOCR's PP-OCRv4 mobile detector (Apache-2.0, PaddlePaddle authors), converted to ONNX by
RapidOCR (Apache-2.0, RapidAI); the wheel's metadata states Apache-2.0. Apache-2.0 asks that a copy of the
licence travel with the file: ``models/ch_PP-OCRv4_det_infer.LICENSE``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "rapidocr-onnxruntime==1.4.4"
WHEEL_NAME = "rapidocr_onnxruntime-1.4.4-py3-none-any.whl"
WHEEL_SHA256 = "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
RECORD = "rapidocr_onnxruntime-1.4.4.dist-info/RECORD"
OUT = HERE / "ch_PP-OCRv4_det_infer.onnx"
FILE_SHA256 = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recorded_sha256(zf: zipfile.ZipFile, member: str) -> str | None:
    """The sha256 the wheel's RECORD gives for ``member`` (hex), or None."""
    for line in zf.read(RECORD).decode().splitlines():
        name, _, rest = line.partition(",")
        if name == member and rest.startswith("sha256="):
            value = rest.split(",")[0][len("sha256="):]
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
    return None


def extract(wheel: Path) -> bytes:
    got = sha256(wheel.read_bytes())
    if got != WHEEL_SHA256:
        raise SystemExit(f"{wheel.name}: sha256 {got} is not the measured {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(MEMBER)
        recorded = recorded_sha256(zf, MEMBER)
    if recorded != sha256(data):
        raise SystemExit(f"{MEMBER}: sha256 {sha256(data)} differs from the wheel's RECORD ({recorded})")
    if sha256(data) != FILE_SHA256:
        raise SystemExit(f"{MEMBER}: sha256 {sha256(data)} is not the registry's {FILE_SHA256}")
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL_NAME} (default: pip download it)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, PACKAGE], check=True)
            wheel = Path(tmp) / WHEEL_NAME
        data = extract(wheel)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes, sha256 {sha256(data)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
