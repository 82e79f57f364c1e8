"""Models of the original Avocado (avocado-epigenome, Keras) read into an :class:`AvocadoModel`.

:func:`import_avocado` reads the files of a model saved by the original's ``Avocado.save``
(``{name}.json`` and ``{name}.h5``, see :mod:`avocado_xr.model.keras_h5`: no Keras, nothing
executed), checks them against each other, and builds the model:

- one model: genome index ``i`` is the ``i``-th position of the model; its 250-bp and 5-kbp
  bins are ``i // 10`` and ``i // 200`` over that flat index, which straddle region boundaries,
  so the imported model keeps that rule (``coarse_rule="flat"``) and predicts what the original
  predicts. The files do not say which genomic bins the positions are: pass ``layout=`` (a
  :class:`~avocado_xr.genome.GenomeLayout`, or a Dataset over exactly those positions), except
  for a per-chromosome file (below);
- a genome-wide model, as published: one pair of files per chromosome (``avocado-chr1.json``/
  ``.h5`` ... ``avocado-chrX``), where genome index ``i`` is the bin ``[25 i, 25 i + 25)`` of
  that chromosome, and the network, cell type and assay factors are the same in every file
  (phase 2 froze them; the import checks it). It becomes one genome-wide model: the head from
  the files, the genome factors of each chromosome written to a
  :class:`~avocado_xr.model.genome_store.GenomeFactorStore`, one chromosome at a time. For
  whole chromosomes starting at 0 the flat rule and the package's segment rule give the same
  coarse bins, so those models use ``coarse_rule="segment"``, the rule of the store.

Where the original goes wrong, the import does not: every chromosome's last bin is kept (the
original's ``avocado-impute`` drops it, ``predict(...)[:-1]``); missing or damaged files stop
the import before anything is written (the original's command writes an empty bigWig when a
model download fails); cell types or assays in the JSON without a listed experiment are
flagged (the original's ``fit_celltypes``/``fit_assays`` do not record the experiments they
add, so their saved JSON lists a stale set).
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from .._compat import resolve_device
from ..coords import dataset_layout
from ..exceptions import AvocadoXrWarning, ConfigError, ModelFileError
from ..genome import GenomeLayout
from ..variables import CHROM
from .avocado import AvocadoModel
from .genome_store import GenomeFactorStore
from .keras_h5 import (
    SHARED_KEYS,
    KerasFile,
    ModelFiles,
    check_genome_rows,
    head_state,
    model_files,
    original_config,
    read_original_json,
)
from .network import GENOME_TABLES, AvocadoHead, AvocadoNet, coarse_indices

__all__ = ["import_avocado"]

#: a per-chromosome file name: ``avocado-chr1``, ``roadmap.chrX``, ``chr22``
_CHROM_NAME = re.compile(r"^(?:.*[-_.])?(chr[0-9A-Za-z_]+)$")


# ---------------------------------------------------------------------------------- records


def _warn_stale(pair: ModelFiles, meta: dict) -> None:
    seen_c = {c for c, _ in meta["experiments"]}
    seen_a = {a for _, a in meta["experiments"]}
    lonely = [c for c in meta["celltypes"] if c not in seen_c]
    lonely += [a for a in meta["assays"] if a not in seen_a]
    if meta["experiments"] and lonely:
        warnings.warn(
            f"{pair.json.name} lists no training experiment of {lonely}: the original's "
            "fit_celltypes/fit_assays do not record the experiments they add, so the list in "
            "its saved JSON is stale. training_info['train_tracks'] holds the list as saved.",
            AvocadoXrWarning,
            stacklevel=3,
        )


def _training_info(pairs: list[ModelFiles], metas: list[dict], keras_version: str, genome) -> dict:
    tracks = list(dict.fromkeys(f"{c}/{a}" for m in metas for c, a in m["experiments"]))
    return {
        "imported_from": [str(p.h5) for p in pairs],
        "source": f"avocado-epigenome (Keras {keras_version})",
        "train_tracks": tracks,
        "validation_tracks": [],
        "genome": genome,
    }


# ---------------------------------------------------------------------------------- layouts


def _layout_arg(layout, n: int, pair: ModelFiles) -> GenomeLayout:
    if isinstance(layout, GenomeLayout):
        out = layout
    elif hasattr(layout, "coords") and CHROM in getattr(layout, "coords", {}):
        out = dataset_layout(layout)
    else:
        raise ConfigError(
            f"layout= must be a GenomeLayout or a Dataset with chrom/start, got "
            f"{type(layout).__name__}."
        )
    if out.n_positions != n:
        raise ConfigError(
            f"{pair.json.name} has {n:,} genomic positions but layout= has "
            f"{out.n_positions:,}; pass the layout of exactly the positions the model was "
            "trained on, in their order (e.g. ax.datasets.pilot_layout().subset(0, n))."
        )
    return out


def _chromosome_layout(chrom: str, n: int, sizes: dict | None, pair: ModelFiles) -> GenomeLayout:
    """Genome index ``i`` = bin ``[25 i, 25 i + 25)`` of ``chrom``; with the chromosome size
    known, a spare row past its end (``n = size // 25 + 1`` for a size divisible by 25) is
    dropped and a model longer than the chromosome is refused."""
    if sizes is None:
        return GenomeLayout((chrom,), (0,), (n,))
    if chrom not in sizes:
        raise ConfigError(
            f"{pair.json.name} is a model of {chrom}, which is not in the genome given "
            f"({sorted(sizes)}); pass the assembly the model was trained on."
        )
    bins = -(-sizes[chrom] // 25)
    if n > bins + 1:
        raise ModelFileError(
            f"{pair.json} has {n:,} positions (25-bp bins) but {chrom} has {sizes[chrom]:,} bp "
            f"({bins:,} bins) in the genome given: the model is of another assembly; pass the "
            "genome it was trained on (hg19 for the Roadmap models, hg38 for ENCODE)."
        )
    return GenomeLayout((chrom,), (0,), (min(n, bins),), 25, ((chrom, sizes[chrom]),))


def _sizes(genome) -> tuple[dict | None, str]:
    if genome is None:
        return None, "unknown"
    from ..assembly import genome_sizes

    resolved = genome_sizes(genome)
    return dict(resolved.sizes), resolved.name


# ---------------------------------------------------------------------------------- import


def import_avocado(
    source,
    *,
    layout=None,
    genome=None,
    store: str | os.PathLike | None = None,
    chroms=None,
    device: str | torch.device = "cpu",
) -> AvocadoModel:
    """Import a model saved by the original Avocado (``Avocado.save``: ``.json`` + ``.h5``).

    Reads the files with ``json`` and ``h5py`` only (no Keras or TensorFlow; nothing in the
    files is executed) and checks them against each other; the result predicts what the
    original predicts (to float32 rounding) and can be extended with
    :meth:`~avocado_xr.AvocadoModel.add_celltypes`, saved and loaded like any model.

    Parameters
    ----------
    source : str, path, list or mapping
        One model: its prefix ``NAME`` (or ``NAME.json``/``NAME.h5``). A genome-wide model
        (one pair of files per chromosome, e.g. the published ``avocado-chr1`` ...
        ``avocado-chrX``): the directory holding them, a list of their prefixes, or a mapping
        ``{chrom: prefix}``.
    layout : GenomeLayout or xarray.Dataset, optional
        One model: the genomic bins of its positions, in order (the original's files do not
        record them). A Dataset gives its positions. Not needed for a per-chromosome file
        (``...-chr5``: the whole chromosome from 0). E.g. for a model trained on the first
        50,000 pilot positions: ``ax.datasets.pilot_layout().subset(0, 50_000)``.
    genome : str, path or mapping, optional
        The assembly (``"hg19"``, a chrom-sizes file, ``{chrom: size}``) of per-chromosome
        models: their chromosome sizes are recorded (so every last bin is exported, clipped to
        the chromosome's end), checked against the number of positions, and name the genome of
        the model's outputs.
    store : str or path
        Genome-wide models: the zarr store to write the genome factors to (created; an
        existing store of the same layout resumes, skipping chromosomes already imported).
    chroms : list of str, optional
        Genome-wide models: the chromosomes to import (default: every pair of files found).
        Each must have both files.
    device : str or torch.device
        Where to put the network. Default is "cpu".

    Returns
    -------
    AvocadoModel
        In-memory (one model, ``coarse_rule="flat"``: the original's ``i // 10`` and
        ``i // 200``), or genome-wide (head in memory, genome factors in ``store``).
        ``training_info["train_tracks"]`` lists the experiments of the JSON.

    Raises
    ------
    ModelFileError
        A file is missing, truncated or damaged, of another format, or the JSON and the weights
        (or the files of two chromosomes) do not describe the same model; the message names the
        file and what to do.
    ConfigError
        ``layout`` is missing or does not match the number of positions; ``store`` is missing.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> model = ax.import_avocado(  # doctest: +SKIP
    ...     "reference_model/avocado_pilot50k",
    ...     layout=ax.datasets.pilot_layout().subset(0, 50_000))
    >>> model.predict("E065", "H3K4me3")[:3]  # doctest: +SKIP
    """
    pairs = _genome_wide_pairs(source, chroms)
    if pairs is None:
        if store is not None or chroms is not None:
            raise ConfigError(
                "store= and chroms= are for genome-wide models (one pair of files per "
                "chromosome); pass the directory holding them, a list or a {chrom: prefix} map."
            )
        return _import_one(model_files(source), layout, genome, device)
    if layout is not None:
        raise ConfigError(
            "layout= is for a single model; the positions of per-chromosome files are their "
            "chromosome's 25-bp bins (pass genome= for the chromosome sizes)."
        )
    return _import_genome(pairs, genome, store, device)


def _import_one(pair: ModelFiles, layout, genome, device) -> AvocadoModel:
    meta = read_original_json(pair.json)
    n = meta["n_genomic_positions"]
    sizes, genome_name = _sizes(genome)
    if layout is None:
        match = _CHROM_NAME.match(pair.name)
        if match is None:
            raise ConfigError(
                f"{pair.json.name} does not record which genomic bins its {n:,} positions are "
                "(the original's files never do): pass layout=, a GenomeLayout or a Dataset "
                "over exactly those positions, e.g. ax.datasets.pilot_layout().subset(0, n) "
                "for a model trained on the first n pilot positions."
            )
        layout = _chromosome_layout(match.group(1), n, sizes, pair)
    else:
        layout = _layout_arg(layout, n, pair)
    with KerasFile(pair.h5) as keras:
        config = original_config(meta, keras, "flat", pair)
        index_250bp, index_5kbp = coarse_indices(layout, config)
        rows = (layout.n_positions, int(index_250bp[-1]) + 1, int(index_5kbp[-1]) + 1)
        check_genome_rows(pair, keras, meta, config, rows)
        state = head_state(pair, keras, meta, config)
        tables = [
            keras.weights(f"{t}_embedding", pair.json, rows=r)[0]
            for t, r in zip(GENOME_TABLES, rows, strict=True)
        ]
        version = keras.keras_version
    _warn_stale(pair, meta)
    net = AvocadoNet(len(meta["celltypes"]), len(meta["assays"]), index_250bp, index_5kbp, config)
    net.head.load_state_dict(state)
    with torch.no_grad():
        for table, values in zip(net.genome_tables(), tables, strict=True):
            table.weight.copy_(torch.from_numpy(values))
    net.to(resolve_device(device)).eval()
    return AvocadoModel(
        net,
        config,
        celltypes=meta["celltypes"],
        assays=meta["assays"],
        layout=layout,
        training_info=_training_info([pair], [meta], version, genome_name),
    )


def _genome_wide_pairs(source, chroms) -> dict[str, ModelFiles] | None:
    """``{chrom: pair}`` for a genome-wide source (directory, list, mapping), else None."""
    if isinstance(source, Mapping):
        named = {str(c): p for c, p in source.items()}
    elif isinstance(source, list | tuple):
        named = {}
        for prefix in source:
            stem = Path(prefix).name.removesuffix(".json").removesuffix(".h5")
            match = _CHROM_NAME.match(stem)
            if match is None:
                raise ConfigError(
                    f"Cannot tell the chromosome of {str(prefix)!r} from its name (expected "
                    "e.g. avocado-chr1); pass a mapping {chrom: prefix} instead."
                )
            named[match.group(1)] = prefix
    elif Path(source).is_dir() and not (Path(source) / "model.json").is_file():
        directory = Path(source)
        found = {}
        for path in sorted(directory.iterdir()):
            if path.suffix in (".json", ".h5"):
                match = _CHROM_NAME.match(path.stem)
                if match is not None:
                    found.setdefault(match.group(1), directory / path.stem)
        if not found:
            raise ModelFileError(
                f"{directory} holds no per-chromosome model files (NAME-chr1.json/.h5, ...), "
                "as the published genome-wide models are named."
            )
        named = dict(sorted(found.items(), key=lambda kv: _chrom_key(kv[0])))
    else:
        return None
    if chroms is not None:
        chroms = [chroms] if isinstance(chroms, str) else [str(c) for c in chroms]
        missing = [c for c in chroms if c not in named]
        if missing:
            raise ModelFileError(
                f"No model files for {missing} in {source!r}; download them (the published "
                "models are avocado-<chrom>.json and .h5) or leave those chromosomes out of "
                "chroms=."
            )
        named = {c: named[c] for c in chroms}
    return {c: model_files(p) for c, p in named.items()}


def _chrom_key(chrom: str):
    rest = chrom[3:]
    return (0, int(rest), "") if rest.isdigit() else (1, 0, rest)


def _import_genome(pairs: dict[str, ModelFiles], genome, store, device) -> AvocadoModel:
    if store is None:
        raise ConfigError(
            "A genome-wide model's genome factors are written to a zarr store: pass store= "
            "(a new folder, e.g. 'avocado-factors.zarr')."
        )
    sizes, genome_name = _sizes(genome)
    chroms = list(pairs)
    if sizes is not None:  # the assembly's chromosome order
        order = {c: k for k, c in enumerate(sizes)}
        chroms.sort(key=lambda c: order.get(c, len(order)))
    metas = {c: read_original_json(pairs[c].json) for c in chroms}
    first = chroms[0]
    for chrom in chroms[1:]:
        for key in SHARED_KEYS:
            if metas[chrom].get(key) != metas[first].get(key):
                raise ModelFileError(
                    f"{pairs[chrom].json} and {pairs[first].json} disagree on {key!r} "
                    f"({metas[chrom].get(key)!r} vs {metas[first].get(key)!r}): the files of a "
                    "genome-wide model share one network and one set of cell types and assays. "
                    "Are they from two different models?"
                )
    layouts = {
        c: _chromosome_layout(c, metas[c]["n_genomic_positions"], sizes, pairs[c]) for c in chroms
    }
    layout = layouts[first]
    for chrom in chroms[1:]:
        layout = layout.concat(layouts[chrom])
    # check every file before writing anything: the head agrees, the genome tables fit
    shared, config, version = None, None, "unknown"
    for chrom in chroms:
        pair, meta = pairs[chrom], metas[chrom]
        with KerasFile(pair.h5) as keras:
            cfg = original_config(meta, keras, "segment", pair)
            sub = layouts[chrom]
            rows = (sub.n_positions, sub.n_scale_bins(250), sub.n_scale_bins(5000))
            check_genome_rows(pair, keras, meta, cfg, rows)
            state = head_state(pair, keras, meta, cfg)
            version = keras.keras_version
        if shared is None:
            shared, config = state, cfg
            continue
        for key, value in state.items():
            if not torch.equal(value, shared[key]):
                raise ModelFileError(
                    f"{pair.h5} and {pairs[first].h5} have different {key.split('.')[0]} "
                    "weights; the network and the cell type and assay factors of a genome-wide "
                    "model are the same in every chromosome's file (phase 2 freezes them). The "
                    "files come from different models: download the set again."
                )
    _check_rule(layout)
    for meta in metas.values():
        _warn_stale(pairs[first], meta)
    widths = (config.n_25bp_factors, config.n_250bp_factors, config.n_5kbp_factors)
    factors = GenomeFactorStore.create(store, layout, widths)
    for chrom in chroms:
        if factors.done(chrom) is not None:
            continue
        tic = time.perf_counter()
        sub = layouts[chrom]
        rows = (sub.n_positions, sub.n_scale_bins(250), sub.n_scale_bins(5000))
        with KerasFile(pairs[chrom].h5) as keras:
            tables = [
                keras.weights(f"{t}_embedding", pairs[chrom].json, rows=r)[0]
                for t, r in zip(GENOME_TABLES, rows, strict=True)
            ]
        factors.write(chrom, tables)
        del tables
        factors.mark_done(
            chrom,
            {
                "chrom": chrom,
                "history": [],
                "imported_from": str(pairs[chrom].h5),
                "seconds": time.perf_counter() - tic,
            },
        )
    head = AvocadoHead(len(metas[first]["celltypes"]), len(metas[first]["assays"]), config)
    head.load_state_dict(shared)
    head.to(resolve_device(device)).eval()
    return AvocadoModel(
        None,
        config,
        head=head,
        genome=factors,
        celltypes=metas[first]["celltypes"],
        assays=metas[first]["assays"],
        layout=layout,
        training_info=_training_info(
            [pairs[c] for c in chroms], [metas[c] for c in chroms], version, genome_name
        ),
    )


def _check_rule(layout: GenomeLayout) -> None:
    """The original's flat bins (``i // 10``, ``i // 200`` per file) are the store's segment
    bins when every chromosome is one segment starting at 0 (genome-aligned windows)."""
    for chrom, start in zip(layout.chrom, layout.start, strict=True):
        if start != 0 or layout.chrom.count(chrom) != 1:  # pragma: no cover - by construction
            raise ModelFileError(
                f"{chrom} does not start at 0: its coarse bins would differ from the original's."
            )
