"""Seed files and the mutations that the fuzz tests apply to them (hypothesis strategies).

Seeds are small valid files of every kind the readers take: a 3-slice CT series, a multi-frame RTDOSE, an
RTIMAGE (written by the DICOM tests' factories), pydicom's RT Plan and RT Structure Set, and an ``.npz``
volume. Mutations come in two families, the two campaigns of issue 15:

- byte level: flipped bytes, truncation, inserted random bytes, zeroed runs;
- tag level (parsed with pydicom, written back): a numeric value made NaN / ±inf / ±1e308 / 0 / -1 / 1e-30,
  a value multiplicity changed (a value dropped or added), a non-number written with a text VR (wrong VR),
  a text tag given two values or emptied, an element or a sequence item deleted, pixel data truncated.
"""

from __future__ import annotations

import io
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from hypothesis import strategies as st
from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

_DICOM_TESTS = str(Path(__file__).resolve().parents[1] / "dicom")
if _DICOM_TESTS not in sys.path:
    sys.path.insert(0, _DICOM_TESTS)

import dicom_factories  # noqa: E402

__all__ = ["SEED_KINDS", "Mutation", "apply_mutation", "make_seeds", "mutations"]

SEED_KINDS = ("ct", "rtdose", "rtimage", "rtplan", "rtstruct", "npz")

_NUMERIC_TEXT = ("nan", "inf", "-inf", "1e308", "-1e308", "0", "-1", "1e-30", "1e30")
_NUMERIC_VRS = {"DS", "IS", "FL", "FD", "US", "SS", "UL", "SL"}


def make_seeds(folder: Path) -> dict[str, Path]:
    """Write one valid seed of every kind into ``folder``; returns kind -> path (a folder for ``ct``)."""
    from pydicom.data import get_testdata_file

    from intrepid.dicom import write_npz
    from intrepid.geometry import Grid, Quantity, Volume

    rng = np.random.default_rng(15)
    seeds: dict[str, Path] = {}
    raw_ct = rng.integers(0, 2000, size=(3, 8, 8)).astype(np.int16)
    dicom_factories.write_ct_series_files(folder / "ct", raw_ct)
    seeds["ct"] = folder / "ct"
    dose = rng.uniform(0.0, 2.0, size=(3, 6, 5))
    seeds["rtdose"] = dicom_factories.save(dicom_factories.rtdose_dataset(dose), folder / "rtdose.dcm")
    raw = rng.integers(100, 60000, size=(16, 12)).astype(np.uint16)
    seeds["rtimage"] = dicom_factories.save(
        dicom_factories.rtimage_dataset(raw, slope=1e-5, intercept=0.0, rescale_type="GY"),
        folder / "rtimage.dcm",
    )
    for kind in ("rtplan", "rtstruct"):
        found = get_testdata_file(f"{kind}.dcm")
        assert found is not None, f"pydicom's test file {kind}.dcm is missing"
        seeds[kind] = Path(shutil.copy(str(found), folder / f"{kind}.dcm"))
    grid = Grid((3, 4, 5), (-2.0, -3.0, -4.0), (1.0, 1.5, 2.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    volume = Volume(rng.uniform(0, 2, size=(3, 4, 5)), grid, Quantity.DOSE, "Gy")
    seeds["npz"] = write_npz(volume, folder / "volume.npz")
    return seeds


@dataclass(frozen=True)
class Mutation:
    """One mutation: ``family`` (bytes / tag / npz) and its drawn parameters, printed on failure."""

    family: str
    params: tuple[Any, ...]


@st.composite
def _byte_mutation(draw: Any) -> Mutation:
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "zero_run"]))
    where = draw(st.floats(0.0, 1.0))
    count = draw(st.integers(1, 16))
    seed = draw(st.integers(0, 2**16))
    return Mutation("bytes", (kind, where, count, seed))


@st.composite
def _tag_mutation(draw: Any) -> Mutation:
    index = draw(st.integers(0, 10_000))
    how = draw(
        st.sampled_from(
            [
                "number",
                "number",
                "number",
                "more_values",
                "fewer_values",
                "wrong_vr",
                "two_texts",
                "empty",
                "delete",
                "delete_item",
                "truncate_pixels",
            ]
        )
    )
    text = draw(st.sampled_from(_NUMERIC_TEXT))
    return Mutation("tag", (index, how, text))


@st.composite
def _npz_mutation(draw: Any) -> Mutation:
    key = draw(st.sampled_from(["array", "origin_mm", "spacing_mm", "direction", "units", "quantity"]))
    how = draw(
        st.sampled_from(
            ["nan", "inf", "complex", "huge", "zero", "shape", "object_text", "delete", "declare_huge"]
        )
    )
    return Mutation("npz", (key, how))


def mutations(kind: str) -> st.SearchStrategy[Mutation]:
    """Mutations that make sense for a seed of ``kind``."""
    if kind == "npz":
        return st.one_of(_npz_mutation(), _byte_mutation())
    return st.one_of(_tag_mutation(), _tag_mutation(), _byte_mutation())


def _mutate_bytes(data: bytes, params: tuple[Any, ...]) -> bytes:
    kind, where, count, seed = params
    rnd = random.Random(seed)
    pos = min(int(where * len(data)), max(len(data) - 1, 0))
    buf = bytearray(data)
    if kind == "flip":
        for _ in range(count):
            p = rnd.randrange(len(buf))
            buf[p] ^= 1 << rnd.randrange(8)
    elif kind == "truncate":
        del buf[pos:]
    elif kind == "insert":
        buf[pos:pos] = bytes(rnd.randrange(256) for _ in range(count))
    else:
        buf[pos : pos + count * 8] = bytes(min(count * 8, len(buf) - pos))
    return bytes(buf)


def _elements(ds: Dataset) -> list[tuple[Dataset, Any]]:
    out: list[tuple[Dataset, Any]] = []
    for elem in ds:
        out.append((ds, elem.tag))
        if elem.VR == "SQ":
            for item in elem.value or []:
                out.extend(_elements(item))
    return out


def _mutate_tag(data: bytes, params: tuple[Any, ...]) -> bytes:
    index, how, text = params
    with _lenient_pydicom():
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        elements = [(p, t) for p, t in _elements(ds) if t.group != 0x0002]
        parent, tag = elements[index % len(elements)]
        elem = parent[tag]
        vr = str(elem.VR)
        if how == "truncate_pixels" or tag == 0x7FE00010:
            if tag == 0x7FE00010 and isinstance(elem.value, bytes):
                elem.value = elem.value[: len(elem.value) // 2]
            else:
                del parent[tag]
        elif how == "delete":
            del parent[tag]
        elif how == "delete_item" and vr == "SQ" and len(elem.value):
            del elem.value[0]
        elif how == "empty":
            elem.value = [] if vr == "SQ" else None
        elif vr in _NUMERIC_VRS:
            _mutate_number(parent, tag, elem, vr, how, text)
        elif how == "two_texts" and vr in ("CS", "LO", "SH", "UI"):
            elem.value = ["RTDOSE", "CT"]
        elif how == "wrong_vr" and vr != "SQ":
            parent[tag] = DataElement(tag, "LO", "not-a-number")
        else:
            del parent[tag]
        out = io.BytesIO()
        ds.save_as(out)
    return out.getvalue()


def _mutate_number(parent: Dataset, tag: Any, elem: Any, vr: str, how: str, text: str) -> None:
    values = list(elem.value) if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
    if how == "more_values":
        values = values + values[-1:] if values else [1]
        elem.value = values
    elif how == "fewer_values":
        elem.value = values[:-1] if len(values) > 1 else None
    elif how == "wrong_vr":
        parent[tag] = DataElement(tag, "LO", "abc")
    elif vr in ("DS", "IS"):
        number = (
            text
            if vr == "DS"
            else {
                "nan": "99999999",
                "inf": "2147483647",
                "-inf": "-2147483648",
                "1e308": "999999999999",
                "-1e308": "-99999999",
            }.get(text, "0")
        )
        elem.value = [number] * max(len(values), 1) if len(values) > 1 else number
    elif vr in ("FL", "FD"):
        elem.value = float(text)
    else:  # binary integers: the extremes of their range
        elem.value = (
            {"US": 65535, "SS": -32768, "UL": 4294967295, "SL": -2147483648}[vr] if text != "0" else 0
        )


class _lenient_pydicom:
    """Let pydicom write invalid values (the point of a mutation), restoring its settings after."""

    def __enter__(self) -> None:
        self.saved = (
            pydicom_config.settings.writing_validation_mode,
            pydicom_config.settings.reading_validation_mode,
        )
        pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE

    def __exit__(self, *exc: object) -> None:
        (
            pydicom_config.settings.writing_validation_mode,
            pydicom_config.settings.reading_validation_mode,
        ) = self.saved


def _mutate_npz(path: Path, params: tuple[Any, ...]) -> None:
    key, how = params
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    value = arrays.get(key)
    if how == "delete" or value is None:
        arrays.pop(key, None)
    elif how == "declare_huge":
        _write_declared_huge(path, arrays)
        return
    elif how == "object_text":
        arrays[key] = np.asarray(["a", "b"])
    elif how == "shape":
        arrays[key] = np.zeros((2, 2, 2, 2)) if key == "array" else np.zeros(7)
    elif value.dtype.kind in "fiu":
        v = value.astype(float)
        if how == "nan":
            v = np.full_like(v, np.nan)
        elif how == "inf":
            v = np.full_like(v, np.inf)
        elif how == "huge":
            v = v * 1e300
        elif how == "zero":
            v = np.zeros_like(v)
        elif how == "complex":
            v = v + 1j
        arrays[key] = v
    else:
        arrays[key] = np.asarray(1e300) if how == "huge" else np.asarray("??")
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _write_declared_huge(path: Path, arrays: dict[str, Any]) -> None:
    """An archive whose ``array`` header declares 8 GiB but whose data are a few bytes (a size bomb)."""
    import zipfile

    header = {"descr": "<f8", "fortran_order": False, "shape": (1024, 1024, 1024)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, v in arrays.items():
            if k == "array":
                buf = io.BytesIO()
                np.lib.format.write_array_header_1_0(buf, header)
                buf.write(b"\0" * 64)
                zf.writestr("array.npy", buf.getvalue())
            else:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(v), allow_pickle=False)
                zf.writestr(f"{k}.npy", buf.getvalue())


def apply_mutation(kind: str, seed: Path, mutation: Mutation, work: Path) -> tuple[Path, Path]:
    """Copy the seed into ``work`` and mutate it; returns (path to read, the mutated file)."""
    if kind == "ct":
        target_folder = work / "ct"
        shutil.copytree(seed, target_folder)
        victim = sorted(target_folder.iterdir())[mutation.params[0] % 3 if mutation.family == "tag" else 0]
        read_path = target_folder
    else:
        victim = work / seed.name
        shutil.copy(seed, victim)
        read_path = victim
    if mutation.family == "bytes":
        victim.write_bytes(_mutate_bytes(victim.read_bytes(), mutation.params))
    elif mutation.family == "tag":
        victim.write_bytes(_mutate_tag(victim.read_bytes(), mutation.params))
    else:
        _mutate_npz(victim, mutation.params)
    return read_path, victim
