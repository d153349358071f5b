"""The ``hyperoptax`` console script (also ``python -m hyperoptax``).

    hyperoptax tune --config configs/digits_mlp.py --workdir runs/digits [--config.search.n_parallel=8] [--fresh]
    hyperoptax report runs/digits

Errors of the user's making (a config typo, a missing dataset, an incompatible checkpoint) print one clear
message and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

__all__ = ["main"]

_CACHE_ENV = "HYPEROPTAX_JAX_CACHE"


def _quiet() -> None:
    """Silence the known noisy loggers (TF/XLA C++ logs, absl, Orbax, TFDS) before they are imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    import logging

    for name in ("absl", "jax", "orbax", "tensorflow_datasets", "etils", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
        absl_logging.set_stderrthreshold("error")
    except ImportError:  # pragma: no cover - absl comes with the [flax] extra
        pass
    for module in ("orbax", "tensorflow_datasets", "etils", "jax", "flax", "optax", "absl"):
        warnings.filterwarnings("ignore", module=module)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _compilation_cache() -> None:
    """JAX's persistent compilation cache: a resumed or repeated sweep skips most compilation."""
    import jax

    if jax.config.jax_compilation_cache_dir:  # the user chose one (JAX_COMPILATION_CACHE_DIR)
        return
    path = os.environ.get(_CACHE_ENV, os.path.join("~", ".cache", "hyperoptax", "jax_cache"))
    if path.strip().lower() in ("", "0", "off", "none"):
        return
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyperoptax", description="Hyperparameter sweeps with hyperoptax.")
    sub = parser.add_subparsers(dest="command", required=True)
    tune = sub.add_parser(
        "tune", help="run (or resume) a sweep",
        description="Run the sweep a config file describes; rerun on the same workdir to resume. Override any "
                    "config field with --config.FIELD=VALUE (e.g. --config.search.n_parallel=8).",
    )
    tune.add_argument("--config", required=True, help="an ml_collections config file defining get_config()")
    tune.add_argument("--workdir", required=True, help="where checkpoints, trials.csv, results.json and plots go")
    tune.add_argument("--fresh", action="store_true", help="discard a checkpoint in the workdir and start over")
    tune.add_argument("--quiet", action="store_true", help="no progress bar or per-iteration lines")
    report = sub.add_parser("report", help="print the results table and re-render the plots of a workdir")
    report.add_argument("workdir")
    report.add_argument("--top", type=int, default=None, help="rows of the table (default: the config's top_k)")
    report.add_argument("--no-plots", action="store_true", help="print the table only")
    return parser


def _split_overrides(parser, extra) -> list[str]:
    overrides, i = [], 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--config."):
            parser.error(f"unrecognized argument {token!r} (config overrides look like --config.search.n_parallel=8)")
        if "=" not in token:
            if i + 1 >= len(extra):
                parser.error(f"{token} needs a value: {token}=VALUE")
            token, i = f"{token}={extra[i + 1]}", i + 1
        overrides.append(token)
        i += 1
    return overrides


def _tune(args, overrides) -> None:
    from hyperoptax import tune

    config = tune.load_config(args.config, overrides)
    _compilation_cache()
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    tune.tune(config, args.workdir, fresh=args.fresh, verbose=not args.quiet)


def _report(args) -> None:
    from hyperoptax.tune import plotting, records, report

    results = records.load_results(args.workdir)
    top = args.top if args.top is not None else results.get("config", {}).get("output", {}).get("top_k", 5)
    if not args.no_plots:
        plotting.render_plots(results, args.workdir)
    print(report.summary(results, top_k=top, workdir=args.workdir))


def main(argv=None) -> int:
    _quiet()
    parser = _parser()
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    overrides = _split_overrides(parser, extra) if args.command == "tune" else []
    if extra and args.command != "tune":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from hyperoptax.errors import HyperoptaxError

    try:
        if args.command == "tune":
            _tune(args, overrides)
        else:
            _report(args)
    except HyperoptaxError as err:
        print(f"hyperoptax: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nhyperoptax: interrupted. Rerun the same command to resume from the last checkpoint.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
