"""A cascaded binary occupancy grid that tells ray marching where space is empty: Instant-NGP's, kept as nerfacc 0.5's
OccGridEstimator keeps it.

Semantics follow nerfacc 0.5 (`OccGridEstimator` in nerfacc/estimators/occ_grid.py; the marching in
`traverse_grids_kernel`, nerfacc/cuda/csrc/grid.cu):
- Level i covers the region of interest scaled by 2^i about its centre; all levels share one resolution. A point
  belongs to the finest level whose box holds it.
- Marching: a ray's candidate samples are the intervals [t_k, t_(k+1)] of one lattice that starts at its near plane
  (raised to `t_min`; plus a random fraction of a step when stratified) and steps by `render_step_size`, or with
  `cone_angle` > 0 by clamp(t * cone_angle, render_step_size, 1e10). A sample is kept when its midpoint lies in
  [max(near, box entry), min(far, box exit)) of the coarsest box, and in an occupied cell of its level; so a kept
  interval may overhang the box or the far plane by up to half a step, as in nerfacc.
- Then, given `sigma_fn` or `alpha_fn` (evaluated without gradients on the kept samples), samples reached by a
  transmittance below `early_stop_eps`, or with alpha below min(`alpha_thre`, mean occupancy), are dropped.
- Update: during warm-up every cell, afterwards cells_per_level // 4 uniformly drawn cells plus the occupied cells
  (as many, drawn with replacement, when there are more), are evaluated once at a random point of the cell;
  occupancy = max(decay * occupancy, new value); a cell is occupied above min(`occ_thre`, mean occupancy). Cells
  marked invisible (occupancy -1, as nerfacc's `mark_invisible_cells` writes) are neither updated nor averaged.

Which cell a midpoint falls in is computed in the finest level's cell units (`grid_frame`, `locate_cells`): the
floating-point recipe is part of the definition, so that a dense reference can reproduce it bit for bit.

The PyTorch marching is vectorised over rays and steps. It skips the parts of each ray outside the bounds of the
occupied cells, then tests blocks of consecutive steps against a coarse grid (one coarse cell per COARSE_FACTOR^3 fine
cells): a block lies within the coarse cells spanned by its first and last midpoints, so if those are empty the whole
block is. Only the steps of the remaining blocks are looked up in the fine grid, in chunks of bounded size. The
skipping is conservative: the samples are exactly those of dense marching.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from nerfkit.kernels.backends import Backend
from nerfkit.kernels.volrend import import_nerfacc, render_visibility_from_alpha, render_visibility_from_density

SampleFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(t_starts, t_ends, ray_indices) -> a density or an alpha per sample, shape (num_samples,)."""
OccEvalFn = Callable[[Tensor], Tensor]
"""Points (N, 3) -> occupancy (N, 1), e.g. density times the render step size."""

COARSE_FACTOR = 8
"""Fine cells per coarse cell along each axis, for skipping empty space block by block."""
CHUNK_SAMPLES = 2**20
"""Candidate samples looked up in the fine grid at once: bounds the marching's memory for any number of rays."""
EVAL_CHUNK = 2**18
"""Points per call of the occupancy function in an update: bounds its memory when it evaluates every cell."""


def enlarge_aabb(aabb: Float[Tensor, "6"], factor: float) -> Float[Tensor, "6"]:
    """The box scaled by `factor` about its centre."""
    centre, half = (aabb[:3] + aabb[3:]) / 2, (aabb[3:] - aabb[:3]) / 2
    return torch.cat([centre - half * factor, centre + half * factor])


def ray_aabb_intersect(
    rays_o: Float[Tensor, "num_rays 3"], rays_d: Float[Tensor, "num_rays 3"], aabb: Float[Tensor, "6"]
) -> tuple[Float[Tensor, " num_rays"], Float[Tensor, " num_rays"], Bool[Tensor, " num_rays"]]:
    """Where each ray enters and leaves the box, and whether it hits it in front of its origin (exit > 0)."""
    inverse = 1.0 / rays_d
    to_min, to_max = (aabb[:3] - rays_o) * inverse, (aabb[3:] - rays_o) * inverse
    # fmin/fmax ignore the NaN of 0 * inf, from an origin on a face with the direction parallel to it.
    t_enter = torch.fmin(to_min, to_max).amax(dim=-1)
    t_exit = torch.fmax(to_min, to_max).amin(dim=-1)
    return t_enter, t_exit, (t_enter <= t_exit) & (t_exit > 0)


def _cone_switch(
    t0: Float[Tensor, "*batch"], step_size: float, cone_angle: float
) -> tuple[Float[Tensor, "*batch"], Float[Tensor, "*batch"]]:
    """The first lattice step k0 at which t * cone_angle reaches step_size, and t_k0: beyond it steps grow."""
    k0 = torch.ceil((step_size / cone_angle - t0) / step_size).clamp(min=0)
    return k0, t0 + k0 * step_size


def march_lattice(
    t0: Float[Tensor, "*batch"], k: Float[Tensor, "*batch"], step_size: float, cone_angle: float = 0.0
) -> Float[Tensor, "*batch"]:
    """t_k of the lattice t_(k+1) = t_k + clamp(t_k * cone_angle, step_size, 1e10) from t_0 = t0, in closed form:
    constant steps until t reaches step_size / cone_angle, then a geometric series."""
    if cone_angle <= 0:
        return t0 + k * step_size
    k0, t_switch = _cone_switch(t0, step_size, cone_angle)
    # exp of a product keeps float32 within ~1e-6 of the series; a float32 power of 1 + cone_angle drifts by 1e-5.
    return torch.where(k <= k0, t0 + k * step_size, t_switch * torch.exp((k - k0) * math.log1p(cone_angle)))


def lattice_index(
    t0: Float[Tensor, "*batch"], t: Float[Tensor, "*batch"], step_size: float, cone_angle: float = 0.0
) -> Float[Tensor, "*batch"]:
    """The inverse of `march_lattice` in k, as a real number (up to rounding)."""
    if cone_angle <= 0:
        return (t - t0) / step_size
    k0, t_switch = _cone_switch(t0, step_size, cone_angle)
    beyond = k0 + torch.log(t.clamp(min=t_switch) / t_switch) / math.log1p(cone_angle)
    return torch.where(t <= t_switch, (t - t0) / step_size, beyond)


def grid_frame(
    rays_o: Float[Tensor, "num_rays 3"],
    rays_d: Float[Tensor, "num_rays 3"],
    aabb: Float[Tensor, "6"],
    resolution: Float[Tensor, "3"],
) -> tuple[Float[Tensor, "3 num_rays"], Float[Tensor, "3 num_rays"]]:
    """Origins and directions in the cell units of the finest level, where its box spans [0, resolution]: the point
    at t is then g_o + t * g_d. Axis first, so that the arithmetic per sample runs along contiguous rows."""
    lower, upper = aabb[:3], aabb[3:]
    origins = (rays_o - lower) / (upper - lower) * resolution
    directions = rays_d / (upper - lower) * resolution
    return origins.T.contiguous(), directions.T.contiguous()


def locate_cells(
    coords: Float[Tensor, " 3 *batch"], levels: int, resolution: Sequence[int]
) -> tuple[Int[Tensor, "*batch"] | None, Float[Tensor, " 3 *batch"]]:
    """The level of points given in the finest level's cell units, and their integer cell there.

    A point's level is the finest whose box holds it (the coarsest for points outside all; None when there is one
    level). Level i's box is level 0's scaled by 2^i about the centre, so its cell units are (coords - resolution / 2)
    * 2^-i + resolution / 2 (for i > 0; level 0 keeps `coords` as they are). Cells are clamped to the grid, as
    nerfacc's traversal clamps them.
    """
    level = None
    if levels > 1:
        half = coords.new_tensor(resolution).view(3, *[1] * (coords.dim() - 1)) / 2
        centred = coords - half
        distance = (centred.abs() / half).amax(dim=0)
        level = sum((distance > 2.0**i).long() for i in range(levels - 1))
        coords = torch.where(level == 0, coords, centred * torch.exp2(-level.to(coords.dtype)) + half)
    cells = coords.floor().clamp_(min=0)
    if resolution[0] == resolution[1] == resolution[2]:  # one scalar clamp is much faster than one per axis
        return level, cells.clamp_(max=resolution[0] - 1)
    for axis, size in enumerate(resolution):
        cells[axis].clamp_(max=size - 1)
    return level, cells


def cell_ids(
    level: Int[Tensor, "*batch"] | None, cells: Float[Tensor, " 3 *batch"], resolution: Sequence[int]
) -> Int[Tensor, "*batch"]:
    """Positions in the flattened (levels, x, y, z) grid. Computed on integer-valued floats, exactly: a level holds
    fewer than 2^24 cells."""
    res_x, res_y, res_z = resolution
    within = torch.add(cells[2], torch.add(cells[1], cells[0], alpha=res_y), alpha=res_z).int()
    return within if level is None else within + (level * (res_x * res_y * res_z)).int()


@dataclass(frozen=True)
class _SkipTables:
    """What the marching derives from the binary grid, once per change of the grid."""

    binaries: Tensor
    """The grid these tables were built from (held, so that its identity and version identify it)."""
    version: int
    occupied_aabb: Float[Tensor, "6"] | None
    """Bounds of all occupied cells (of any level), slightly enlarged; None when nothing is occupied."""
    coarse: Bool[Tensor, " levels_x_coarse_cells"]
    """Per level, whether each coarse cell (COARSE_FACTOR^3 fine cells) may hold an occupied cell."""
    neighbourhoods: Bool[Tensor, " levels_x_coarse_cells"]
    """Per level and coarse cell (i, j, k): whether coarse cells i..i+1, j..j+1, k..k+1 may hold one."""
    coarse_resolution: tuple[int, int, int]


class OccupancyGrid(nn.Module):
    """Binary occupancy over the scene box at `levels` cascaded scales, with its EMA update and ray marching.

    Buffers match nerfacc's OccGridEstimator (`resolution`, `aabbs`, `occs`, `binaries`; `grid_coords` and
    `grid_indices` not saved), so state dicts load into either. `roi_aabb` is (6,) as in nerfacc or (2, 3) as in
    SceneBox.
    """

    def __init__(
        self,
        roi_aabb: Float[Tensor, "6"] | Float[Tensor, "2 3"] | Sequence[float],
        resolution: int | Sequence[int] = 128,
        levels: int = 1,
        backend: Backend = "torch",
    ) -> None:
        super().__init__()
        resolution_list = [resolution] * 3 if isinstance(resolution, int) else [int(r) for r in resolution]
        if math.prod(resolution_list) > 2**24:
            raise ValueError(f"an occupancy grid of {resolution_list} cells per level is above the 2^24 supported")
        roi = torch.as_tensor(roi_aabb, dtype=torch.float32).reshape(6)
        self.levels = levels
        self.cells_per_lvl = math.prod(resolution_list)
        self.backend = backend
        self.register_buffer("resolution", torch.tensor(resolution_list, dtype=torch.int32))
        self.register_buffer("aabbs", torch.stack([enlarge_aabb(roi, 2**i) for i in range(levels)]))
        self.register_buffer("occs", torch.zeros(levels * self.cells_per_lvl))
        self.register_buffer("binaries", torch.zeros([levels, *resolution_list], dtype=torch.bool))
        grid_coords = torch.stack(torch.meshgrid(*(torch.arange(r) for r in resolution_list), indexing="ij"), dim=-1)
        self.register_buffer("grid_coords", grid_coords.reshape(-1, 3), persistent=False)
        self.register_buffer("grid_indices", torch.arange(self.cells_per_lvl), persistent=False)
        self._skip_tables: _SkipTables | None = None

    @property
    def device(self) -> torch.device:
        return self.aabbs.device

    # ---- update --------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def update_every_n_steps(
        self,
        step: int,
        occ_eval_fn: OccEvalFn,
        occ_thre: float = 1e-2,
        ema_decay: float = 0.95,
        warmup_steps: int = 256,
        n: int = 16,
    ) -> None:
        """Refreshes the occupancy every `n` steps of training (see the module docstring for the rule)."""
        if step % n == 0:
            self.update_occupancy(step, occ_eval_fn, ema_decay, warmup_steps)
            self.mark_occupied(occ_thre)

    @torch.no_grad()
    def update_occupancy(
        self, step: int, occ_eval_fn: OccEvalFn, ema_decay: float = 0.95, warmup_steps: int = 256
    ) -> None:
        """One refresh of the occupancy values; `mark_occupied` then turns them into the cells marching visits (in
        between, the ranks of a distributed run can make their values agree)."""
        if not self.training:
            raise RuntimeError("OccupancyGrid.update_every_n_steps runs in training mode only (call .train())")
        if step < warmup_steps:
            cells = self._all_cells()
        else:
            cells = self._uniform_and_occupied_cells(self.cells_per_lvl // 4)
        for level, indices in enumerate(cells):
            coords = self.grid_coords[indices]
            unit = (coords + torch.rand_like(coords, dtype=torch.float32)) / self.resolution
            lower, upper = self.aabbs[level, :3], self.aabbs[level, 3:]
            points = lower + unit * (upper - lower)
            occ = torch.cat([occ_eval_fn(chunk).reshape(-1) for chunk in points.split(EVAL_CHUNK)])
            ids = level * self.cells_per_lvl + indices
            # A cell drawn twice decays once and keeps its larger new value (nerfacc's intended scatter-max).
            self.occs[ids] = self.occs[ids] * ema_decay
            self.occs.scatter_reduce_(0, ids, occ.to(self.occs.dtype), reduce="amax")

    @torch.no_grad()
    def mark_occupied(self, occ_thre: float = 1e-2) -> None:
        """Cells whose occupancy exceeds min(occ_thre, mean occupancy) are occupied."""
        threshold = self.occs[self.occs >= 0].mean().clamp(max=occ_thre)
        self.binaries.copy_((self.occs > threshold).view(self.binaries.shape))

    def _all_cells(self) -> list[Int[Tensor, " cells"]]:
        """Every cell of each level, except those marked invisible (-1), which are never updated."""
        occs = self.occs.view(self.levels, -1)
        return [self.grid_indices[occs[level] >= 0] for level in range(self.levels)]

    def _uniform_and_occupied_cells(self, n: int) -> list[Int[Tensor, " cells"]]:
        """Per level: n cells drawn uniformly (invisible ones dropped), plus the occupied cells, n of them drawn
        with replacement when there are more."""
        occs = self.occs.view(self.levels, -1)
        chosen = []
        for level in range(self.levels):
            uniform = torch.randint(self.cells_per_lvl, (n,), device=self.device)
            uniform = uniform[occs[level, uniform] >= 0]
            occupied = torch.nonzero(self.binaries[level].flatten())[:, 0]
            if n < len(occupied):
                occupied = occupied[torch.randint(len(occupied), (n,), device=self.device)]
            chosen.append(torch.cat([uniform, occupied]))
        return chosen

    # ---- sampling ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def sampling(
        self,
        rays_o: Float[Tensor, "num_rays 3"],
        rays_d: Float[Tensor, "num_rays 3"],
        sigma_fn: SampleFn | None = None,
        alpha_fn: SampleFn | None = None,
        near_plane: float = 0.0,
        far_plane: float = 1e10,
        t_min: Float[Tensor, " num_rays"] | None = None,
        t_max: Float[Tensor, " num_rays"] | None = None,
        render_step_size: float = 1e-3,
        early_stop_eps: float = 1e-4,
        alpha_thre: float = 0.0,
        stratified: bool = False,
        cone_angle: float = 0.0,
    ) -> tuple[Int[Tensor, " num_samples"], Float[Tensor, " num_samples"], Float[Tensor, " num_samples"]]:
        """Packed samples (ray_indices, t_starts, t_ends) in occupied space, sorted by ray and then distance.

        Directions should be unit vectors (distances are in units of their length). Not differentiable.
        """
        if self.backend == "cuda-kernels":
            return self._nerfacc_estimator().sampling(
                rays_o,
                rays_d,
                sigma_fn=sigma_fn,
                alpha_fn=alpha_fn,
                near_plane=near_plane,
                far_plane=far_plane,
                t_min=t_min,
                t_max=t_max,
                render_step_size=render_step_size,
                early_stop_eps=early_stop_eps,
                alpha_thre=alpha_thre,
                stratified=stratified,
                cone_angle=cone_angle,
            )
        nears = torch.full_like(rays_o[:, 0], near_plane)
        fars = torch.full_like(rays_o[:, 0], far_plane)
        if t_min is not None:
            nears = torch.maximum(nears, t_min)
        if t_max is not None:
            fars = torch.minimum(fars, t_max)
        if stratified:
            nears = nears + torch.rand_like(nears) * render_step_size
        ray_indices, t_starts, t_ends = self._march(rays_o, rays_d, nears, fars, render_step_size, cone_angle)

        if (alpha_thre > 0.0 or early_stop_eps > 0.0) and (sigma_fn is not None or alpha_fn is not None):
            alpha_thre = min(alpha_thre, self.occs.mean().item())
            settings = {"early_stop_eps": early_stop_eps, "alpha_thre": alpha_thre}
            if sigma_fn is not None:
                sigmas = sigma_fn(t_starts, t_ends, ray_indices) if len(t_starts) else t_starts.new_zeros(0)
                visible = render_visibility_from_density(t_starts, t_ends, sigmas, ray_indices, **settings)
            elif alpha_fn is not None:
                alphas = alpha_fn(t_starts, t_ends, ray_indices) if len(t_starts) else t_starts.new_zeros(0)
                visible = render_visibility_from_alpha(alphas, ray_indices, **settings)
            ray_indices, t_starts, t_ends = ray_indices[visible], t_starts[visible], t_ends[visible]
        return ray_indices, t_starts, t_ends

    def _march(
        self,
        rays_o: Float[Tensor, "num_rays 3"],
        rays_d: Float[Tensor, "num_rays 3"],
        nears: Float[Tensor, " num_rays"],
        fars: Float[Tensor, " num_rays"],
        step_size: float,
        cone_angle: float,
    ) -> tuple[Int[Tensor, " num_samples"], Float[Tensor, " num_samples"], Float[Tensor, " num_samples"]]:
        tables = self._tables()
        nothing = rays_o.new_zeros(0)
        if tables.occupied_aabb is None or rays_o.shape[0] == 0:
            return nothing.long(), nothing, nothing
        t_enter, t_exit, hit = ray_aabb_intersect(rays_o, rays_d, self.aabbs[-1])
        t_lower, t_upper = torch.maximum(nears, t_enter), torch.minimum(fars, t_exit)
        # Only the stretch through the occupied cells' bounds can hold samples; a step either side of it is
        # searched too, so rounding cannot lose one.
        occ_enter, occ_exit, occ_hit = ray_aabb_intersect(rays_o, rays_d, tables.occupied_aabb)
        search_lower, search_upper = torch.maximum(t_lower, occ_enter), torch.minimum(t_upper, occ_exit)
        searched = hit & occ_hit & (search_lower < search_upper)
        search_lower = torch.where(searched, search_lower, nears)
        search_upper = torch.where(searched, search_upper, nears)
        first_step = (lattice_index(nears, search_lower, step_size, cone_angle).floor() - 1).clamp(min=0)
        end_step = lattice_index(nears, search_upper, step_size, cone_angle).ceil() + 1
        num_steps = torch.where(searched, end_step - first_step, 0).clamp(min=0).long()

        block = self._block_length(step_size, rays_d)
        num_blocks = torch.div(num_steps + block - 1, block, rounding_mode="floor")
        block_rays = torch.repeat_interleave(torch.arange(len(num_blocks), device=self.device), num_blocks)
        rank = torch.arange(len(block_rays), device=self.device) - (num_blocks.cumsum(0) - num_blocks)[block_rays]
        block_steps = first_step[block_rays] + rank * block
        last_steps = torch.minimum(block_steps + block - 1, end_step[block_rays] - 1)
        grid_o, grid_d = grid_frame(rays_o, rays_d, self.aabbs[0], self.resolution)
        may_hold = self._blocks_may_hold_samples(
            tables, grid_o, grid_d, nears, block_rays, block_steps, last_steps, step_size, cone_angle
        )
        block_rays, block_steps = block_rays[may_hold], block_steps[may_hold]

        binaries = self.binaries.view(-1)
        resolution = self.resolution.tolist()
        offsets = torch.arange(block + 1, device=self.device, dtype=rays_o.dtype)
        per_chunk = max(1, CHUNK_SAMPLES // block)
        chunks = []
        for rays, steps in zip(block_rays.split(per_chunk), block_steps.split(per_chunk), strict=True):
            lattice = march_lattice(nears[rays, None], steps[:, None] + offsets, step_size, cone_angle)
            mids = (lattice[:, :-1] + lattice[:, 1:]) * 0.5
            keep = (mids >= t_lower[rays, None]) & (mids < t_upper[rays, None])
            coords = grid_o[:, rays, None] + mids * grid_d[:, rays, None]
            level, cells = locate_cells(coords, self.levels, resolution)
            keep &= binaries.index_select(0, cell_ids(level, cells, resolution).view(-1)).view(keep.shape)
            kept = torch.nonzero(keep.view(-1))[:, 0]
            kept_blocks = torch.div(kept, block, rounding_mode="floor")
            kept_starts = kept + kept_blocks  # the same step in the lattice, which has one more column
            flat_lattice = lattice.view(-1)
            chunks.append(
                (
                    rays.index_select(0, kept_blocks),
                    flat_lattice.index_select(0, kept_starts),
                    flat_lattice.index_select(0, kept_starts + 1),
                )
            )
        if not chunks:
            return nothing.long(), nothing, nothing
        ray_indices, t_starts, t_ends = (torch.cat(parts) for parts in zip(*chunks, strict=True))
        return ray_indices, t_starts, t_ends

    def _block_length(self, step_size: float, rays_d: Float[Tensor, "num_rays 3"]) -> int:
        """Steps per block: as many as span one coarse cell's width along any axis (at constant steps), so that most
        blocks end in the coarse cell they start in or a neighbouring one, where they can be tested cheaply."""
        aabb = self.aabbs[0]
        coarse_width = ((aabb[3:] - aabb[:3]) / self.resolution * COARSE_FACTOR).min().item()
        reach = step_size * rays_d.abs().max().item()
        return 1 + int(coarse_width / reach) if reach > 0 else 1

    def _blocks_may_hold_samples(
        self,
        tables: _SkipTables,
        grid_o: Float[Tensor, "3 num_rays"],
        grid_d: Float[Tensor, "3 num_rays"],
        nears: Float[Tensor, " num_rays"],
        block_rays: Int[Tensor, " num_blocks"],
        first_steps: Int[Tensor, " num_blocks"],
        last_steps: Int[Tensor, " num_blocks"],
        step_size: float,
        cone_angle: float,
    ) -> Bool[Tensor, " num_blocks"]:
        """False only for blocks whose samples' midpoints all lie in empty coarse cells.

        The midpoints lie on the segment between the first and the last, so within the box of coarse cells spanned
        by its ends: when the ends share a level and differ along at most one axis, that is the two end cells; when
        they differ by at most one cell along each axis, the 2x2x2 neighbourhood of the lower corner. Any other block
        (one that changes level, or whose steps cone_angle has grown) is kept.
        """
        ends = torch.stack([first_steps, last_steps], dim=-1).to(grid_o.dtype)
        t0 = nears[block_rays, None]
        mids = (
            march_lattice(t0, ends, step_size, cone_angle) + march_lattice(t0, ends + 1, step_size, cone_angle)
        ) * 0.5
        coords = grid_o[:, block_rays, None] + mids * grid_d[:, block_rays, None]
        level, cells = locate_cells(coords, self.levels, self.resolution.tolist())
        coarse = (cells / COARSE_FACTOR).floor()
        apart = (coarse[..., 0] - coarse[..., 1]).abs()
        same_level = torch.ones_like(block_rays, dtype=torch.bool) if level is None else level[:, 0] == level[:, 1]
        adjacent = same_level & (apart.sum(dim=0) <= 1)
        compact = same_level & (apart <= 1).all(dim=0)
        ends_hold = tables.coarse[cell_ids(level, coarse, tables.coarse_resolution)].any(dim=-1)
        corner_level = None if level is None else level[:, 0]
        corners = cell_ids(corner_level, coarse.amin(dim=-1), tables.coarse_resolution)
        return torch.where(adjacent, ends_hold, torch.where(compact, tables.neighbourhoods[corners], True))

    def _tables(self) -> _SkipTables:
        """The skipping tables, rebuilt whenever the binary grid has changed (update, load_state_dict, .to())."""
        tables = self._skip_tables
        if tables is not None and tables.binaries is self.binaries and tables.version == self.binaries._version:
            return tables
        self._skip_tables = tables = self._build_tables()
        return tables

    def _build_tables(self) -> _SkipTables:
        resolution = self.resolution.tolist()
        coarse_resolution = [-(-r // COARSE_FACTOR) for r in resolution]
        padding = [0, 0] * 3
        for axis, (fine, coarse) in enumerate(zip(resolution, coarse_resolution, strict=True)):
            padding[2 * (2 - axis) + 1] = coarse * COARSE_FACTOR - fine
        padded = F.pad(self.binaries.float(), padding)
        coarse = F.max_pool3d(padded[:, None], COARSE_FACTOR)[:, 0] > 0
        # A coarser level's cells over the next finer box stand for that level's cells there: count them as held
        # (one coarse cell wider than the box, against rounding at its faces).
        for level in range(1, self.levels):
            inner = [slice(max(c // 4 - 1, 0), -(-3 * c // 4) + 1) for c in coarse_resolution]
            coarse[(level, *inner)] = True
        neighbourhoods = F.max_pool3d(F.pad(coarse.float(), [0, 1] * 3)[:, None], 2, stride=1)[:, 0] > 0
        return _SkipTables(
            binaries=self.binaries,
            version=self.binaries._version,
            occupied_aabb=self._occupied_aabb(),
            coarse=coarse.reshape(-1),
            neighbourhoods=neighbourhoods.reshape(-1),
            coarse_resolution=tuple(coarse_resolution),  # type: ignore[arg-type]
        )

    def _occupied_aabb(self) -> Float[Tensor, "6"] | None:
        """Bounds of the occupied cells of all levels, enlarged by a hundredth of a fine cell against rounding."""
        lowers, uppers = [], []
        for level in range(self.levels):
            grid = self.binaries[level]
            spans = [torch.nonzero(grid.any(dim=other)).flatten() for other in ((1, 2), (0, 2), (0, 1))]
            if len(spans[0]) == 0:
                continue
            first = torch.stack([span[0] for span in spans]).float()
            last = torch.stack([span[-1] for span in spans]).float() + 1
            lower, upper = self.aabbs[level, :3], self.aabbs[level, 3:]
            cell = (upper - lower) / self.resolution
            lowers.append(lower + first * cell - cell / 100)
            uppers.append(lower + last * cell + cell / 100)
        if not lowers:
            return None
        return torch.cat([torch.stack(lowers).amin(dim=0), torch.stack(uppers).amax(dim=0)])

    def _nerfacc_estimator(self) -> nn.Module:
        """nerfacc's OccGridEstimator over this grid's buffers: built on first use, kept out of the state dict."""
        estimator = self.__dict__.get("_estimator")
        if estimator is None:
            estimator = import_nerfacc().OccGridEstimator(self.aabbs[0], self.resolution, self.levels)
            self.__dict__["_estimator"] = estimator
        estimator.to(self.device)
        for name in ("resolution", "aabbs", "occs", "binaries"):
            setattr(estimator, name, getattr(self, name))
        return estimator
