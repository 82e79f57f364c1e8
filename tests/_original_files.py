"""Files in the format of the original Avocado's ``Avocado.save`` (Keras 2 HDF5 + JSON),
written with h5py, and the original's forward pass in NumPy: for the import and transfer
tests."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

EMBEDDINGS = ("celltype", "assay", "genome_25bp", "genome_250bp", "genome_5kbp")


def original_weights(
    celltypes, assays, n_positions, *, n_layers=2, n_nodes=16, widths=(4, 6, 3, 4, 5), seed=0,
    head=None,
):  # fmt: skip
    """Random weights of an original Avocado model, by Keras layer name (kernels (in, out))."""
    rng = np.random.default_rng(seed)
    rows = (len(celltypes), len(assays), n_positions, n_positions // 10 + 1, n_positions // 200 + 1)
    weights = {
        f"{name}_embedding": [rng.uniform(-0.5, 0.5, (n, w)).astype(np.float32)]
        for name, n, w in zip(EMBEDDINGS, rows, widths, strict=True)
    }
    width = sum(widths)
    for i in range(n_layers + 1):
        name, out = (f"dense_{i}", n_nodes) if i < n_layers else ("y_pred", 1)
        bound = np.sqrt(6 / (width + out))
        weights[name] = [
            rng.uniform(-bound, bound, (width, out)).astype(np.float32),
            rng.uniform(-0.1, 0.1, out).astype(np.float32),
        ]
        width = out
    if head is not None:  # share the network and the cell type / assay factors
        weights.update({k: v for k, v in head.items() if not k.startswith("genome")})
    return weights


def write_original(prefix, celltypes, assays, weights, *, experiments=None, batch_size=1_000):
    """Write ``prefix.json`` and ``prefix.h5`` as the original's ``Avocado.save`` does (Keras
    2 HDF5 model file: ``model_weights/<layer>/<layer>/<weight>:0``, ``model_config``)."""
    prefix = Path(prefix)
    n_layers = sum(1 for k in weights if k.startswith("dense_"))
    widths = [weights[f"{n}_embedding"][0].shape[1] for n in EMBEDDINGS]
    if experiments is None:
        experiments = [(c, a) for c in celltypes for a in assays]
    meta = {
        "celltypes": list(celltypes),
        "assays": list(assays),
        "experiments": [list(e) for e in experiments],
        "n_celltype_factors": widths[0],
        "n_assay_factors": widths[1],
        "n_genomic_positions": int(weights["genome_25bp_embedding"][0].shape[0]),
        "n_25bp_factors": widths[2],
        "n_250bp_factors": widths[3],
        "n_5kbp_factors": widths[4],
        "n_layers": n_layers,
        "n_nodes": int(weights["dense_0"][0].shape[1]) if n_layers else 0,
        "batch_size": batch_size,
    }  # fmt: skip
    prefix.with_name(prefix.name + ".json").write_text(json.dumps(meta, indent=4))
    layers = [{"class_name": "InputLayer", "name": f"{n}_input", "config": {"name": f"{n}_input"},
               "inbound_nodes": []} for n in EMBEDDINGS]  # fmt: skip
    layers += [
        {"class_name": "Embedding", "name": f"{n}_embedding",
         "config": {"embeddings_initializer": {"config": {"minval": -0.05, "maxval": 0.05}}},
         "inbound_nodes": [[[f"{n}_input", 0, 0, {}]]]}
        for n in EMBEDDINGS
    ]  # fmt: skip
    flats = ["flatten"] + [f"flatten_{k}" for k in range(1, 5)]
    layers += [
        {"class_name": "Flatten", "name": f, "config": {},
         "inbound_nodes": [[[f"{n}_embedding", 0, 0, {}]]]}
        for f, n in zip(flats, EMBEDDINGS, strict=True)
    ]  # fmt: skip
    layers.append({"class_name": "Concatenate", "name": "concatenate", "config": {"axis": -1},
                   "inbound_nodes": [[[f, 0, 0, {}] for f in flats]]})  # fmt: skip
    previous = "concatenate"
    dense = [f"dense_{i}" for i in range(n_layers)] + ["y_pred"]
    for name in dense:
        activation = "linear" if name == "y_pred" else "relu"
        layers.append({"class_name": "Dense", "name": name, "config": {"activation": activation},
                       "inbound_nodes": [[[previous, 0, 0, {}]]]})  # fmt: skip
        previous = name
    config = {"class_name": "Functional", "config": {"name": "model", "layers": layers}}
    training = {"optimizer_config": {"class_name": "Adam", "config": {"learning_rate": 0.001}}}
    names = [f"{n}_input" for n in EMBEDDINGS] + [f"{n}_embedding" for n in EMBEDDINGS]
    names += flats + ["concatenate"] + dense
    with h5py.File(prefix.with_name(prefix.name + ".h5"), "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["training_config"] = json.dumps(training)
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = np.array([n.encode() for n in names])  # Keras 2: bytes
        for name in names:
            layer = group.create_group(name)
            values = weights.get(name, [])
            kinds = ["embeddings"] if name.endswith("_embedding") else ["kernel", "bias"]
            wnames = [f"{name}/{k}:0" for k in kinds][: len(values)]
            layer.attrs["weight_names"] = (
                np.array(wnames, dtype=h5py.string_dtype()) if wnames else np.zeros(0)
            )
            for wname, value in zip(wnames, values, strict=True):
                layer.create_dataset(wname, data=value)
        f.create_group("optimizer_weights")
    return prefix


def original_predict(weights, c: int, a: int, positions) -> np.ndarray:
    """The original's prediction, in NumPy float64: inputs concatenated in the order cell
    type, assay, 25 bp, 250 bp (``i // 10``), 5 kbp (``i // 200``); ReLU Dense layers."""
    i = np.asarray(positions)
    parts = [
        np.repeat(weights["celltype_embedding"][0][c][None], len(i), 0),
        np.repeat(weights["assay_embedding"][0][a][None], len(i), 0),
        weights["genome_25bp_embedding"][0][i],
        weights["genome_250bp_embedding"][0][i // 10],
        weights["genome_5kbp_embedding"][0][i // 200],
    ]
    x = np.concatenate(parts, axis=1).astype(np.float64)
    dense = sorted(k for k in weights if k.startswith("dense_"))
    for name in dense:
        kernel, bias = weights[name]
        x = np.maximum(x @ kernel + bias, 0)
    kernel, bias = weights["y_pred"]
    return (x @ kernel + bias)[:, 0]
