"""Drawings of a designed aperture over the beam's-eye-view projections of the structures (SVG and PNG).

The view is the beam's-eye view: beam-frame x to the right, y upwards, in mm at the chosen plane (the
isocentre plane by default, or the device plane at true size).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from intrepid.devices._aperture import ApertureResult
from intrepid.devices._aperture_params import AperturePlane, StructureRole
from intrepid.dicom import atomic_write
from intrepid.errors import ParameterError

__all__ = ["aperture_png", "aperture_svg"]

#: (stroke colour, fill colour or None, dash pattern or None) per role.
_STYLE: dict[StructureRole, tuple[str, str | None, str | None]] = {
    StructureRole.TARGET: ("#d62728", "#d62728", None),
    StructureRole.TARGET_MARGIN: ("#d62728", None, "4 2"),
    StructureRole.ORGAN: ("#1f77b4", "#1f77b4", None),
    StructureRole.ORGAN_CLIP: ("#1f77b4", None, "4 2"),
    StructureRole.CENTERLINE: ("#ff7f0e", None, "1 1"),
    StructureRole.CENTERLINE_BAND: ("#ff7f0e", "#ff7f0e", None),
    StructureRole.OVERRIDE: ("#9467bd", None, "2 2"),
    StructureRole.MOUNT: ("#7f7f7f", None, None),
}


def _check(result: ApertureResult, plane: AperturePlane) -> None:
    if not isinstance(result, ApertureResult):
        raise ParameterError(f"result must be an ApertureResult, got {type(result).__name__}")
    if not isinstance(plane, AperturePlane):
        raise ParameterError(f"plane must be an AperturePlane, got {plane!r}")


def _layers(result: ApertureResult, plane: AperturePlane) -> list[tuple[str, StructureRole | None, Any]]:
    """(label, role, geometry at the plane) for each structure, then the opening (role None)."""
    out: list[tuple[str, StructureRole | None, Any]] = []
    for s in result.structures:
        geom = s.shape_device if plane is AperturePlane.DEVICE else result.to_iso(s.shape_device)
        out.append((s.name, s.role, geom))
    opening = result.opening_device if plane is AperturePlane.DEVICE else result.opening_iso
    out.append(("aperture opening", None, opening))
    return out


def _paths(geom: Any) -> list[np.ndarray]:
    """Coordinate arrays of every ring / line of a geometry."""
    import shapely
    from shapely.geometry import LineString, Polygon

    rings: list[np.ndarray] = []
    for part in shapely.get_parts(geom):
        if isinstance(part, Polygon) and not part.is_empty:
            rings.append(np.asarray(part.exterior.coords))
            rings.extend(np.asarray(h.coords) for h in part.interiors)
        elif isinstance(part, LineString) and not part.is_empty:
            rings.append(np.asarray(part.coords))
    return rings


def _view_bounds(layers: list[tuple[str, StructureRole | None, Any]]) -> tuple[float, float, float, float]:
    boxes = [g.bounds for _, role, g in layers if not g.is_empty and role is not StructureRole.MOUNT]
    if not boxes:
        boxes = [g.bounds for _, _, g in layers if not g.is_empty] or [(-50.0, -50.0, 50.0, 50.0)]
    b = np.asarray(boxes)
    x0, y0, x1, y1 = float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())
    pad = 0.1 * max(x1 - x0, y1 - y0, 10.0)
    return x0 - pad, y0 - pad, x1 + pad, y1 + pad


def aperture_svg(
    result: ApertureResult, path: str | os.PathLike[str], *, plane: AperturePlane = AperturePlane.ISOCENTER
) -> Path:
    """Write an SVG drawing of the aperture over the structures' projections (written atomically).

    Parameters
    ----------
    result : ApertureResult
    path : path-like
        Output ``.svg`` file.
    plane : AperturePlane
        ISOCENTER (default) or DEVICE (true size on the device).

    Returns
    -------
    Path
    """
    _check(result, plane)
    layers = _layers(result, plane)
    x0, y0, x1, y1 = _view_bounds(layers)
    w, h = x1 - x0, y1 - y0
    stroke = max(w, h) / 400.0
    size_px = 720.0
    legend_h = 0.06 * h * (len(layers) + 1) / 2.0
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size_px:.0f}" '
        f'height="{size_px * (h + legend_h) / w:.0f}" '
        f'viewBox="{x0:.3f} {-y1:.3f} {w:.3f} {h + legend_h:.3f}">',
        f"<title>Aperture, beam's-eye view at the {plane.value} plane (mm)</title>",
        f'<rect x="{x0:.3f}" y="{-y1:.3f}" width="{w:.3f}" height="{h:.3f}" fill="white"/>',
        '<g transform="scale(1,-1)">',
        f'<line x1="{x0:.3f}" y1="0" x2="{x1:.3f}" y2="0" stroke="#bbbbbb" stroke-width="{stroke:.4f}"/>',
        f'<line x1="0" y1="{y0:.3f}" x2="0" y2="{y1:.3f}" stroke="#bbbbbb" stroke-width="{stroke:.4f}"/>',
    ]
    legend: list[tuple[str, str]] = []
    for label, role, geom in layers:
        if geom.is_empty:
            continue
        if role is None:
            colour, fill, dash, width = "#000000", None, None, 2.5 * stroke
        else:
            colour, fill, dash = _STYLE[role]
            width = stroke
        d = " ".join(
            "M " + " L ".join(f"{x:.3f} {y:.3f}" for x, y in ring[:, :2]) for ring in _paths(geom)
        )
        fill_attr = f'fill="{fill}" fill-opacity="0.2" fill-rule="evenodd"' if fill else 'fill="none"'
        dash_attr = ""
        if dash:
            pattern = " ".join(f"{float(v) * stroke:.3f}" for v in dash.split())
            dash_attr = f' stroke-dasharray="{pattern}"'
        lines.append(
            f'<path d="{d}" {fill_attr} stroke="{colour}" stroke-width="{width:.4f}"{dash_attr}>'
            f"<title>{escape(label)}</title></path>"
        )
        legend.append((label, colour))
    rect = result.field_rectangle_iso if plane is AperturePlane.ISOCENTER else result.field_rectangle_device
    if rect is not None:
        lines.append(
            f'<rect x="{rect.x_min_mm:.3f}" y="{rect.y_min_mm:.3f}" width="{rect.width_mm:.3f}" '
            f'height="{rect.height_mm:.3f}" fill="none" stroke="#2ca02c" stroke-width="{stroke:.4f}" '
            f'stroke-dasharray="{stroke:.3f} {2 * stroke:.3f}"><title>field rectangle</title></rect>'
        )
        legend.append((f"field rectangle {rect.width_mm:.1f} x {rect.height_mm:.1f} mm", "#2ca02c"))
    lines.append("</g>")
    font = 0.025 * h
    for n, (label, colour) in enumerate(legend):
        col, row = n % 2, n // 2
        lx = x0 + 0.02 * w + col * 0.5 * w
        ly = -y0 + font * 1.5 * (row + 1)
        lines.append(
            f'<text x="{lx:.3f}" y="{ly:.3f}" font-size="{font:.3f}" font-family="sans-serif" '
            f'fill="{colour}">{escape(label)}</text>'
        )
    lines.append(
        f'<text x="{x0 + 0.02 * w:.3f}" y="{-y1 + 1.5 * font:.3f}" font-size="{font:.3f}" '
        f'font-family="sans-serif">BEV at the {plane.value} plane: area {_area(result, plane):.1f} mm², '
        f"x right, y up (mm)</text>"
    )
    lines.append("</svg>")
    text = "\n".join(lines) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return atomic_write(path, write)


def _area(result: ApertureResult, plane: AperturePlane) -> float:
    return result.area_iso_mm2 if plane is AperturePlane.ISOCENTER else result.area_device_mm2


def aperture_png(
    result: ApertureResult,
    path: str | os.PathLike[str],
    *,
    plane: AperturePlane = AperturePlane.ISOCENTER,
    dpi: int = 120,
    title: str | None = None,
) -> Path:
    """Write a PNG drawing (matplotlib, Agg) of the aperture over the structures' projections.

    Parameters
    ----------
    result : ApertureResult
    path : path-like
        Output ``.png`` file (written atomically).
    plane : AperturePlane
        ISOCENTER (default) or DEVICE.
    dpi : int
        Resolution of the 7 × 7 inch figure.
    title : str, optional
        Figure title (default: plane and area).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MplPath

    _check(result, plane)
    if int(dpi) <= 0:
        raise ParameterError(f"dpi must be > 0, got {dpi}")
    layers = _layers(result, plane)
    x0, y0, x1, y1 = _view_bounds(layers)
    fig, ax = plt.subplots(figsize=(7, 7), dpi=int(dpi))
    try:
        ax.axhline(0.0, color="#bbbbbb", lw=0.8)
        ax.axvline(0.0, color="#bbbbbb", lw=0.8)
        for label, role, geom in layers:
            if geom.is_empty:
                continue
            rings = _paths(geom)
            if role is None:
                colour, fill, dash, lw = "#000000", None, None, 2.2
            else:
                colour, fill, dash = _STYLE[role]
                lw = 1.2
            style = "--" if dash else "-"
            if fill and geom.geom_type in ("Polygon", "MultiPolygon"):
                verts = np.concatenate([r[:, :2] for r in rings])
                codes = np.concatenate(
                    [[MplPath.MOVETO] + [MplPath.LINETO] * (len(r) - 2) + [MplPath.CLOSEPOLY] for r in rings]
                )
                ax.add_patch(PathPatch(MplPath(verts, codes), facecolor=fill, alpha=0.2, edgecolor="none"))
            for n, ring in enumerate(rings):
                ax.plot(ring[:, 0], ring[:, 1], style, color=colour, lw=lw, label=label if n == 0 else None)
        iso = plane is AperturePlane.ISOCENTER
        rect = result.field_rectangle_iso if iso else result.field_rectangle_device
        if rect is not None:
            xs = [rect.x_min_mm, rect.x_max_mm, rect.x_max_mm, rect.x_min_mm, rect.x_min_mm]
            ys = [rect.y_min_mm, rect.y_min_mm, rect.y_max_mm, rect.y_max_mm, rect.y_min_mm]
            ax.plot(xs, ys, ":", color="#2ca02c", lw=1.0,
                    label=f"field rectangle {rect.width_mm:.1f} × {rect.height_mm:.1f} mm")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_xlabel(f"x (mm, beam frame, {plane.value} plane)")
        ax.set_ylabel(f"y (mm, beam frame, {plane.value} plane)")
        ax.set_title(title or f"Aperture, beam's-eye view at the {plane.value} plane: "
                     f"{_area(result, plane):.0f} mm²")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3, frameon=False)
        fig.tight_layout()

        def write(tmp: Path) -> None:
            fig.savefig(tmp, format="png")

        return atomic_write(path, write)
    finally:
        plt.close(fig)
