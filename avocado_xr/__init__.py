"""avocado-xr: Avocado deep tensor factorization of epigenomic compendia on xarray.

The package is laid out by subsystem:

- the data contract at the top: :mod:`.names` (dimension and variable names),
  :mod:`.variables` (:func:`validate`), :mod:`.genome` (the position layout), :mod:`.bins`
  (region strings, segments, coarse bins), :mod:`.coords` (the lazy ``chrom``/``start``
  index), :mod:`.assembly`, :mod:`.bed`, :mod:`.compendium`,
  :mod:`.store` (zarr, checksummed), :mod:`.average` (the average of the other cell types),
  :mod:`.datasets`, :mod:`.testing`,
  :mod:`.plotting`, :mod:`.config`, :mod:`.exceptions` and the ``ds.avocado`` accessor;
- :mod:`.model`: network, optimiser, sampler, :func:`fit`, :func:`impute`, :func:`factors`,
  the model class and its files, :func:`import_avocado` (models of the original Avocado),
  :func:`add_celltypes`, :func:`add_assays` and :func:`fine_tune`;
- :mod:`.bigwig`: manifests, the bigWig reader, :func:`ingest`, :func:`to_bigwig`;
- :mod:`.evaluation`: measures, :func:`evaluate`, annotations, baselines, the autoencoder,
  :func:`cross_validate`, reports;
- :mod:`.cli`: the ``avocado-xr`` command.

Examples
--------
>>> import avocado_xr as ax
>>> ds = ax.testing.simulate_compendium(n_positions=2_000, seed=0)
>>> train = ds.avocado.mask([("C0", "A0")])
>>> model = train.avocado.fit(epochs=1, n_layers=1, n_nodes=16, batch_size=500, device="cpu")
>>> imp = model.impute(train)
>>> imp.imputed.sel(celltype="C0", assay="A0").shape
(2000,)
"""

try:
    from ._version import __version__
except ImportError:  # pragma: no cover - running from a source tree without a build
    __version__ = "0.0.0+unknown"

from . import accessor, datasets, plotting, testing  # noqa: F401
from .bigwig import IngestOptions, ingest, read_bigwig, to_bigwig
from .compendium import make_compendium, mask, observed_pairs, region
from .config import AvocadoConfig
from .evaluation import (
    AutoencoderModel,
    EnsembleModel,
    annotations,
    cross_validate,
    evaluate,
    fit_autoencoder,
    fit_ensemble,
    impute_autoencoder,
    load_autoencoder,
    make_folds,
    metric_table,
    metrics,
)
from .exceptions import AvocadoXrError, AvocadoXrWarning
from .genome import GenomeLayout
from .model import (
    AvocadoModel,
    add_assays,
    add_celltypes,
    factors,
    fine_tune,
    fit,
    fit_genome,
    import_avocado,
    impute,
    load_model,
    save_model,
)
from .store import open_compendium, save_compendium, verify_store
from .variables import validate

__all__ = [
    "AutoencoderModel",
    "EnsembleModel",
    "AvocadoConfig",
    "AvocadoModel",
    "AvocadoXrError",
    "AvocadoXrWarning",
    "GenomeLayout",
    "IngestOptions",
    "__version__",
    "add_assays",
    "add_celltypes",
    "annotations",
    "cross_validate",
    "datasets",
    "evaluate",
    "factors",
    "fine_tune",
    "fit",
    "fit_autoencoder",
    "fit_ensemble",
    "fit_genome",
    "import_avocado",
    "impute",
    "impute_autoencoder",
    "ingest",
    "load_autoencoder",
    "load_model",
    "make_compendium",
    "make_folds",
    "mask",
    "metric_table",
    "metrics",
    "observed_pairs",
    "open_compendium",
    "plotting",
    "read_bigwig",
    "region",
    "save_compendium",
    "save_model",
    "testing",
    "to_bigwig",
    "validate",
    "verify_store",
]
