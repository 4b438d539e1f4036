"""The Bazel BUILD (TF Serving) and the CMake build (pip) compile the same
sources: both take them from cc/sources.bzl, and every C++/CUDA source under
cc/kernels and cc/ops must be listed there. Bazel cannot run in CI, so this is
what keeps the serving build from silently missing an op."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LISTS = ("KERNEL_SRCS", "CUDA_SRCS", "OP_SRCS")


def _bzl_lists() -> dict[str, list[str]]:
    tree = ast.parse((ROOT / "cc" / "sources.bzl").read_text())
    return {node.targets[0].id: ast.literal_eval(node.value)
            for node in tree.body if isinstance(node, ast.Assign)}


def test_every_source_is_listed_once():
    lists = _bzl_lists()
    assert set(lists) == set(LISTS)
    listed = [src for srcs in lists.values() for src in srcs]
    assert len(listed) == len(set(listed)), "a source is listed twice"
    on_disk = sorted(str(p.relative_to(ROOT)) for pattern in ("*.cc", "*.cu")
                     for d in ("cc/kernels", "cc/ops") for p in (ROOT / d).glob(pattern))
    assert sorted(listed) == on_disk, (
        "cc/sources.bzl must list exactly the sources under cc/kernels and cc/ops")
    assert all(s.endswith(".cu") for s in lists["CUDA_SRCS"])
    assert all(s.startswith("cc/ops/") for s in lists["OP_SRCS"])
    assert all(s.startswith("cc/kernels/") and s.endswith(".cc") for s in lists["KERNEL_SRCS"])


def test_cmake_and_bazel_read_the_shared_lists():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for name in LISTS:
        assert f"deepctr_ops_source_list({name} " in cmake
    # No cc/kernels or cc/ops source named in CMake besides the shared lists.
    assert not re.findall(r"cc/(?:kernels|ops)/\w+\.(?:cc|cu)\b", cmake)
    build = (ROOT / "BUILD").read_text()
    assert 'load("//cc:sources.bzl", "CUDA_SRCS", "KERNEL_SRCS", "OP_SRCS")' in build
    for name in LISTS:
        assert f"srcs = {name}," in build
    assert not re.findall(r"cc/(?:kernels|ops)/\w+\.(?:cc|cu)\b", build)
    assert "alwayslink = 1" in build
