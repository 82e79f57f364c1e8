"""The ``ds.avocado`` accessor: one-line delegations to the package's functions."""

from __future__ import annotations

import xarray as xr

__all__ = ["AvocadoAccessor"]


@xr.register_dataset_accessor("avocado")
class AvocadoAccessor:
    """``ds.avocado.fit()``, ``.fit_ensemble()``, ``.impute(model)``, ``.add_celltypes(model)``,
    ``.add_assays(model)``, ``.fine_tune(model, validation=...)``, ``.mask(pairs)``,
    ``.region(...)``, ``.validate()``, ``.to_zarr(store)``, ``.plot_locus(...)``.

    Holds no state: every method calls the function of the same name with the Dataset.
    """

    def __init__(self, ds: xr.Dataset):
        self._obj = ds

    def fit(self, **kwargs):
        """See :func:`avocado_xr.fit`."""
        from .model import fit

        return fit(self._obj, **kwargs)

    def fit_genome(self, store, **kwargs):
        """See :func:`avocado_xr.fit_genome` (the Dataset must come from open_compendium)."""
        from .model import fit_genome

        return fit_genome(self._obj, store, **kwargs)

    def fit_ensemble(self, **kwargs):
        """See :func:`avocado_xr.fit_ensemble`."""
        from .evaluation import fit_ensemble

        return fit_ensemble(self._obj, **kwargs)

    def impute(self, model, **kwargs) -> xr.Dataset:
        """See :func:`avocado_xr.impute`."""
        from .model import impute

        return impute(self._obj, model, **kwargs)

    def add_celltypes(self, model, **kwargs):
        """See :func:`avocado_xr.add_celltypes`."""
        from .model import add_celltypes

        return add_celltypes(model, self._obj, **kwargs)

    def add_assays(self, model, **kwargs):
        """See :func:`avocado_xr.add_assays`."""
        from .model import add_assays

        return add_assays(model, self._obj, **kwargs)

    def fine_tune(self, model, **kwargs):
        """See :func:`avocado_xr.fine_tune`."""
        from .model import fine_tune

        return fine_tune(model, self._obj, **kwargs)

    def mask(self, pairs) -> xr.Dataset:
        """See :func:`avocado_xr.mask`."""
        from .compendium import mask

        return mask(self._obj, pairs)

    def region(self, chrom_or_region, start=None, end=None) -> xr.Dataset:
        """See :func:`avocado_xr.region`."""
        from .compendium import region

        return region(self._obj, chrom_or_region, start, end)

    def validate(self, **kwargs) -> xr.Dataset:
        """See :func:`avocado_xr.validate`."""
        from .variables import validate

        return validate(self._obj, **kwargs)

    def to_zarr(self, store, **kwargs):
        """See :func:`avocado_xr.save_compendium`."""
        from .store import save_compendium

        return save_compendium(self._obj, store, **kwargs)

    def plot_locus(self, *args, **kwargs):
        """See :func:`avocado_xr.plotting.plot_locus`."""
        from .plotting import plot_locus

        return plot_locus(self._obj, *args, **kwargs)
