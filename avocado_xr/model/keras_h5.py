"""The files of a model saved by the original Avocado, read without Keras.

The original (avocado-epigenome) saves a model with ``Avocado.save(name)`` as two files:
``{name}.json`` (the hyperparameters, the cell type and assay names and the training
experiments) and ``{name}.h5``, a whole Keras HDF5 model file (architecture in its
``model_config`` attribute, weights under ``model_weights/<layer>/``, optimizer state). This
module reads both with :mod:`json` and :mod:`h5py` only: no Keras or TensorFlow is imported,
and nothing in the files is executed (no pickle, no marshalled code: a graph with a layer the
original never uses, such as a ``Lambda``, is refused unread). It checks the files against each
other and against the original's network:

- Embeddings ``celltype_embedding``, ``assay_embedding``, ``genome_25bp_embedding``,
  ``genome_250bp_embedding`` and ``genome_5kbp_embedding``, concatenated in that order into
  ReLU Dense layers ``dense_0 .. dense_{n_layers-1}`` and a linear ``y_pred``;
- a Keras Dense kernel is ``(in, out)``, the transpose of a PyTorch ``Linear.weight``;
- the original has no dropout, so the configuration has ``dropout=0`` (and the original's Adam
  learning rate and embedding initialisation, used when cell types or assays are added).

:mod:`avocado_xr.model.original` assembles an :class:`~avocado_xr.AvocadoModel` from them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import AvocadoConfig
from ..exceptions import ConfigError, ModelFileError
from .network import GENOME_TABLES

__all__ = [
    "SHARED_KEYS",
    "KerasFile",
    "ModelFiles",
    "check_genome_rows",
    "head_state",
    "model_files",
    "original_config",
    "read_original_json",
]

#: keys every JSON written by the original's ``Avocado.save`` has
_JSON_KEYS = (
    "celltypes",
    "assays",
    "n_celltype_factors",
    "n_assay_factors",
    "n_genomic_positions",
    "n_25bp_factors",
    "n_250bp_factors",
    "n_5kbp_factors",
    "n_layers",
    "n_nodes",
)
#: the hyperparameters that must agree between the files of a genome-wide model
SHARED_KEYS = tuple(k for k in _JSON_KEYS if k != "n_genomic_positions") + ("batch_size",)
#: layer names of the original's embeddings, in its input order
_EMBEDDINGS = ("celltype_embedding", "assay_embedding") + tuple(
    f"{t}_embedding" for t in GENOME_TABLES
)
#: the Keras layer classes of the original's network (``avocado.model.build_model``)
_LAYER_CLASSES = frozenset({"InputLayer", "Embedding", "Flatten", "Concatenate", "Dense"})
#: the original compiles its model with Keras' default Adam and embedding initialisation
_KERAS_LR, _KERAS_INIT = 0.001, 0.05


# ---------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class ModelFiles:
    """The JSON and weights files of one saved original model."""

    json: Path
    h5: Path

    @property
    def name(self) -> str:
        return self.json.name[: -len(".json")]


def model_files(path_or_prefix) -> ModelFiles:
    """``name``, ``name.json`` or ``name.h5`` -> the pair, both checked to exist."""
    path = Path(path_or_prefix)
    if path.is_dir():
        if (path / "model.json").is_file():
            raise ModelFileError(
                f"{str(path)!r} is an avocado_xr model directory; load it with "
                "avocado_xr.load_model()."
            )
        raise ModelFileError(
            f"{str(path)!r} is a directory: pass the prefix of one model "
            f"({str(path / 'NAME')!r} for NAME.json and NAME.h5), or the directory of a "
            "genome-wide model's per-chromosome files as import_avocado(directory, store=...)."
        )
    prefix = path.with_suffix("") if path.suffix in (".json", ".h5", ".hdf5") else path
    pair = ModelFiles(
        prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".h5")
    )
    has_json, has_h5 = pair.json.is_file(), pair.h5.is_file()
    if not has_json and not has_h5:
        raise ModelFileError(
            f"No original Avocado model at {str(prefix)!r}: expected {pair.json.name} and "
            f"{pair.h5.name} (written by the original's Avocado.save({prefix.name!r}))."
        )
    if has_json and not has_h5:
        read_original_json(pair.json)  # names an avocado_xr model file, or a malformed one
    if not has_h5:
        raise ModelFileError(
            f"{pair.json} has no weights file beside it: {pair.h5} is missing. The original "
            "saves both files (Avocado.save writes NAME.json and NAME.h5); copy or download the "
            ".h5 into the same folder (an interrupted download leaves only one of the two)."
        )
    if not has_json:
        raise ModelFileError(
            f"{pair.h5} has no {pair.json.name} beside it; the JSON holds the cell type and "
            "assay names and the hyperparameters, so the weights cannot be used without it. "
            "Copy or download it into the same folder."
        )
    return pair


def read_original_json(path: str | os.PathLike) -> dict:
    """The parsed ``{name}.json`` of an original Avocado model, checked.

    Parameters
    ----------
    path : str or path
        The JSON file.

    Returns
    -------
    dict
        ``celltypes``, ``assays``, ``experiments`` (list of [celltype, assay]; empty when
        absent) and the hyperparameters, as written by the original's ``Avocado.save``.

    Raises
    ------
    ModelFileError
        The file is missing, not JSON, or not an original Avocado model's JSON.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> _ = path.write_text(json.dumps({"celltypes": ["E003"], "assays": ["H3K4me3"],
    ...     "n_celltype_factors": 32, "n_assay_factors": 256, "n_genomic_positions": 100,
    ...     "n_25bp_factors": 25, "n_250bp_factors": 40, "n_5kbp_factors": 45,
    ...     "n_layers": 2, "n_nodes": 256, "batch_size": 10000}))
    >>> meta = read_original_json(path)
    >>> meta["celltypes"], meta["experiments"]
    (['E003'], [])
    """
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ModelFileError(f"{path} does not exist.") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(
            f"{path} is not valid JSON ({err}); it is truncated or not the JSON of an original "
            "Avocado model: copy or download it again."
        ) from err
    if isinstance(meta, dict) and "format" in meta:
        raise ModelFileError(
            f"{path} is an avocado_xr model file (format {meta['format']!r}), not an original "
            "Avocado model; load its directory with avocado_xr.load_model()."
        )
    missing = [k for k in _JSON_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise ModelFileError(
            f"{path} is not the JSON of an original Avocado model (Avocado.save): it lacks "
            f"{missing}. Pass the .json written beside the model's .h5."
        )
    for key in ("celltypes", "assays"):
        names = meta[key]
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)
        ):
            raise ModelFileError(f"{path}: {key!r} must be a non-empty list of unique names.")
    for key in _JSON_KEYS[2:] + ("batch_size",):
        value = meta.get(key, 40_000 if key == "batch_size" else None)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ModelFileError(f"{path}: {key!r} must be an integer >= 0, got {value!r}.")
        meta[key] = value
    experiments = meta.get("experiments") or []
    if not isinstance(experiments, list) or not all(
        isinstance(e, list | tuple) and len(e) == 2 for e in experiments
    ):
        raise ModelFileError(f"{path}: 'experiments' must be a list of [celltype, assay].")
    meta["experiments"] = [[str(c), str(a)] for c, a in experiments]
    return meta


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class KerasFile:
    """A Keras HDF5 model (or weights) file, read with h5py: layer weights and configs."""

    def __init__(self, path: Path):
        try:
            import h5py
        except ImportError as err:  # h5py is in the `import` and `dev` extras
            raise ImportError(
                "Reading original Avocado models needs h5py: pip install 'avocado-xr[import]'"
            ) from err
        self.path = path
        try:
            self._file = h5py.File(path, "r")
        except OSError as err:
            raise ModelFileError(
                f"{path} cannot be read as an HDF5 file ({err}): it is truncated or damaged "
                "(an interrupted download or copy), or not a Keras model file. Copy or "
                "download it again."
            ) from err
        f = self._file
        if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
            self._group = f["model_weights"]
        elif "layer_names" in f.attrs:  # a weights-only file (Keras save_weights)
            self._group = f
        else:
            kind = "a Keras 3 weights file" if "layers" in f or "vars" in f else "another format"
            self.close()
            raise ModelFileError(
                f"{path} is {kind}, not a Keras HDF5 model as written by the original Avocado's "
                "Avocado.save (no 'model_weights' group with 'layer_names'). Use the .h5 that "
                "was saved together with the model's .json."
            )
        self.layer_names = [_text(n) for n in self._group.attrs["layer_names"]]
        self.model_config = self._json_attr("model_config")
        self.training_config = self._json_attr("training_config")
        self.keras_version = _text(f.attrs.get("keras_version", "unknown"))

    def _json_attr(self, name: str):
        value = self._file.attrs.get(name)
        if value is None:
            return None
        try:
            return json.loads(_text(value))
        except (TypeError, ValueError):
            return None

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _datasets(self, layer: str, json_path: Path):
        if layer not in self.layer_names or layer not in self._group:
            raise ModelFileError(
                f"{self.path} has no layer {layer!r} (its layers: {self.layer_names}), but "
                f"{json_path.name} describes a model with one: the two files are not of the "
                "same model. Use the .json and .h5 that Avocado.save() wrote together."
            )
        group = self._group[layer]
        names = [_text(n) for n in np.atleast_1d(group.attrs.get("weight_names", []))]
        try:
            return [group[n] for n in names]
        except KeyError as err:
            raise ModelFileError(
                f"{self.path}: the weights of layer {layer!r} are missing ({err}); the file is "
                "damaged. Copy or download it again."
            ) from err

    def shapes(self, layer: str, json_path: Path) -> list[tuple[int, ...]]:
        """Shapes of a layer's weights without reading them."""
        return [tuple(d.shape) for d in self._datasets(layer, json_path)]

    def weights(self, layer: str, json_path: Path, rows: int | None = None) -> list[np.ndarray]:
        """A layer's weights as float32 arrays (the first ``rows`` rows of each, if given)."""
        out = []
        for dataset in self._datasets(layer, json_path):
            try:
                values = dataset[()] if rows is None else dataset[:rows]
            except OSError as err:
                raise ModelFileError(
                    f"{self.path}: cannot read the weights of layer {layer!r} ({err}); the file "
                    "is truncated or damaged. Copy or download it again."
                ) from err
            out.append(np.asarray(values, dtype=np.float32))
        return out


# ---------------------------------------------------------------------------------- checks


def _mismatch(pair: ModelFiles, layer: str, found, expected, why: str) -> ModelFileError:
    return ModelFileError(
        f"{pair.h5}: layer {layer!r} has weights of shape {found}, but {pair.json.name} "
        f"describes {expected} ({why}): the two files are not of the same model. Use the "
        ".json and .h5 that Avocado.save() wrote together."
    )


def check_architecture(pair: ModelFiles, keras: KerasFile, meta: dict) -> None:
    """Check the Keras graph (when the file records it) is the original Avocado's."""
    config = keras.model_config
    layers = (config or {}).get("config", {}).get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list):
        return  # a weights-only file, or a graph format we do not know: shapes are checked
    by_name = {layer.get("name"): layer for layer in layers if isinstance(layer, dict)}
    foreign = sorted(
        f"{name} ({layer.get('class_name')})"
        for name, layer in by_name.items()
        if layer.get("class_name") not in _LAYER_CLASSES
    )
    if foreign:
        raise ModelFileError(
            f"{pair.h5} has layers the original Avocado's network never has: {foreign} (its "
            f"layers are {sorted(_LAYER_CLASSES)}). It is not a model saved by the original "
            "avocado-epigenome package; nothing from it was read or run (a Lambda layer "
            "carries Python code, which this importer never executes)."
        )

    def inbound(layer) -> list[str]:
        names: list[str] = []

        def walk(node):
            if isinstance(node, dict):
                history = node.get("keras_history") or node.get("config", {}).get("keras_history")
                if isinstance(history, list) and history and isinstance(history[0], str):
                    names.append(history[0])
                    return
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                if node and isinstance(node[0], str) and node[0] in by_name:
                    names.append(node[0])
                    return
                for value in node:
                    walk(value)

        walk(layer.get("inbound_nodes", []))
        return names

    def source_embedding(name: str) -> str:
        seen = 0
        while name in by_name and by_name[name].get("class_name") != "Embedding" and seen < 10:
            parents = inbound(by_name[name])
            if len(parents) != 1:
                return name
            name, seen = parents[0], seen + 1
        return name

    concat = [name for name, layer in by_name.items() if layer.get("class_name") == "Concatenate"]
    if len(concat) == 1:
        order = tuple(source_embedding(n) for n in inbound(by_name[concat[0]]))
        if order != _EMBEDDINGS:
            raise ModelFileError(
                f"{pair.h5} concatenates {list(order)}, not the original Avocado's inputs "
                f"{list(_EMBEDDINGS)} in that order; it is not a model saved by the original "
                "avocado-epigenome package, which this importer reads."
            )
    dense = [f"dense_{i}" for i in range(meta["n_layers"])] + ["y_pred"]
    for name in dense:
        layer = by_name.get(name)
        if layer is None:
            continue  # reported with the shapes
        activation = layer.get("config", {}).get("activation", "linear")
        expected = "linear" if name == "y_pred" else "relu"
        if activation != expected:
            raise ModelFileError(
                f"{pair.h5}: layer {name!r} has activation {activation!r}, the original "
                f"Avocado's has {expected!r}; this importer reads models of the original "
                "avocado-epigenome package only."
            )


def original_config(
    meta: dict, keras: KerasFile, coarse_rule: str, pair: ModelFiles
) -> AvocadoConfig:
    """The hyperparameters of an original model as an :class:`AvocadoConfig`."""
    lr = _KERAS_LR
    optimizer = (keras.training_config or {}).get("optimizer_config", {})
    rate = optimizer.get("config", {}).get("learning_rate") if isinstance(optimizer, dict) else None
    if isinstance(rate, int | float) and rate > 0:
        lr = float(rate)
    init = _KERAS_INIT
    for layer in ((keras.model_config or {}).get("config") or {}).get("layers", []) or []:
        if isinstance(layer, dict) and layer.get("name") == "celltype_embedding":
            bound = (
                layer.get("config", {}).get("embeddings_initializer", {}).get("config", {})
            ).get("maxval")
            if isinstance(bound, int | float) and bound > 0:
                init = float(bound)
    try:
        return AvocadoConfig(
            n_celltype_factors=meta["n_celltype_factors"],
            n_assay_factors=meta["n_assay_factors"],
            n_25bp_factors=meta["n_25bp_factors"],
            n_250bp_factors=meta["n_250bp_factors"],
            n_5kbp_factors=meta["n_5kbp_factors"],
            n_layers=meta["n_layers"],
            n_nodes=meta["n_nodes"],
            dropout=0.0,
            lr=lr,
            batch_size=meta.get("batch_size", 40_000),
            embedding_init=init,
            coarse_rule=coarse_rule,
        )
    except ConfigError as err:
        raise ModelFileError(f"{pair.json}: {err}") from err


def head_state(pair: ModelFiles, keras: KerasFile, meta: dict, config: AvocadoConfig) -> dict:
    """The cell type and assay factors and the network, as an AvocadoHead state dict."""
    check_architecture(pair, keras, meta)
    state = {}
    for layer, key, rows, width, what in (
        ("celltype_embedding", "celltype.weight", len(meta["celltypes"]),
         config.n_celltype_factors, "cell types x n_celltype_factors"),
        ("assay_embedding", "assay.weight", len(meta["assays"]),
         config.n_assay_factors, "assays x n_assay_factors"),
    ):  # fmt: skip
        shapes = keras.shapes(layer, pair.json)
        if shapes != [(rows, width)]:
            raise _mismatch(pair, layer, shapes, [(rows, width)], what)
        state[key] = torch.from_numpy(keras.weights(layer, pair.json)[0])
    width = config.n_celltype_factors + config.n_assay_factors + config.n_genome_factors
    names = [f"dense_{i}" for i in range(config.n_layers)] + ["y_pred"]
    for k, layer in enumerate(names):
        out = 1 if layer == "y_pred" else config.n_nodes
        shapes = keras.shapes(layer, pair.json)
        expected = [(width, out), (out,)]
        if sorted(shapes, key=len, reverse=True) != expected:
            why = "inputs x nodes: cell type + assay + genome factors, then n_nodes"
            raise _mismatch(pair, layer, shapes, expected, why)
        values = keras.weights(layer, pair.json)
        kernel = next(v for v in values if v.ndim == 2)
        bias = next(v for v in values if v.ndim == 1)
        prefix = "output" if layer == "y_pred" else f"hidden.{k}"
        state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.T))
        state[f"{prefix}.bias"] = torch.from_numpy(bias)
        width = out
    extra = f"dense_{config.n_layers}"
    if extra in keras.layer_names:
        raise ModelFileError(
            f"{pair.h5} has a layer {extra!r}, but {pair.json.name} says n_layers="
            f"{config.n_layers}: the two files are not of the same model. Use the .json and "
            ".h5 that Avocado.save() wrote together."
        )
    return state


def check_genome_rows(pair: ModelFiles, keras: KerasFile, meta: dict, config, rows) -> None:
    """Check the genome tables' shapes: the 25-bp table has one row per position, the coarse
    ones at least the rows the positions use (the original keeps one spare row)."""
    widths = (config.n_25bp_factors, config.n_250bp_factors, config.n_5kbp_factors)
    n = meta["n_genomic_positions"]
    for k, (table, width, needed) in enumerate(zip(GENOME_TABLES, widths, rows, strict=True)):
        layer = f"{table}_embedding"
        shapes = keras.shapes(layer, pair.json)
        ok = len(shapes) == 1 and shapes[0][1:] == (width,)
        ok = ok and (shapes[0][0] == n if k == 0 else shapes[0][0] >= needed)
        if not ok:
            expected = [(n if k == 0 else (n // (10 if k == 1 else 200) + 1), width)]
            why = f"n_genomic_positions={n:,} and {width} factors"
            raise _mismatch(pair, layer, shapes, expected, why)
