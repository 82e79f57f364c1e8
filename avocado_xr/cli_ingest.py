"""The ``avocado-xr ingest`` and ``avocado-xr export-bigwig`` subcommands.

:func:`register` adds both to an :mod:`argparse` subparsers object; each sets ``func`` to a
callable that takes the parsed namespace and returns the exit code (0: success, 1: some
tracks failed, 2: bad input).

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
import sys
from pathlib import Path

from .exceptions import AvocadoXrError

__all__ = ["register", "run_export", "run_ingest"]

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
    p.add_argument("--genome", help="hg19, hg38, dm3, or a chrom-sizes file (required)")
    p.add_argument("--chroms", help="comma-separated chromosomes (default: all)")
    p.add_argument("--regions", help="BED file restricting the positions")
    p.add_argument(
        "--region-rule",
        choices=["avocado", "overlap"],
        help="bins of a region: 'avocado' = bins overlapping [start-25, end] (default; the "
        "pilot layout), 'overlap' = bins overlapping [start, end)",
    )
    p.add_argument(
        "--missing",
        help="value for bins with no covered base: zero (default, the paper), nan, or a number",
    )
    p.add_argument(
        "--transform", choices=["arcsinh", "none"], help="applied after --missing (default arcsinh)"
    )
    p.add_argument(
        "--gaps",
        choices=["missing", "zero"],
        help="uncovered bases inside a bin: left out of the mean (default) or counted as 0",
    )
    p.add_argument(
        "--chrom-map",
        help="two-column file: file chromosome name, genome name (applied before chr/MT rules)",
    )
    p.add_argument("--extra-chroms", choices=["ignore", "error"], help="default ignore")
    p.add_argument("--missing-chroms", choices=["missing", "error"], help="default missing")
    p.add_argument("--position-chunk", type=int, help="positions per chunk (default 131072)")
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
    import yaml

    folder = Path(path).resolve().parent
    options = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(options, dict):
        raise AvocadoXrError(f"Recipe {path} must be a mapping of ingest options.")
    for key in ("manifest", "store", "regions", "cache", "chrom_map"):
        value = options.get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            options[key] = str(folder / value)
    if isinstance(options.get("genome"), str) and (folder / options["genome"]).is_file():
        options["genome"] = str(folder / options["genome"])
    return options


def _chrom_map(value):
    if value is None or isinstance(value, dict):
        return value
    out = {}
    for line in Path(value).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, target = line.split()[:2]
            out[name] = None if target in ("-", "none", "None") else target
    return out


def run_ingest(args) -> int:
    """Run ``avocado-xr ingest``; returns the exit status."""
    from .ingest import ingest

    try:
        options = _recipe(args.recipe) if args.recipe else {}
        for key in (
            "manifest", "store", "genome", "chroms", "regions", "region_rule", "missing",
            "transform", "gaps", "chrom_map", "extra_chroms", "missing_chroms",
            "position_chunk", "cache", "scheduler", "overwrite", "progress",
        ):  # fmt: skip
            value = getattr(args, key, None)
            if value is not None:
                options[key] = value
        for key in ("manifest", "store", "genome"):
            if not options.get(key):
                print(f"avocado-xr ingest: --{key} (or {key} in --recipe) is required",
                      file=sys.stderr)  # fmt: skip
                return 2
        if isinstance(options.get("chroms"), str):
            options["chroms"] = [c for c in options["chroms"].split(",") if c]
        missing = options.get("missing")
        if isinstance(missing, str) and missing not in ("zero", "nan"):
            options["missing"] = float(missing)
        if options.get("transform") == "none":
            options["transform"] = None
        options["chrom_map"] = _chrom_map(options.get("chrom_map"))
        manifest, store = options.pop("manifest"), options.pop("store")
        report = ingest(manifest, store, on_error="raise", **_known(options))
    except (AvocadoXrError, ValueError, OSError) as err:
        print(f"avocado-xr ingest: error: {err}", file=sys.stderr)
        return 1 if "failed to ingest" in str(err) else 2
    print(report)
    return 0


def _known(options: dict) -> dict:
    allowed = {
        "genome", "chroms", "regions", "region_rule", "missing", "transform", "gaps",
        "chrom_map", "extra_chroms", "missing_chroms", "position_chunk", "overwrite",
        "progress", "cache", "scheduler", "attrs",
    }  # fmt: skip
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown recipe option(s) {unknown}; known: {sorted(allowed)}")
    return options


def run_export(args) -> int:
    """Run ``avocado-xr export-bigwig``; returns the exit status."""
    import xarray as xr

    from .export import to_bigwig

    try:
        if not Path(args.store).exists():
            raise AvocadoXrError(f"No zarr store at {args.store!r}.")
        ds = xr.open_zarr(args.store, consolidated=False)
        for name in ("chrom", "start"):
            if name in ds.coords:
                ds[name] = ds[name].load()
        for dim, value in (("celltype", args.celltypes), ("assay", args.assays)):
            if value:
                ds = ds.sel({dim: value.split(",")})
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
    except (AvocadoXrError, ValueError, KeyError, OSError) as err:
        print(f"avocado-xr export-bigwig: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} bigWig file(s) to {args.outdir}")
    return 0
