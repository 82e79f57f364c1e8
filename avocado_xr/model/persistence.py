"""The model-directory format shared by every model: JSON metadata plus a weights file.

A model directory holds ``<config_file>`` (JSON: a ``format`` tag, the configuration, labels,
history, and the SHA-256 of each data file) and ``<weights_file>`` (a PyTorch state dict of
tensors only). Weights are read back with ``torch.load(weights_only=True)``, so loading a
model never executes code from the files, and their digest is checked first, so a corrupted
or substituted weights file is refused with an error naming it. :class:`AvocadoModel` and the
autoencoder both use these helpers.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from .._files import file_digest
from ..exceptions import ModelFileError

__all__ = ["load_weights", "read_model_meta", "write_model_dir"]


def write_model_dir(
    path: str | os.PathLike,
    meta: dict,
    module: torch.nn.Module,
    config_file: str,
    weights_file: str,
    *,
    overwrite: bool = False,
) -> None:
    """Write ``meta`` as JSON and ``module``'s state dict (tensors only) into ``path``.

    Both files are written to temporary names first and renamed into place, weights first,
    so an interrupted save never leaves a directory whose JSON describes other weights.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ModelFileError(f"{str(path)!r} exists and is not a directory.")
    if (path / config_file).exists() and not overwrite:
        raise ModelFileError(f"{str(path)!r} already holds a model; pass overwrite=True.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
        tmp = path / (weights_file + ".tmp")
        torch.save(state, tmp)
        meta = {**meta, "sha256": {weights_file: file_digest(tmp)}}
        os.replace(tmp, path / weights_file)
        tmp = path / (config_file + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, path / config_file)
    except PermissionError as err:
        raise ModelFileError(f"Cannot write the model to {str(path)!r}: {err}.") from err


def read_model_meta(path: Path, config_file: str, weights_file: str, fmt: str, kind: str) -> dict:
    """Check a saved model directory and return its parsed JSON configuration.

    Raises :class:`ModelFileError` naming what is missing or malformed.
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelFileError(f"No model directory at {str(path)!r}.")
    for name in (config_file, weights_file):
        if not (path / name).is_file():
            raise ModelFileError(
                f"{str(path)!r} has no {name}; it is not a saved avocado_xr {kind}."
            )
    try:
        meta = json.loads((path / config_file).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{path / config_file} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ModelFileError(f"{path / config_file} has format {found!r}, expected {fmt!r}.")
    return meta


def load_weights(module: torch.nn.Module, path: Path, meta: dict, config_file: str) -> None:
    """Check ``path`` against the digest in ``meta`` and load its tensors into ``module``.

    ``torch.load(weights_only=True)`` refuses anything but tensors and plain containers, so
    no code from the file runs.
    """
    path = Path(path)
    expected = (meta.get("sha256") or {}).get(path.name)
    if expected is not None and file_digest(path) != expected:
        raise ModelFileError(
            f"{path} does not match the SHA-256 recorded in {config_file}: the file is corrupt "
            "or was replaced. Restore it from a copy, or save the model again."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except (RuntimeError, OSError, EOFError, KeyError, pickle.UnpicklingError) as err:
        raise ModelFileError(f"{path} does not hold weights matching {config_file}: {err}") from err
