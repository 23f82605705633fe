"""Synthetic phantoms and paired EPID / portal-dose data sets.

- :mod:`phantoms <intrepid.simulate._phantoms>`: CT-like HU volumes of the seed's phantom families
  (solid-water slabs, a CIRS-like thorax, slabs with bone / air inserts, a multi-plug cylinder, a TG-119
  patient-like body);
- :mod:`composition <intrepid.simulate._composition>`: the seed's data set (Table 1 and its test split) and
  random compositions;
- :mod:`pairs <intrepid.simulate._pairs>`: simulation of the pairs and their DICOM RTIMAGE files with a
  ``manifest.csv``;
- :mod:`patients <intrepid.simulate._patients>`, :mod:`invivo plans <intrepid.simulate._invivo_plans>`,
  :mod:`invivo errors <intrepid.simulate._invivo_errors>`,
  :mod:`invivo cases <intrepid.simulate._invivo_cases>`:
  3D in-vivo cases (patient phantoms with structures, plans, delivery errors, doses, transit images).
"""

from intrepid.simulate._composition import (
    FIELD_GROUPS,
    MLC_GROUPS,
    MLC_KINDS,
    MU_CHOICES,
    PAPER_TABLE1,
    PAPER_TABLE1_AS_PRINTED,
    PAPER_TEST_SET,
    PairSpec,
    Split,
    composition_counts,
    field_group,
    field_size_cm,
    mlc_kind,
    paper_composition,
    random_composition,
)
from intrepid.simulate._invivo_cases import (
    InvivoCase,
    InvivoCaseSpec,
    TransitFrame,
    make_invivo_case,
    plan_doses,
    write_invivo_case,
)
from intrepid.simulate._invivo_errors import (
    DeliveryError,
    ErrorKind,
    apply_patient_errors,
    apply_plan_errors,
    parse_error_spec,
)
from intrepid.simulate._invivo_plans import PlanKind, make_plan, scale_plan_mu
from intrepid.simulate._pairs import (
    MANIFEST_COLUMNS,
    REQUIRED_COLUMNS,
    SimulationVendor,
    generate_pairs,
    pair_seed,
    read_manifest,
)
from intrepid.simulate._patients import PatientPhantom, PatientSite, make_patient_case_phantom
from intrepid.simulate._phantoms import (
    AIR_HU,
    BONE_HU,
    CT_NUMBER_RANGE_HU,
    LUNG_HU,
    PMMA_HU,
    SOFT_TISSUE_HU,
    SPINE_HU,
    TITANIUM_HU,
    WATER_HU,
    InsertMaterial,
    IsocenterMode,
    Phantom,
    PhantomFamily,
    PlugMaterial,
    SlabCode,
    decode_slab_code,
    make_insert_slab_phantom,
    make_multiplug_phantom,
    make_patient_phantom,
    make_phantom,
    make_slab_phantom,
    make_thorax_phantom,
)

__all__ = [
    "AIR_HU",
    "BONE_HU",
    "CT_NUMBER_RANGE_HU",
    "FIELD_GROUPS",
    "LUNG_HU",
    "MANIFEST_COLUMNS",
    "MLC_GROUPS",
    "MLC_KINDS",
    "MU_CHOICES",
    "PAPER_TABLE1",
    "PAPER_TABLE1_AS_PRINTED",
    "PAPER_TEST_SET",
    "PMMA_HU",
    "REQUIRED_COLUMNS",
    "SOFT_TISSUE_HU",
    "SPINE_HU",
    "TITANIUM_HU",
    "WATER_HU",
    "DeliveryError",
    "ErrorKind",
    "InsertMaterial",
    "InvivoCase",
    "InvivoCaseSpec",
    "IsocenterMode",
    "PairSpec",
    "PatientPhantom",
    "PatientSite",
    "Phantom",
    "PhantomFamily",
    "PlanKind",
    "PlugMaterial",
    "SimulationVendor",
    "SlabCode",
    "Split",
    "TransitFrame",
    "apply_patient_errors",
    "apply_plan_errors",
    "composition_counts",
    "decode_slab_code",
    "field_group",
    "field_size_cm",
    "generate_pairs",
    "make_insert_slab_phantom",
    "make_invivo_case",
    "make_multiplug_phantom",
    "make_patient_case_phantom",
    "make_patient_phantom",
    "make_phantom",
    "make_plan",
    "make_slab_phantom",
    "make_thorax_phantom",
    "mlc_kind",
    "pair_seed",
    "paper_composition",
    "parse_error_spec",
    "plan_doses",
    "random_composition",
    "read_manifest",
    "scale_plan_mu",
    "write_invivo_case",
]
