"""The ``import-avocado``, ``add-celltypes`` and ``add-assays`` subcommands: start from a
trained model (one of the original Avocado, or ours) and extend it."""

from __future__ import annotations

import json

from ._args import non_negative_int, pair, positive_int

__all__ = ["register"]


def register(sub) -> None:
    """Add ``import-avocado``, ``add-celltypes`` and ``add-assays`` to the subparsers."""
    imp = sub.add_parser(
        "import-avocado",
        help="import a model saved by the original Avocado (NAME.json + NAME.h5)",
        description="Read a model saved by the original Avocado (avocado-epigenome: NAME.json "
        "and NAME.h5, Keras) without Keras, check it and save it as an avocado_xr model "
        "directory. A directory of per-chromosome files (avocado-chr1.json/.h5, ...; the "
        "published genome-wide models) becomes a genome-wide model whose genome factors are "
        "written to --store. Nothing is written when a file is missing or damaged.",
    )
    imp.add_argument("source", help="NAME (for NAME.json and NAME.h5), or a directory of them")
    imp.add_argument("model", help="output model directory")
    imp.add_argument(
        "--positions",
        default=None,
        help="one model: whose positions the model's are: 'pilot' (the ENCODE pilot regions, "
        "hg19) or a zarr compendium; not needed for per-chromosome files",
    )
    imp.add_argument(
        "--slice",
        default=None,
        metavar="START:END",
        help="take positions START..END-1 of --positions (e.g. 0:50000)",
    )
    imp.add_argument("--genome", default=None, help="assembly or chrom-sizes file (e.g. hg19)")
    imp.add_argument("--store", default=None, help="genome-wide models: genome-factor store")
    imp.add_argument("--chroms", default=None, help="comma-separated chromosomes to import")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing model")
    imp.set_defaults(func=run_import)

    for axis in ("celltypes", "assays"):
        add = sub.add_parser(
            f"add-{axis}",
            help=f"learn new {axis} of a compendium into a trained model (the rest frozen)",
            description=f"Add the new {axis} of a zarr compendium to a saved model: only their "
            "factors are learned, from their observed tracks; the network, the genome factors "
            "and the existing factors are frozen. Optionally fine-tune every parameter "
            "afterwards at a reduced learning rate with early stopping on --validation tracks.",
        )
        add.add_argument("model", help="model directory (avocado-xr fit / import-avocado)")
        add.add_argument("store", help="zarr compendium with the new tracks")
        add.add_argument("output", help="output model directory")
        add.add_argument(
            f"--{axis}", nargs="+", default=None, help=f"{axis} to add (default: all new)"
        )
        add.add_argument("--epochs", type=non_negative_int, default=10)
        add.add_argument("--lr", type=float, default=None, help="default: the model's")
        add.add_argument(
            "--validation",
            type=pair,
            action="append",
            default=[],
            help="hold out CELLTYPE:ASSAY and keep the best epoch (repeatable)",
        )
        add.add_argument("--patience", type=positive_int, default=None)
        add.add_argument(
            "--fine-tune-epochs",
            type=non_negative_int,
            default=0,
            help="then fine-tune every parameter for up to this many epochs (needs "
            "--validation; default 0: no fine-tuning)",
        )
        add.add_argument(
            "--fine-tune-lr", type=float, default=None, help="default: a tenth of the model's"
        )
        add.add_argument("--device", default=None, help="cpu or cuda (default: cuda if any)")
        add.add_argument("--seed", type=int, default=0)
        add.add_argument("--overwrite", action="store_true")
        add.add_argument("--quiet", action="store_true")
        add.set_defaults(func=run_add, axis=axis)


def run_import(args) -> int:
    """``avocado-xr import-avocado``."""
    import avocado_xr as ax

    from ..exceptions import ConfigError
    from .model import check_output

    check_output(args.model, overwrite=args.overwrite, what="model directory")
    layout = None
    if args.positions:
        if args.positions == "pilot":
            layout = ax.datasets.pilot_layout()
        else:
            from ..coords import dataset_layout

            layout = dataset_layout(ax.open_compendium(args.positions))
    if args.slice:
        if layout is None:
            raise ConfigError("--slice takes positions of --positions; pass --positions too.")
        try:
            lo, hi = (int(v) for v in args.slice.split(":"))
        except ValueError:
            raise ConfigError(f"--slice must be START:END, got {args.slice!r}") from None
        layout = layout.subset(lo, hi)
    model = ax.import_avocado(
        args.source,
        layout=layout,
        genome=args.genome,
        store=args.store,
        chroms=args.chroms.split(",") if args.chroms else None,
    )
    model.save(args.model, overwrite=args.overwrite)
    print(f"Imported {model!r} to {args.model}")
    return 0


def run_add(args) -> int:
    """``avocado-xr add-celltypes`` and ``add-assays``."""
    import avocado_xr as ax

    from ..exceptions import ConfigError
    from .model import check_output

    check_output(args.output, overwrite=args.overwrite, what="model directory")
    if args.fine_tune_epochs and not args.validation:
        raise ConfigError("--fine-tune-epochs needs --validation tracks to decide when to stop.")
    model = ax.load_model(args.model)
    ds = ax.open_compendium(args.store)
    options = dict(device=args.device, seed=args.seed, verbose=not args.quiet)
    add = model.add_celltypes if args.axis == "celltypes" else model.add_assays
    new = add(
        ds,
        **{args.axis: getattr(args, args.axis)},
        epochs=args.epochs,
        lr=args.lr,
        validation=args.validation or None,
        patience=args.patience,
        **options,
    )
    if args.fine_tune_epochs:
        new = new.fine_tune(
            ds,
            validation=args.validation,
            epochs=args.fine_tune_epochs,
            lr=args.fine_tune_lr,
            **options,
        )
        print(json.dumps(new.training_info["fine_tune"]))
    new.save(args.output, overwrite=args.overwrite)
    for record in new.history[len(model.history) :]:
        print(json.dumps(record))
    print(f"Saved {new!r} to {args.output}")
    return 0
