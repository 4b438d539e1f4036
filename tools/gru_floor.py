#!/usr/bin/env python3
"""How far the CPU dynamic GRU kernels are from their floor, without TensorFlow.

Builds tools/gru_floor/ (the kernels' own sources, g++) and times, in
interleaved rounds (medians; the VM's speed drifts):

* the kernels (a forward that saves its gates, then the backward) at the
  benchmark's largest row, B1024 T100 E64, on N threads and on one;
* the same kernels on a working set that stays in L3 (B64 T100, ~8 MB),
  one thread: their cost per valid step when memory is near (it still
  carries their fixed per-call work, spread over ~3k steps instead of ~52k);
* their small GEMMs alone at the per-step shapes (operands in L1/L2), and a
  register-only FMA loop (the core's peak).

Each rate is turned into a time for the big call's FLOPs on N threads
(perfect scaling assumed), so every line is a lower bound of a different
kind for the measured time. Pass --target-ms (e.g. Keras' fwd+bwd / 5 minus
the benchmark's loss) to mark which bounds fit under a target.

    python tools/gru_floor.py [--threads N] [--cell GRU|AUGRU] [--rounds R]
    python tools/gru_floor.py --build-dir DIR --build-only   # DIR/kernel_timing
                                                             # for single timings
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Per measurement: its numeric fields, and `isa` (the GEMM build) for gemm/peak.
Measured = dict[str, dict[str, float | str]]
KERNEL_SOURCES = ("cc/kernels/dynamic_gru.cc", "cc/kernels/dynamic_gru_avx2.cc",
                  "cc/kernels/dynamic_gru_avx512.cc")


def isa_flags() -> list[str]:
    """The flags of the build the kernels dispatch to on this CPU (see
    cc/kernels/dynamic_gru.cc), for the GEMM timing."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        flags = []
    if "avx512f" in flags:
        return ["-mavx512f", "-mavx2", "-mfma"]
    if "avx2" in flags and "fma" in flags:
        return ["-mavx2", "-mfma"]
    return ["-mavx"]


def build(out_dir: Path, compiler: str = "g++") -> Path:
    """Compiles the timing binary; returns its path."""
    common = ["-O3", "-std=c++17", f"-I{ROOT}"]
    gemm_obj = out_dir / "gemm_timing.o"
    subprocess.run([compiler, *common, *isa_flags(), "-c",
                    str(ROOT / "tools/gru_floor/gemm_timing.cc"), "-o", str(gemm_obj)],
                   check=True)
    binary = out_dir / "kernel_timing"
    subprocess.run([compiler, *common, "-mavx", str(ROOT / "tools/gru_floor/kernel_timing.cc"),
                    *(str(ROOT / s) for s in KERNEL_SOURCES), str(gemm_obj), "-pthread",
                    "-o", str(binary)], check=True)
    return binary


def run(binary: Path, *args: object) -> dict[str, str]:
    """Runs one measurement; returns its key=value fields."""
    out = subprocess.run([str(binary), *map(str, args)], check=True, capture_output=True,
                         text=True).stdout
    return dict(field.split("=", 1) for field in out.split())


def measure(binary: Path, threads: int, cell: str, rounds: int) -> Measured:
    """Medians over `rounds` interleaved rounds of every measurement."""
    kernel_cases = {
        "big": (1024, 100, 64, threads, cell, 5),
        "big_1thread": (1024, 100, 64, 1, cell, 3),
        "l3": (64, 100, 64, 1, cell, 40),
    }
    samples: dict[str, list[dict[str, str]]] = {}
    for _ in range(rounds):
        for name, args in kernel_cases.items():
            samples.setdefault(name, []).append(run(binary, "kernels", *args))
        samples.setdefault("gemm", []).append(run(binary, "gemm", 64, 64, 2000))
        samples.setdefault("peak", []).append(run(binary, "peak", 3))
    result: Measured = {}
    for name, runs in samples.items():
        keys = [k for k in runs[0] if k != "isa"]
        result[name] = {k: statistics.median(float(r[k]) for r in runs) for k in keys}
        if "isa" in runs[0]:
            result[name]["isa"] = runs[0]["isa"]
    return result


def bounds(m: Measured, threads: int) -> list[tuple[str, float, str]]:
    """(what, ms for the big call on `threads` threads, how) lines, floor first."""
    big = m["big"]
    fwd_gflop, bwd_gflop = big["fwd_gflop"], big["bwd_gflop"]
    total_gflop = fwd_gflop + bwd_gflop

    def per_step(case: dict[str, float]) -> float:
        # The big call's FLOPs at this case's fwd and bwd rates, on `threads`.
        fwd_rate = case["fwd_gflop"] / case["fwd_ms"]
        bwd_rate = case["bwd_gflop"] / case["bwd_ms"]
        return (fwd_gflop / fwd_rate + bwd_gflop / bwd_rate) / threads

    peak = m["peak"]["gflop_per_s"]
    gemm = m["gemm"]["gflop_per_s"]
    lines = []
    if peak > 0:
        lines.append(("FMA peak", total_gflop / (threads * peak) * 1e3,
                      f"{peak:.0f} GFLOP/s per core, register-only FMAs"))
    lines.append(("step GEMMs alone", total_gflop / (threads * gemm) * 1e3,
                  f"{gemm:.0f} GFLOP/s per core, operands in cache"))
    near = m["l3"]
    rate = (near["fwd_gflop"] + near["bwd_gflop"]) / (near["fwd_ms"] + near["bwd_ms"]) * 1e3
    lines.append(("kernels, data in L3", per_step(near),
                  f"{rate:.0f} GFLOP/s per core (B64 T100, 1 thread), scaled"))
    one = m["big_1thread"]
    lines.append(("kernels, 1 thread / N", (one["fwd_ms"] + one["bwd_ms"]) / threads,
                  f"measured {one['fwd_ms'] + one['bwd_ms']:.2f} ms on one thread"))
    lines.append((f"kernels, {threads} threads (measured)", big["fwd_ms"] + big["bwd_ms"],
                  f"fwd {big['fwd_ms']:.2f} + bwd {big['bwd_ms']:.2f} ms"))
    return lines


def report(m: Measured, threads: int, cell: str,
           target_ms: float | None) -> str:
    big = m["big"]
    out = [f"{cell} B1024 T100 E64 (u = 64), lengths ~ U[0, T]: "
           f"{int(big['valid_steps'])} valid steps, "
           f"{big['fwd_gflop'] + big['bwd_gflop']:.2f} GFLOP fwd+bwd; "
           f"{threads} threads; GEMM build {m['gemm']['isa']}", "",
           "| bound | fwd+bwd ms | " + ("fits target | " if target_ms else "") + "basis |",
           "|---|---:|" + ("---|" if target_ms else "") + "---|"]
    for what, ms, how in bounds(m, threads):
        fits = f" {'yes' if ms <= target_ms else 'no'} |" if target_ms else ""
        out.append(f"| {what} | {ms:.2f} |{fits} {how} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cell", default="GRU", choices=("GRU", "AGRU", "AUGRU"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target-ms", type=float, default=None,
                        help="mark which bounds fit under this fwd+bwd time")
    parser.add_argument("--compiler", default=os.environ.get("CXX", "g++"))
    parser.add_argument("--build-dir", type=Path, default=None,
                        help="build kernel_timing here and keep it (default: a temporary "
                             "directory)")
    parser.add_argument("--build-only", action="store_true",
                        help="only build (with --build-dir) and print the binary's path")
    args = parser.parse_args(argv)
    if shutil.which(args.compiler) is None:
        print(f"gru_floor: no C++ compiler {args.compiler!r}", file=sys.stderr)
        return 2
    if args.build_only and args.build_dir is None:
        parser.error("--build-only needs --build-dir")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.build_dir or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        binary = build(out_dir, args.compiler)
        if args.build_only:
            print(binary)
            return 0
        measured = measure(binary, args.threads, args.cell, args.rounds)
    print(report(measured, args.threads, args.cell, args.target_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
