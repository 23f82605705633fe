"""Reading and writing DICOM RT (CT, RTDOSE, RTPLAN, RTSTRUCT, RTIMAGE) and NIfTI / NRRD / npz volumes."""

from intrepid.dicom._common import all_or_nothing, atomic_write, new_uid, read_dataset
from intrepid.dicom._ct import (
    CTSeriesReport,
    DuplicateSlices,
    SeriesSummary,
    SliceGap,
    inspect_ct_series,
    read_ct_series,
)
from intrepid.dicom._formats import read_nifti, read_npz, read_nrrd, write_nifti, write_npz, write_nrrd
from intrepid.dicom._matrad import MatradPhantom, read_matrad_phantom
from intrepid.dicom._rtdose import GridOffsetConvention, RTDose, read_rtdose
from intrepid.dicom._rtimage import RTImage, SignalConvention, Vendor, read_rtimage
from intrepid.dicom._rtplan import (
    Beam,
    BeamLimitingDevice,
    BeamLimitingDeviceType,
    BeamType,
    Block,
    BlockType,
    ControlPoint,
    FractionGroup,
    IonBlock,
    RangeCompensator,
    RangeShifter,
    RangeShifterSetting,
    ReferencedBeam,
    RotationDirection,
    RTPlan,
    Wedge,
    read_rtplan,
)
from intrepid.dicom._rtstruct import ROI, Contour, ContourType, RoiNotFoundError, StructureSet, read_rtstruct
from intrepid.dicom._structures import roi_fractional_mask, roi_mask, roi_mesh
from intrepid.dicom._volume_io import VolumeFormat, read_volume, volume_format, write_volume
from intrepid.dicom._write_ct import DicomSeriesInfo, write_ct_series
from intrepid.dicom._write_rtdose import write_rtdose
from intrepid.dicom._write_rtimage import write_rtimage
from intrepid.dicom._write_rtplan import write_rtplan
from intrepid.dicom._write_rtstruct import StructureDefinition, mask_to_contours, write_rtstruct

__all__ = [
    "ROI",
    "Beam",
    "BeamLimitingDevice",
    "BeamLimitingDeviceType",
    "BeamType",
    "Block",
    "BlockType",
    "CTSeriesReport",
    "Contour",
    "ContourType",
    "ControlPoint",
    "DicomSeriesInfo",
    "DuplicateSlices",
    "FractionGroup",
    "GridOffsetConvention",
    "IonBlock",
    "MatradPhantom",
    "RTDose",
    "RTImage",
    "RTPlan",
    "RangeCompensator",
    "RangeShifter",
    "RangeShifterSetting",
    "ReferencedBeam",
    "RoiNotFoundError",
    "RotationDirection",
    "SeriesSummary",
    "SignalConvention",
    "SliceGap",
    "StructureDefinition",
    "StructureSet",
    "Vendor",
    "VolumeFormat",
    "Wedge",
    "all_or_nothing",
    "atomic_write",
    "inspect_ct_series",
    "mask_to_contours",
    "new_uid",
    "read_ct_series",
    "read_dataset",
    "read_matrad_phantom",
    "read_nifti",
    "read_npz",
    "read_nrrd",
    "read_rtdose",
    "read_rtimage",
    "read_rtplan",
    "read_rtstruct",
    "read_volume",
    "roi_fractional_mask",
    "roi_mask",
    "roi_mesh",
    "volume_format",
    "write_ct_series",
    "write_nifti",
    "write_npz",
    "write_nrrd",
    "write_rtdose",
    "write_rtimage",
    "write_rtplan",
    "write_rtstruct",
    "write_volume",
]
