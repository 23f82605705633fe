"""Tests of the data-set compositions against the seed's Table 1 and test-set table."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrepid.errors import ParameterError
from intrepid.simulate import (
    FIELD_GROUPS,
    PAPER_TABLE1,
    PAPER_TABLE1_AS_PRINTED,
    PAPER_TEST_SET,
    IsocenterMode,
    PairSpec,
    PhantomFamily,
    Split,
    composition_counts,
    field_group,
    field_size_cm,
    make_phantom,
    paper_composition,
    random_composition,
)

OMG, CIRS, SLAB, MP = (PhantomFamily.HOMOGENEOUS, PhantomFamily.CIRS, PhantomFamily.SLAB,
                       PhantomFamily.MULTIPLUG)

# The seed's Table 1 typed in again here, independently of the module (cells OMG, CIRS, SLAB, MP; row "Tot").
SEED_TABLE1 = {
    "2x2": ((14, 8, 7, 0), 29),
    "5x5": ((12, 9, 7, 12), 40),
    "10x10": ((16, 7, 7, 8), 38),
    "20x20": ((14, 0, 7, 0), 21),
    "2x10": ((13, 8, 7, 8), 36),
    "10x2": ((13, 8, 2, 0), 10),
    "15x1": ((4, 8, 0, 8), 16),
    "1x15": ((0, 8, 0, 0), 8),
    "4x20": ((0, 0, 7, 0), 7),
    "Ellipses": ((0, 0, 0, 8), 8),
}
# The seed's test-set table: the 23 image names and their column (field group).
SEED_TEST_NAMES = {
    "6s10b3_1": "2x2", "6s30b1_2": "5x5", "6s10b2_3": "10x10", "6s20_4": "20x20", "6s10b2_6": "2x10",
    "SLABBone_5": "4x20",
    "CIRS_0gradi_ISOlesione_1": "2x2", "CIRS_270gradi_ISOlesione_2": "5x5",
    "CIRS_0gradi_ISOlesione_3": "10x10", "CIRS_270gradi_ISOcentro_6": "2x10",
    "CIRS_90gradi_ISOlesione_7": "10x2", "CIRS_0gradi_ISOcentro_8": "15x1",
    "CIRS_0gradi_ISOlesione_9": "1x15",
    "SLABinhomAir2_1": "2x2", "SLAB_Boneb2_2slab_2": "5x5", "SLABBone_3": "10x10",
    "SLAB_Bone_2slab_4": "20x20",
    "SLABinhomAir2_6": "2x10",
    "Multiplug_90g_5cm_ARIA_2": "5x5", "Multiplug_PMMA_90g_3": "10x10", "Multiplug_PMMA_180g_6": "2x10",
    "Multiplug_Ti_90g_8": "15x1", "Multiplug_Ti_tondo_180g": "Ellipses",
}
# The "# images" row of the seed's test-set table, in its column order.
SEED_TEST_IMAGES_PER_COLUMN = dict(zip(FIELD_GROUPS, (3, 4, 4, 2, 4, 1, 2, 1, 1, 1), strict=True))


@pytest.fixture(scope="module")
def paper():
    return paper_composition(seed=0)


def test_module_table_is_the_seed_table_as_printed():
    for group, (cells, total) in SEED_TABLE1.items():
        got_cells, got_total = PAPER_TABLE1_AS_PRINTED[group]
        assert tuple(got_cells.get(f, 0) for f in (OMG, CIRS, SLAB, MP)) == cells
        assert got_total == total


def test_seed_table_inconsistency_is_only_in_two_rows():
    # documents the seed: rows 10x2 and 15x1 do not add up; every other row does
    bad = [g for g, (cells, total) in SEED_TABLE1.items() if sum(cells) != total]
    assert bad == ["10x2", "15x1"]
    assert sum(t for _, t in SEED_TABLE1.values()) == 213
    assert sum(sum(c) for c, _ in SEED_TABLE1.values()) == 230


def test_paper_composition_matches_table1_row_totals_and_cells(paper):
    counts = composition_counts(paper)
    assert counts["total"] == 213  # the row totals of Table 1 (the seed's text says "211")
    for group, (cells, total) in SEED_TABLE1.items():
        assert counts["by_field_group"][group] == total
        row = counts["table"][group]
        for fam, n in zip((OMG, CIRS, SLAB, MP), cells, strict=True):
            if group in ("10x2", "15x1") and fam is OMG:
                assert row.get(fam.value, 0) == 0  # the two contradictory OMG cells, read as empty
            else:
                assert row.get(fam.value, 0) == n
    assert counts["by_family"] == {"OMG": 69, "CIRS": 56, "SLAB": 44, "MP": 44}
    assert {g: {f.value: n for f, n in row.items()} for g, row in PAPER_TABLE1.items()} == counts["table"]


def test_paper_test_split_is_the_seed_test_table(paper):
    test = [s for s in paper if s.split is Split.TEST]
    assert {s.name: s.field_group for s in test} == SEED_TEST_NAMES
    assert len(test) == 23  # the seed's table lists 23 names (its text says 22)
    assert Counter(s.field_group for s in test) == Counter(
        {g: n for g, n in SEED_TEST_IMAGES_PER_COLUMN.items()}
    )
    assert sum(s.split is Split.TRAIN for s in paper) == 190
    assert [s.name for s in test] == [s.name for s in PAPER_TEST_SET]


def test_test_names_agree_with_their_parameters():
    for s in PAPER_TEST_SET:
        m = re.search(r"_(\d+)(?:gradi|g)(?:_|$)", s.name)
        assert s.rotation_deg == (int(m.group(1)) if m else 0), s.name
        if "ISOlesione" in s.name or "5cm" in s.name:
            assert s.isocenter is IsocenterMode.LESION, s.name
        else:
            assert s.isocenter is IsocenterMode.CENTER, s.name
        if s.family is MP:
            plug = {"ARIA": "air", "PMMA": "pmma", "Ti": "titanium"}
            assert s.parameters()["plug"] == next(v for k, v in plug.items() if k in s.name)
        if s.family is OMG:
            assert s.name.startswith(s.phantom)


def test_every_spec_builds_its_phantom(paper):
    seen = set()
    for s in paper:
        key = (s.family, s.phantom_parameters, s.rotation_deg, s.isocenter)
        if key in seen:
            continue
        seen.add(key)
        p = make_phantom(s.family, s.parameters(), spacing_mm=10.0, rotation_deg=s.rotation_deg,
                         isocenter=s.isocenter)
        assert p.family is s.family and p.rotation_deg == s.rotation_deg


def test_paper_composition_deterministic_and_seeded(paper):
    assert paper_composition(seed=0) == paper
    other = paper_composition(seed=1)
    test_names = [s.name for s in paper if s.split is Split.TEST]
    assert [s.name for s in other if s.split is Split.TEST] == test_names
    assert other != paper
    assert composition_counts(other)["table"] == composition_counts(paper)["table"]
    assert len({s.name for s in paper}) == len(paper)
    assert len({s.seed for s in paper}) == len(paper)


@given(n=st.integers(1, 60), seed=st.integers(0, 2**32))
@settings(max_examples=25, deadline=None)
def test_random_composition_properties(n, seed):
    specs = random_composition(n, seed)
    assert len(specs) == n
    assert sum(s.split is Split.TEST for s in specs) == round(n * 22 / 211)
    assert random_composition(n, seed) == specs
    assert all(s.field_group in FIELD_GROUPS for s in specs)
    assert len({s.name for s in specs}) == n


@pytest.mark.parametrize(
    ("field", "expected"),
    [("10x10", (10.0, 10.0, False)), ("2x10", (2.0, 10.0, False)), ("ellipse 6x10", (6.0, 10.0, True)),
     ("1.5x3", (1.5, 3.0, False))],
)
def test_field_size(field, expected):
    assert field_size_cm(field) == expected


def test_field_group():
    assert field_group("ellipse 5x5") == "Ellipses"
    assert field_group("15x1") == "15x1"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: random_composition(0), "n must be an integer > 0, got 0"),
        (lambda: random_composition(-3), "n must be an integer > 0, got -3"),
        (lambda: random_composition(5, -1), "seed must be an integer >= 0, got -1"),
        (lambda: random_composition(5, test_fraction=1.0), r"test_fraction must be in \[0, 1\)"),
        (lambda: paper_composition(seed=1.5), "seed must be an integer >= 0"),
        (lambda: field_size_cm("10 x 10"), "field must look like '10x10'"),
        (lambda: field_size_cm("0x10"), r"field sizes must be in \(0, 40\] cm"),
        (lambda: field_size_cm("50x10"), r"field sizes must be in \(0, 40\] cm"),
    ],
)
def test_bad_composition_parameters(call, match):
    with pytest.raises(ParameterError, match=match):
        call()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"rotation_deg": 45}, "rotation_deg must be one of 0, 90, 180, 270, got 45"),
        ({"mu": 0.0}, "mu must be > 0, got 0.0"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"split": "train"}, "split must be a Split"),
        ({"isocenter": "ISOcentro"}, "isocenter must be an IsocenterMode"),
        ({"family": "OMG"}, "family must be a PhantomFamily"),
        ({"field": "big"}, "field must look like"),
    ],
)
def test_pair_spec_validation(change, match):
    base = dict(name="x", family=OMG, phantom="6s10", phantom_parameters=(), field="10x10", rotation_deg=0,
                mu=100.0, isocenter=IsocenterMode.CENTER, split=Split.TRAIN, seed=0)
    base.update(change)
    with pytest.raises(ParameterError, match=match):
        PairSpec(**base)


def test_mlc_field_names_and_groups():
    from intrepid.simulate import MLC_GROUPS, mlc_kind

    assert field_size_cm("sns 10x10") == (10.0, 10.0, False)
    assert mlc_kind("sw 5x5") == "sw" and mlc_kind("10x10") is None and mlc_kind("ellipse 5x5") is None
    assert field_group("dyn 15x15") == MLC_GROUPS["dyn"] == "MLC dynamic"


def test_random_composition_mixes_mlc_fields_only_when_asked():
    plain = random_composition(40, 3)
    assert random_composition(40, 3, mlc_fraction=0.0) == plain  # the earlier compositions are unchanged
    mixed = random_composition(60, 3, mlc_fraction=0.5)
    kinds = {f.field.split(" ")[0] for f in mixed if f.field.split(" ")[0] in ("sns", "sw", "dyn")}
    n_mlc = sum(f.field.split(" ")[0] in ("sns", "sw", "dyn") for f in mixed)
    assert kinds == {"sns", "sw", "dyn"} and 15 <= n_mlc <= 45
    with pytest.raises(ParameterError, match=r"mlc_fraction must be in \[0, 1\]"):
        random_composition(5, mlc_fraction=1.5)
