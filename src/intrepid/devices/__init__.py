"""Proton beam devices: beam geometry (point and dual source), target meshes and aperture design.

Range compensators, the proton dose engine and RT Ion export build on :class:`BeamGeometry` here.
"""

from intrepid.devices._aperture import (
    ApertureResult,
    ProjectedStructure,
    design_aperture,
    visible_organ_projection,
)
from intrepid.devices._aperture_ops import (
    CornerPlane,
    HalfPlane,
    MillMode,
    Mount,
    MountShape,
    apply_mill_radius,
    corner_plane_region,
    fill_islands,
    half_plane_region,
    min_feature_size_mm,
    mount_region,
    smooth_outline,
)
from intrepid.devices._aperture_params import (
    ApertureCenterline,
    ApertureOrgan,
    ApertureOverride,
    AperturePlane,
    ApertureSettings,
    FieldRectangle,
    OverrideMode,
    StructureRole,
    downstream_edge_from_tray,
)
from intrepid.devices._beam_geometry import BeamGeometry, BeamLineView
from intrepid.devices._compensator import (
    PMMA,
    WAX,
    BorderHandling,
    CompensatorMaterial,
    CompensatorResult,
    CompensatorSettings,
    DistalCoverage,
    design_compensator,
)
from intrepid.devices._compensator_opt import optimize_compensator
from intrepid.devices._drawing import aperture_png, aperture_svg
from intrepid.devices._export import (
    compensator_surface_mesh,
    write_compensator_csv,
    write_compensator_stl,
    write_ion_plan_devices,
)
from intrepid.devices._override_io import read_override_file
from intrepid.devices._projection import DepthMap, entry_depth_map, project_mesh
from intrepid.devices._targets import (
    combine_meshes,
    structure_centerline,
    target_mesh_from_dose,
    target_mesh_from_roi,
)

__all__ = [
    "PMMA",
    "WAX",
    "ApertureCenterline",
    "ApertureOrgan",
    "ApertureOverride",
    "AperturePlane",
    "ApertureResult",
    "ApertureSettings",
    "BeamGeometry",
    "BeamLineView",
    "BorderHandling",
    "CompensatorMaterial",
    "CompensatorResult",
    "CompensatorSettings",
    "CornerPlane",
    "DepthMap",
    "DistalCoverage",
    "FieldRectangle",
    "HalfPlane",
    "MillMode",
    "Mount",
    "MountShape",
    "OverrideMode",
    "ProjectedStructure",
    "StructureRole",
    "aperture_png",
    "aperture_svg",
    "apply_mill_radius",
    "combine_meshes",
    "compensator_surface_mesh",
    "corner_plane_region",
    "design_aperture",
    "design_compensator",
    "downstream_edge_from_tray",
    "entry_depth_map",
    "fill_islands",
    "half_plane_region",
    "min_feature_size_mm",
    "mount_region",
    "optimize_compensator",
    "project_mesh",
    "read_override_file",
    "smooth_outline",
    "structure_centerline",
    "target_mesh_from_dose",
    "target_mesh_from_roi",
    "visible_organ_projection",
    "write_compensator_csv",
    "write_compensator_stl",
    "write_ion_plan_devices",
]
