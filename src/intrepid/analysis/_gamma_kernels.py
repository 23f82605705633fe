"""Compiled (numba) kernel of the exact gamma index on the Freudenthal (Kuhn) simplex interpolant.

The evaluated distribution is interpolated linearly on the Kuhn simplices of its grid (each cell of the
regular grid cut into ``n!`` simplices along its main diagonal; Ju et al. 2008). In the scaled space
``(x / DTA, D / ΔD)`` the interpolant is a union of simplices and γ² is the squared distance of the
reference point to that union. The minimum over a union of closed simplices is attained in the relative
interior of exactly one face ``F`` (of any dimension) and there it equals the unconstrained minimum over
the affine hull of ``F``. Hence

    γ² = min over faces F whose affine-hull minimiser lies in F of that affine-hull minimum,

and because an affine-hull minimum is never larger than the minimum over the face itself, faces whose
minimiser lies outside can simply be skipped. Every face of the triangulation is visited once, in the cell
of its lowest vertex ("base cell"). For a face with vertex chain ``c, c + e_B1, c + e_B1 + e_B2, ...``
(``B_l`` disjoint sets of axes) the Gram matrix in the increment basis is ``diag(P) + δ δᵀ`` (diagonal
spatial part, rank-one dose part), so the minimiser follows in closed form from the Sherman–Morrison
formula in ``O(m)`` operations, with the simplex constraints ``1 ≥ τ_1 ≥ … ≥ τ_m ≥ 0``.

Cells are visited in order of a lower bound on their distance from the reference point and the search stops
as soon as that bound reaches the current best γ² (each cell is also skipped when the sum of its spatial
and dose-range bounds cannot beat the best): the result is the exact minimum, not a sampled one. Within a
cell, each full simplex is first bounded by its hull minimum in closed form, ``g_T(r)² / (1 + |∇g_T|²)``
(``g_T`` its affine dose extended to the point), which also bounds its faces; each face is then bounded by
its bounding box plus its dose range before its exact minimum is computed. The winning value is recomputed
from its residuals, which keeps small γ accurate.

When every reference point is an evaluated grid node (same spacing, origins whole steps apart: the common
case), the kernel first minimises over the *star* of the node (the 74 faces of the 3D triangulation that
contain it; 12 in 2D, 2 in 1D) in closed form (:class:`StarTable`): each costs a few additions. If the best
γ² found there is at most ``ρ²``, the squared distance from the node to the nearest face that does not
contain it, the minimiser lies within ``ρ`` of the node, hence in the open star, and the star's minimum is
exact. Otherwise the search continues over the *ring*, the faces around the star (:class:`RingTable`),
tabulated once per spacing with their geometry (projection coordinates, distance to their affine hull,
distance bounds) and grouped by cell, nearest cell first: a cell is skipped when its distance plus the dose
range of its corners cannot beat the best, and the search stops at the first cell whose distance reaches it.
Star and ring faces are evaluated without branches or divisions (the simplex test multiplied by ``1 + S``).
In 2D the ring is searched by rows of cells instead (:func:`_ring_rows`): rows nearest first, and along each
row one branch-free pass over the contiguous run of cells within reach bounds every cell by its distance plus
its dose gap and each of its two triangles by the distance to the triangle's plane; only triangles below the
best on both counts are minimised, each as a closed triangle (:func:`_triangle_distance2`, its faces
included). Before the ring, the cell that held the previous point's minimum (the same grid cell, seen from
the next node of the row) is probed, evaluated as the search that follows would evaluate it: a low best
found early prunes more cells; it only adds one cell to the search, so the minimum is unchanged. Only near
the grid edges, or past the tabulated reach, does the general cell search above take over, from the best
value found. Bounds only prune and every value kept is attained by the interpolant, so none of this
changes the result beyond rounding.

The kernel also accumulates, per task, the count, passes, sum and maximum of γ and a histogram of it, so
that the statistics need no second pass over the map (γ1% is then read from the top of the distribution).

References
----------
Ju T, Simpson T, Deasy JO, Low DA. Geometric interpretation of the γ dose distribution comparison technique:
interpolation-free calculation. Med Phys 35(3):879-887, 2008. doi:10.1118/1.2836952
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "RingTable",
    "StarTable",
    "face_table",
    "gamma_kernel",
    "ring_table",
    "search_cell_count",
    "search_offsets",
    "star_table",
]

#: Slack (dimensionless, on the simplex coordinates τ) accepted when testing that a minimiser is in its face.
FEASIBILITY_TOLERANCE = 1e-12


def face_table(ndim: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Faces of the Kuhn triangulation based at one cell corner, as chains of axis blocks.

    Parameters
    ----------
    ndim : int
        1, 2 or 3 (axes i, j, k are bits 0, 1, 2 of a block mask).

    Returns
    -------
    blocks : ndarray of int64, shape (F, 5)
        Columns 0-2: bit masks of the blocks ``B_1 … B_m`` (unused entries 0); column 3: union of the blocks
        (the face's last vertex); column 4: bit set of the full-dimensional simplices (the first rows) that
        contain the face.
    counts : ndarray of int64, shape (F,)
        ``m`` (the face dimension) of each face. 1D: 2 faces, 2D: 6, 3D: 26.
    """
    axes = list(range(ndim))
    chains: list[tuple[int, ...]] = [()]

    def extend(chain: tuple[int, ...], used: int) -> None:
        free = [a for a in axes if not used & (1 << a)]
        for r in range(1, len(free) + 1):
            for subset in itertools.combinations(free, r):
                mask = sum(1 << a for a in subset)
                new = (*chain, mask)
                chains.append(new)
                extend(new, used | mask)

    extend((), 0)
    chains.sort(key=len, reverse=True)  # simplices of full dimension first: they bound their faces
    n_full = sum(1 for chain in chains if len(chain) == ndim)
    blocks = np.zeros((len(chains), 5), dtype=np.int64)
    counts = np.zeros(len(chains), dtype=np.int64)
    vertex_sets = [_vertex_masks(chain) for chain in chains]
    for f, chain in enumerate(chains):
        counts[f] = len(chain)
        blocks[f, : len(chain)] = chain
        blocks[f, 3] = 0 if not chain else int(np.bitwise_or.reduce(np.asarray(chain)))
        # bit t set when full simplex t contains this face: its affine minimum bounds the face's from below
        blocks[f, 4] = sum(1 << t for t in range(n_full) if vertex_sets[f] <= vertex_sets[t])
    return blocks, counts


def _vertex_masks(chain: tuple[int, ...]) -> set[int]:
    masks = {0}
    cum = 0
    for blk in chain:
        cum |= blk
        masks.add(cum)
    return masks


def _reach(
    scale: NDArray[np.float64] | tuple[float, ...],
    max_gamma: float,
    ndim: int,
    shape: tuple[int, ...] | None,
) -> list[int]:
    """Cells searched on each side along i, j, k: up to ``max_gamma`` (scaled), and never past the grid."""
    reach = []
    for a in range(3):
        if a >= ndim:
            reach.append(0)
            continue
        r = math.ceil(min(max_gamma / float(scale[a]), 1e12)) + 1
        if shape is not None:
            r = min(r, max(int(shape[a]), 1))
        reach.append(int(r))
    return reach


def search_cell_count(
    scale: NDArray[np.float64], max_gamma: float, ndim: int, shape: tuple[int, ...] | None = None
) -> int:
    """Number of cell offsets :func:`search_offsets` would enumerate (before dropping those out of reach).

    ``shape``: evaluated grid size along i, j, k; offsets beyond it are never inside the grid and are not
    enumerated.
    """
    return math.prod(2 * r + 1 for r in _reach(scale, max_gamma, ndim, shape))


def search_offsets(
    scale: NDArray[np.float64],
    max_gamma: float,
    ndim: int,
    on_nodes: bool = False,
    shape: tuple[int, ...] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Cell offsets around the cell holding the reference point, sorted by a lower bound of γ².

    Parameters
    ----------
    scale : ndarray, shape (3,)
        Evaluated spacing divided by DTA along i, j, k (dimensionless).
    max_gamma : float
        Search limit: offsets whose bound reaches ``max_gamma**2`` are dropped.
    ndim : int
        Number of axes searched (the others get offset 0).
    on_nodes : bool
        The reference point is a grid node (not anywhere in its cell): the bounds are then exact distances.
    shape : tuple of int, optional
        Evaluated grid size along i, j, k: offsets larger than it (never inside the grid) are left out.

    Returns
    -------
    offsets : ndarray of int64, shape (O, 3)
        ``(di, dj, dk)`` cell offsets.
    bounds : ndarray of float64, shape (O,)
        ``Σ_a (max(0, |d_a| - 1) · scale_a)²``, a lower bound of the squared scaled distance between any
        point of the central cell and any point of the offset cell (``on_nodes``: ``max(0, d_a, -d_a - 1)``,
        the distance from the cell's first corner).
    """
    reach = tuple(_reach(scale, max_gamma, ndim, shape))
    scale_t = tuple(float(x) for x in scale[:3])
    offsets, bounds = _search_offsets(scale_t, float(max_gamma), ndim, on_nodes, reach)
    return offsets.copy(), bounds.copy()


@functools.lru_cache(maxsize=32)
def _search_offsets(
    scale_t: tuple[float, ...], max_gamma: float, ndim: int, on_nodes: bool, reach: tuple[int, ...]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    scale = np.asarray(scale_t)
    ranges = [np.arange(-r, r + 1) for r in reach]
    di, dj, dk = np.meshgrid(ranges[0], ranges[1], ranges[2], indexing="ij")
    offsets = np.stack([di.ravel(), dj.ravel(), dk.ravel()], axis=1).astype(np.int64)
    if on_nodes:  # the point is the cell-grid node at offset 0: cell [d, d + 1] is max(0, d, -d - 1) away
        gaps = np.maximum(np.maximum(offsets, -offsets - 1), 0) * scale[None, :]
    else:
        gaps = np.maximum(np.abs(offsets) - 1, 0) * scale[None, :]
    bounds = np.sum(gaps**2, axis=1)
    # Ties broken by the full distance, so that the cells around the point come first.
    order = np.lexsort((np.sum((np.abs(offsets) * scale[None, :]) ** 2, axis=1), bounds))
    keep = bounds[order] < max_gamma**2
    return offsets[order][keep], bounds[order][keep]


@dataclass(frozen=True)
class StarTable:
    """The faces of the Kuhn triangulation that contain one grid node ``p`` (its *star*), as lookup tables.

    Used when every reference point is an evaluated grid node. For a face whose vertex chain is
    ``v_0 … v_m`` with ``p = v_k`` and increments ``e_B1 … e_Bm``, the affine-hull minimum is
    ``g0² / (1 + S)`` with ``g0 = (D(p) − D_r)/ΔD`` and ``S = Σ_l Δ_l² / P_l`` (``Δ_l`` the dose increment of
    step l in units of ΔD, ``P_l`` its squared scaled length); its minimiser has chain coordinates
    ``τ_l = [l ≤ k] − g0 Δ_l / ((1 + S) P_l)`` and lies in the face when ``1 ≥ τ_1 ≥ … ≥ τ_m ≥ 0``.

    Attributes
    ----------
    nodes : ndarray of int64, shape (Q, 3)
        ``(di, dj, dk)`` offsets of the star's vertices from ``p`` (row 0 is ``p`` itself).
    edge_nodes : ndarray of int64, shape (E, 2)
        Rows of ``nodes`` at the start and end of each chain step (end = start + e_B).
    edge_inv_p : ndarray of float64, shape (E,)
        ``1 / P`` of each step (``P = Σ_{a ∈ B} scale_a²``).
    face_edges : ndarray of int64, shape (F, 3)
        Steps of each face in chain order (unused entries 0).
    face_m : ndarray of int64, shape (F,)
        Face dimension ``m`` (1 to ``ndim``; the vertex ``p`` itself is not listed).
    face_k : ndarray of int64, shape (F,)
        Position ``k`` of ``p`` in the face's chain.
    rho2 : float
        Squared scaled distance from ``p`` to the nearest face that does not contain it (less a relative
        1e-9): when the best γ² found in the star is at most ``rho2`` it is the exact minimum.
    """

    nodes: NDArray[np.int64]
    edge_nodes: NDArray[np.int64]
    edge_inv_p: NDArray[np.float64]
    face_edges: NDArray[np.int64]
    face_m: NDArray[np.int64]
    face_k: NDArray[np.int64]
    rho2: float


def star_table(scale: NDArray[np.float64], ndim: int) -> StarTable:
    """Star of a grid node for evaluated spacing / DTA ``scale`` (i, j, k) with ``ndim`` axes searched."""
    return _star_table(tuple(float(x) for x in scale[:3]), ndim)


@functools.lru_cache(maxsize=32)
def _star_table(scale: tuple[float, ...], ndim: int) -> StarTable:
    blocks, counts = face_table(ndim)
    s2 = np.asarray(scale) ** 2
    nodes: dict[tuple[int, ...], int] = {(0, 0, 0): 0}
    edges: dict[tuple[int, int], int] = {}
    edge_inv_p: list[float] = []
    faces: list[tuple[list[int], int]] = []
    rho2 = np.inf

    def node(offset: NDArray[np.int64]) -> int:
        key = tuple(int(x) for x in offset)
        return nodes.setdefault(key, len(nodes))

    for cell in itertools.product(*[range(-2, 2) if a < ndim else (0,) for a in range(3)]):
        base = np.asarray(cell, dtype=np.int64)
        for f in range(blocks.shape[0]):
            m = int(counts[f])
            chain = [int(b) for b in blocks[f, :m]]
            cum = [0]
            for blk in chain:
                cum.append(cum[-1] | blk)
            verts = [base + np.array([(c >> a) & 1 for a in range(3)], dtype=np.int64) for c in cum]
            k = next((i for i, v in enumerate(verts) if not v.any()), -1)
            if k < 0:  # a face without p: its distance bounds the region where the star suffices
                rho2 = min(rho2, _face_distance2(-base.astype(float), chain, s2))
                continue
            if m == 0 or not all(-1 <= x <= 0 for x in cell):
                continue
            steps = []
            for level, blk in enumerate(chain):
                key = (node(verts[level]), node(verts[level + 1]))
                if key not in edges:
                    edges[key] = len(edges)
                    edge_inv_p.append(1.0 / sum(s2[a] for a in range(3) if blk & (1 << a)))
                steps.append(edges[key])
            faces.append((steps, k))
    faces.sort(key=lambda face: -len(face[0]))  # full-dimensional simplices first
    face_edges = np.zeros((len(faces), 3), dtype=np.int64)
    for f, (steps, _) in enumerate(faces):
        face_edges[f, : len(steps)] = steps
    node_array = np.zeros((len(nodes), 3), dtype=np.int64)
    for offset, idx in nodes.items():
        node_array[idx] = offset
    edge_nodes = np.zeros((len(edges), 2), dtype=np.int64)
    for pair, idx in edges.items():
        edge_nodes[idx] = pair
    return StarTable(
        nodes=node_array,
        edge_nodes=edge_nodes,
        edge_inv_p=np.asarray(edge_inv_p, dtype=np.float64),
        face_edges=face_edges,
        face_m=np.asarray([len(f[0]) for f in faces], dtype=np.int64),
        face_k=np.asarray([f[1] for f in faces], dtype=np.int64),
        rho2=float(rho2) * (1.0 - 1e-9),
    )


def _face_distance2(w: NDArray[np.float64], chain: list[int], s2: NDArray[np.float64]) -> float:
    """Squared scaled distance from ``w`` (index units, relative to the face's first vertex) to a Kuhn face.

    The face is ``{Σ τ_l e_Bl : 1 ≥ τ_1 ≥ … ≥ τ_m ≥ 0}``; along its orthogonal steps the problem is a
    weighted isotonic regression (pool-adjacent-violators) followed by clipping to [0, 1], which is exact
    for box-bounded isotonic regression.
    """
    used = 0
    weights, targets = [], []
    for blk in chain:
        axes = [a for a in range(3) if blk & (1 << a)]
        p = float(sum(s2[a] for a in axes))
        weights.append(p)
        targets.append(float(sum(s2[a] * w[a] for a in axes)) / p)
        used |= blk
    pools: list[list[float]] = []  # [weight, mean, count] of pooled blocks, non-increasing means
    for p, y in zip(weights, targets, strict=True):
        pools.append([p, y, 1.0])
        while len(pools) > 1 and pools[-1][1] > pools[-2][1]:
            p2, y2, n2 = pools.pop()
            p1, y1, n1 = pools.pop()
            pools.append([p1 + p2, (p1 * y1 + p2 * y2) / (p1 + p2), n1 + n2])
    tau: list[float] = []
    for _p, y, n in pools:
        tau.extend([min(1.0, max(0.0, y))] * int(n))
    d2 = sum(p * (t - y) ** 2 for p, t, y in zip(weights, tau, targets, strict=True))
    # the part of w orthogonal to the face's steps
    d2 += sum(s2[a] * w[a] ** 2 for a in range(3) if not used & (1 << a))
    # within a step's axes, the component of w not along e_B
    for blk, p, y in zip(chain, weights, targets, strict=True):
        d2 += sum(s2[a] * w[a] ** 2 for a in range(3) if blk & (1 << a)) - p * y * y
    return float(d2)


#: Largest ring reach (cells from the node, per axis) tabulated, by dimension: bounds the table size.
_RING_REACH = {1: 64, 2: 24, 3: 6}


@dataclass(frozen=True)
class RingTable:
    """The faces of the Kuhn triangulation that do *not* contain a grid node ``p``, nearest first.

    Used after the star search (:class:`StarTable`) when every reference point is an evaluated grid node. For
    a face with vertices ``v_0 … v_m`` (offsets from ``p``) and chain steps ``e_Bl`` of squared scaled
    length ``P_l``, let ``w = −v_0`` (scaled), ``y_l = (e_Bl · w) / P_l`` and ``π²`` the squared distance
    from ``p`` to the face's spatial affine hull. With ``g_l`` the vertex doses minus the reference dose in
    units of ΔD, ``Δ_l = g_l − g_{l−1}``, ``S = Σ Δ_l² / P_l`` and ``A = g_0 + Σ Δ_l y_l``, the minimum over
    the face's affine hull in the scaled space is ``A² / (1 + S) + π²``, attained at chain coordinates
    ``τ_l = y_l − (Δ_l / P_l) A / (1 + S)``: it belongs to the face when ``1 ≥ τ_1 ≥ … ≥ τ_m ≥ 0``. Both
    terms are non-negative, so the value is computed without cancellation.

    Attributes
    ----------
    vertices : ndarray of int64, shape (F, 4, 3)
        ``(di, dj, dk)`` offsets of the face's vertices from ``p`` in chain order (unused rows 0).
    m : ndarray of int64, shape (F,)
        Face dimension (0 to ``ndim``).
    inv_p : ndarray of float64, shape (F, 3)
        ``1 / P_l`` per chain step.
    y : ndarray of float64, shape (F, 3)
        ``y_l`` per chain step.
    perp2 : ndarray of float64, shape (F,)
        ``π²``.
    bound : ndarray of float64, shape (F,)
        Lower bound (less a relative 1e-9) of the squared scaled distance from ``p`` to the face: the larger
        of its bounding-box distance and ``π²``.
    cell_start : ndarray of int64, shape (C + 1,)
        Faces are grouped by the cell that holds them (the cell of their first vertex, as in
        :func:`face_table`): cell ``c`` holds faces ``cell_start[c]`` to ``cell_start[c + 1] - 1``.
    cell_base : ndarray of int64, shape (C, 3)
        First corner of each cell (offset from ``p``).
    cell_bound : ndarray of float64, shape (C,)
        Squared scaled distance from ``p`` to the cell (less a relative 1e-9), ascending, so that a search
        over the cells stops at the first whose bound reaches the best γ²; with the dose range of the cell's
        corners it also bounds all the cell's faces at once.
    cell_reach : ndarray of int64, shape (C,)
        Largest ``|offset|`` of the cell's corners along any searched axis (the grid margin it needs).
    limit2 : float
        Every face at squared scaled distance below ``limit2`` is in the table (``max_gamma²`` unless the
        reach was capped).
    cell_index : ndarray of int64, shape (Ck, Cj, Ci)
        Row of ``cell_base`` of the cell whose first corner is at offset ``(i, j, k) + index_low`` (along
        the searched axes) from ``p``, or −1: finds the cell that held the minimum of the previous point.
    index_low : int
        Offset of ``cell_index[0, 0, 0]`` along each searched axis.
    """

    vertices: NDArray[np.int64]
    m: NDArray[np.int64]
    inv_p: NDArray[np.float64]
    y: NDArray[np.float64]
    perp2: NDArray[np.float64]
    bound: NDArray[np.float64]
    cell_start: NDArray[np.int64]
    cell_base: NDArray[np.int64]
    cell_bound: NDArray[np.float64]
    cell_reach: NDArray[np.int64]
    limit2: float
    cell_index: NDArray[np.int64]
    index_low: int


def ring_table(scale: NDArray[np.float64], max_gamma: float, ndim: int) -> RingTable:
    """Faces around (not containing) a grid node within ``max_gamma``, for evaluated spacing / DTA ``scale``.

    Cached per (scale, max_gamma, ndim); see :class:`RingTable`.
    """
    return _ring_table(tuple(float(x) for x in scale[:3]), float(max_gamma), ndim)


@functools.lru_cache(maxsize=32)
def _ring_table(scale_t: tuple[float, ...], max_gamma: float, ndim: int) -> RingTable:
    s = np.asarray(scale_t)
    s2 = s**2
    limit = min([max_gamma] + [_RING_REACH[ndim] * s[a] for a in range(ndim)])
    reach = [int(np.ceil(limit / s[a])) if a < ndim else 0 for a in range(3)]
    ranges = [
        np.arange(-r - 1, r + 1) if a < ndim else np.zeros(1, dtype=np.int64) for a, r in enumerate(reach)
    ]
    bases = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
    blocks, counts = face_table(ndim)
    parts: list[tuple[NDArray[np.int64], ...]] = []
    cols: dict[str, list[NDArray[np.float64]]] = {"inv_p": [], "y": [], "perp2": [], "bound": []}
    for f in range(blocks.shape[0]):
        m = int(counts[f])
        chain = [int(b) for b in blocks[f, :m]]
        cum = [0]
        for blk in chain:
            cum.append(cum[-1] | blk)
        bits = np.array([[(c >> a) & 1 for a in range(3)] for c in cum], dtype=np.int64)
        verts = bases[:, None, :] + bits[None, :, :]  # (C, m + 1, 3)
        keep = ~np.any(np.all(verts == 0, axis=2), axis=1)  # faces containing p belong to the star
        verts = verts[keep]
        w = -verts[:, 0, :].astype(float)
        inv_p = np.zeros((verts.shape[0], 3))
        y = np.zeros((verts.shape[0], 3))
        perp2 = np.zeros(verts.shape[0])
        used = 0
        for level, blk in enumerate(chain):
            axes = [a for a in range(3) if blk & (1 << a)]
            p = float(sum(s2[a] for a in axes))
            inv_p[:, level] = 1.0 / p
            y[:, level] = sum(s2[a] * w[:, a] for a in axes) / p
            # the part of w across the step within its axes (Lagrange identity: no cancellation)
            for a, b in itertools.combinations(axes, 2):
                perp2 += s2[a] * s2[b] * (w[:, a] - w[:, b]) ** 2 / p
            used |= blk
        for a in range(3):
            if not used & (1 << a):
                perp2 += s2[a] * w[:, a] ** 2
        gap = np.maximum(np.maximum(verts.min(axis=1), -verts.max(axis=1)), 0)
        box2 = np.sum(s2[None, :] * gap.astype(float) ** 2, axis=1)
        padded = np.zeros((verts.shape[0], 4, 3), dtype=np.int64)
        padded[:, : m + 1] = verts
        parts.append((padded, np.full(verts.shape[0], m, dtype=np.int64), np.nonzero(keep)[0]))
        cols["inv_p"].append(inv_p)
        cols["y"].append(y)
        cols["perp2"].append(perp2)
        cols["bound"].append(np.maximum(box2, perp2) * (1.0 - 1e-9))
    bound = np.concatenate(cols["bound"])
    cell = np.concatenate([p[2] for p in parts])
    # exact distance from p to each cell box [b, b + 1] (index units, scaled), less the same margin
    cell_gap = np.maximum(np.maximum(bases, -bases - 1), 0).astype(float)
    cell_bound = np.sum(s2[None, :] * cell_gap**2, axis=1) * (1.0 - 1e-9)
    order = np.lexsort((bound, cell, cell_bound[cell]))
    order = order[bound[order] < limit**2]
    cells, first = np.unique(cell[order], return_index=True)
    by_bound = np.argsort(first)
    cells, first = cells[by_bound], first[by_bound]
    reach_cells = np.maximum(np.abs(bases), np.abs(bases + 1))[cells][:, :ndim].max(axis=1)
    low = -int(reach_cells.max()) - 1 if cells.size else -1
    dims = [-2 * low if a < ndim else 1 for a in range(3)]
    cell_index = np.full(dims[::-1], -1, dtype=np.int64)
    for row, base in enumerate(bases[cells]):
        rel = [int(base[a]) - low if a < ndim else 0 for a in range(3)]
        cell_index[rel[2], rel[1], rel[0]] = row
    return RingTable(
        vertices=np.concatenate([p[0] for p in parts])[order],
        m=np.concatenate([p[1] for p in parts])[order],
        inv_p=np.concatenate(cols["inv_p"])[order],
        y=np.concatenate(cols["y"])[order],
        perp2=np.concatenate(cols["perp2"])[order],
        bound=bound[order],
        cell_start=np.append(first, order.size).astype(np.int64),
        cell_base=bases[cells].astype(np.int64),
        cell_bound=cell_bound[cells],
        cell_reach=reach_cells.astype(np.int64),
        limit2=float(limit**2),
        cell_index=cell_index,
        index_low=low,
    )


@numba.njit(inline="always")
def _ring_cell(
    best: float,
    cell: int,
    base: int,
    dr: float,
    inv: float,
    ev_flat: NDArray[np.float64],
    n_corners: int,
    cell_off: NDArray[np.int64],
    ring_cell_bound: NDArray[np.float64],
    ring_cell_start: NDArray[np.int64],
    ring_f: NDArray[np.float64],
    ring_off: NDArray[np.int64],
) -> float:  # pragma: no cover - compiled
    """The best γ² after the ring faces of one cell (:class:`RingTable`) around the node at flat ``base``.

    The cell's distance and the dose range of its corners bound all its faces at once; each face is then
    evaluated without branches or divisions.
    """
    lo = ev_flat[base + cell_off[cell, 0]]
    hi = lo
    for mask in range(1, n_corners):
        value = ev_flat[base + cell_off[cell, mask]]
        lo = min(lo, value)
        hi = max(hi, value)
    gap = max(lo - dr, dr - hi, 0.0) * inv
    if ring_cell_bound[cell] + gap * gap >= best:
        return best
    tol = FEASIBILITY_TOLERANCE
    for rf in range(ring_cell_start[cell], ring_cell_start[cell + 1]):
        if ring_f[rf, 0] >= best:
            continue
        # the hull minimum A² / (1 + S) + π² and its chain coordinates
        e_0 = ev_flat[base + ring_off[rf, 0]]
        e_1 = ev_flat[base + ring_off[rf, 1]]
        e_2 = ev_flat[base + ring_off[rf, 2]]
        e_3 = ev_flat[base + ring_off[rf, 3]]
        d_1 = (e_1 - e_0) * inv
        d_2 = (e_2 - e_1) * inv
        d_3 = (e_3 - e_2) * inv
        q_1 = d_1 * ring_f[rf, 5]
        q_2 = d_2 * ring_f[rf, 6]
        q_3 = d_3 * ring_f[rf, 7]
        big_a = (e_0 - dr) * inv + d_1 * ring_f[rf, 2]
        big_a += d_2 * ring_f[rf, 3] + d_3 * ring_f[rf, 4]
        den = 1.0 + d_1 * q_1 + d_2 * q_2 + d_3 * q_3
        # τ_l = y_l − A q_l / (1 + S), tested multiplied by 1 + S > 0 (no division)
        t_1 = ring_f[rf, 2] * den - big_a * q_1
        t_2 = ring_f[rf, 3] * den - big_a * q_2
        t_3 = ring_f[rf, 4] * den - big_a * q_3
        slack = tol * den
        a2 = big_a * big_a
        ok = (
            (t_1 <= den + slack)
            & (t_2 <= t_1 + slack)
            & (t_3 <= t_2 + slack)
            & (t_3 >= -slack)
            & (a2 < (best - ring_f[rf, 1]) * den)
        )
        if ok:
            best = a2 / den + ring_f[rf, 1]
    return best


@numba.njit(inline="always")
def _triangle_distance2(
    ax: float, ay: float, az: float, bx: float, by: float, bz: float, cx: float, cy: float, cz: float
) -> float:  # pragma: no cover - compiled
    """Squared distance from the origin to the closed triangle (a, b, c), by its Voronoi regions.

    The closest point is a vertex, a point of an edge or of the interior, decided by the signs of dot
    products with the edges (Ericson C, Real-Time Collision Detection, Morgan Kaufmann 2005, section 5.1.5,
    ISBN 978-1-55860-732-3); every denominator is a squared edge length or a squared cross product, positive
    for the non-degenerate triangles of a grid.
    """
    abx = bx - ax
    aby = by - ay
    abz = bz - az
    acx = cx - ax
    acy = cy - ay
    acz = cz - az
    d1 = -(abx * ax + aby * ay + abz * az)
    d2 = -(acx * ax + acy * ay + acz * az)
    if d1 <= 0.0 and d2 <= 0.0:
        return ax * ax + ay * ay + az * az
    d3 = -(abx * bx + aby * by + abz * bz)
    d4 = -(acx * bx + acy * by + acz * bz)
    if d3 >= 0.0 and d4 <= d3:
        return bx * bx + by * by + bz * bz
    vc = d1 * d4 - d3 * d2
    if vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0:
        v = d1 / (d1 - d3)
        rx = ax + v * abx
        ry = ay + v * aby
        rz = az + v * abz
        return rx * rx + ry * ry + rz * rz
    d5 = -(abx * cx + aby * cy + abz * cz)
    d6 = -(acx * cx + acy * cy + acz * cz)
    if d6 >= 0.0 and d5 <= d6:
        return cx * cx + cy * cy + cz * cz
    vb = d5 * d2 - d1 * d6
    if vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0:
        w = d2 / (d2 - d6)
        rx = ax + w * acx
        ry = ay + w * acy
        rz = az + w * acz
        return rx * rx + ry * ry + rz * rz
    va = d3 * d6 - d5 * d4
    if va <= 0.0 and d4 - d3 >= 0.0 and d5 - d6 >= 0.0:
        w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        rx = bx + w * (cx - bx)
        ry = by + w * (cy - by)
        rz = bz + w * (cz - bz)
        return rx * rx + ry * ry + rz * rz
    denom = 1.0 / (va + vb + vc)
    v = vb * denom
    w = vc * denom
    rx = ax + abx * v + acx * w
    ry = ay + aby * v + acy * w
    rz = az + abz * v + acz * w
    return rx * rx + ry * ry + rz * rz


@numba.njit(inline="always")
def _cell_triangles(
    o: int,
    di: int,
    dj: int,
    bits: int,
    dr: float,
    inv: float,
    ev_flat: NDArray[np.float64],
    mi: int,
    scale_i: float,
    scale_j: float,
) -> float:  # pragma: no cover - compiled
    """Least squared distance to the closed triangles ``bits`` (1: lower, 2: upper) of the 2D cell whose first
    corner is the node at flat index ``o``, at offset ``(di, dj)`` from the reference node (``inf`` if none).
    """
    za = (ev_flat[o] - dr) * inv
    zb = (ev_flat[o + 1] - dr) * inv
    zc = (ev_flat[o + mi] - dr) * inv
    zd = (ev_flat[o + mi + 1] - dr) * inv
    x0 = di * scale_i
    y0 = dj * scale_j
    x1 = x0 + scale_i
    y1 = y0 + scale_j
    value = np.inf
    if bits & 1:
        value = _triangle_distance2(x0, y0, za, x1, y0, zb, x1, y1, zd)
    if bits & 2:
        value = min(value, _triangle_distance2(x0, y0, za, x0, y1, zc, x1, y1, zd))
    return value


@numba.njit(cache=True)
def _ring_rows(
    best: float,
    have_prev: bool,
    prev_rel: NDArray[np.int64],
    ci: int,
    cj: int,
    mi: int,
    mj: int,
    base: int,
    dr: float,
    inv: float,
    ev_flat: NDArray[np.float64],
    row_j: NDArray[np.int64],
    row_d2: NDArray[np.float64],
    gap2: NDArray[np.float64],
    row_cell: NDArray[np.int64],
    low: int,
    span: int,
    scale_i: float,
    scale_j: float,
    limit2: float,
    cand: NDArray[np.int64],
    mask: NDArray[np.int64],
) -> tuple[float, int, bool]:  # pragma: no cover - compiled
    """2D ring search by rows of cells around node ``(ci, cj)``: the best γ², the ring cell that holds it
    (−1 if none) and whether the search ran (else the caller's ring search follows, from the same best).

    It runs when every cell within ``sqrt(best)`` of the node lies in the grid and in the ring table
    (``row_cell``, offsets ``low`` to ``span − 1``). It first probes the cell that held the previous point's
    minimum (``prev_rel``, offset from the previous node), evaluated as below. Rows of cells (offset ``dj``)
    come nearest first and the search stops at the first row whose distance reaches the best. Along a row
    the cells within reach form one contiguous run of the grid, read from its two grid rows in one
    branch-free pass that bounds each cell twice: its distance plus the gap to the dose range of its corners,
    and, for each of its two triangles, the distance to the triangle's plane (``r² / (1 + |∇|²)``, ``r``
    the plane's dose at the node minus the node's reference dose, in units of ΔD). A triangle is kept when
    its cell's first bound and its own plane bound are below the best, and is then minimised exactly as a
    closed triangle (:func:`_triangle_distance2`). Both bounds are lower bounds of every point of the
    triangle, so no triangle that could beat the best is skipped.
    """
    win = -1
    if not best <= limit2:
        return best, win, False
    # cells up to sqrt(best) / scale + 1 steps away, one more for the 1e-9 margin
    reach_i = int(np.sqrt(best) / scale_i) + 2
    reach_j = int(np.sqrt(best) / scale_j) + 2
    if reach_i > span or reach_i > ci or reach_i > mi - 1 - ci:
        return best, win, False
    if reach_j > span or reach_j > cj or reach_j > mj - 1 - cj:
        return best, win, False
    if have_prev:
        # the previous point's cell, one step further along i from this node
        pi = prev_rel[0] - 1
        pj = prev_rel[1]
        if low <= pi < span and low <= pj < span and row_cell[pj - low, pi - low] >= 0:
            value = _cell_triangles(base + pj * mi + pi, pi, pj, 3, dr, inv, ev_flat, mi, scale_i, scale_j)
            if value < best:
                best = value
                win = row_cell[pj - low, pi - low]
    inv2 = inv * inv
    sx2 = 1.0 / (scale_i * scale_i)
    sy2 = 1.0 / (scale_j * scale_j)
    for r in range(row_d2.shape[0]):
        gy2 = row_d2[r]
        if gy2 >= best:
            break
        dj = row_j[r]
        wi = int(np.sqrt(best - gy2) / scale_i)
        d0 = -wi - 1 if -wi - 1 > low else low
        d1 = wi if wi < span - 1 else span - 1
        m = d1 - d0 + 1
        r0 = base + dj * mi + d0
        # contiguous views (non-negative indices, no wrap-around tests) of grid rows j + dj and j + dj + 1
        ga = gap2[d0 - low : d1 - low + 1]
        lim = best - gy2
        row_a = ev_flat[r0 : r0 + m + 1]
        row_b = ev_flat[r0 + mi : r0 + mi + m + 1]
        fj = -dj * inv
        slack_best = best * (1.0 + 1e-9)  # plane test multiplied by 1 + |∇|², with a relative 1e-9 slack
        for t in range(m):
            a0 = row_a[t]
            a1 = row_a[t + 1]
            b0 = row_b[t]
            b1 = row_b[t + 1]
            lo = min(min(a0, a1), min(b0, b1))
            hi = max(max(a0, a1), max(b0, b1))
            g = max(max(lo - dr, dr - hi), 0.0) * inv
            fi = -(d0 + t) * inv
            # lower triangle (c, c + e_i, c + e_i + e_j), upper (c, c + e_j, c + e_i + e_j)
            lx = a1 - a0
            ly = b1 - a1
            ux = b1 - b0
            uy = b0 - a0
            rl = (a0 - dr) * inv + lx * fi + ly * fj
            ru = (a0 - dr) * inv + ux * fi + uy * fj
            nl = 1.0 + (lx * lx * sx2 + ly * ly * sy2) * inv2
            nu = 1.0 + (ux * ux * sx2 + uy * uy * sy2) * inv2
            near = np.int64(ga[t] + g * g < lim)
            mask[t] = near * (np.int64(rl * rl < slack_best * nl) + 2 * np.int64(ru * ru < slack_best * nu))
        n = 0
        for t in range(m):
            cand[n] = d0 + t
            n += int(mask[t] != 0)
        for q in range(n):
            di = cand[q]
            value = _cell_triangles(
                r0 - d0 + di, di, dj, mask[di - d0], dr, inv, ev_flat, mi, scale_i, scale_j
            )
            if value < best:
                best = value
                win = row_cell[dj - low, di - low]
    return best, win, True


@numba.njit(cache=True, parallel=True, fastmath=False)
def gamma_kernel(
    ref: NDArray[np.float64],
    ev: NDArray[np.float64],
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    scale: NDArray[np.float64],
    global_dd: float,
    local_fraction: float,
    threshold: float,
    max_gamma2: float,
    offsets: NDArray[np.int64],
    bounds: NDArray[np.float64],
    blocks: NDArray[np.int64],
    counts: NDArray[np.int64],
    out: NDArray[np.float64],
    n_threads: int,
    ndim: int,
    on_nodes: bool,
    star_nodes: NDArray[np.int64],
    star_edge_nodes: NDArray[np.int64],
    star_edge_inv_p: NDArray[np.float64],
    star_face_edges: NDArray[np.int64],
    star_face_m: NDArray[np.int64],
    star_face_k: NDArray[np.int64],
    star_rho2: float,
    ring_vertices: NDArray[np.int64],
    ring_m: NDArray[np.int64],
    ring_inv_p: NDArray[np.float64],
    ring_y: NDArray[np.float64],
    ring_perp2: NDArray[np.float64],
    ring_bound: NDArray[np.float64],
    ring_cell_start: NDArray[np.int64],
    ring_cell_base: NDArray[np.int64],
    ring_cell_bound: NDArray[np.float64],
    ring_cell_reach: NDArray[np.int64],
    ring_limit2: float,
    ring_cell_index: NDArray[np.int64],
    ring_index_low: int,
    task_stats: NDArray[np.float64],
    task_hist: NDArray[np.int64],
    pass_limit: float,
) -> None:  # pragma: no cover - compiled
    """Fill ``out`` (reference shape) with γ capped at ``sqrt(max_gamma2)``; NaN below ``threshold``.

    ``ref`` and ``out`` are (nk, nj, ni); ``ev`` is (mk, mj, mi). The evaluated continuous index of reference
    node ``(i, j, k)`` along axis a is ``alpha[a] + beta[a] * index_a``. ``global_dd > 0`` is the dose
    difference criterion (Gy) of global normalisation; otherwise ΔD = ``local_fraction`` × reference dose.
    ``ndim`` (1, 2 or 3) is the number of axes that vary (the others have length 1). ``on_nodes``: every
    reference node is an evaluated node (integer ``alpha``, ``beta`` 1), so the star search applies
    (:class:`StarTable`), continued over the faces around the star (:class:`RingTable`) while the node's
    margin to the grid edges allows. Rows are shared among ``task_stats.shape[0]`` interleaved tasks; task
    ``t`` accumulates the count, passes (γ ≤ ``pass_limit``), sum and maximum of its evaluated γ in
    ``task_stats[t, 0:4]`` and a histogram of γ over ``[0, sqrt(max_gamma2)]`` in ``task_hist[t]``.
    """
    nk, nj, ni = ref.shape
    mk, mj, mi = ev.shape
    mdim = (mi, mj, mk)
    n_rows = nk * nj
    n_faces = blocks.shape[0]
    n_off = offsets.shape[0]
    n_star_nodes = star_nodes.shape[0]
    n_star_edges = star_edge_nodes.shape[0]
    n_star_faces = star_face_m.shape[0]
    n_tasks = task_stats.shape[0]
    n_bins = task_hist.shape[1]
    cap = np.sqrt(max_gamma2)
    n_ring = ring_m.shape[0]
    n_corners = 1 << ndim
    inv_s2 = np.zeros(8)
    for mask in range(1, 8):
        acc = 0.0
        for a in range(3):
            if mask & (1 << a):
                acc += scale[a] * scale[a]
        inv_s2[mask] = 1.0 / acc
    n_full = 0
    for fidx in range(n_faces):
        if counts[fidx] == counts[0]:
            n_full += 1
    # the star of a node lies in the grid when the node is at least one step from every edge
    lo_ok = np.zeros(3, dtype=np.int64)
    hi_ok = np.zeros(3, dtype=np.int64)
    for a in range(3):
        if a < ndim:
            lo_ok[a] = 1
            hi_ok[a] = mdim[a] - 2
    ev_flat = ev.reshape(-1)
    idx_dim = (ring_cell_index.shape[2], ring_cell_index.shape[1], ring_cell_index.shape[0])
    node_off = np.empty(max(n_star_nodes, 1), dtype=np.int64)
    for q in range(n_star_nodes):
        node_off[q] = (star_nodes[q, 2] * mj + star_nodes[q, 1]) * mi + star_nodes[q, 0]
    # Star faces padded to three chain steps (padding: an extra zero edge, indicator 0), so that the face
    # loop is branch-free; ring faces likewise (a padding step repeats the last vertex: Δ = 0, y = 0,
    # 1/P = 0, so τ = 0 there and the chain test reduces to the face's own); ring cells' corner offsets.
    star_fe = np.full((max(n_star_faces, 1), 3), n_star_edges, dtype=np.int64)
    star_ind = np.zeros((max(n_star_faces, 1), 3))
    for face in range(n_star_faces):
        for l in range(star_face_m[face]):
            star_fe[face, l] = star_face_edges[face, l]
            star_ind[face, l] = 1.0 if l < star_face_k[face] else 0.0
    n_ring_cells = ring_cell_bound.shape[0]
    cell_off = np.empty((max(n_ring_cells, 1), n_corners), dtype=np.int64)
    for cidx in range(n_ring_cells):
        for mask in range(n_corners):
            ck = ring_cell_base[cidx, 2] + ((mask >> 2) & 1)
            cj = ring_cell_base[cidx, 1] + ((mask >> 1) & 1)
            cell_off[cidx, mask] = (ck * mj + cj) * mi + ring_cell_base[cidx, 0] + (mask & 1)
    ring_off = np.empty((max(n_ring, 1), 4), dtype=np.int64)
    ring_f = np.zeros((max(n_ring, 1), 8))
    for face in range(n_ring):
        m = ring_m[face]
        for l in range(4):
            vtx = min(l, m)
            vk, vj, vi = ring_vertices[face, vtx, 2], ring_vertices[face, vtx, 1], ring_vertices[face, vtx, 0]
            ring_off[face, l] = (vk * mj + vj) * mi + vi
        ring_f[face, 0] = ring_bound[face]
        ring_f[face, 1] = ring_perp2[face]
        for l in range(m):
            ring_f[face, 2 + l] = ring_y[face, l]
            ring_f[face, 5 + l] = ring_inv_p[face, l]
    # 2D row search over the ring (see :func:`_ring_rows`): the squared scaled distance from the node to the
    # cells at each offset along i (less the tables' relative 1e-9), the rows of cells (offsets along j) in
    # order of their distance, and the ring cell at each offset (built from ``ring_cell_base``).
    use_rows = on_nodes and ndim == 2 and n_ring_cells > 0
    span = -ring_index_low if use_rows else 0
    row_cell = np.full((2 * span, 2 * span), -1, dtype=np.int64)
    gap2 = np.zeros((2, 2 * span))
    for cidx in range(n_ring_cells if use_rows else 0):
        row_cell[ring_cell_base[cidx, 1] + span, ring_cell_base[cidx, 0] + span] = cidx
    for a in range(2 if use_rows else 0):
        for t in range(2 * span):
            d = t - span
            g = max(0, d, -d - 1) * scale[a]
            gap2[a, t] = g * g * (1.0 - 1e-9)
    row_order = np.argsort(gap2[1], kind="mergesort")
    row_j = row_order - span
    row_d2 = gap2[1][row_order].copy()
    gap2_i = gap2[0].copy()
    for task in numba.prange(n_tasks):
        n_eval = 0
        n_pass = 0
        g_sum = 0.0
        g_max = -np.inf
        corner = np.empty(8)
        valid = np.empty(8, dtype=np.bool_)
        sw = np.empty(8)
        box_u = np.empty(8)
        wu = np.zeros(8)
        d_in = np.zeros(3)
        d_out = np.zeros(3)
        u = np.empty(3)
        w = np.zeros(3)
        yv = np.empty(3)
        zv = np.empty(3)
        bv = np.empty(3)
        dv = np.empty(3)
        res = np.empty(3)
        c = np.empty(3, dtype=np.int64)
        c0 = np.empty(3, dtype=np.int64)
        prev_rel = np.zeros(3, dtype=np.int64)
        cand = np.empty(2 * span, dtype=np.int64)
        row_mask = np.zeros(2 * span, dtype=np.int64)
        vfull = np.empty(max(n_full, 1))
        node_g = np.empty(max(n_star_nodes, 1))
        edge_d = np.zeros(n_star_edges + 1)  # the last entry stays 0: the padding step of star faces
        edge_t = np.zeros(n_star_edges + 1)
        for row in range(task, n_rows, n_tasks):  # interleaved rows balance the load between threads
            k = row // nj
            j = row - k * nj
            have_prev = False  # the previous point of the row found its minimum in a ring cell
            for i in range(ni):
                dr = ref[k, j, i]
                if not (dr >= threshold):
                    out[k, j, i] = np.nan
                    have_prev = False
                    continue
                dd = global_dd if global_dd > 0.0 else local_fraction * dr
                if not (dd > 0.0):
                    out[k, j, i] = np.nan
                    have_prev = False
                    continue
                inv = 1.0 / dd
                u[0] = alpha[0] + beta[0] * i
                u[1] = alpha[1] + beta[1] * j
                u[2] = alpha[2] + beta[2] * k
                for a in range(3):
                    f = np.floor(u[a])
                    if f < 0.0:
                        f = 0.0
                    if f > mdim[a] - 1:
                        f = mdim[a] - 1.0
                    c0[a] = np.int64(f)
                best = max_gamma2
                n_search = n_off
                win = -1  # the ring cell of the best value, if any
                if on_nodes and (
                    lo_ok[0] <= c0[0] <= hi_ok[0]
                    and lo_ok[1] <= c0[1] <= hi_ok[1]
                    and lo_ok[2] <= c0[2] <= hi_ok[2]
                ):
                    # Star search: every face containing the node, in closed form (see StarTable).
                    base = (c0[2] * mj + c0[1]) * mi + c0[0]
                    for q in range(n_star_nodes):
                        node_g[q] = (ev_flat[base + node_off[q]] - dr) * inv
                    g0 = node_g[0]
                    g02 = g0 * g0
                    if g02 < best:
                        best = g02
                    for e in range(n_star_edges):
                        delta = node_g[star_edge_nodes[e, 1]] - node_g[star_edge_nodes[e, 0]]
                        edge_d[e] = delta * star_edge_inv_p[e]
                        edge_t[e] = delta * edge_d[e]
                    tol = FEASIBILITY_TOLERANCE
                    for fidx in range(n_star_faces):
                        # branch-free and division-free: hull minimum g0² / (1 + S) and chain coordinates
                        # τ_l = [l < k] − g0 Δ_l / (P_l (1 + S)), all tested multiplied by 1 + S > 0
                        e_1 = star_fe[fidx, 0]
                        e_2 = star_fe[fidx, 1]
                        e_3 = star_fe[fidx, 2]
                        den = 1.0 + edge_t[e_1] + edge_t[e_2] + edge_t[e_3]
                        t_1 = star_ind[fidx, 0] * den - g0 * edge_d[e_1]
                        t_2 = star_ind[fidx, 1] * den - g0 * edge_d[e_2]
                        t_3 = star_ind[fidx, 2] * den - g0 * edge_d[e_3]
                        slack = tol * den
                        ok = (
                            (t_1 <= den + slack)
                            & (t_2 <= t_1 + slack)
                            & (t_3 <= t_2 + slack)
                            & (t_3 >= -slack)
                            & (g02 < best * den)
                        )
                        if ok:
                            best = g02 / den
                    done = best <= star_rho2
                    rows_done = False
                    if not done and use_rows:
                        # 2D: the ring by rows of cells, when every cell within reach lies in the grid
                        best, win, rows_done = _ring_rows(
                            best, have_prev, prev_rel, c0[0], c0[1], mi, mj, base, dr, inv, ev_flat, row_j,
                            row_d2, gap2_i, row_cell, ring_index_low, span, scale[0], scale[1], ring_limit2,
                            cand, row_mask,
                        )  # fmt: skip
                        if rows_done:
                            done = best <= ring_limit2
                    if not done and not rows_done:
                        # Ring search: the faces around the star, nearest cell first (see RingTable), while
                        # they lie in the grid; stopped when the distance bound reaches the best (then exact).
                        margin = mdim[0]
                        for a in range(ndim):
                            margin = min(margin, c0[a], mdim[a] - 1 - c0[a])
                        # Probe first the ring cell that held the previous point's minimum (the same cell
                        # of the grid, one step further along i): a low best found early prunes the rest.
                        if have_prev:
                            pi = prev_rel[0] - 1 - ring_index_low
                            pj = prev_rel[1] - (ring_index_low if ndim > 1 else 0)
                            pk = prev_rel[2] - (ring_index_low if ndim > 2 else 0)
                            if 0 <= pi < idx_dim[0] and 0 <= pj < idx_dim[1] and 0 <= pk < idx_dim[2]:
                                cell = ring_cell_index[pk, pj, pi]
                                if (
                                    cell >= 0
                                    and ring_cell_reach[cell] <= margin
                                    and ring_cell_bound[cell] < best
                                ):
                                    value = _ring_cell(
                                        best, cell, base, dr, inv, ev_flat, n_corners, cell_off,
                                        ring_cell_bound, ring_cell_start, ring_f, ring_off,
                                    )  # fmt: skip
                                    if value < best:
                                        best = value
                                        win = cell
                        for cell in range(n_ring_cells + 1):
                            if cell == n_ring_cells:  # every face nearer than the table's limit was seen
                                done = best <= ring_limit2
                                break
                            if ring_cell_bound[cell] >= best:
                                done = True
                                break
                            if ring_cell_reach[cell] > margin:  # near the edges: the cell search follows
                                break
                            value = _ring_cell(
                                best, cell, base, dr, inv, ev_flat, n_corners, cell_off,
                                ring_cell_bound, ring_cell_start, ring_f, ring_off,
                            )  # fmt: skip
                            if value < best:
                                best = value
                                win = cell
                    if done:
                        n_search = 0
                have_prev = win >= 0
                if have_prev:
                    for a in range(3):
                        prev_rel[a] = ring_cell_base[win, a]
                # Exhaustive search: cells in order of their distance bound, stopped when it reaches the best.
                for o in range(n_search):
                    if bounds[o] >= best:
                        break
                    inside = True
                    for a in range(3):
                        c[a] = c0[a] + offsets[o, a]
                        if c[a] < 0 or c[a] > mdim[a] - 1:
                            inside = False
                    if not inside:
                        continue
                    # spatial distance from the point to the cell box (scaled by DTA), per axis
                    box = 0.0
                    for a in range(ndim):
                        w[a] = u[a] - c[a]
                        top = 1.0 if c[a] < mdim[a] - 1 else 0.0
                        g = 0.0
                        if w[a] < 0.0:
                            g = -w[a]
                        elif w[a] > top:
                            g = w[a] - top
                        g *= scale[a]
                        d_in[a] = g * g
                        d_out[a] = w[a] * scale[a] * w[a] * scale[a]
                        box += g * g
                    if box >= best:
                        continue
                    dmin = np.inf
                    dmax = -np.inf
                    for mask in range(n_corners):
                        ci = c[0] + (mask & 1)
                        cj = c[1] + ((mask >> 1) & 1)
                        ck = c[2] + ((mask >> 2) & 1)
                        ok = ci < mi and cj < mj and ck < mk
                        valid[mask] = ok
                        if ok:
                            v = ev[ck, cj, ci]
                            corner[mask] = v
                            if v < dmin:
                                dmin = v
                            if v > dmax:
                                dmax = v
                    gap = 0.0
                    if dr < dmin:
                        gap = (dmin - dr) * inv
                    elif dr > dmax:
                        gap = (dr - dmax) * inv
                    if box + gap * gap >= best:
                        continue
                    # box distance of the faces whose last vertex is corner `mask`: axes in mask span [0, 1],
                    # the others sit at 0
                    for mask in range(n_corners):
                        acc = 0.0
                        for a in range(ndim):
                            acc += d_in[a] if mask & (1 << a) else d_out[a]
                        box_u[mask] = acc
                    wz = (dr - corner[0]) * inv
                    ww = wz * wz
                    for a in range(ndim):
                        wu[1 << a] = w[a]
                        w[a] *= scale[a]
                        ww += w[a] * w[a]
                    for mask in range(n_corners):
                        acc = 0.0
                        for a in range(ndim):
                            if mask & (1 << a):
                                acc += scale[a] * w[a]
                        sw[mask] = acc
                    for fidx in range(n_faces):
                        m = counts[fidx]
                        if m == 0:
                            if ww < best:
                                best = ww
                            continue
                        last = blocks[fidx, 3]
                        if not valid[last]:
                            if fidx < n_full:
                                vfull[fidx] = -np.inf
                            continue
                        if fidx < n_full:
                            # A full simplex: its hull minimum g_T(r)² / (1 + |∇g_T|²) in closed form first
                            # (g_T: its affine dose extended to the point); most are pruned by it.
                            g_t = -wz
                            big_s = 0.0
                            prev_mask = 0
                            for l in range(m):
                                blk = blocks[fidx, l]
                                cur_mask = prev_mask | blk
                                delta = (corner[cur_mask] - corner[prev_mask]) * inv
                                g_t += delta * wu[blk]
                                big_s += delta * delta * inv_s2[blk]
                                prev_mask = cur_mask
                            if g_t * g_t >= best * (1.0 + big_s):
                                vfull[fidx] = best  # a lower bound of the hull minimum, and of its faces'
                                continue
                        else:
                            tets = blocks[fidx, 4]
                            bound = -np.inf
                            for t in range(n_full):
                                if (tets >> t) & 1 and vfull[t] > bound:
                                    bound = vfull[t]
                            if bound >= best:
                                continue
                        # the face's bounding box and dose range bound its minimum from below
                        lo = corner[0]
                        hi = corner[0]
                        cur_mask = 0
                        for l in range(m):
                            cur_mask |= blocks[fidx, l]
                            lo = min(lo, corner[cur_mask])
                            hi = max(hi, corner[cur_mask])
                        fgap = 0.0
                        if dr < lo:
                            fgap = (lo - dr) * inv
                        elif dr > hi:
                            fgap = (dr - hi) * inv
                        fbound = box_u[last] + fgap * fgap
                        if fbound >= best:
                            if fidx < n_full:
                                vfull[fidx] = fbound
                            continue
                        big_a = 0.0
                        big_b = 0.0
                        prev_mask = 0
                        for l in range(m):
                            blk = blocks[fidx, l]
                            cur_mask = prev_mask | blk
                            delta = (corner[cur_mask] - corner[prev_mask]) * inv
                            b = sw[blk] + delta * wz
                            p_inv = inv_s2[blk]
                            yv[l] = b * p_inv
                            zv[l] = delta * p_inv
                            bv[l] = b
                            dv[l] = delta
                            big_a += delta * yv[l]
                            big_b += delta * zv[l]
                            prev_mask = cur_mask
                        kk = big_a / (1.0 + big_b)
                        val = ww
                        prev_tau = 1.0 + FEASIBILITY_TOLERANCE
                        feasible = True
                        for l in range(m):
                            tau = yv[l] - zv[l] * kk
                            if tau > prev_tau:
                                feasible = False
                            prev_tau = tau + FEASIBILITY_TOLERANCE
                            val -= tau * bv[l]
                        if fidx < n_full:
                            vfull[fidx] = max(val, fbound)
                        if not feasible or prev_tau < 0.0 or not (val < best + 1e-9 * (1.0 + ww)):
                            continue
                        # the candidate's value again, directly from its residuals: ww − Σ τ b cancels badly
                        # when γ ≪ the point's offsets, this does not
                        for a in range(ndim):
                            res[a] = w[a]
                        rz = wz
                        for l in range(m):
                            tau = yv[l] - zv[l] * kk
                            blk = blocks[fidx, l]
                            rz -= tau * dv[l]
                            for a in range(ndim):
                                if blk & (1 << a):
                                    res[a] -= tau * scale[a]
                        val = 0.0
                        for a in range(ndim):
                            val += res[a] * res[a]
                        val += rz * rz
                        if val < best:
                            best = val
                gam = np.sqrt(best)
                out[k, j, i] = gam
                n_eval += 1
                if gam <= pass_limit:
                    n_pass += 1
                g_sum += gam
                if gam > g_max:
                    g_max = gam
                b = np.int64(gam / cap * n_bins)
                task_hist[task, min(max(b, 0), n_bins - 1)] += 1
        task_stats[task, 0] = n_eval
        task_stats[task, 1] = n_pass
        task_stats[task, 2] = g_sum
        task_stats[task, 3] = g_max
