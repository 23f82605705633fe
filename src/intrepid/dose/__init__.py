"""intrepid.dose: the photon dose engine (collapsed-cone convolution/superposition from CT + RTPLAN).

Public API::

    compute_dose(ct, plan, *, beams=None, grid=None, head=None, hu_to_red=None, settings=None,
                 engine="auto") -> PlanDose
    central_axis_depth_dose(volume) -> (depth_mm, dose)      # of a water_phantom dose

See docs/dose.md for the physics, the parameters and their sources, and the validation.
"""

from intrepid.dose._engine import (
    DoseSettings,
    central_axis_depth_dose,
    check_beam,
    check_plan,
    compute_dose,
    water_phantom,
)
from intrepid.dose._kernel import ConeKernel, cone_kernel
from intrepid.dose._plans import open_field_plan, slab_phantom
from intrepid.dose._result import BeamDose, DoseQuantity, PlanDose

__all__ = [
    "BeamDose",
    "ConeKernel",
    "DoseQuantity",
    "DoseSettings",
    "PlanDose",
    "central_axis_depth_dose",
    "check_beam",
    "check_plan",
    "compute_dose",
    "cone_kernel",
    "open_field_plan",
    "slab_phantom",
    "water_phantom",
]
