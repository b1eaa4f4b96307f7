"""anonlab: find and mask personal data (faces, plates, heads, persons, text) in video and photos, on premise."""

__version__ = "0.1.0"  # before the imports: modules that import it may load while the package does

import os  # noqa: E402

# Nothing leaves the machine: onnxruntime (1.2x and later, on Linux too) queues usage telemetry for upload to
# Microsoft (device id, executable path, CPU, models loaded) under ~/.cache/Microsoft unless this is set before
# it is imported; every anonlab process (CLI, workbench kernel, Dask worker) imports this package first.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

from anonlab import _aliases  # noqa: E402
from anonlab.errors import AnonlabError  # noqa: E402
from anonlab.regions import LABELS, SOURCES, Regions  # noqa: E402

_aliases.install()

__all__ = ["AnonlabError", "LABELS", "Regions", "SOURCES", "__version__"]
