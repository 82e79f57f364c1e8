"""Saving and loading a fitted stacked ensemble (:class:`~.ensemble.EnsembleModel`).

A saved ensemble is a directory:

- ``ensemble.json``: a ``format`` tag, the package version, the labels (cell types, assays,
  inputs), the peak calibration, the fit's ``info``, where each base model lives, and the
  SHA-256 of ``arrays.npz``;
- ``arrays.npz``: numbers only (the combiner's ``coef``, ``intercept`` and ``tracks``, the
  quantile tables, the inner folds), read with ``allow_pickle=False``;
- ``models/<i>/``: each learned base model in its own format (Avocado models and the
  autoencoder); a baseline is stored by its name.

Loading executes nothing from the files: JSON, plain arrays and each model's own safe loader.
:meth:`EnsembleModel.save <.ensemble.EnsembleModel.save>` and
:meth:`EnsembleModel.load <.ensemble.EnsembleModel.load>` call these functions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

from .._files import file_digest
from ..exceptions import ModelFileError
from ..model.avocado import AvocadoModel
from ..model.persistence import read_model_meta
from ..variables import DIM_ASSAY, DIM_CELLTYPE
from .autoencoder import AutoencoderModel
from .baselines import BaselineModel
from .quantiles import DIM_QUANTILE, QUANTILES
from .stacking import DIM_INPUT

__all__ = ["CONFIG_FILE", "FORMAT", "read_ensemble", "write_ensemble"]

FORMAT = "avocado-xr-ensemble/1"
CONFIG_FILE = "ensemble.json"
ARRAYS_FILE = "arrays.npz"
_LEARNED = {"avocado": AvocadoModel, "autoencoder": AutoencoderModel}


def write_ensemble(model, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write ``model`` (an :class:`~.ensemble.EnsembleModel`) into the directory ``path``.

    ``ensemble.json`` is written last, through a temporary name, so an interrupted save
    leaves no directory that loads.
    """
    from .. import __version__

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ModelFileError(f"{str(path)!r} exists and is not a directory.")
    if (path / CONFIG_FILE).exists() and not overwrite:
        raise ModelFileError(f"{str(path)!r} already holds an ensemble; pass overwrite=True.")
    weights = model.weights
    arrays = {
        "coef": weights["coef"].values,
        "intercept": weights["intercept"].values,
        "tracks": weights["tracks"].values,
    }
    if model.quantiles is not None:
        arrays["source"] = model.quantiles["source"].values
        arrays["reference"] = model.quantiles["reference"].values
    if model.inner_folds is not None:
        arrays["inner_folds"] = model.inner_folds.values
    try:
        path.mkdir(parents=True, exist_ok=True)
        bases = {}
        for i, (name, base) in enumerate(model.models.items()):
            kind = next((k for k, cls in _LEARNED.items() if isinstance(base, cls)), None)
            if isinstance(base, BaselineModel):
                bases[name] = {"kind": "baseline", "method": base.method}
            elif kind is not None:
                base.save(path / "models" / str(i), overwrite=overwrite)
                bases[name] = {"kind": kind, "directory": f"models/{i}"}
            else:
                raise ModelFileError(f"Cannot save base model {name!r} of type {type(base)}.")
        np.savez(path / ARRAYS_FILE, **arrays)
        meta = {
            "format": FORMAT,
            "avocado_xr_version": __version__,
            "celltypes": [str(c) for c in weights.get_index(DIM_CELLTYPE)],
            "assays": [str(a) for a in weights.get_index(DIM_ASSAY)],
            "inputs": model.inputs,
            "quantile_inputs": (
                None
                if model.quantiles is None
                else [str(n) for n in model.quantiles.get_index(DIM_INPUT)]
            ),
            "scope": weights.attrs.get("scope"),
            "shrinkage": weights.attrs.get("shrinkage"),
            "calibration": model.calibration,
            "info": model.info,
            "models": bases,
            "sha256": {ARRAYS_FILE: file_digest(path / ARRAYS_FILE)},
        }
        tmp = path / (CONFIG_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, path / CONFIG_FILE)
    except PermissionError as err:
        raise ModelFileError(f"Cannot write the ensemble to {str(path)!r}: {err}.") from err


def read_ensemble(path: str | os.PathLike, *, device: str = "cpu") -> dict:
    """The keyword arguments of :class:`~.ensemble.EnsembleModel` saved in ``path``.

    Raises
    ------
    ModelFileError
        The directory or a file is missing, malformed, or ``arrays.npz`` does not match its
        recorded SHA-256.
    """
    path = Path(path)
    meta = read_model_meta(path, CONFIG_FILE, ARRAYS_FILE, FORMAT, "ensemble")
    arrays_file = path / ARRAYS_FILE
    expected = (meta.get("sha256") or {}).get(ARRAYS_FILE)
    if not arrays_file.is_file() or file_digest(arrays_file) != expected:
        raise ModelFileError(f"{arrays_file} is missing or does not match its SHA-256.")
    try:
        with np.load(arrays_file, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        models = {name: _read_base(path, entry, device) for name, entry in meta["models"].items()}
        labels = {
            DIM_CELLTYPE: np.asarray(meta["celltypes"], dtype=object),
            DIM_ASSAY: np.asarray(meta["assays"], dtype=object),
        }
        dims = (DIM_CELLTYPE, DIM_ASSAY)
        weights = xr.Dataset(
            {
                "coef": ((*dims, DIM_INPUT), arrays["coef"]),
                "intercept": (dims, arrays["intercept"]),
                "tracks": (dims, arrays["tracks"]),
            },
            coords={**labels, DIM_INPUT: np.asarray(meta["inputs"], dtype=object)},
            attrs={"scope": meta["scope"], "shrinkage": meta["shrinkage"]},
        )
        quantiles = None
        if meta["quantile_inputs"] is not None:
            quantiles = xr.Dataset(
                {
                    "source": ((*dims, DIM_INPUT, DIM_QUANTILE), arrays["source"]),
                    "reference": ((*dims, DIM_QUANTILE), arrays["reference"]),
                },
                coords={
                    **labels,
                    DIM_INPUT: np.asarray(meta["quantile_inputs"], dtype=object),
                    DIM_QUANTILE: QUANTILES,
                },
            )
        folds = None
        if "inner_folds" in arrays:
            folds = xr.DataArray(arrays["inner_folds"], dims=dims, coords=labels)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path / CONFIG_FILE} is incomplete or malformed: {err!r}") from err
    return {
        "models": models,
        "weights": weights,
        "calibration": meta["calibration"],
        "quantiles": quantiles,
        "inner_folds": folds,
        "info": meta["info"],
    }


def _read_base(path: Path, entry: dict, device: str):
    if entry["kind"] == "baseline":
        return BaselineModel(entry["method"])
    cls = _LEARNED[entry["kind"]]
    directory = (path / entry["directory"]).resolve()
    if not directory.is_relative_to(path.resolve()):  # a manifest must not point elsewhere
        raise ModelFileError(f"Base model directory {entry['directory']!r} is outside {path}.")
    return cls.load(directory, device=device)
