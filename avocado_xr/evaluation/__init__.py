"""How good an imputation is: measures, annotations, baselines, cross-validation, reports.

- :mod:`.metrics`: the measures of the Avocado paper, PREDICTD/ChromImpute and the ENCODE
  Imputation Challenge, with their definitions and sources; :mod:`.track` holds the formulas
  (one method per measure of :class:`~.track.Track`).
- :mod:`.scoring`: :func:`evaluate`, every measure of every track, lazily, and
  :func:`metric_table`.
- :mod:`.annotations`: promoters, gene bodies, enhancers as position masks.
- :mod:`.baselines`: the ``average`` and ``mean`` baselines.
- :mod:`.autoencoder`: the denoising-autoencoder baseline.
- :mod:`.crossval`: :func:`cross_validate` over observed tracks, for every method.
- :mod:`.ensemble`: :func:`fit_ensemble`, a stacked ensemble of methods whose weights are
  learned by an inner cross-validation.
- :mod:`.report`: tables and plots comparing methods.
"""

from . import annotations, ensemble, metrics
from .autoencoder import AutoencoderModel, fit_autoencoder, impute_autoencoder, load_autoencoder
from .baselines import average_baseline, impute_average, impute_mean, mean_baseline
from .crossval import METHODS, cross_validate, make_folds, method_options, register_method
from .ensemble import EnsembleModel, fit_ensemble
from .scoring import evaluate, metric_table

__all__ = [
    "METHODS",
    "AutoencoderModel",
    "EnsembleModel",
    "annotations",
    "average_baseline",
    "cross_validate",
    "evaluate",
    "fit_autoencoder",
    "fit_ensemble",
    "impute_autoencoder",
    "impute_average",
    "impute_mean",
    "load_autoencoder",
    "make_folds",
    "mean_baseline",
    "method_options",
    "metric_table",
    "metrics",
    "register_method",
]

# the ensemble is built on the registry, so it joins it here rather than in crossval.py
register_method("ensemble", ensemble.METHOD)
