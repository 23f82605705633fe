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
from intrepid.physics._proton import (
    BraggPeak,
    SpreadOutBraggPeak,
    csda_range_mm,
    energy_from_range_mev,
    highland_sigma_mm,
    pristine_peak,
    relative_stopping_power,
    spread_out_bragg_peak,
    water_stopping_power_mev_cm2_g,
)
from intrepid.physics._proton_pencil import (
    BeamDoseBEV,
    CompensatorMap,
    DepthDose,
    PencilLattice,
    ProtonDose,
    patient_sigma_mm,
    pencil_beam_dose,
)
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
    "BeamDoseBEV",
    "BeamModel",
    "BraggPeak",
    "CompensatorMap",
    "DepthDose",
    "DetectorModel",
    "DivergentRays",
    "DoseKernel",
    "EnergyResponse",
    "Field",
    "FieldShape",
    "GlareKernel",
    "HUCalibration",
    "PencilLattice",
    "ProtonDose",
    "RadiologicalDepth",
    "RayPath",
    "RayTraceMode",
    "RayWepl",
    "ScatterModel",
    "SpreadOutBraggPeak",
    "TransitImages",
    "Vendor",
    "convolve_kernels",
    "csda_range_mm",
    "cumulative_path",
    "energy_from_range_mev",
    "ghosting_factor",
    "highland_sigma_mm",
    "hu_to_relative_electron_density",
    "hu_to_relative_stopping_power",
    "line_integrals",
    "patient_scatter",
    "patient_sigma_mm",
    "pencil_beam_dose",
    "primary_transmission",
    "pristine_peak",
    "radiological_depth",
    "relative_stopping_power",
    "scatter_kernel_radial",
    "scatter_to_primary_ratio",
    "simulate_transit",
    "spread_out_bragg_peak",
    "trace_ray",
    "water_mass_attenuation_cm2_g",
    "water_mass_energy_absorption_cm2_g",
    "water_stopping_power_mev_cm2_g",
    "wepl_along_rays",
]
