"""Command line: ``avocado-xr demo | fit | impute | evaluate | ingest | export-bigwig``.

Every subcommand has ``--help``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from .config import DEMO_NETWORK

__all__ = ["main"]

#: modules that add further subcommands through ``register(subparsers)``
_PLUGINS = ("avocado_xr.cli_ingest",)


def _pair(text: str) -> tuple[str, str]:
    """Parse ``E065:H3K4me3`` (or ``E065/H3K4me3``) into a (celltype, assay) pair."""
    for sep in (":", "/"):
        if sep in text:
            celltype, assay = text.split(sep, 1)
            if celltype and assay:
                return celltype, assay
    raise argparse.ArgumentTypeError(f"expected CELLTYPE:ASSAY, got {text!r}")


def _add_hyperparameters(parser: argparse.ArgumentParser) -> None:
    from avocado_xr.config import AvocadoConfig

    defaults = AvocadoConfig().to_dict()
    parser.set_defaults(hyperparameters=list(defaults))
    group = parser.add_argument_group("model (defaults: the paper's)")
    for name, value in defaults.items():
        group.add_argument(
            "--" + name.replace("_", "-"),
            type=type(value),
            default=None,
            help=f"default {value}",
        )


def _hyperparameters(args) -> dict:
    """The model options given on the command line (the others keep the paper's defaults)."""
    return {k: getattr(args, k) for k in args.hyperparameters if getattr(args, k) is not None}


def _demo(args) -> int:
    import numpy as np

    import avocado_xr as ax
    from avocado_xr.baselines import average_baseline, mean_baseline

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    celltype, assay = args.hide
    ds = ax.datasets.roadmap_pilot_sample()
    print(
        f"Embedded real sample: {ds.sizes['celltype']} cell types x {ds.sizes['assay']} assays x "
        f"{ds.sizes['position']:,} positions ({ds.attrs['regions']}, hg19)."
    )
    print(f"Hiding ({celltype}, {assay}) and training a demo-size network on the other tracks...")
    tic = time.perf_counter()
    model = ax.fit(
        ds,
        epochs=args.epochs,
        validation=[(celltype, assay)],
        seed=args.seed,
        verbose=not args.quiet,
        **DEMO_TRAINING,
    )
    seconds = time.perf_counter() - tic
    train = ds.avocado.mask([(celltype, assay)])
    imputed = model.impute(train, merge=False)
    store = out / "imputed.zarr"
    imputed.to_zarr(store, mode="w", zarr_format=3, consolidated=False)
    truth = ds.signal.sel(celltype=celltype, assay=assay).values
    predictions = {
        "Avocado (this model)": _open_imputed(store)
        .imputed.sel(celltype=celltype, assay=assay)
        .values,
        "average of other cell types": average_baseline(train, celltype, assay).values,
        "track mean (other cell types)": mean_baseline(train, celltype, assay).values,
    }
    print(
        f"\nTrained {args.epochs} epochs in {seconds:.1f} s "
        f"({model.history[-1]['samples_per_second']:,.0f} samples/s)."
    )
    print(f"Held-out track ({celltype}, {assay}), {truth.size:,} positions:")
    print(f"  {'method':32s} {'MSE':>8s} {'Pearson r':>10s}")
    results = {}
    for name, pred in predictions.items():
        mse = float(np.mean((pred - truth) ** 2))
        r = float(np.corrcoef(pred, truth)[0, 1]) if np.ptp(pred) > 0 else float("nan")
        results[name] = {"mse": mse, "pearson": r}
        print(f"  {name:32s} {mse:8.4f} {r:10.3f}")
    (out / "demo_metrics.json").write_text(json.dumps(results, indent=1))
    fig = ax.plotting.plot_locus(
        ds.assign(imputed=_open_imputed(store).imputed),
        args.locus,
        [(celltype, assay), (celltype, "H3K27me3"), ("E003", assay)],
        title=f"{celltype} {assay} hidden during training: observed (grey) vs imputed (green)",
    )
    fig.savefig(out / "locus.png", dpi=120)
    model.save(out / "model", overwrite=True)
    print(f"\nWrote {store}, {out / 'locus.png'}, {out / 'model'} and {out / 'demo_metrics.json'}.")
    return 0


def _open_imputed(store):
    import xarray as xr

    return xr.open_zarr(store, consolidated=False, zarr_format=3)


def _fit(args) -> int:
    import avocado_xr as ax

    ds = ax.open_compendium(args.store)
    if args.mask:
        ds = ds.avocado.mask(args.mask)
    model = ax.fit(
        ds,
        epochs=args.epochs,
        validation=args.validation or None,
        device=args.device,
        seed=args.seed,
        verbose=not args.quiet,
        checkpoint=args.checkpoint,
        precision=args.precision,
        **_hyperparameters(args),
    )
    model.save(args.model, overwrite=args.overwrite)
    for record in model.history:
        print(json.dumps(record))
    print(f"Saved {model!r} to {args.model}")
    return 0


def _impute(args) -> int:
    from dask.diagnostics import ProgressBar

    import avocado_xr as ax

    model = ax.load_model(args.model)
    ds = ax.open_compendium(args.store) if args.store else None
    if ds is not None and args.region:
        ds = ds.avocado.region(args.region)
    imputed = model.impute(ds, celltypes=args.celltypes, assays=args.assays, merge=False)
    with ProgressBar(minimum=1.0) if not args.quiet else _nullcontext():
        imputed.to_zarr(
            args.output, mode="w" if args.overwrite else "w-", zarr_format=3, consolidated=False
        )
    print(f"Wrote imputed {dict(imputed.sizes)} to {args.output}")
    return 0


def _evaluate(args) -> int:
    import avocado_xr as ax
    from avocado_xr.metrics import metric_table
    from avocado_xr.report import compare_methods, markdown_table, write_report

    if args.store == "sample":
        ds = ax.datasets.roadmap_pilot_sample()
    elif args.store == "pilot":
        ds = ax.datasets.roadmap_pilot(args.pilot_dir)
    else:
        ds = ax.open_compendium(args.store)
    network = DEMO_TRAINING if args.network == "demo" else {}
    trained = {"epochs": args.epochs, "device": args.device, **network}
    if args.batch_size:
        trained["batch_size"] = args.batch_size
    options = {
        "avocado": dict(trained),
        "avocado-average": dict(trained),
        "linear": {**trained, "dropout": 0.0},
        "average": {},
        "mean": {},
        "autoencoder": {
            "device": args.device,
            "n_windows": args.ae_windows,
            "epochs": args.ae_epochs,
        },
    }
    unknown = [m for m in args.methods if m not in options]
    if unknown:
        print(
            f"avocado-xr evaluate: unknown method(s) {unknown}; choose from {list(options)}",
            file=sys.stderr,
        )
        return 2
    annotations = None if args.annotations == "none" else args.annotations
    results = compare_methods(
        ds,
        {m: options[m] for m in args.methods},
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


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


#: the demo-size network, with small batches for the 64,248-position embedded sample
DEMO_TRAINING = {**DEMO_NETWORK, "batch_size": 2_000}


def build_parser() -> argparse.ArgumentParser:
    """The ``avocado-xr`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="avocado-xr",
        description="Avocado deep tensor factorization of epigenomic compendia (xarray/zarr).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train on the embedded real sample with one track hidden, and score the imputation",
        description="Hide one real track of the embedded Roadmap sample, train a demo-size "
        "network on the rest (about a minute on a laptop CPU), impute it, print its MSE beside "
        "the track-mean and average-of-other-cell-types baselines, and write the imputation "
        "(zarr), a locus plot (PNG) and the model.",
    )
    demo.add_argument("--output", default="demo_output", help="output folder (default demo_output)")
    demo.add_argument(
        "--hide",
        type=_pair,
        default=("E065", "H3K4me3"),
        help="track to hide, CELLTYPE:ASSAY (default E065:H3K4me3)",
    )
    demo.add_argument(
        "--epochs", type=int, default=100, help="passes over the positions (default 100)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--locus",
        default="chr11:2,130,000-2,190,000",
        help="interval to plot (default: around IGF2 at the IGF2/H19 locus)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)

    fit = sub.add_parser(
        "fit",
        help="train a model on a zarr compendium",
        description="Train an Avocado model on a zarr compendium and save it to a directory.",
    )
    fit.add_argument("store", help="zarr compendium (see avocado_xr.save_compendium / ingest)")
    fit.add_argument("model", help="output model directory")
    fit.add_argument("--epochs", type=int, default=10)
    fit.add_argument(
        "--mask",
        type=_pair,
        action="append",
        default=[],
        help="hide CELLTYPE:ASSAY before training (repeatable)",
    )
    fit.add_argument(
        "--validation",
        type=_pair,
        action="append",
        default=[],
        help="hold out CELLTYPE:ASSAY and report its MSE each epoch (repeatable)",
    )
    fit.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    fit.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument(
        "--checkpoint", default=None, help="checkpoint directory (resumes if it holds one)"
    )
    fit.add_argument("--overwrite", action="store_true", help="replace an existing model directory")
    fit.add_argument("--quiet", action="store_true")
    _add_hyperparameters(fit)
    fit.set_defaults(func=_fit)

    imp = sub.add_parser(
        "impute",
        help="write imputed tracks to zarr, block by block",
        description="Impute tracks with a saved model and stream them to a zarr store.",
    )
    imp.add_argument("model", help="model directory (from `avocado-xr fit`)")
    imp.add_argument("output", help="output zarr store")
    imp.add_argument(
        "--store",
        default=None,
        help="compendium whose positions to impute (default: all the model's)",
    )
    imp.add_argument(
        "--region", default=None, help="restrict to an interval, e.g. chr11:2,000,000-2,300,000"
    )
    imp.add_argument("--celltypes", nargs="+", default=None)
    imp.add_argument("--assays", nargs="+", default=None)
    imp.add_argument("--overwrite", action="store_true")
    imp.add_argument("--quiet", action="store_true")
    imp.set_defaults(func=_impute)

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
        type=lambda t: t.split(","),
        default=["avocado", "avocado-average", "linear", "average", "mean", "autoencoder"],
        help="comma-separated: avocado, avocado-average, linear, average, mean, autoencoder",
    )
    ev.add_argument("--k", type=int, default=5, help="folds (default 5)")
    ev.add_argument("--epochs", type=int, default=10, help="epochs of the factorization models")
    ev.add_argument(
        "--network",
        choices=["demo", "paper"],
        default="demo",
        help="network size (default demo: 1 x 128)",
    )
    ev.add_argument("--batch-size", type=int, default=None)
    ev.add_argument("--ae-windows", type=int, default=100_000, help="autoencoder training windows")
    ev.add_argument("--ae-epochs", type=int, default=1, help="autoencoder passes over its windows")
    ev.add_argument(
        "--annotations", default="pilot", help="'pilot' (hg19 pilot promoters/genes) or 'none'"
    )
    ev.add_argument("--device", default=None)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--track", type=_pair, default=None, help="track for the scatter/locus plots")
    ev.add_argument("--locus", default=None, help="interval for the locus plot")
    ev.add_argument("--output", default="evaluation", help="output folder (default evaluation)")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=_evaluate)

    for module in _PLUGINS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``avocado-xr`` command."""
    from avocado_xr.exceptions import AvocadoXrError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AvocadoXrError as err:
        print(f"avocado-xr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
