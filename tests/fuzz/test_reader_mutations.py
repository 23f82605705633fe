"""Reader mutation fuzzing (issue 15, campaign 2): every mutated file is refused in one line naming the file,
or read into a sane result — never a traceback, never a NaN dose or an absurd geometry.

Each reader is also driven through ``intrepid info`` (exit 0, or 1 with one line on stderr naming the file).
Short seeded run by default; ``INTREPID_FUZZ_EXAMPLES=N`` for a long random one (see ``conftest.py``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fuzz_mutations import Mutation, apply_mutation, mutations
from fuzz_oracle import FUZZ, outcome_of
from hypothesis import given, settings
from hypothesis import strategies as st

from intrepid import dicom
from intrepid.cli import main
from intrepid.errors import DicomError

# Mutated files make pydicom warn about invalid values: expected here, and not what is tested.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

READERS: dict[str, Callable[[Path], Any]] = {
    "ct": dicom.read_ct_series,
    "rtdose": dicom.read_rtdose,
    "rtimage": dicom.read_rtimage,
    "rtplan": dicom.read_rtplan,
    "rtstruct": dicom.read_rtstruct,
    "npz": dicom.read_npz,
}


def _names(read_path: Path, victim: Path) -> tuple[str, ...]:
    return (str(read_path), str(victim))


@pytest.mark.parametrize("kind", sorted(READERS))
def test_seed_files_are_read(seeds: dict[str, Path], kind: str) -> None:
    """The unmutated seeds are valid: the oracle accepts them (a sanity check of the harness itself)."""
    outcome, _ = outcome_of(lambda: READERS[kind](seeds[kind]), (str(seeds[kind]),))
    assert outcome.value == "accepted"


def _fuzz_one(
    seeds: dict[str, Path], kind: str, mutation: Mutation, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            read_path, victim = apply_mutation(kind, seeds[kind], mutation, Path(tmp))
        except (ValueError, TypeError, OSError, KeyError, IndexError, AttributeError, OverflowError):
            return  # pydicom could not even write this mutation: nothing to read
        outcome_of(lambda: READERS[kind](read_path), _names(read_path, victim))
        capsys.readouterr()
        status = main(["info", str(read_path)])
        err = capsys.readouterr().err
        assert status in (0, 1), f"intrepid info exited {status}: {err!r}"
        if status == 1:
            lines = [line for line in err.strip().splitlines() if not line.startswith(("WARNING ", "INFO "))]
            assert len(lines) == 1 and lines[0].startswith("intrepid info: error: "), err
            assert "internal error" not in err and (str(read_path) in err or str(victim) in err), err


@pytest.mark.parametrize("kind", sorted(READERS))
def test_mutated_files_are_refused_cleanly_or_read_sanely(
    seeds: dict[str, Path], kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @settings(FUZZ)
    @given(mutation=mutations(kind))
    def run(mutation: Mutation) -> None:
        _fuzz_one(seeds, kind, mutation, capsys)

    run()


@pytest.mark.parametrize(
    ("kind", "keyword", "text"),
    [
        ("ct", "RescaleIntercept", "nan"),
        ("ct", "RescaleIntercept", "1e308"),
        ("ct", "RescaleSlope", "-inf"),
        ("ct", "RescaleSlope", "0"),
        ("ct", "PixelSpacing", "1e-30"),
        ("rtdose", "DoseGridScaling", "1e300"),
        ("rtdose", "DoseGridScaling", "nan"),
        ("rtimage", "RTImageSID", "1e-9"),
        ("rtimage", "RTImageSID", "900"),  # SID below the SAD of 1000 mm
        ("rtimage", "GantryAngle", "nan"),
        ("rtimage", "ImagePlanePixelSpacing", "1e-30"),
        ("rtplan", "GantryAngle", "nan"),
        ("rtplan", "BeamMeterset", "-inf"),
    ],
)
def test_named_examples_of_issue_15_are_refused(
    seeds: dict[str, Path], kind: str, keyword: str, text: str
) -> None:
    """The examples the issue lists, each refused with the file and the tag in the message."""
    import pydicom

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if kind == "ct":
            folder = work / "ct"
            import shutil

            shutil.copytree(seeds["ct"], folder)
            victim = sorted(folder.iterdir())[0]
            read_path = folder
        else:
            victim = work / seeds[kind].name
            victim.write_bytes(seeds[kind].read_bytes())
            read_path = victim
        from fuzz_mutations import _lenient_pydicom

        with _lenient_pydicom():
            ds = pydicom.dcmread(victim, force=True)
            targets = [e for e in ds.iterall() if e.keyword == keyword]
            assert targets, f"seed {kind} has no {keyword}"
            for elem in targets:
                count = len(elem.value) if elem.VM > 1 else 1
                elem.value = [text] * count if count > 1 else text
            ds.save_as(victim)
        with pytest.raises(DicomError) as info:
            READERS[kind](read_path)
        assert str(victim) in str(info.value) or str(read_path) in str(info.value)
        assert keyword in str(info.value) or "rescal" in str(info.value).lower()


def test_random_bytes_are_not_dicom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``head -c 4096 /dev/urandom > g.dcm; intrepid info g.dcm`` must fail, naming the file."""
    rng = __import__("numpy").random.default_rng(4096)
    for n in range(20):
        path = tmp_path / f"g{n}.dcm"
        path.write_bytes(rng.integers(0, 256, size=4096, dtype="uint8").tobytes())
        assert main(["info", str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"intrepid info: error: {path}: ") and err.count("\n") == 1


@settings(FUZZ)
@given(data=st.binary(min_size=0, max_size=2048))
def test_arbitrary_bytes_through_read_volume(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("x.dcm", "x.npz", "x.nii", "x.nrrd"):
            path = Path(tmp) / name
            path.write_bytes(data)
            outcome_of(lambda p=path: dicom.read_volume(p), (str(path),))


#: Mutations that long random runs (INTREPID_FUZZ_EXAMPLES=300) once found to break a reader; kept as
#: regressions (the seeds are deterministic).
REGRESSIONS = [
    ("rtplan", Mutation("bytes", ("zero_run", 0.875, 6, 0))),  # pydicom OSError inside a deferred sequence
    ("rtplan", Mutation("tag", (1939, "number", "1e308"))),  # a dose specification point at 1e308 mm
    ("rtimage", Mutation("bytes", ("flip", 0.0, 1, 49))),  # BytesLengthException in the file meta
    ("rtplan", Mutation("bytes", ("flip", 0.0, 6, 11))),
    ("rtstruct", Mutation("bytes", ("zero_run", 0.794921875, 12, 0))),  # NotImplementedError: VR 'NONE'
    ("rtdose", Mutation("tag", (417, "fewer_values", "nan"))),
    ("npz", Mutation("npz", ("origin_mm", "huge"))),
    ("npz", Mutation("npz", ("direction", "huge"))),
    ("npz", Mutation("npz", ("array", "huge"))),
    ("npz", Mutation("npz", ("origin_mm", "complex"))),
    ("npz", Mutation("npz", ("array", "declare_huge"))),
]


@pytest.mark.parametrize(("kind", "mutation"), REGRESSIONS, ids=[f"{k}-{m.params}" for k, m in REGRESSIONS])
def test_regressions_found_by_long_runs(
    seeds: dict[str, Path], kind: str, mutation: Mutation, capsys: pytest.CaptureFixture[str]
) -> None:
    _fuzz_one(seeds, kind, mutation, capsys)
