"""The Avocado model: network, optimiser, sampler, training, imputation, factors, persistence.

- :mod:`.network`: the multi-scale embeddings and the ReLU network (PyTorch).
- :mod:`.optim`: row-wise lazy Adam for the genome tables.
- :mod:`.sampler`: the paper's epoch, drawn block by block from a (zarr) compendium.
- :mod:`.train`: :func:`fit`.
- :mod:`.impute`: :func:`impute`, lazy and blockwise.
- :mod:`.factors`: :func:`factors`, the learned embeddings as a labelled Dataset.
- :mod:`.persistence`: the model-directory format (JSON + tensors, checksummed).
- :mod:`.avocado`: :class:`AvocadoModel`, :func:`save_model`, :func:`load_model`.
- :mod:`.genome_store`: genome factors of genome-wide models on zarr.
- :mod:`.genome_wide`: :func:`fit_genome`, both phases of whole-genome training on Dask.
- :mod:`.checkpoint`: per-epoch training checkpoints.
- :mod:`.keras_h5`, :mod:`.original`: :func:`import_avocado`, models saved by the original
  Avocado (Keras files read with h5py).
- :mod:`.transfer_loop`, :mod:`.transfer`, :mod:`.fine_tune`: :func:`add_celltypes`,
  :func:`add_assays` (new factors, the rest frozen) and :func:`fine_tune`.
"""

from .avocado import AvocadoModel, load_model, save_model
from .factors import factors
from .fine_tune import fine_tune
from .genome_wide import fit_genome
from .impute import impute
from .original import import_avocado
from .train import fit
from .transfer import add_assays, add_celltypes

__all__ = [
    "AvocadoModel",
    "add_assays",
    "add_celltypes",
    "factors",
    "fine_tune",
    "fit",
    "fit_genome",
    "impute",
    "import_avocado",
    "load_model",
    "save_model",
]
