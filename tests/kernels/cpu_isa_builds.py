"""A fixture factory for the kernel families compiled once per x86 vector
build (baseline AVX, AVX2+FMA, AVX-512) with a run-time choice: the DIN
attention pooling and the dynamic GRU."""

from __future__ import annotations

import pytest


def cpu_isa_fixture(family: str):
    """A fixture running a test once per CPU build of `family`, forced through
    the pybind11 module's ``set_<family>_cpu_isa`` (builds this CPU cannot run
    skip), and back to "auto" afterwards."""

    @pytest.fixture(params=["baseline", "avx2", "avx512"])
    def isa(request, kernels):
        force = getattr(kernels, f"set_{family}_cpu_isa")
        if not force(request.param):
            pytest.skip(f"this CPU cannot run the {request.param} build")
        yield request.param
        force("auto")

    return isa
