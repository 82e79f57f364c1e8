"""avocado-xr: Avocado deep tensor factorization of epigenomic compendia on xarray.

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

from . import accessor, annotations, datasets, metrics, plotting, testing  # noqa: F401
from .autoencoder import AutoencoderModel, fit_autoencoder, impute_autoencoder, load_autoencoder
from .compendium import (
    make_compendium,
    mask,
    observed_pairs,
    open_compendium,
    region,
    save_compendium,
)
from .config import AvocadoConfig
from .crossval import cross_validate, make_folds
from .exceptions import AvocadoXrError
from .export import to_bigwig
from .factors import factors
from .impute import impute
from .ingest import ingest
from .metrics import evaluate, metric_table
from .model import AvocadoModel
from .persistence import load_model, save_model
from .train import AvocadoXrWarning, fit
from .variables import validate

__all__ = [
    "AutoencoderModel",
    "AvocadoConfig",
    "AvocadoModel",
    "AvocadoXrError",
    "AvocadoXrWarning",
    "annotations",
    "cross_validate",
    "__version__",
    "datasets",
    "evaluate",
    "factors",
    "fit_autoencoder",
    "fit",
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
    "region",
    "save_compendium",
    "save_model",
    "testing",
    "to_bigwig",
    "validate",
]
