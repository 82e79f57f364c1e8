"""Saving and loading trained models: JSON configuration plus weights, no code execution."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from .config import AvocadoConfig
from .exceptions import ModelFileError
from .genome import GenomeLayout
from .model import AvocadoModel
from .network import AvocadoNet

__all__ = ["load_model", "load_weights", "read_model_meta", "save_model", "write_model_dir"]

FORMAT = "avocado_xr-model-1"
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"


def save_model(model: AvocadoModel, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write ``model.json`` (configuration, labels, genome layout, history) and ``weights.pt``.

    The weights file holds only tensors (a state dict) and is read back with
    ``torch.load(weights_only=True)``, so loading a model never executes code.
    """
    from . import __version__

    path = Path(path)
    meta = {
        "format": FORMAT,
        "avocado_xr_version": __version__,
        "config": model.config.to_dict(),
        "celltypes": model.celltypes,
        "assays": model.assays,
        "layout": model.layout.to_dict(),
        "history": model.history,
        "training": model.training,
    }
    write_model_dir(path, meta, model.net, CONFIG_FILE, WEIGHTS_FILE, overwrite=overwrite)


def write_model_dir(
    path: Path,
    meta: dict,
    module: torch.nn.Module,
    config_file: str,
    weights_file: str,
    *,
    overwrite: bool = False,
) -> None:
    """Write ``meta`` as JSON and ``module``'s state dict (tensors only) into ``path``."""
    if path.exists() and not path.is_dir():
        raise ModelFileError(f"{str(path)!r} exists and is not a directory.")
    if (path / config_file).exists() and not overwrite:
        raise ModelFileError(f"{str(path)!r} already holds a model; pass overwrite=True.")
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    torch.save(state, path / weights_file)
    (path / config_file).write_text(json.dumps(meta, indent=1))


def read_model_meta(path: Path, config_file: str, weights_file: str, fmt: str, kind: str) -> dict:
    """Check a saved model directory and return its parsed JSON configuration.

    Raises :class:`ModelFileError` naming what is missing or malformed.
    """
    if not path.is_dir():
        raise ModelFileError(f"No model directory at {str(path)!r}.")
    for name in (config_file, weights_file):
        if not (path / name).is_file():
            raise ModelFileError(
                f"{str(path)!r} has no {name}; it is not a saved avocado_xr {kind}."
            )
    try:
        meta = json.loads((path / config_file).read_text())
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path / config_file} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ModelFileError(f"{path / config_file} has format {found!r}, expected {fmt!r}.")
    return meta


def load_weights(module: torch.nn.Module, path: Path, config_file: str) -> None:
    """Load a state dict of tensors into ``module`` with ``weights_only=True`` (no code runs)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except (RuntimeError, OSError, EOFError, KeyError, pickle.UnpicklingError) as err:
        raise ModelFileError(f"{path} does not hold weights matching {config_file}: {err}") from err


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> AvocadoModel:
    """Load a model written by :func:`save_model` (weights read with ``weights_only=True``).

    Examples
    --------
    >>> import tempfile, avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> model = ax.fit(ds, epochs=1, n_layers=1, n_nodes=8, batch_size=500, device="cpu")
    >>> directory = tempfile.mkdtemp()
    >>> model.save(directory)
    >>> ax.load_model(directory).celltypes == model.celltypes
    True
    """
    path = Path(path)
    meta = read_model_meta(path, CONFIG_FILE, WEIGHTS_FILE, FORMAT, "model")
    try:
        config = AvocadoConfig.from_dict(meta["config"])
        layout = GenomeLayout.from_dict(meta["layout"])
        celltypes, assays = list(meta["celltypes"]), list(meta["assays"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path / CONFIG_FILE} is incomplete or malformed: {err}") from err
    net = AvocadoNet(
        len(celltypes),
        len(assays),
        layout.scale_index(250)[0],
        layout.scale_index(5000)[0],
        config,
    )
    load_weights(net, path / WEIGHTS_FILE, CONFIG_FILE)
    net.to(device).eval()
    return AvocadoModel(
        net,
        config,
        celltypes=celltypes,
        assays=assays,
        layout=layout,
        history=list(meta.get("history", [])),
        training=dict(meta.get("training", {})),
    )
