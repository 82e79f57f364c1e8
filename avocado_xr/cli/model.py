"""The ``demo``, ``fit``, ``fit-genome``, ``impute`` and ``verify`` subcommands (the model
subsystem)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from ..config import DEMO_NETWORK
from ._args import add_hyperparameters, hyperparameters, non_negative_int, pair, positive_int

__all__ = ["DEMO_TRAINING", "register"]

#: the demo-size network, with small batches for the 64,248-position embedded sample
DEMO_TRAINING = {**DEMO_NETWORK, "batch_size": 2_000}


def register(sub) -> None:
    """Add ``demo``, ``fit``, ``impute`` and ``verify`` to the ``avocado-xr`` subparsers."""
    demo = sub.add_parser(
        "demo",
        help="train on the embedded real sample with one track hidden, and score the imputation",
        description="Hide one real track of the embedded Roadmap sample, train a demo-size "
        "network on the rest, impute it, print its MSE beside the track-mean and "
        "average-of-other-cell-types baselines, and write the imputation (zarr), a locus plot "
        "(PNG) and the model.",
    )
    demo.add_argument("--output", default="demo_output", help="output folder (default demo_output)")
    demo.add_argument(
        "--hide",
        type=pair,
        default=("E065", "H3K4me3"),
        help="track to hide, CELLTYPE:ASSAY (default E065:H3K4me3)",
    )
    demo.add_argument(
        "--epochs", type=positive_int, default=100, help="passes over the positions (default 100)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--locus",
        default="chr11:2,130,000-2,190,000",
        help="interval to plot (default: around IGF2 at the IGF2/H19 locus)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.set_defaults(func=run_demo)

    fit = sub.add_parser(
        "fit",
        help="train a model on a zarr compendium",
        description="Train an Avocado model on a zarr compendium and save it to a directory.",
    )
    fit.add_argument("store", help="zarr compendium (see avocado_xr.save_compendium / ingest)")
    fit.add_argument("model", help="output model directory")
    fit.add_argument("--epochs", type=non_negative_int, default=10)
    fit.add_argument(
        "--mask",
        type=pair,
        action="append",
        default=[],
        help="hide CELLTYPE:ASSAY before training (repeatable)",
    )
    fit.add_argument(
        "--validation",
        type=pair,
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
    add_hyperparameters(fit)
    fit.set_defaults(func=run_fit)

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
    imp.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    imp.add_argument("--overwrite", action="store_true")
    imp.add_argument("--quiet", action="store_true")
    imp.set_defaults(func=run_impute)

    gw = sub.add_parser(
        "fit-genome",
        help="whole-genome training: phase 1 on regions, phase 2 per chromosome (on Dask)",
        description="Train a genome-wide model on a zarr compendium: phase 1 trains everything "
        "on --regions (or takes --phase1-model), phase 2 freezes the network and the cell type "
        "and assay factors and fits the genome factors of each chromosome as one Dask task, "
        "writing them to FACTORS (zarr). A rerun resumes. With --scheduler the tasks run on "
        "that dask.distributed cluster.",
    )
    gw.add_argument("store", help="genome-wide zarr compendium")
    gw.add_argument("factors", help="genome-factor store to write (zarr)")
    gw.add_argument("model", help="output model directory")
    source = gw.add_mutually_exclusive_group(required=True)
    source.add_argument("--regions", help="BED file of phase 1's positions (e.g. pilot regions)")
    source.add_argument("--phase1-model", help="a trained phase-1 model directory")
    gw.add_argument("--epochs", type=positive_int, default=200, help="phase 2 (default 200)")
    gw.add_argument("--phase1-epochs", type=positive_int, default=800, help="phase 1 (default 800)")
    gw.add_argument("--chroms", help="comma-separated chromosomes to fit now (default: all)")
    gw.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    gw.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    gw.add_argument("--seed", type=int, default=0)
    gw.add_argument("--tracks-per-block", type=positive_int, default=None)
    gw.add_argument("--scheduler", help="address of a dask.distributed scheduler to use")
    gw.add_argument("--overwrite", action="store_true", help="replace an existing model directory")
    gw.add_argument("--quiet", action="store_true")
    add_hyperparameters(gw)
    gw.set_defaults(func=run_fit_genome)

    ver = sub.add_parser(
        "verify",
        help="check every chunk of a compendium store (checksums, missing chunks, NaN)",
        description="Read every chunk of a compendium store's observed tracks, checking their "
        "checksums, that no chunk file is missing and that no value is NaN; print one line per "
        "problem. Exit status 0: intact, 1: damaged.",
    )
    ver.add_argument("store", help="zarr compendium (from save_compendium or ingest)")
    ver.add_argument("--quiet", action="store_true", help="no progress bar")
    ver.set_defaults(func=run_verify)


def run_demo(args) -> int:
    """``avocado-xr demo``."""
    import numpy as np
    import xarray as xr

    import avocado_xr as ax
    from avocado_xr.evaluation.baselines import average_baseline, mean_baseline

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
    store = out / "imputed.zarr"
    model.impute(train, merge=False).to_zarr(store, mode="w", zarr_format=3, consolidated=False)
    imputed = xr.open_zarr(store, consolidated=False, zarr_format=3).imputed
    truth = ds.signal.sel(celltype=celltype, assay=assay).values
    predictions = {
        "Avocado (this model)": imputed.sel(celltype=celltype, assay=assay).values,
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
        ds.assign(imputed=imputed),
        args.locus,
        [(celltype, assay), (celltype, "H3K27me3"), ("E003", assay)],
        title=f"{celltype} {assay} hidden during training: observed (grey) vs imputed (green)",
    )
    fig.savefig(out / "locus.png", dpi=120)
    model.save(out / "model", overwrite=True)
    print(f"\nWrote {store}, {out / 'locus.png'}, {out / 'model'} and {out / 'demo_metrics.json'}.")
    return 0


def run_fit(args) -> int:
    """``avocado-xr fit``."""
    import avocado_xr as ax

    check_output(args.model, overwrite=args.overwrite, what="model directory")
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
        **hyperparameters(args),
    )
    model.save(args.model, overwrite=args.overwrite)
    for record in model.history:
        print(json.dumps(record))
    print(f"Saved {model!r} to {args.model}")
    return 0


def run_impute(args) -> int:
    """``avocado-xr impute``: written to ``OUTPUT.partial`` and renamed when complete, so a
    killed run leaves no store that looks finished, and a rerun starts it afresh."""
    import shutil

    from dask.diagnostics import ProgressBar

    import avocado_xr as ax
    from avocado_xr.store import checksummed

    output = Path(args.output)
    check_output(output, overwrite=args.overwrite, what="output store")
    model = ax.load_model(args.model)
    ds = ax.open_compendium(args.store) if args.store else model.positions()
    if args.region:
        ds = ds.avocado.region(args.region)
    imputed = model.impute(
        ds, celltypes=args.celltypes, assays=args.assays, merge=False, device=args.device
    )
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    chunks = (1, 1, imputed.imputed.data.chunksize[2])
    with contextlib.nullcontext() if args.quiet else ProgressBar(minimum=1.0):
        imputed.to_zarr(
            partial,
            mode="w-",
            zarr_format=3,
            consolidated=False,
            encoding={"imputed": checksummed(chunks=chunks)},
        )
    if output.exists():
        shutil.rmtree(output)
    partial.rename(output)
    print(f"Wrote imputed {dict(imputed.sizes)} to {args.output}")
    return 0


def run_fit_genome(args) -> int:
    """``avocado-xr fit-genome``."""
    import avocado_xr as ax

    check_output(args.model, overwrite=args.overwrite, what="model directory")
    options = dict(
        epochs=args.epochs,
        phase1_epochs=args.phase1_epochs,
        chroms=args.chroms.split(",") if args.chroms else None,
        device=args.device,
        seed=args.seed,
        precision=args.precision,
        tracks_per_block=args.tracks_per_block,
        verbose=not args.quiet,
    )
    if args.phase1_model:
        options["model"] = ax.load_model(args.phase1_model)
    else:
        options.update(regions=args.regions, **hyperparameters(args))
    with _client(args.scheduler):
        model = ax.fit_genome(args.store, args.factors, **options)
    model.save(args.model, overwrite=args.overwrite)
    missing = model.genome.missing()
    print(f"Saved {model!r} to {args.model}" + (f"; still to fit: {missing}" if missing else ""))
    return 0


def _client(address):
    """A dask.distributed client of ``address`` for the duration of a command (or nothing)."""
    if not address:
        return contextlib.nullcontext()
    from distributed import Client

    return Client(address)


def run_verify(args) -> int:
    """``avocado-xr verify``."""
    import avocado_xr as ax

    problems = ax.verify_store(args.store, progress_bar=not args.quiet)
    for line in problems:
        print(line)
    print(f"{args.store}: {'intact' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def check_output(path, *, overwrite: bool, what: str) -> None:
    """Refuse, before any long work, an output that exists (without ``--overwrite``) or that
    cannot be written."""
    from ..exceptions import StoreError

    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreError(f"The {what} {str(path)!r} already exists; pass --overwrite.")
    parent = path.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StoreError(f"Cannot write the {what} {str(path)!r}: {str(parent)!r} is a file.")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StoreError(f"Cannot write the {what} {str(path)!r}: permission denied.")
