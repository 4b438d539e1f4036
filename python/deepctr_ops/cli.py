"""`deepctr-ops` command line: `info` and `bench`.

    deepctr-ops info               build/runtime facts, ops and their kernels
    deepctr-ops bench [--json F]   this package vs DeepCTR vs the TF twins
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


def cmd_info(_: argparse.Namespace) -> int:
    import tensorflow as tf

    from . import __version__, _build_info, _loader
    from .compat import IS_KERAS_3

    print(f"deepctr-ops {__version__}")
    print(f"TensorFlow built for: {_build_info.TF_VERSION}")
    print(f"TensorFlow running:   {tf.__version__}")
    print(f"Keras:                {'Keras 3' if IS_KERAS_3 else 'tf_keras (legacy)'}")
    cuda = "yes (" + _build_info.CUDA_ARCHITECTURES + ")" if _build_info.CUDA_BUILT else "no"
    print(f"CUDA kernels built:   {cuda}")
    print(f"GPUs visible to TF:   {len(tf.config.list_physical_devices('GPU'))}")
    print(f"Op library:           {_loader.library_path()}")
    print("Ops (kernels):")
    for name, devices in registered_ops().items():
        print(f"  {name:34s} {', '.join(devices)}")
    return 0


def _bench_cases(only: str | None):
    from .bench import bilstm, gru, pooling, transformer

    cases = pooling.cases() + transformer.cases() + bilstm.cases()
    cases += gru.cases()
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
    print(f"deepctr-ops bench: TF {tf.__version__}, "
          f"{'Keras 3' if IS_KERAS_3 else 'tf_keras'}, {_cpu_model()}, {threads} CPU threads, "
          f"median of >= {args.repeats} runs in {args.rounds} interleaved rounds (ms); "
          f"ratios = other / deepctr-ops")
    results = run_cases(cases, repeats=args.repeats, min_seconds=args.min_seconds,
                        rounds=args.rounds)
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tensorflow": tf.__version__, "keras_3": IS_KERAS_3,
                       "results": [r.as_dict() for r in results]}, f, indent=2)
        print(f"saved {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepctr-ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="build and runtime facts, registered ops and kernels")
    info.set_defaults(func=cmd_info)
    bench = sub.add_parser("bench", help="time deepctr-ops vs DeepCTR vs the TF twins")
    bench.add_argument("--json", metavar="FILE", help="also save the results as JSON")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        env = _keras_mode_env(args.keras)
        if env is not None:  # tf.keras is fixed at TF import: re-run in the right mode.
            os.execve(sys.executable, [sys.executable, "-m", "deepctr_ops", *argv], env)
    return args.func(args)
