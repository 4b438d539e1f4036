"""scikit-build-core dynamic-metadata provider: the package version.

The base version is `__version__` in python/deepctr_ops/__init__.py. With
DEEPCTR_OPS_TF_LOCAL_VERSION=1 (tools/build_wheels.py sets it) a PEP 440
local label names the TensorFlow minor version the wheel is built for:
`0.1.0+tf2.21`. One wheel per TF minor then has its own version, and
`pip install "deepctr-ops==0.1.0+tf2.20"` picks one. PyPI refuses local
labels, so these wheels are for a private index or direct install; publishing
to PyPI needs one TF minor per release (the plain version) or a version that
tracks TensorFlow's, as TF Text does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tf_pin import _tf_minor

ROOT = Path(__file__).resolve().parents[2]


def base_version() -> str:
    text = (ROOT / "python" / "deepctr_ops" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not match:
        raise RuntimeError("python/deepctr_ops/__init__.py defines no __version__")
    return match.group(1)


def dynamic_metadata(settings: dict[str, Any], project: dict[str, Any]) -> dict[str, Any]:
    version = base_version()
    if os.environ.get("DEEPCTR_OPS_TF_LOCAL_VERSION", "0") == "1":
        major, minor = _tf_minor()
        version += f"+tf{major}.{minor}"
    return {"version": version}
