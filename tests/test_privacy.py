"""Privacy by design: no network, nothing personal in logs/errors/reports, private temp files."""

import json
import logging
import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from anonlab.privacy import looks_like_coordinates, private_tempdir

ROOT = Path(__file__).resolve().parents[1]


def test_private_tempdir_is_0700_and_removed():
    with private_tempdir("proxy") as d:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        (d / "crop.png").write_bytes(b"x")
    assert not d.exists()
    with pytest.raises(RuntimeError, match="stopped inside"):
        with private_tempdir() as d2:
            raise RuntimeError("stopped inside")
    assert not d2.exists()


@pytest.mark.parametrize("text, leaked", [
    ("face at 12, 40, 88, 120", True), ("[12.5 40 88 120]", True), ("100 frames, 3 tracks", False),
    ("street.mp4: 100 frame(s) written", False),
])
def test_coordinate_detector(text, leaked):
    assert looks_like_coordinates(text) == leaked


@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(self, address, *a, **k):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError("network disabled by test")
        return real_connect(self, address, *a, **k)

    def refuse_dns(*a, **k):
        attempts.append(a[:1])
        raise OSError("DNS disabled by test")

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_dns)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse_dns(*a))
    return attempts


def test_whole_pipeline_offline_and_quiet(tmp_path, no_network, caplog, capsys):
    """Sample video through analyse + render + report with outbound sockets blocked."""
    from anonlab.pipeline import anonymize

    before = set(Path(tempfile.gettempdir()).glob("anonlab-*"))
    caplog.set_level(logging.DEBUG)
    report = anonymize(ROOT / "sample_media" / "street.mp4", tmp_path / "o.mp4", report=tmp_path / "r.json",
                       progress=False)
    assert no_network == []
    assert report["regions"]["total"] > 0  # it really found and masked something
    text = "\n".join(r.getMessage() for r in caplog.records) + capsys.readouterr().err
    assert not looks_like_coordinates(text), text
    from anonlab.report.audit import assert_report_is_safe

    assert_report_is_safe(json.loads((tmp_path / "r.json").read_text()))
    assert not looks_like_coordinates((tmp_path / "r.md").read_text())
    assert set(Path(tempfile.gettempdir()).glob("anonlab-*")) == before  # nothing left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4", "r.json", "r.md"]


def test_onnxruntime_queues_no_telemetry(tmp_path):
    """onnxruntime records usage telemetry for upload to Microsoft under ~/.cache/Microsoft unless told not to
    before it is imported: a CLI run on a photo, in a fresh home folder, leaves nothing there."""
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    photo = ROOT / "sample_media" / "portrait.jpg"
    run = subprocess.run([sys.executable, "-m", "anonlab", "anonymize", str(photo), "-o", str(tmp_path / "o.jpg")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "telemetry" not in run.stderr
    assert not any(home.rglob("*")), sorted(map(str, home.rglob("*")))
