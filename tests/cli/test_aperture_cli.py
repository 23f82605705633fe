"""``intrepid aperture`` on a synthetic CT + RTSTRUCT (and on the real RT Ion Plan where available)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from intrepid.cli import main
from intrepid.dicom import StructureDefinition, new_uid, write_ct_series, write_rtstruct
from intrepid.geometry import Grid, Quantity, Volume

R_PTV = 20.0  # sphere radius, mm, centred on the isocentre


def _circle_contours(centre: tuple[float, float, float], radius: float, dz: float) -> tuple[np.ndarray, ...]:
    t = np.linspace(0.0, 2 * np.pi, 120, endpoint=False)
    out = []
    for z in np.arange(centre[2] - radius + dz / 2, centre[2] + radius, dz):
        rho = math.sqrt(radius**2 - (z - centre[2]) ** 2)
        out.append(
            np.column_stack([centre[0] + rho * np.cos(t), centre[1] + rho * np.sin(t), np.full_like(t, z)])
        )
    return tuple(out)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("aperture_case")
    uid = new_uid()
    grid = Grid.from_bounds((-90.0, -90.0, -60.0), (90.0, 90.0, 60.0), (3.0, 3.0, 3.0))
    ct = Volume(np.zeros(grid.shape, dtype=np.int16), grid, Quantity.CT_NUMBER, "HU", uid)
    series = write_ct_series(ct, folder / "CT")
    t = np.linspace(0.0, 2 * np.pi, 60, endpoint=False)
    cord = tuple(
        np.column_stack([10.0 + 4 * np.cos(t), 60.0 + 4 * np.sin(t), np.full_like(t, z)])
        for z in np.arange(-57.0, 58.0, 3.0)
    )
    structures = [
        StructureDefinition("PTV", contours=_circle_contours((0.0, 0.0, 0.0), R_PTV, 3.0), roi_type="PTV"),
        StructureDefinition("Behind", contours=_circle_contours((0.0, 60.0, 0.0), 8.0, 3.0)),
        StructureDefinition("Side", contours=_circle_contours((22.0, 0.0, 0.0), 8.0, 3.0)),
        StructureDefinition("Cord", contours=cord),
    ]
    rtstruct = write_rtstruct(folder / "RS.dcm", structures, series)
    return {"folder": folder, "ct": folder / "CT", "rs": rtstruct}


def _base(case: dict[str, Path], out: Path) -> list[str]:
    return [
        "aperture",
        "--ct",
        str(case["ct"]),
        "--struct",
        str(case["rs"]),
        "--target",
        "PTV",
        "--gantry",
        "0",
        "--sad",
        "2000",
        "2000",
        "--isocenter",
        "0",
        "0",
        "0",
        "--downstream-edge",
        "300",
        "--margin",
        "5",
        "--mill-radius",
        "2",
        "--out",
        str(out),
    ]


def test_aperture_json_svg_png(
    case: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ap.json"
    rc = main(
        [
            *_base(case, out),
            "--json",
            "--svg",
            str(tmp_path / "a.svg"),
            "--png",
            str(tmp_path / "a.png"),
            "--smooth",
            "0.5",
            "--iterations",
            "2",
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    data = json.loads(out.read_text())
    assert printed == data
    for key in (
        "area_iso_mm2",
        "area_device_mm2",
        "perimeter_mm",
        "polygons_iso_mm",
        "polygons_device_mm",
        "settings",
        "geometry",
        "field_rectangle_iso_mm",
        "inputs",
    ):
        assert key in data
    s = data["settings"]
    assert (s["target_margin_mm"], s["mill_radius_mm"], s["downstream_edge_mm"]) == (5.0, 2.0, 300.0)
    assert (s["smoothing"], s["smoothing_iterations"], s["mill_mode"]) == (0.5, 2, "open")
    assert data["geometry"]["sad_mm"] == [2000.0, 2000.0]
    # Sphere of radius 20 at the isocentre: device-plane circle of 1700·20/√(2000² − 20²) + 5 mm. The ROI is
    # meshed from 3 mm contour planes with half-slice end caps, so its widest section is the equator's
    # (contours at z = ±1.5 mm: radius √(400 − 2.25)); 2 % covers that and the 1 mm meshing.
    r_dev = 1700.0 * R_PTV / math.sqrt(2000.0**2 - R_PTV**2) + 5.0
    assert data["area_device_mm2"] == pytest.approx(math.pi * r_dev**2, rel=0.02)
    assert data["area_iso_mm2"] == pytest.approx(data["area_device_mm2"] * (2000.0 / 1700.0) ** 2, rel=1e-9)
    assert (tmp_path / "a.svg").read_text().startswith("<?xml")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert data["inputs"]["isocenter_inside_ct"] is True


def test_aperture_organs_planes_mount_and_overrides(case: dict[str, Path], tmp_path: Path) -> None:
    csv_file = tmp_path / "add.csv"
    csv_file.write_text("x_mm,y_mm\n-60,-5\n-50,-5\n-50,5\n-60,5\n")
    json_file = tmp_path / "limit.json"
    json_file.write_text(
        json.dumps({"plane": "device", "polygons": [[[-80, -80], [80, -80], [80, 80], [-80, 80]]]})
    )
    out = tmp_path / "ap.json"
    rc = main(
        [
            *_base(case, out),
            "--organ",
            "Side:1",
            "--organ",
            "Behind:2:occlude",
            "--centerline",
            "Cord:4",
            "--half-plane",
            "0",
            "15",
            "90",
            "--corner-plane",
            "0",
            "-10",
            "180",
            "270",
            "--override",
            f"{csv_file}:add",
            "--override",
            f"{json_file}:limit",
            "--mount",
            "circle:70",
            "--keep-islands",
            "--mill-mode",
            "both",
        ]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["organs"] == [
        {"name": "Side", "margin_mm": 1.0, "occlude_by_target": False},
        {"name": "Behind", "margin_mm": 2.0, "occlude_by_target": True},
    ]
    assert data["centerlines"][0]["name"] == "Cord" and data["centerlines"][0]["width_mm"] == 4.0
    assert data["settings"]["half_planes"] == [{"origin_mm": [0.0, 15.0], "angle_deg": 90.0}]
    assert data["settings"]["corner_planes"][0]["angle2_deg"] == 270.0
    assert data["settings"]["mount"] == {"shape": "circle", "radius_mm": 70.0}
    assert [o["mode"] for o in data["overrides"]] == ["add", "limit"]
    assert data["overrides"][0]["plane"] == "isocenter"
    steps = [s["step"] for s in data["step_areas_mm2"]]
    assert steps[:5] == [
        "target_projection",
        "target_margin",
        "organ:Side",
        "organ:Behind",
        "centerline:Cord",
    ]
    # the half plane removed everything above y = 15 mm
    ys = [p[1] for poly in data["polygons_device_mm"] for p in poly["exterior"]]
    assert max(ys) <= 15.0 + 1e-6


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--organ", "Side"], "--organ must be NAME:MARGIN"),
        (["--organ", "Side:wide"], "MARGIN must be a number"),
        (["--mount", "oval:3"], "--mount must be circle:R or rect:W:H"),
        (["--override", "x.csv:grow"], "--override must be FILE:add or FILE:limit"),
        (["--centerline", "Cord"], "--centerline must be NAME:WIDTH"),
        (["--smooth", "2"], r"argument --smooth: must be in \[0, 1\]"),
        (["--target", "Nope"], "no ROI 'Nope'"),
    ],
)
def test_aperture_bad_options(
    case: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "ap.json"
    assert main([*_base(case, out), *extra]) in (1, 2)  # 2: refused by argparse, 1: by the command
    err = capsys.readouterr().err
    assert err.startswith("intrepid aperture: error:")
    import re

    assert re.search(message, err)
    assert not out.exists()


def test_aperture_geometry_options_are_checked(
    case: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ap.json"
    args = [
        "aperture",
        "--ct",
        str(case["ct"]),
        "--struct",
        str(case["rs"]),
        "--target",
        "PTV",
        "--margin",
        "5",
        "--mill-radius",
        "2",
        "--out",
        str(out),
    ]
    assert main([*args, "--gantry", "0"]) == 1
    assert "without --plan, --sad, --isocenter must be given" in capsys.readouterr().err
    assert main([*args, "--gantry", "0", "--sad", "2000", "2000", "--isocenter", "0", "0", "0"]) == 1
    assert "--downstream-edge MM is required" in capsys.readouterr().err
    assert main([*args, "--plan", "x.dcm", "--gantry", "0"]) == 1
    assert "--gantry cannot be combined with --plan" in capsys.readouterr().err


@pytest.mark.external
def test_aperture_with_the_real_ion_plan(case: dict[str, Path], tmp_path: Path, external_data: Path) -> None:
    out = tmp_path / "ap.json"
    plan = external_data / "ion-plan" / "rtip_demo.dcm"
    rc = main(
        [
            "aperture",
            "--ct",
            str(case["ct"]),
            "--struct",
            str(case["rs"]),
            "--target",
            "PTV",
            "--plan",
            str(plan),
            "--beam",
            "1",
            "--margin",
            "3",
            "--mill-radius",
            "2.38",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["geometry"]["sad_mm"] == [1800.0, 2000.0] and data["geometry"]["dual_source"] is True
    # the plan's PATIENT_SIDE block: tray 192.27 mm, 30 mm thick -> downstream face 162.27 mm from isocentre
    assert data["settings"]["downstream_edge_mm"] == pytest.approx(162.27, abs=1e-3)
    assert data["settings"]["thickness_mm"] == 30.0
    sx, sy = data["scale_device_to_iso"]
    assert sx == pytest.approx(1800.0 / (1800.0 - 162.27), rel=1e-6)
    assert sy == pytest.approx(2000.0 / (2000.0 - 162.27), rel=1e-6)


def test_aperture_outputs_are_all_or_nothing(
    case: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out a.json with --svg in a missing folder: the SVG fails, so a.json is not written either, no
    temporary file is left, and the error names the SVG's destination (not a temporary name)."""
    out = tmp_path / "ap.json"
    svg = tmp_path / "missing" / "ap.svg"
    assert main([*_base(case, out), "--svg", str(svg)]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if " error: " in line]
    assert len(errors) == 1 and str(svg.parent) in errors[0] and ".tmp-" not in err
    assert not out.exists()
    assert not list(tmp_path.glob(".tmp-*"))
    # and with a writable SVG both appear, and the command says what it wrote
    svg = tmp_path / "ap.svg"
    assert main([*_base(case, out), "--svg", str(svg)]) == 0
    assert out.is_file() and svg.is_file()
    assert f"wrote {out}, {svg}" in capsys.readouterr().err
