"""Data-set compositions: which phantom, field, rotation, MU and isocentre each EPID / portal-dose pair has.

:func:`paper_composition` reproduces the data set of the seed (seed 000, "Table 1: Composizione del dataset
suddiviso per forma e dimensione dei fantocci") by phantom family and field size, with the named test images
of the seed's test-set table; :func:`random_composition` draws any number of pairs.

Reading of the seed's tables (and their inconsistencies)
--------------------------------------------------------
Table 1 as printed (cells OMG, CIRS, SLAB, MP, then the row total "Tot")::

    2x2      14   8   7   -   29        10x2     13   8   2   -   10   <- cells add up to 23
    5x5      12   9   7  12   40        15x1      4   8   -   8   16   <- cells add up to 20
    10x10    16   7   7   8   38        1x15      -   8   -   -    8
    20x20    14   -   7   -   21        4x20      -   -   7   -    7
    2x10     13   8   7   8   36        Ellipses  -   -   -   8    8

Eight rows are consistent; in rows 10x2 and 15x1 the OMG cells (13 and 4) contradict the row totals, which
hold exactly when those cells are empty ("-"), as they are for the other rectangles. No homogeneous test image
uses these fields either. We therefore read both OMG cells as empty: :data:`PAPER_TABLE1` then matches every
row total, 213 pairs in all (OMG 69, CIRS 56, SLAB 44, MP 44). Taking the cells as printed would give 230.
The seed's text says 211 pairs (189 training + 22 test); neither reading gives 211.

The seed's test-set table names 23 images (its own "# images" row, 3 4 4 2 4 1 2 1 1 1, also adds up to 23),
although its text says 22. :data:`PAPER_TEST_SET` keeps all 23 names: dropping one would be arbitrary. One
name is garbled in the seed ("Multiplug_Ti_tondo_1E0g"); we read it as ``Multiplug_Ti_tondo_180g``, a round
field ("tondo") on the titanium multi-plug rotated by 180°, counted under "Ellipses" as the "# images" row
says.
The remaining 213 - 23 = 190 pairs are the training split.

Names: ``6s10b3`` see :class:`~intrepid.simulate.SlabCode`; ``<n>gradi`` / ``<n>g`` the roll of the phantom in
degrees; ``ISOcentro`` / ``ISOlesione`` the isocentre at the phantom centre / at the lesion; ``SLABBone`` one
bone insert, ``2slab`` two inserts, ``inhomAir2`` two air inserts, ``b2`` 2 cm build-up; ``ARIA`` air plugs,
``PMMA``, ``Ti`` the plug material, ``5cm`` (isocentre on the plug 5 cm off-axis). The field column is
``X x Y`` in cm at the isocentre (``2x10``: 2 cm crossplane, 10 cm inplane). The seed gives no MU; the test
images use 100 MU and the training pairs draw from :data:`MU_CHOICES`.
"""

from __future__ import annotations

import enum
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from intrepid.errors import ParameterError
from intrepid.simulate._phantoms import IsocenterMode, PhantomFamily, decode_slab_code

__all__ = [
    "FIELD_GROUPS",
    "MLC_GROUPS",
    "MLC_KINDS",
    "MU_CHOICES",
    "PAPER_TABLE1",
    "PAPER_TABLE1_AS_PRINTED",
    "PAPER_TEST_SET",
    "PairSpec",
    "Split",
    "composition_counts",
    "field_group",
    "field_size_cm",
    "mlc_kind",
    "paper_composition",
    "random_composition",
]

_OMG = PhantomFamily.HOMOGENEOUS
_CIRS = PhantomFamily.CIRS
_SLAB = PhantomFamily.SLAB
_MP = PhantomFamily.MULTIPLUG

#: Field groups of Table 1, in its row order ("X x Y" cm at the isocentre, and the ellipses).
FIELD_GROUPS = ("2x2", "5x5", "10x10", "20x20", "2x10", "10x2", "15x1", "1x15", "4x20", "Ellipses")

#: Table 1 of the seed as printed: field group -> family -> count (absent = "-"), and the row totals.
PAPER_TABLE1_AS_PRINTED: dict[str, tuple[dict[PhantomFamily, int], int]] = {
    "2x2": ({_OMG: 14, _CIRS: 8, _SLAB: 7}, 29),
    "5x5": ({_OMG: 12, _CIRS: 9, _SLAB: 7, _MP: 12}, 40),
    "10x10": ({_OMG: 16, _CIRS: 7, _SLAB: 7, _MP: 8}, 38),
    "20x20": ({_OMG: 14, _SLAB: 7}, 21),
    "2x10": ({_OMG: 13, _CIRS: 8, _SLAB: 7, _MP: 8}, 36),
    "10x2": ({_OMG: 13, _CIRS: 8, _SLAB: 2}, 10),
    "15x1": ({_OMG: 4, _CIRS: 8, _MP: 8}, 16),
    "1x15": ({_CIRS: 8}, 8),
    "4x20": ({_SLAB: 7}, 7),
    "Ellipses": ({_MP: 8}, 8),
}

#: Our reading of Table 1 (field group -> family -> pairs): as printed, without the OMG cells of 10x2 and
#: 15x1 that contradict the row totals (see the module notes). 213 pairs.
PAPER_TABLE1: dict[str, dict[PhantomFamily, int]] = {
    group: {fam: n for fam, n in cells.items() if not (fam is _OMG and group in ("10x2", "15x1"))}
    for group, (cells, _total) in PAPER_TABLE1_AS_PRINTED.items()
}

#: MLC sequence kinds accepted in field names, and their field groups (outside Table 1).
MLC_KINDS = ("sns", "sw", "dyn")
MLC_GROUPS = {"sns": "MLC step-and-shoot", "sw": "MLC sliding window", "dyn": "MLC dynamic"}
#: Jaw openings (cm) of generated MLC fields.
_MLC_JAWS_CM = (5, 10, 15, 20)

#: Training MU values (the seed gives none); test images use 100 MU.
MU_CHOICES = (50.0, 100.0, 150.0, 200.0)

#: Ellipse / circle axes (X, Y) in cm at the isocentre used for the "Ellipses" group.
_ELLIPSES_CM = ((3, 3), (5, 5), (8, 8), (10, 10), (4, 8), (8, 4), (6, 10), (10, 6))


class Split(enum.Enum):
    """Training or test split."""

    TRAIN = "train"
    TEST = "test"


@dataclass(frozen=True)
class PairSpec:
    """One EPID / portal-dose pair to simulate.

    Parameters
    ----------
    name : str
        Image name; the test images keep the seed's names (``CIRS_0gradi_ISOlesione_1``).
    family : PhantomFamily
        Phantom family (Table 1 column).
    phantom : str
        Phantom configuration in the seed's style (``6s10b3``, ``CIRS``, ``SLAB_Bone_2slab``,
        ``Multiplug_Ti``).
    phantom_parameters : tuple of (str, value) pairs
        Keyword arguments of the family's ``make_*`` function (hashable form; see :meth:`parameters`).
    field : str
        ``"<X>x<Y>"`` in cm at the isocentre (``"2x10"``) or ``"ellipse <X>x<Y>"`` (axes in cm), as the names
        of :class:`intrepid.physics.Field`.
    rotation_deg : int
        Roll of the phantom about the couch axis, 0/90/180/270.
    mu : float
        Monitor units (> 0).
    isocenter : IsocenterMode
        Isocentre at the phantom centre or at the lesion / insert.
    split : Split
        Training or test.
    seed : int
        Seed of this pair's simulation (noise, dead pixels), >= 0.
    """

    name: str
    family: PhantomFamily
    phantom: str
    phantom_parameters: tuple[tuple[str, Any], ...]
    field: str
    rotation_deg: int
    mu: float
    isocenter: IsocenterMode
    split: Split
    seed: int

    def __post_init__(self) -> None:
        if not isinstance(self.family, PhantomFamily):
            raise ParameterError(f"family must be a PhantomFamily, got {self.family!r}")
        if not isinstance(self.isocenter, IsocenterMode):
            raise ParameterError(f"isocenter must be an IsocenterMode, got {self.isocenter!r}")
        if not isinstance(self.split, Split):
            raise ParameterError(f"split must be a Split, got {self.split!r}")
        if self.rotation_deg not in (0, 90, 180, 270):
            raise ParameterError(f"rotation_deg must be one of 0, 90, 180, 270, got {self.rotation_deg!r}")
        if not (math.isfinite(self.mu) and self.mu > 0):
            raise ParameterError(f"mu must be > 0, got {self.mu!r}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise ParameterError(f"seed must be an integer >= 0, got {self.seed!r}")
        field_size_cm(self.field)  # validates the field name

    def parameters(self) -> dict[str, Any]:
        """The phantom parameters as a dict (keyword arguments of the ``make_*`` function)."""
        return dict(self.phantom_parameters)

    @property
    def field_group(self) -> str:
        """Table 1 row of the field (``"10x10"`` or ``"Ellipses"``)."""
        return field_group(self.field)


def field_size_cm(field: str) -> tuple[float, float, bool]:
    """Parse a field name into ``(X cm, Y cm, is_ellipse)``.

    ``"2x10"`` is a 2 cm (crossplane X) × 10 cm (inplane Y) rectangle; ``"ellipse 6x10"`` an ellipse with
    those axes (a circle when equal). Sizes are at the isocentre and must lie in (0, 40] cm.
    """
    m = re.fullmatch(r"(ellipse |sns |sw |dyn )?(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)", str(field))
    if m is None:
        raise ParameterError(
            f"field must look like '10x10', 'ellipse 6x10' or an MLC field 'sns 10x10' / 'sw 10x10' / "
            f"'dyn 10x10' (cm at the isocentre), got {field!r}"
        )
    x, y = float(m.group(2)), float(m.group(3))
    if not (0 < x <= 40 and 0 < y <= 40):
        raise ParameterError(f"field sizes must be in (0, 40] cm, got {field!r}")
    return x, y, m.group(1) == "ellipse "


def mlc_kind(field: str) -> str | None:
    """MLC sequence kind of a field name: ``"sns"`` (step-and-shoot), ``"sw"`` (sliding window), ``"dyn"``
    (VMAT-like control points) or None for a jaw-only field (rectangles, ellipses).

    The name gives the jaw opening in cm (``"sns 10x10"``); the leaf sequence is generated from the pair's
    seed (:func:`intrepid.physics.generate_mlc_field`).
    """
    field_size_cm(field)
    head = str(field).split(" ", 1)[0]
    return head if head in MLC_KINDS else None


def field_group(field: str) -> str:
    """Table 1 row of a field name: the name itself for rectangles, ``"Ellipses"`` for ellipses."""
    x, y, ellipse = field_size_cm(field)
    if ellipse:
        return "Ellipses"
    kind = mlc_kind(field)
    if kind is not None:
        return MLC_GROUPS[kind]
    return f"{x:g}x{y:g}"


def _spec(name: str, family: PhantomFamily, phantom: str, params: Mapping[str, Any], field: str, *,
          rotation_deg: int = 0, mu: float = 100.0, isocenter: IsocenterMode = IsocenterMode.CENTER,
          split: Split = Split.TEST, seed: int = 0) -> PairSpec:
    return PairSpec(name, family, phantom, tuple(sorted(params.items())), field, rotation_deg, mu, isocenter,
                    split, seed)


def _omg(code: str) -> dict[str, Any]:
    c = decode_slab_code(code)
    return {"thickness_mm": c.thickness_mm, "buildup_mm": c.buildup_mm}


_C = IsocenterMode.CENTER
_L = IsocenterMode.LESION

#: The 23 named test images of the seed's test-set table (seed 0 is a placeholder: see
#: :func:`paper_composition`).
PAPER_TEST_SET: tuple[PairSpec, ...] = (
    _spec("6s10b3_1", _OMG, "6s10b3", _omg("6s10b3"), "2x2"),
    _spec("6s30b1_2", _OMG, "6s30b1", _omg("6s30b1"), "5x5"),
    _spec("6s10b2_3", _OMG, "6s10b2", _omg("6s10b2"), "10x10"),
    _spec("6s20_4", _OMG, "6s20", _omg("6s20"), "20x20"),
    _spec("6s10b2_6", _OMG, "6s10b2", _omg("6s10b2"), "2x10"),
    _spec("CIRS_0gradi_ISOlesione_1", _CIRS, "CIRS", {}, "2x2", isocenter=_L),
    _spec("CIRS_270gradi_ISOlesione_2", _CIRS, "CIRS", {}, "5x5", rotation_deg=270, isocenter=_L),
    _spec("CIRS_0gradi_ISOlesione_3", _CIRS, "CIRS", {}, "10x10", isocenter=_L),
    _spec("CIRS_270gradi_ISOcentro_6", _CIRS, "CIRS", {}, "2x10", rotation_deg=270),
    _spec("CIRS_90gradi_ISOlesione_7", _CIRS, "CIRS", {}, "10x2", rotation_deg=90, isocenter=_L),
    _spec("CIRS_0gradi_ISOcentro_8", _CIRS, "CIRS", {}, "15x1"),
    _spec("CIRS_0gradi_ISOlesione_9", _CIRS, "CIRS", {}, "1x15", isocenter=_L),
    _spec("SLABinhomAir2_1", _SLAB, "SLABinhomAir2", {"material": "air", "n_inserts": 2}, "2x2"),
    _spec("SLAB_Boneb2_2slab_2", _SLAB, "SLAB_Boneb2_2slab",
          {"material": "bone", "n_inserts": 2, "buildup_mm": 20.0}, "5x5"),
    _spec("SLABBone_3", _SLAB, "SLABBone", {"material": "bone", "n_inserts": 1}, "10x10"),
    _spec("SLAB_Bone_2slab_4", _SLAB, "SLAB_Bone_2slab", {"material": "bone", "n_inserts": 2}, "20x20"),
    _spec("SLABBone_5", _SLAB, "SLABBone", {"material": "bone", "n_inserts": 1}, "4x20"),
    _spec("SLABinhomAir2_6", _SLAB, "SLABinhomAir2", {"material": "air", "n_inserts": 2}, "2x10"),
    _spec("Multiplug_90g_5cm_ARIA_2", _MP, "Multiplug_ARIA", {"plug": "air"}, "5x5", rotation_deg=90,
          isocenter=_L),
    _spec("Multiplug_PMMA_90g_3", _MP, "Multiplug_PMMA", {"plug": "pmma"}, "10x10", rotation_deg=90),
    _spec("Multiplug_PMMA_180g_6", _MP, "Multiplug_PMMA", {"plug": "pmma"}, "2x10", rotation_deg=180),
    _spec("Multiplug_Ti_90g_8", _MP, "Multiplug_Ti", {"plug": "titanium"}, "15x1", rotation_deg=90),
    _spec("Multiplug_Ti_tondo_180g", _MP, "Multiplug_Ti", {"plug": "titanium"}, "ellipse 5x5",
          rotation_deg=180),
)


def _draw_phantom(family: PhantomFamily, rng: np.random.Generator) -> tuple[str, dict[str, Any], int,
                                                                             IsocenterMode]:
    """A random phantom configuration of ``family``: (label, parameters, rotation_deg, isocentre mode)."""
    rotations = (0, 90, 180, 270)
    if family is _OMG:
        t = int(rng.choice([5, 10, 15, 20, 25, 30]))
        b = int(rng.choice([0, 0, 1, 2, 3]))
        code = f"6s{t}" + (f"b{b}" if b else "")
        return code, _omg(code), 0, _C
    if family is _CIRS:
        rot = int(rng.choice(rotations))
        iso = _L if rng.random() < 0.5 else _C
        return "CIRS", {}, rot, iso
    if family is _SLAB:
        material = str(rng.choice(["bone", "air"]))
        n = int(rng.integers(1, 3))
        bu = float(rng.choice([0.0, 20.0]))
        label = ("SLAB_Bone" if material == "bone" else "SLABinhomAir") + (f"b{int(bu / 10)}" if bu else "")
        label += f"_{n}slab"
        return label, {"material": material, "n_inserts": n, "buildup_mm": bu}, 0, _C
    if family is _MP:
        plug = str(rng.choice(["pmma", "titanium", "air"]))
        rot = int(rng.choice(rotations))
        iso = _L if rng.random() < 0.25 else _C
        tag = {"pmma": "PMMA", "titanium": "Ti", "air": "ARIA"}[plug]
        return f"Multiplug_{tag}", {"plug": plug}, rot, iso
    rot = int(rng.choice(rotations))
    iso = _L if rng.random() < 0.5 else _C
    return "TG119", {}, rot, iso


def _label(phantom: str, family: PhantomFamily, rotation_deg: int, iso: IsocenterMode) -> str:
    if family in (_CIRS, PhantomFamily.PATIENT):
        return f"{phantom}_{rotation_deg}gradi_{iso.value}"
    if family is _MP:
        return f"{phantom}_{rotation_deg}g" + ("_ISOplug" if iso is _L else "")
    return phantom


def _field_for(group: str, k: int) -> str:
    if group == "Ellipses":
        x, y = _ELLIPSES_CM[k % len(_ELLIPSES_CM)]
        return f"ellipse {x}x{y}"
    return group


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ParameterError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def paper_composition(seed: int = 0) -> list[PairSpec]:
    """The seed's data set: Table 1 by family and field size, with the seed's named test images.

    Per Table 1 cell, the named test images of that cell (:data:`PAPER_TEST_SET`) come first, then training
    pairs with phantom configurations, rotations, isocentre modes and MU drawn from ``seed``. See the module
    notes for the reading of the seed's tables (213 pairs: 190 training, 23 test).

    Parameters
    ----------
    seed : int
        Seed (>= 0) of the random draws and of the per-pair simulation seeds.

    Returns
    -------
    list of PairSpec
        Test images first, then training pairs in Table 1 order.

    Examples
    --------
    >>> specs = paper_composition(seed=0)
    >>> len(specs), sum(s.split is Split.TEST for s in specs)
    (213, 23)
    """
    rng = np.random.default_rng(_check_seed(seed))
    pair_seeds = rng.integers(0, 2**31 - 1, size=sum(sum(c.values()) for c in PAPER_TABLE1.values()))
    out: list[PairSpec] = []
    idx = 0
    for spec in PAPER_TEST_SET:
        out.append(_with(spec, seed=int(pair_seeds[idx])))
        idx += 1
    tests = Counter((s.field_group, s.family) for s in PAPER_TEST_SET)
    for group in FIELD_GROUPS:
        for family, count in PAPER_TABLE1[group].items():
            n_train = count - tests[(group, family)]
            for k in range(n_train):
                phantom, params, rot, iso = _draw_phantom(family, rng)
                mu = float(rng.choice(MU_CHOICES))
                field = _field_for(group, k)
                name = f"{_label(phantom, family, rot, iso)}_{field.replace(' ', '')}_t{idx:03d}"
                out.append(_spec(name, family, phantom, params, field, rotation_deg=rot, mu=mu, isocenter=iso,
                                 split=Split.TRAIN, seed=int(pair_seeds[idx])))
                idx += 1
    return out


def _with(spec: PairSpec, **changes: Any) -> PairSpec:
    from dataclasses import replace

    return replace(spec, **changes)


def random_composition(
    n: int, seed: int = 0, *, test_fraction: float = 22.0 / 211.0, mlc_fraction: float = 0.0
) -> list[PairSpec]:
    """``n`` random pairs over all families (the patient phantom included) and the Table 1 field groups.

    Parameters
    ----------
    n : int
        Number of pairs (> 0).
    seed : int
        Seed (>= 0); the same seed gives the same list.
    test_fraction : float
        Fraction in [0, 1) of pairs marked test (rounded), 22/211 as in the seed by default.
    mlc_fraction : float
        Fraction in [0, 1] of pairs (drawn per pair) given an MLC-modulated field instead of a Table 1 field:
        step-and-shoot, sliding-window or VMAT-like control points in equal shares, jaws 5–20 cm square.
        0 (default) draws exactly the earlier compositions.

    Returns
    -------
    list of PairSpec
    """
    if isinstance(n, bool) or int(n) != n or n <= 0:
        raise ParameterError(f"n must be an integer > 0, got {n!r}")
    if not (0.0 <= test_fraction < 1.0):
        raise ParameterError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    if not (0.0 <= mlc_fraction <= 1.0):
        raise ParameterError(f"mlc_fraction must be in [0, 1], got {mlc_fraction!r}")
    rng = np.random.default_rng(_check_seed(seed))
    families = list(PhantomFamily)
    n_test = round(n * test_fraction)
    test_idx = set(rng.choice(int(n), size=n_test, replace=False).tolist()) if n_test else set()
    out = []
    for i in range(int(n)):
        family = families[int(rng.integers(len(families)))]
        group = FIELD_GROUPS[int(rng.integers(len(FIELD_GROUPS)))]
        field = _field_for(group, int(rng.integers(len(_ELLIPSES_CM))))
        phantom, params, rot, iso = _draw_phantom(family, rng)
        mu = float(rng.choice(MU_CHOICES))
        if mlc_fraction > 0 and rng.random() < mlc_fraction:
            side = int(rng.choice(_MLC_JAWS_CM))
            field = f"{MLC_KINDS[int(rng.integers(len(MLC_KINDS)))]} {side}x{side}"
        split = Split.TEST if i in test_idx else Split.TRAIN
        name = f"{_label(phantom, family, rot, iso)}_{field.replace(' ', '')}_r{i:04d}"
        out.append(_spec(name, family, phantom, params, field, rotation_deg=rot, mu=mu, isocenter=iso,
                         split=split, seed=int(rng.integers(0, 2**31 - 1))))
    return out


def composition_counts(specs: list[PairSpec]) -> dict[str, Any]:
    """Counts of a composition: ``total``, ``by_split``, ``by_family``, ``by_field_group`` and ``table``
    (field group -> family value -> count), JSON-ready."""
    table: dict[str, dict[str, int]] = {}
    for s in specs:
        row = table.setdefault(s.field_group, {})
        row[s.family.value] = row.get(s.family.value, 0) + 1
    return {
        "total": len(specs),
        "by_split": dict(Counter(s.split.value for s in specs)),
        "by_family": dict(Counter(s.family.value for s in specs)),
        "by_field_group": dict(Counter(s.field_group for s in specs)),
        "table": table,
    }
