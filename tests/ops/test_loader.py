"""The op library loader: one copy, from the package, with clear errors."""

from __future__ import annotations

import os
import subprocess
import sys

import deepctr_ops
import pytest
from deepctr_ops import _build_info, _loader


def test_loaded_once_from_the_package_directory():
    path = _loader.loaded_path()
    assert path is not None and os.path.basename(path) == "_deepctr_ops.so"
    assert os.path.dirname(path) in list(deepctr_ops.__path__)
    assert _loader.load() is _loader.load()


def test_version_mismatch_names_both_versions(monkeypatch):
    monkeypatch.setattr(_loader, "_library", None)
    monkeypatch.setattr(_build_info, "TF_VERSION", "2.13.1")
    with pytest.raises(ImportError) as err:
        _loader.load()
    message = str(err.value)
    import tensorflow as tf

    assert "2.13.1" in message and tf.__version__ in message
    assert "tensorflow==2.13.*" in message and "wheel" in message


def test_missing_library_says_how_to_build(monkeypatch, tmp_path):
    monkeypatch.setattr(_loader, "_package_dirs", lambda: [str(tmp_path)])
    with pytest.raises(ImportError, match="pip install"):
        _loader.library_path()


def test_import_in_a_fresh_process_registers_ops_and_gradients():
    code = (
        "import tensorflow as tf, deepctr_ops\n"
        "from tensorflow.python.framework import ops\n"
        "for name in ['DeepCTR>SequencePool', 'DeepCTR>MaskedSequencePool',"
        " 'DeepCTR>RaggedSequencePool']:\n"
        "    assert ops.gradient_registry.lookup(name) is not None\n"
        "print('ok')\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
