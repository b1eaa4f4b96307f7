import os
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# CI replays the same examples every run (no flaky reds); developers keep random exploration locally.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():
    SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# Tests never reach the network; make sure no library tries to phone home either.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_PROXY", "*")


@pytest.fixture(scope="session")
def shared_eval() -> Path:
    path = SHARED / "eval"
    if not (path / "faces" / "labels.jsonl").exists():
        pytest.skip("../shared/eval is not beside the checkout")
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """A small library of generated clips, made once per test session."""
    from mediagen import make_clip

    d = tmp_path_factory.mktemp("clips")
    return {
        "plain": make_clip(d / "plain.mp4", n_frames=40),
        "audio": make_clip(d / "audio.mp4", n_frames=40, audio=True),
        "vfr": make_clip(d / "vfr.mp4", n_frames=40, vfr=True, audio=True),
        "rot90": make_clip(d / "rot90.mp4", n_frames=30, rotation=90),
        "rot270": make_clip(d / "rot270.mov", n_frames=30, rotation=-90, vfr=True),
    }
