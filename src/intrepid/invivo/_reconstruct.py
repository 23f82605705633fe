"""In-vivo 3D dose reconstruction: portal doses → FOD per beam → dose per beam (baseline or network) → sum.

Each portal image (one per beam, or one per arc sector) is back-projected through the planning CT
(:func:`intrepid.invivo.back_project`), turned into a beam dose by the physics-only baseline
(:mod:`intrepid.invivo._baseline`) and, when a network is given, refined by it; images of the same beam are
summed, and the beams are summed into the plan dose.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import ParameterError
from intrepid.geometry import Quantity, Volume
from intrepid.invivo._baseline import InvivoBaseline, apply_baseline, load_baseline
from intrepid.invivo._fod import FODSettings, PortalImage, back_project, relative_electron_density

__all__ = ["BeamInputs", "BeamRefiner", "Method", "Reconstruction", "beam_inputs", "reconstruct"]

_log = logging.getLogger(__name__)


class Method(enum.Enum):
    """How the beam doses are made from the FOD."""

    FOD = "fod"  #: the first-order dose itself (no correction)
    BASELINE = "baseline"  #: physics-only: scale, scatter blur, build-up
    NETWORK = "network"  #: baseline refined by the 3D network


@dataclass(frozen=True, eq=False)
class BeamInputs:
    """What the models see of one portal image: FOD, entrance depth, density and the baseline dose.

    Attributes
    ----------
    image : PortalImage
    fod : Volume
        First-order dose (Gy) on the CT grid.
    entrance_mm : ndarray
        Water-equivalent depth from the entrance surface (mm), same shape.
    red : Volume
        Relative electron density of the planning CT.
    baseline : Volume
        Physics-only beam dose (Gy).
    """

    image: PortalImage
    fod: Volume
    entrance_mm: NDArray[np.float64]
    red: Volume
    baseline: Volume


class BeamRefiner(Protocol):
    """A model that turns the :class:`BeamInputs` of a plan into beam doses (the 3D network's ensemble)."""

    def refine(self, inputs: Sequence[BeamInputs]) -> dict[int, NDArray[np.float32]]:
        """One dose array (Gy, CT grid) per beam number (the images of an arc beam are combined)."""
        ...


@dataclass(frozen=True, eq=False)
class Reconstruction:
    """Reconstructed doses.

    Attributes
    ----------
    beam_doses : dict of int to Volume
        Per beam (Gy, CT grid).
    total : Volume
        Plan sum (Gy).
    method : Method
    fod_total : Volume
        Sum of the FODs (for the report).
    seconds : dict of str to float
        ``fod``, ``model`` and ``total`` wall-clock times (s).
    """

    beam_doses: dict[int, Volume]
    total: Volume
    method: Method
    fod_total: Volume
    seconds: dict[str, float] = field(default_factory=dict)


def beam_inputs(
    images: Sequence[PortalImage],
    ct: Volume,
    *,
    baseline: InvivoBaseline | None = None,
    settings: FODSettings | None = None,
) -> list[BeamInputs]:
    """Back-project every image and compute its baseline dose."""
    if not images:
        raise ParameterError("no portal images to reconstruct from")
    bl = baseline or load_baseline()
    red = relative_electron_density(ct)
    out = []
    for im in images:
        fod, entrance = back_project(im, ct, settings=settings, red=red)
        out.append(BeamInputs(im, fod, entrance, red, apply_baseline(fod, entrance, bl)))
    return out


def reconstruct(
    images: Sequence[PortalImage],
    ct: Volume,
    *,
    method: Method | str = Method.BASELINE,
    baseline: InvivoBaseline | None = None,
    network: BeamRefiner | None = None,
    settings: FODSettings | None = None,
) -> Reconstruction:
    """Reconstruct the delivered dose per beam and in total on the CT grid.

    Parameters
    ----------
    images : sequence of PortalImage
        Portal doses with geometry; several per beam for arcs (summed).
    ct : Volume
        Planning CT (HU).
    method : Method or str
        ``fod``, ``baseline`` or ``network`` (needs ``network``).
    baseline : InvivoBaseline, optional
        Default :func:`load_baseline`.
    network : BeamRefiner, optional
        The 3D network (e.g. :func:`intrepid.invivo.load_invivo_model`).
    settings : FODSettings, optional

    Returns
    -------
    Reconstruction
    """
    m = method if isinstance(method, Method) else Method(str(method))
    if m is Method.NETWORK and network is None:
        raise ParameterError("method 'network' needs a network model (--model)")
    t0 = time.perf_counter()
    inputs = beam_inputs(images, ct, baseline=baseline, settings=settings)
    t1 = time.perf_counter()
    per_beam: dict[int, NDArray[np.float64]] = {}
    fod_sum = np.zeros(ct.shape, dtype=np.float64)
    for b in inputs:
        fod_sum += np.asarray(b.fod.array, dtype=np.float64)
    if m is Method.NETWORK:
        assert network is not None
        for n, a in network.refine(inputs).items():
            per_beam[n] = np.maximum(np.asarray(a, dtype=np.float64), 0.0)
    else:
        for b in inputs:
            a = np.asarray((b.fod if m is Method.FOD else b.baseline).array, dtype=np.float64)
            n = b.image.beam_number
            per_beam[n] = per_beam.get(n, np.zeros(ct.shape, dtype=np.float64)) + np.maximum(a, 0.0)
    t2 = time.perf_counter()
    uid = ct.frame_of_reference_uid
    beam_doses = {
        n: Volume(
            a.astype(np.float32),
            ct.grid,
            Quantity.DOSE,
            "Gy",
            uid,
            {"kind": "reconstructed", "method": m.value, "beam_number": n},
        )
        for n, a in sorted(per_beam.items())
    }
    total = np.sum([np.asarray(v.array, dtype=np.float64) for v in beam_doses.values()], axis=0)
    seconds: dict[str, Any] = {"fod": t1 - t0, "model": t2 - t1, "total": time.perf_counter() - t0}
    _log.info("reconstructed %d images (%s) in %.2f s", len(images), m.value, seconds["total"])
    return Reconstruction(
        beam_doses,
        Volume(
            total.astype(np.float32),
            ct.grid,
            Quantity.DOSE,
            "Gy",
            uid,
            {"kind": "reconstructed", "method": m.value},
        ),
        m,
        Volume(fod_sum.astype(np.float32), ct.grid, Quantity.DOSE, "Gy", uid),
        seconds,
    )
