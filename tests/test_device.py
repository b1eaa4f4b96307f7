"""Where the models run (issue 18): ``--device auto|cpu|cuda`` picks onnxruntime's providers.

No GPU here: onnxruntime's provider list and the GPU check are replaced, and the session constructor records
what it was asked for.
"""

import pytest

import anonlab.detect.base as base
from anonlab.cli import build_parser, settings_from_args
from anonlab.errors import AnonlabError
from anonlab.settings import Settings

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


@pytest.fixture
def machine(monkeypatch):
    """Set what onnxruntime offers and whether a GPU is present; the device choice is restored afterwards."""
    def set_(providers, gpu):
        monkeypatch.setattr(base.ort, "get_available_providers", lambda: list(providers))
        monkeypatch.setattr(base, "gpu_present", lambda: gpu)
    monkeypatch.setattr(base, "_device", "auto")
    return set_


@pytest.mark.parametrize("providers, gpu, device, expected", [
    ([CPU], False, "auto", [CPU]),                 # the plain onnxruntime wheel
    ([CUDA, CPU], False, "auto", [CPU]),           # onnxruntime-gpu on a machine without a GPU
    ([CUDA, CPU], True, "auto", [CUDA, CPU]),      # the gpu extra on a GPU machine
    ([CPU], True, "auto", [CPU]),                  # a GPU, but the CPU-only wheel
    ([CUDA, CPU], True, "cpu", [CPU]),             # asked for the CPU
    ([CUDA, CPU], True, "cuda", [CUDA, CPU]),
])
def test_providers_follow_the_device_and_the_machine(machine, providers, gpu, device, expected):
    machine(providers, gpu)
    assert base.providers_for(device) == expected


@pytest.mark.parametrize("providers, gpu, fragment", [
    ([CPU], True, "install anonlab[gpu]"),
    ([CUDA, CPU], False, "no NVIDIA GPU"),
])
def test_cuda_that_cannot_be_had_is_one_clear_line(machine, providers, gpu, fragment):
    machine(providers, gpu)
    with pytest.raises(AnonlabError, match="--device cuda") as info:
        base.providers_for("cuda")
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_sessions_are_made_on_the_chosen_device_and_cached_per_device(machine, monkeypatch, tmp_path):
    made = []

    class FakeSession:
        def __init__(self, data, sess_options=None, providers=None):
            made.append(list(providers))
            self.providers = list(providers)

        def get_providers(self):
            return self.providers

    monkeypatch.setattr(base.ort, "InferenceSession", FakeSession)
    monkeypatch.setattr(base, "_sessions", {})
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really a model")
    machine([CUDA, CPU], True)
    base.use_device("auto")
    gpu = base.onnx_session(model, "d1")
    assert gpu.providers == [CUDA, CPU]
    base.use_device("cpu")
    cpu = base.onnx_session(model, "d1")
    assert cpu.providers == [CPU]
    assert cpu is not gpu
    assert base.onnx_session(model, "d1") is cpu
    assert len(made) == 2  # cached
    base.use_device("cuda")

    class NoCuda(FakeSession):  # onnx-gpu installed but its CUDA libraries fail to load: the CPU took over
        def get_providers(self):
            return [CPU]

    monkeypatch.setattr(base.ort, "InferenceSession", NoCuda)
    monkeypatch.setattr(base, "_sessions", {})
    with pytest.raises(AnonlabError, match="could not start on the GPU"):
        base.onnx_session(model, "d1")


def test_device_flag_and_settings(machine):
    assert Settings().device == "auto"
    s = settings_from_args(build_parser().parse_args(["anonymize", "x.mp4", "--device", "cpu", "--speed", "fast"]))
    assert s.device == "cpu"
    with pytest.raises(AnonlabError, match="--device must be one of"):
        Settings(device="tpu")
    with pytest.raises(AnonlabError, match="--device must be one of"):
        base.use_device("tpu")
    assert Settings(device="auto").digest == Settings().digest  # the default leaves ledgers' digests alone


def test_build_detector_uses_the_settings_device(machine, monkeypatch):
    from anonlab.detect import build

    machine([CPU], False)
    seen = []
    monkeypatch.setattr(build, "detector_for", lambda label, settings, **kw: seen.append(base._device) or object())
    build.build_detector(Settings(what=("face",), device="cpu"))
    assert seen == ["cpu"]
