"""Exactly one OpenCV wheel in every supported install.

mediapipe 1.2.x depends on opencv-contrib-python; a second OpenCV distribution beside it writes into the
same cv2/ folder and uninstalling either breaks cv2. So the core depends on opencv-contrib-python and no
extra may name another OpenCV distribution.
"""

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPENCV = re.compile(r"^opencv[-_](python|contrib[-_]python)([-_]headless)?$", re.I)
# What mediapipe 1.2.3's wheel metadata requires (read from its METADATA: Requires-Dist: opencv-contrib-python).
MEDIAPIPE_OPENCV = "opencv-contrib-python"


def _name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _requirements(extra: str | None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    todo = [extra] if extra else []
    while todo:
        for req in project["optional-dependencies"][todo.pop()]:
            if _name(req) == "anonlab":
                todo += re.search(r"\[(.*)\]", req).group(1).split(",")
            else:
                names.add(_name(req))
    return names


@pytest.mark.parametrize("extra", [None, "jupyter", "mediapipe", "dask", "dev", "moviepy", "heic"])
def test_each_install_names_one_opencv(extra):
    opencv = {n for n in _requirements(extra) if OPENCV.match(n)}
    if extra == "mediapipe":
        opencv.add(MEDIAPIPE_OPENCV)
    assert opencv == {"opencv-contrib-python"}


def test_installed_environment_has_one_opencv():
    dists = {d.metadata["Name"].lower() for d in metadata.distributions() if OPENCV.match(d.metadata["Name"] or "")}
    assert dists == {"opencv-contrib-python"}, dists
    import cv2

    assert hasattr(cv2, "TrackerCSRT_create") or hasattr(cv2, "TrackerCSRT")  # contrib build really loaded


def test_console_script_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["anonlab"] == "anonlab.cli:main"


@pytest.mark.parametrize("extra", [None, "jupyter", "dask", "dev", "moviepy", "heic", "voice"])
def test_only_the_gpu_extra_pulls_onnxruntime_gpu(extra):
    """The gpu extra's onnxruntime-gpu replaces the CPU wheel's module: nothing else may bring it in."""
    assert "onnxruntime-gpu" not in _requirements(extra)
    assert "onnxruntime-gpu" in _requirements("gpu")
