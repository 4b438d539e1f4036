"""scikit-build-core dynamic-metadata provider: pin TensorFlow to the minor
version the op library is compiled against.

TensorFlow's C++ ABI changes between minor versions, so a wheel built against
TF X.Y only loads in TF X.Y. The build environment's TensorFlow decides X.Y.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any


def _tf_minor() -> tuple[int, int]:
    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    raise RuntimeError(
        "deepctr-ops is built against TensorFlow, but none is installed in the "
        "build environment (pip installs it from build-system.requires; with "
        "--no-build-isolation install tensorflow first)"
    )


def dynamic_metadata(settings: dict[str, Any], project: dict[str, Any]) -> dict[str, Any]:
    major, minor = _tf_minor()
    return {"dependencies": [f"tensorflow>={major}.{minor},<{major}.{minor + 1}"]}
