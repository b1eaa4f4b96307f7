"""anonlab: find and mask personal data (faces, plates, heads, persons, text) in video and photos, on premise."""

__version__ = "0.1.0"  # before the imports: modules that import it may load while the package does

from anonlab import _aliases  # noqa: E402
from anonlab.errors import AnonlabError  # noqa: E402
from anonlab.regions import LABELS, SOURCES, Regions  # noqa: E402

_aliases.install()

__all__ = ["AnonlabError", "LABELS", "Regions", "SOURCES", "__version__"]
