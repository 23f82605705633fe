"""Gamma of many 2D image pairs at once: one GPU launch per geometry (``backend="cuda"``), a loop otherwise.

EPID verification compares many images of one size (every beam, every fraction). On the GPU a single image
of 1024² points is a small launch; stacking the images of one geometry along a third axis and searching each
slice on its own (no search across slices, each image with its own normalisation and cut-off) fills the
device in one launch (:mod:`intrepid.analysis._gamma_cuda`). Results equal :func:`~intrepid.analysis.gamma`
of each pair on its own (same values to rounding, same pass / fail decisions).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from intrepid.analysis._gamma import (
    GammaBackend,
    GammaResult,
    GammaSettings,
    Normalisation,
    _as_3d,
    _as_backend,
    _check_budget,
    _check_finite,
    _index_maps,
    _result,
    _settings,
    _snap_to_nodes,
    gamma,
)
from intrepid.errors import FrameOfReferenceError, ParameterError
from intrepid.geometry import Volume

__all__ = ["gamma_batch"]


def gamma_batch(
    references: Sequence[Volume],
    evaluated: Sequence[Volume],
    *,
    dd_percent: float,
    dta_mm: float,
    cutoff_percent: float = 10.0,
    normalisation: Normalisation = Normalisation.GLOBAL,
    normalisation_dose: float | None = None,
    max_gamma: float = 2.0,
    backend: GammaBackend | str = GammaBackend.NUMBA,
    ignore_frame_of_reference: bool = False,
) -> list[GammaResult]:
    """Exact gamma of each ``evaluated[n]`` against ``references[n]`` (2D images), in one call.

    Parameters
    ----------
    references, evaluated : sequence of Volume
        Pairs of 2D images (Gy), as for :func:`~intrepid.analysis.gamma`; pairs may differ in size.
    dd_percent, dta_mm, cutoff_percent, normalisation, normalisation_dose, max_gamma
        As in :func:`~intrepid.analysis.gamma`; the normalisation dose (reference maximum unless given)
        and the cut-off are those of each pair.
    ignore_frame_of_reference : bool
        As in :func:`~intrepid.analysis.gamma`.
    backend : GammaBackend or str
        ``"cuda"``: the pairs of one geometry (same shapes, spacings, relative origin) run in one GPU launch;
        ``"numba"`` / ``"torch"``: one :func:`~intrepid.analysis.gamma` call per pair.

    Returns
    -------
    list of GammaResult
        One per pair, in order. With ``"cuda"`` each ``compute_seconds`` is its share of its launch.

    Raises
    ------
    ParameterError
        Lists of different lengths, a 3D volume, or the errors of :func:`~intrepid.analysis.gamma`.

    Examples
    --------
    >>> from intrepid.geometry import Grid, Volume
    >>> g = Grid((20, 20), origin_mm=(0, 0, 0), spacing_mm=(1, 1, 1))
    >>> ref = Volume(np.ones((20, 20)), g)
    >>> out = gamma_batch([ref, ref], [ref, ref.with_array(np.full((20, 20), 1.015))], dd_percent=3, dta_mm=2)
    >>> [round(r.mean_gamma, 6) for r in out]
    [0.0, 0.5]
    """
    if len(references) != len(evaluated):
        raise ParameterError(
            f"gamma_batch needs as many evaluated images as references, got {len(evaluated)} and "
            f"{len(references)}"
        )
    chosen = _as_backend(backend)
    for n, (ref, ev) in enumerate(zip(references, evaluated, strict=True)):
        if not isinstance(ref, Volume) or not isinstance(ev, Volume) or ref.ndim != 2 or ev.ndim != 2:
            raise ParameterError(f"gamma_batch pair {n}: reference and evaluated must be 2D Volume images")
    if chosen is not GammaBackend.CUDA:
        return [
            gamma(
                r, e, dd_percent=dd_percent, dta_mm=dta_mm, cutoff_percent=cutoff_percent,
                normalisation=normalisation, normalisation_dose=normalisation_dose, max_gamma=max_gamma,
                backend=chosen, ignore_frame_of_reference=ignore_frame_of_reference,
            )
            for r, e in zip(references, evaluated, strict=True)
        ]

    def settings_of(ref: NDArray[np.float64]) -> GammaSettings:
        return _settings(
            ref, dd_percent, dta_mm, cutoff_percent, normalisation, normalisation_dose, max_gamma, chosen
        )

    prepared = [
        _pair(n, r, e, ignore_frame_of_reference, settings_of)
        for n, (r, e) in enumerate(zip(references, evaluated, strict=True))
    ]
    groups: dict[tuple[object, ...], list[int]] = {}
    for n, p in enumerate(prepared):
        groups.setdefault(p.key, []).append(n)
    results: list[GammaResult | None] = [None] * len(prepared)
    for members in groups.values():
        for n, res in zip(members, _run_group([prepared[n] for n in members]), strict=True):
            results[n] = res
    return [r for r in results if r is not None]


@dataclass(frozen=True)
class _Pair:
    """One validated pair: its arrays (3D views), index maps, scale (spacing / DTA) and settings."""

    reference: Volume
    ref: NDArray[np.float64]
    ev: NDArray[np.float64]
    alpha: NDArray[np.float64]
    beta: NDArray[np.float64]
    scale: NDArray[np.float64]
    settings: GammaSettings

    @property
    def key(self) -> tuple[object, ...]:
        """Pairs with equal keys share one launch: same shapes, index maps, scale and search limit."""
        return (
            self.ref.shape, self.ev.shape, tuple(np.round(self.alpha, 9)), tuple(np.round(self.beta, 9)),
            tuple(np.round(self.scale, 12)), self.settings.max_gamma, self.settings.normalisation,
        )  # fmt: skip


def _pair(
    n: int,
    reference: Volume,
    evaluated: Volume,
    ignore_frame_of_reference: bool,
    settings_of: Callable[[NDArray[np.float64]], GammaSettings],
) -> _Pair:
    ref_uid, ev_uid = reference.frame_of_reference_uid, evaluated.frame_of_reference_uid
    if ref_uid and ev_uid and ref_uid != ev_uid and not ignore_frame_of_reference:
        raise FrameOfReferenceError(
            f"gamma_batch pair {n}: reference Frame of Reference UID {ref_uid} differs from evaluated "
            f"{ev_uid}"
        )
    _check_finite(reference, f"reference {n}")
    _check_finite(evaluated, f"evaluated {n}")
    alpha, beta = _index_maps(reference, evaluated)
    ref = _as_3d(reference.array)
    ev = _as_3d(evaluated.array)
    settings = settings_of(ref)
    scale = np.asarray(evaluated.grid.spacing_mm, dtype=float) / settings.dta_mm
    scale[2] = 1.0
    return _Pair(reference, ref, ev, alpha, beta, scale, settings)


def _run_group(pairs: list[_Pair]) -> list[GammaResult]:
    """One launch for pairs of one geometry: image b is slice k = b of the stacked arrays."""
    from intrepid.analysis._gamma_cuda import gamma_cuda
    from intrepid.analysis._gamma_kernels import search_offsets

    first = pairs[0]
    settings = first.settings
    alpha, beta, on_nodes = _snap_to_nodes(first.alpha, first.beta, 2)
    alpha[2], beta[2] = 0.0, 1.0  # reference slice b reads evaluated slice b
    ref = np.concatenate([p.ref for p in pairs], axis=0)
    ev = np.concatenate([p.ev for p in pairs], axis=0)
    _check_budget(ref, ev, first.scale, settings, 2)
    offsets, bounds = search_offsets(first.scale, settings.max_gamma, 2, on_nodes, first.ev.shape[::-1])
    global_dd = np.array(
        [
            p.settings.dd_percent / 100.0 * p.settings.normalisation_dose_gy
            if p.settings.normalisation is Normalisation.GLOBAL
            else 0.0
            for p in pairs
        ]
    )
    threshold = np.array([p.settings.cutoff_dose_gy for p in pairs])
    start = time.perf_counter()
    out, _ = gamma_cuda(
        ref, ev, alpha, beta, first.scale, global_dd, settings.dd_percent / 100.0, threshold,
        settings.max_gamma**2, offsets, bounds, 2, on_nodes,
    )  # fmt: skip
    share = (time.perf_counter() - start) / len(pairs)
    return [_result(p.reference, out[b], None, p.settings, share) for b, p in enumerate(pairs)]
