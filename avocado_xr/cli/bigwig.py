"""The ``ingest`` and ``export-bigwig`` subcommands (the bigWig subsystem).

Ingest's options are generated from the fields of
:class:`~avocado_xr.bigwig.options.IngestOptions` (names, help, choices, parsers), so the
command line, recipes and :func:`avocado_xr.ingest` always offer the same options.
Exit status: 0 success, 1 some tracks failed, 2 bad input.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="avocado-xr")
>>> register(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["ingest", "m.tsv", "out.zarr", "--genome", "hg19",
...                           "--chroms", "chr1,chr2", "--missing", "nan"])
>>> args.func.__name__, args.chroms, args.missing
('run_ingest', 'chr1,chr2', 'nan')
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..exceptions import ConfigError, IngestError

__all__ = ["RUN_OPTIONS", "register", "run_export", "run_ingest"]

#: recipe keys that steer a run rather than decide the stored values
RUN_OPTIONS = ("manifest", "store", "cache", "scheduler", "overwrite", "progress", "attrs")
#: recipe options that are paths, relative to the recipe's folder
_PATH_OPTIONS = ("manifest", "store", "regions", "cache", "chrom_map", "genome")

_INGEST_EPILOG = """\
examples:
  avocado-xr ingest io/manifests/roadmap_pilot.tsv pilot.zarr --genome hg19 \\
      --regions encode_pilot_regions.hg19.bed --progress
  avocado-xr ingest --recipe io/recipes/roadmap_consolidated_pval.yaml
  avocado-xr ingest my.tsv my.zarr --genome hg38 --chroms chr1,chr2 --missing zero

A rerun with the same arguments resumes: complete tracks are skipped, partial ones redone.
Recipes (YAML) hold the same options (manifest, store, genome, chroms, regions, missing,
transform, ...); relative paths in a recipe are relative to the recipe's folder, and
command-line options override it. Exit status: 0 ok, 1 some tracks failed, 2 bad input.
"""

_EXPORT_EPILOG = """\
examples:
  avocado-xr export-bigwig imputed.zarr tracks/ --inverse-transform
  avocado-xr export-bigwig pilot.zarr tracks/ --variable signal --celltypes E003,E017

Writes one {celltype}.{assay}.bigWig per track (25-bp records; NaN bins are left out).
"""


def register(subparsers) -> None:
    """Add the ``ingest`` and ``export-bigwig`` subcommands to ``subparsers``."""
    from ..bigwig.options import IngestOptions

    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "ingest",
        help="bigWig files of a manifest -> zarr compendium (resumable)",
        description="Ingest the bigWig files listed in a manifest TSV (celltype, assay, "
        "path_or_url[, checksum, optional]) into a zarr compendium at 25 bp.",
        epilog=_INGEST_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("manifest", nargs="?", help="manifest TSV (or give it in --recipe)")
    p.add_argument("store", nargs="?", help="output zarr store (or give it in --recipe)")
    p.add_argument("--recipe", help="YAML file of ingest options (see io/recipes/)")
    for option in dataclasses.fields(IngestOptions):
        meta = option.metadata
        p.add_argument(
            "--" + option.name.replace("_", "-"),
            choices=meta["choices"],
            metavar=meta["metavar"],
            help=meta["help"],
        )
    p.add_argument("--cache", help="download folder for URL rows")
    p.add_argument("--scheduler", help="Dask scheduler when no distributed client is running")
    p.add_argument("--overwrite", action="store_true", default=None, help="start from scratch")
    p.add_argument("--progress", action="store_true", default=None, help="show progress")
    p.set_defaults(func=run_ingest)

    e = subparsers.add_parser(
        "export-bigwig",
        help="zarr tracks (imputed or observed) -> bigWig files",
        description="Write the tracks of a zarr store (imputation output or compendium) as "
        "bigWig files for genome browsers.",
        epilog=_EXPORT_EPILOG,
        formatter_class=fmt,
    )
    e.add_argument("store", help="zarr store with 'imputed' or 'signal'")
    e.add_argument("outdir", help="output folder")
    e.add_argument("--variable", help="variable to write (default: imputed, else signal)")
    e.add_argument("--celltypes", help="comma-separated cell types (default: all)")
    e.add_argument("--assays", help="comma-separated assays (default: all)")
    e.add_argument("--genome", help="chromosome sizes (default: the store's genome attribute)")
    e.add_argument(
        "--inverse-transform", action="store_true", help="write sinh(value): back to -log10 p"
    )
    e.add_argument("--name-template", default="{celltype}.{assay}.bigWig", help="file names")
    e.add_argument("--overwrite", action="store_true", help="replace existing files")
    e.add_argument("--progress", action="store_true", help="show progress")
    e.set_defaults(func=run_export)


def _recipe(path: str) -> dict:
    """Options of a YAML recipe, relative paths made relative to the recipe's folder."""
    import yaml

    from ..bigwig.options import IngestOptions

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"Recipe {path!r} does not exist.")
    try:
        options = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"Recipe {path} is not valid YAML: {err}") from err
    if not isinstance(options, dict):
        raise ConfigError(f"Recipe {path} must be a mapping of ingest options.")
    known = [*IngestOptions.names(), *RUN_OPTIONS]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"Recipe {path}: unknown option(s) {unknown}; known: {known}.")
    folder = file.resolve().parent
    for key in _PATH_OPTIONS:
        value = options.get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            if key != "genome" or (folder / value).is_file():
                options[key] = str(folder / value)
    return options


def run_ingest(args) -> int:
    """Run ``avocado-xr ingest``; returns the exit status."""
    from ..bigwig.ingest import ingest
    from ..bigwig.options import IngestOptions

    options = _recipe(args.recipe) if args.recipe else {}
    for field in dataclasses.fields(IngestOptions):
        text = getattr(args, field.name)
        if text is not None:
            options[field.name] = field.metadata["parse"](text)
    for key in RUN_OPTIONS:
        value = getattr(args, key, None)
        if value is not None:
            options[key] = value
    for key in ("manifest", "store", "genome"):
        if not options.get(key):
            raise ConfigError(f"--{key} (or {key} in --recipe) is required.")
    manifest, store = options.pop("manifest"), options.pop("store")
    try:
        report = ingest(manifest, store, on_error="raise", **options)
    except IngestError as err:
        print(f"avocado-xr ingest: error: {err}", file=sys.stderr)
        return 1
    print(report)
    return 0


def run_export(args) -> int:
    """Run ``avocado-xr export-bigwig``; returns the exit status."""
    import xarray as xr

    from ..bigwig.export import to_bigwig
    from ..exceptions import StoreError
    from ..variables import CHROM, START

    if not Path(args.store).exists():
        raise StoreError(f"No zarr store at {args.store!r}.")
    try:
        ds = xr.open_zarr(args.store, consolidated=False)
    except (ValueError, KeyError, OSError) as err:
        raise StoreError(f"{args.store!r} is not a readable zarr store: {err}") from err
    for name in (CHROM, START):
        if name in ds.coords:
            ds[name] = ds[name].load()
    for dim, value in (("celltype", args.celltypes), ("assay", args.assays)):
        if value:
            from ..variables import check_names

            names = check_names(value.split(","), ds.get_index(dim), dim)
            ds = ds.sel({dim: names})
    files = to_bigwig(
        ds,
        args.outdir,
        genome=args.genome,
        inverse_transform=args.inverse_transform,
        variable=args.variable,
        name_template=args.name_template,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(f"wrote {len(files)} bigWig file(s) to {args.outdir}")
    return 0
