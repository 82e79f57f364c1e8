"""Time the original Avocado (avocado-epigenome 0.4.0, Keras/TensorFlow) on the pilot data.

Run with the interpreter of a separate environment that has the original installed
(``pip install avocado-epigenome==0.4.0 tensorflow-cpu``), e.g. through
``AVOCADO_ORIGINAL_PYTHON=/path/to/venv/bin/python``; ``bench_train.py`` does this when the
variable is set. Prints one JSON line: training samples/s and full-track prediction
positions/s for the demo- and paper-size networks (fp32; the original has no bf16 path).

Usage: ``python _original.py PILOT_DIR [demo|paper]``
"""

import json
import sys
import time

import numpy as np


def _keras_compat() -> None:
    """Keras 3 dropped ``Model.fit_generator``, which the original calls with Keras 2's
    ``workers=``/``pickle_safe=``; map it onto ``fit`` (same computation, one process)."""
    import keras

    if not hasattr(keras.Model, "fit_generator"):

        def fit_generator(self, generator, steps_per_epoch, epochs, workers=1,
                          pickle_safe=True, **kwargs):  # fmt: skip
            return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs, **kwargs)

        keras.Model.fit_generator = fit_generator


def main(pilot_dir: str, size: str) -> None:
    _keras_compat()
    from avocado import Avocado

    celltypes = ["E003", "E017", "E065", "E116", "E117"]
    assays = ["H3K4me3", "H3K27me3", "H3K36me3", "H3K9me3", "H3K4me1"]
    data = {
        (c, a): np.load(f"{pilot_dir}/{c}.{a}.pilot.arcsinh.npz")["arr_0"]
        for c in celltypes
        for a in assays
    }
    n = len(next(iter(data.values())))
    train = {k: v for k, v in data.items() if k != ("E065", "H3K4me3")}
    batch = 10_000
    if size == "demo":
        net = dict(n_layers=1, n_nodes=128, n_assay_factors=24, n_celltype_factors=32,
                   n_25bp_factors=10, n_250bp_factors=20, n_5kbp_factors=30)  # fmt: skip
        batches = n // batch
    else:
        net = {}
        batches = 12
    model = Avocado(celltypes, assays, n_genomic_positions=n, batch_size=batch, **net)
    model.fit(train, n_epochs=1, epoch_size=3, verbose=0)  # warm-up: graph building
    tic = time.perf_counter()
    model.fit(train, n_epochs=1, epoch_size=batches, verbose=0)
    train_rate = batches * batch / (time.perf_counter() - tic)
    positions = n if size == "demo" else 131_072
    model.predict("E065", "H3K4me3", end=min(positions, 10_000))  # warm-up
    tic = time.perf_counter()
    model.predict("E065", "H3K4me3", end=positions)
    predict_rate = positions / (time.perf_counter() - tic)
    print(json.dumps({"size": size, "train samples/s": train_rate,
                      "predict positions/s": predict_rate}))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "demo")
