"""`deepctr-ops` command line: `demo`, `bench` and `info`.

    deepctr-ops demo               train DIN and DIEN, compare with DeepCTR, export and serve
    deepctr-ops bench [--json F]   this package vs DeepCTR vs the TF twins
    deepctr-ops info               build/runtime facts, ops and their kernels
"""

from __future__ import annotations

import argparse
import json
import os
import sys

_LEGACY_ENV = "TF_USE_LEGACY_KERAS"


def _keras_mode_env(mode: str) -> dict[str, str] | None:
    """Environment to re-run with so that tf.keras is `mode`, or None if it already is."""
    want_legacy = mode == "legacy"
    is_legacy = os.environ.get(_LEGACY_ENV, "0").lower() in ("1", "true", "yes")
    if want_legacy == is_legacy:
        return None
    env = dict(os.environ)
    env[_LEGACY_ENV] = "1" if want_legacy else "0"
    return env


def registered_ops() -> dict[str, list[str]]:
    """`DeepCTR>` op name -> sorted device types that have a kernel for it."""
    from tensorflow.python.framework import kernels, op_def_registry

    from . import _loader

    library = _loader.load()
    ops = {}
    for attr in dir(library):
        if not attr.startswith("DeepCTR_") or attr.endswith("_eager_fallback"):
            continue
        name = "DeepCTR>" + attr[len("DeepCTR_"):]
        if op_def_registry.get(name) is None:
            continue
        devices = {k.device_type for k in kernels.get_registered_kernels_for_op(name).kernel}
        ops[name] = sorted(devices)
    return dict(sorted(ops.items()))


def cuda_driver_version() -> tuple[int, int] | None:
    """The CUDA version the installed NVIDIA driver supports, or None without one."""
    import ctypes

    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
        return None
    return version.value // 1000, version.value % 1000 // 10


def cuda_driver_text() -> str:
    version = cuda_driver_version()
    if version is None:
        return "none found (no libcuda.so.1)"
    return f"supports CUDA {version[0]}.{version[1]}"


def cmd_info(_: argparse.Namespace) -> int:
    import tensorflow as tf

    from . import __version__, _build_info, _loader
    from .compat import IS_KERAS_3

    print(f"deepctr-ops {__version__}")
    print(f"TensorFlow built for: {_build_info.TF_VERSION}")
    print(f"TensorFlow running:   {tf.__version__}")
    print(f"Keras:                {'Keras 3' if IS_KERAS_3 else 'tf_keras (legacy)'}")
    if _build_info.CUDA_BUILT:
        cuda = (f"yes, CUDA {_build_info.CUDA_VERSION} for "
                f"{_build_info.CUDA_ARCHITECTURES.replace(';', ' ')} (runtime linked statically)")
    else:
        cuda = "no"
    print(f"CUDA kernels built:   {cuda}")
    tf_build = tf.sysconfig.get_build_info()
    tf_cuda = tf_build.get("cuda_version")
    tf_archs = " ".join(tf_build.get("cuda_compute_capabilities", []))
    print(f"TensorFlow's CUDA:    {f'{tf_cuda} for {tf_archs}' if tf_cuda else 'none (CPU build)'}")
    print(f"NVIDIA driver:        {cuda_driver_text()}")
    print(f"GPUs visible to TF:   {len(tf.config.list_physical_devices('GPU'))}")
    print(f"Op library:           {_loader.library_path()}")
    print("Ops (kernels):")
    ops = registered_ops()
    width = max((len(name) for name in ops), default=0)
    for name, devices in ops.items():
        print(f"  {name:{width}s} {', '.join(devices)}")
    return 0


def _bench_cases(only: str | None):
    from .bench import bilstm, din, embedding_pool, gru, pooling, transformer

    cases = pooling.cases() + transformer.cases() + bilstm.cases()
    cases += din.cases() + gru.cases() + embedding_pool.cases()
    if only:
        cases = [c for c in cases if only.lower() in c.name.lower()]
    return cases


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def cmd_bench(args: argparse.Namespace) -> int:
    import tensorflow as tf

    from .bench import format_table, run_cases
    from .compat import IS_KERAS_3

    cases = _bench_cases(args.only)
    if not cases:
        print(f"no benchmark case matches {args.only!r}", file=sys.stderr)
        return 2
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    header = (f"deepctr-ops bench: TF {tf.__version__}, "
              f"{'Keras 3' if IS_KERAS_3 else 'tf_keras'}, {_cpu_model()}, {threads} CPU "
              f"threads, median of >= {args.repeats} runs in {args.rounds} interleaved rounds "
              f"(ms); ratios = other / deepctr-ops")
    print(header)
    results = run_cases(cases, repeats=args.repeats, min_seconds=args.min_seconds,
                        rounds=args.rounds)
    print(format_table(results))
    if args.plot:
        from .bench.plot import plot_results

        plot_results(results, args.plot, title=header)
        print(f"saved {args.plot}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tensorflow": tf.__version__, "keras_3": IS_KERAS_3,
                       "results": [r.as_dict() for r in results]}, f, indent=2)
        print(f"saved {args.json}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.run import run

    return run(args.data, samples=args.samples, epochs=args.epochs, seed=args.seed,
               batch=args.batch, out_dir=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepctr-ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true",
                        help="keep TensorFlow's, AutoGraph's and DeepCTR's own log output")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="build and runtime facts, registered ops and kernels")
    info.set_defaults(func=cmd_info)
    bench = sub.add_parser("bench", help="time deepctr-ops vs DeepCTR vs the TF twins")
    bench.add_argument("--json", metavar="FILE", help="also save the results as JSON")
    bench.add_argument("--plot", metavar="FILE.png",
                       help="also draw the speed table as a bar chart (needs matplotlib)")
    bench.add_argument("--only", metavar="TEXT", help="only cases whose name contains TEXT")
    bench.add_argument("--repeats", type=int, default=20, help="timed runs per measurement")
    bench.add_argument("--min-seconds", type=float, default=1.0,
                       help="keep timing at least this long per measurement")
    bench.add_argument("--rounds", type=int, default=5,
                       help="split each measurement into this many rounds, interleaving the "
                            "implementations, so that machine drift affects them alike")
    bench.add_argument("--keras", choices=("legacy", "3"), default="legacy",
                       help="Keras flavour (DeepCTR's reference layers run fully only "
                            "under tf_keras, the default)")
    bench.set_defaults(func=cmd_bench)
    demo = sub.add_parser("demo", help="train DIN and DIEN on click logs, compare with "
                                        "DeepCTR's layers, export and serve")
    demo.add_argument("--data", metavar="FILE.csv",
                      help="click logs (user,item,category,hist_items,hist_categories,label); "
                           "default: generated with a learnable sequence signal")
    demo.add_argument("--samples", type=int, default=40000, help="rows to generate")
    demo.add_argument("--epochs", type=int, default=4)
    demo.add_argument("--batch", type=int, default=256)
    demo.add_argument("--seed", type=int, default=2024)
    demo.add_argument("--out", metavar="DIR", help="where the SavedModel goes (default: temp)")
    demo.add_argument("--keras", choices=("legacy", "3"), default="legacy",
                      help="Keras flavour (DeepCTR's models run fully only under tf_keras)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.command in ("bench", "demo"):
        env = _keras_mode_env(args.keras)
        if env is not None:  # tf.keras is fixed at TF import: re-run in the right mode.
            os.execve(sys.executable, [sys.executable, "-m", "deepctr_ops", *argv], env)
    if not args.verbose:
        from ._quiet import quiet_startup

        quiet_startup()
    return args.func(args)
