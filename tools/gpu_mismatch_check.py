"""Run by tools/gpu_check.sh against a kernel module built for sm_80 only: on a
GPU that cannot run sm_80 code, the launch must fail with a message that names
the CUDA version, the architectures built, the GPU and what to do, never a bare
CUDA error code."""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np


def main() -> int:
    sys.path.insert(0, os.environ["DEEPCTR_OPS_KERNELS_DIR"])
    kernels = importlib.import_module("_kernels")
    try:
        kernels.sequence_pool(np.ones((2, 3, 4), np.float32), np.array([1, 3]), "sum",
                              device="gpu")
    except ValueError as err:
        text = str(err)
        print("launch error:", text)
        wanted = ["built with CUDA", "80-real", "this GPU is sm_", "Rebuild deepctr-ops"]
        missing = [w for w in wanted if w not in text]
        if missing:
            print(f"mismatch message: FAILED, it lacks {missing}")
            return 1
        print("mismatch message: ok")
        return 0
    print("mismatch message: not checked, this GPU runs sm_80 code")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
