"""The ``evaluate`` subcommand (the evaluation subsystem)."""

from __future__ import annotations

import argparse

from ._args import pair, positive_int

__all__ = ["register"]


def _methods(text: str) -> list[str]:
    from ..evaluation.crossval import METHODS

    names = [m for m in text.split(",") if m]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {unknown}; choose from {','.join(METHODS)}"
        )
    return names


def _folds(text: str) -> int:
    k = positive_int(text)
    if k < 2:
        raise argparse.ArgumentTypeError(f"need at least 2 folds, got {k}")
    return k


def register(sub) -> None:
    """Add ``evaluate`` to the ``avocado-xr`` subparsers."""
    from ..evaluation.crossval import METHODS

    ev = sub.add_parser(
        "evaluate",
        help="cross-validate Avocado and the baselines and report every metric",
        description="k-fold cross-validation over the observed tracks of a compendium for "
        "several methods on the same folds; prints a per-track table for each method and "
        "writes scores.csv, summary.md and plots (per-metric comparison, observed-vs-imputed "
        "scatter, a locus with every method's imputation).",
    )
    ev.add_argument(
        "store", help="zarr compendium, or 'sample' (embedded) / 'pilot' (25 real tracks)"
    )
    ev.add_argument(
        "--pilot-dir", default=None, help="folder of the pilot .npz files (for 'pilot')"
    )
    ev.add_argument(
        "--methods",
        type=_methods,
        default=list(METHODS),
        help="comma-separated, from: "
        + "; ".join(f"{name} ({m.description})" for name, m in METHODS.items()),
    )
    ev.add_argument("--k", type=_folds, default=5, help="folds (default 5)")
    ev.add_argument(
        "--epochs", type=positive_int, default=10, help="epochs of the factorization models"
    )
    ev.add_argument(
        "--network",
        choices=["demo", "paper"],
        default="demo",
        help="network size (default demo: 1 x 128)",
    )
    ev.add_argument("--batch-size", type=positive_int, default=None)
    ev.add_argument(
        "--ae-windows", type=positive_int, default=100_000, help="autoencoder training windows"
    )
    ev.add_argument(
        "--ae-epochs", type=positive_int, default=1, help="autoencoder passes over its windows"
    )
    ev.add_argument(
        "--inner-k",
        type=_folds,
        default=None,
        help="inner folds of the ensemble (default 4): its learning bases fit inner-k + 1 "
        "times per fold",
    )
    ev.add_argument(
        "--inner-epochs",
        type=positive_int,
        default=None,
        help="epochs of the ensemble's inner factorization fits (default: --epochs)",
    )
    ev.add_argument(
        "--bases",
        type=_methods,
        default=None,
        help="base methods of the ensemble, comma-separated (default: its own)",
    )
    ev.add_argument(
        "--annotations",
        choices=["pilot", "none"],
        default="pilot",
        help="'pilot' (hg19 pilot promoters/genes) or 'none'",
    )
    ev.add_argument("--device", default=None)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--track", type=pair, default=None, help="track for the scatter/locus plots")
    ev.add_argument("--locus", default=None, help="interval for the locus plot")
    ev.add_argument("--output", default="evaluation", help="output folder (default evaluation)")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=run_evaluate)


def _options(args) -> dict[str, dict]:
    """Options of each chosen method, by the kind of options it takes."""
    from ..evaluation.crossval import method_options
    from .model import DEMO_TRAINING

    factorization = {"epochs": args.epochs, "device": args.device}
    factorization.update(DEMO_TRAINING if args.network == "demo" else {})
    if args.batch_size:
        factorization["batch_size"] = args.batch_size
    autoencoder = {"device": args.device, "n_windows": args.ae_windows, "epochs": args.ae_epochs}
    ensemble = {
        key: value
        for key, value in (
            ("inner_k", args.inner_k),
            ("inner_epochs", args.inner_epochs),
            ("bases", args.bases),
        )
        if value is not None
    }
    return method_options(
        factorization=factorization,
        autoencoder=autoencoder,
        ensemble=ensemble,
        methods=args.methods,
    )


def run_evaluate(args) -> int:
    """``avocado-xr evaluate``."""
    import avocado_xr as ax
    from avocado_xr.evaluation.report import compare_methods, markdown_table, write_report
    from avocado_xr.evaluation.scoring import metric_table

    if args.store == "sample":
        ds = ax.datasets.roadmap_pilot_sample()
    elif args.store == "pilot":
        ds = ax.datasets.roadmap_pilot(args.pilot_dir)
    else:
        ds = ax.open_compendium(args.store)
    annotations = None if args.annotations == "none" else args.annotations
    results = compare_methods(
        ds,
        _options(args),
        k=args.k,
        seed=args.seed,
        annotations=annotations,
        verbose=not args.quiet,
    )
    for name, cv in results.items():
        print(f"\n## {name} ({args.k}-fold, {cv.attrs['seconds']:.0f} s)")
        print(metric_table(cv["score"]).to_string(float_format=lambda v: f"{v:.4f}"))
    summary = write_report(ds, results, args.output, locus=args.locus, track=args.track)
    print("\n## mean over tracks (best per metric starred in summary.md)")
    print(markdown_table(summary))
    print(f"\nWrote {args.output}/scores.csv, summary.md, metrics.png, scatter.png, locus.png")
    return 0
