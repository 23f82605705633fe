"""intrepid.physics"""

from intrepid.physics._beam import BeamModel, water_mass_attenuation_cm2_g, water_mass_energy_absorption_cm2_g
from intrepid.physics._calibration import (
    HUCalibration,
    hu_to_relative_electron_density,
    hu_to_relative_stopping_power,
)
from intrepid.physics._epid import DetectorModel, Vendor, ghosting_factor
from intrepid.physics._fields import Field, FieldShape
from intrepid.physics._kernels import DoseKernel, GlareKernel, convolve_kernels
from intrepid.physics._raytrace import (
    DivergentRays,
    RadiologicalDepth,
    RayPath,
    RayTraceMode,
    RayWepl,
    cumulative_path,
    line_integrals,
    radiological_depth,
    trace_ray,
    wepl_along_rays,
)
from intrepid.physics._transit import TransitImages, simulate_transit
from intrepid.physics._transport import (
    EnergyResponse,
    ScatterModel,
    patient_scatter,
    primary_transmission,
    scatter_kernel_radial,
    scatter_to_primary_ratio,
)

__all__ = [
    "BeamModel",
    "DetectorModel",
    "DivergentRays",
    "DoseKernel",
    "EnergyResponse",
    "Field",
    "FieldShape",
    "GlareKernel",
    "HUCalibration",
    "RadiologicalDepth",
    "RayPath",
    "RayTraceMode",
    "RayWepl",
    "ScatterModel",
    "TransitImages",
    "Vendor",
    "convolve_kernels",
    "cumulative_path",
    "ghosting_factor",
    "hu_to_relative_electron_density",
    "hu_to_relative_stopping_power",
    "line_integrals",
    "patient_scatter",
    "primary_transmission",
    "radiological_depth",
    "scatter_kernel_radial",
    "scatter_to_primary_ratio",
    "simulate_transit",
    "trace_ray",
    "water_mass_attenuation_cm2_g",
    "water_mass_energy_absorption_cm2_g",
    "wepl_along_rays",
]
