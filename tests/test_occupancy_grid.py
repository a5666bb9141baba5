"""Occupancy grid: nerfacc's buffers, its update rule, and marching against dense marching written here.

The reference marches every ray through every step of its lattice, keeps the steps whose midpoint falls in an occupied
cell (computed with the formula the grid documents, so floating-point ties land the same way), and applies early
termination with a per-ray loop. The grid under test skips empty space by bounds, blocks and chunks; it must return
exactly the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from nerfkit.configs.model_components import OccupancySamplerConfig
from nerfkit.data.scene_box import SceneBox
from nerfkit.engine.callbacks import TrainingCallbackLocation
from nerfkit.errors import NerfkitError
from nerfkit.kernels import occupancy_grid as occupancy_module
from nerfkit.kernels.backends import package_status
from nerfkit.kernels.occupancy_grid import OccupancyGrid, lattice_index, march_lattice
from nerfkit.model_components.component_context import ComponentContext

ROI = [-1.0, -1.5, -0.5, 1.0, 0.5, 1.5]
Samples = tuple[Tensor, Tensor, Tensor]


def blob_grid(
    resolution: int | tuple[int, int, int], levels: int = 1, seed: int = 0, blobs: int = 6, scatter: float = 0.0
) -> OccupancyGrid:
    """A grid whose occupied cells are a few random balls (in cell units of each level), plus a fraction `scatter`
    of single cells."""
    grid = OccupancyGrid(ROI, resolution, levels)
    generator = torch.Generator().manual_seed(seed)
    res = grid.resolution.float()
    coords = grid.grid_coords.float() + 0.5
    occupied = []
    for _ in range(levels):
        centres = torch.rand(blobs, 3, generator=generator) * res
        radii = torch.rand(blobs, generator=generator) * res.min() / 5 + 1
        inside = (torch.cdist(coords, centres) < radii).any(dim=-1)
        occupied.append(inside | (torch.rand(len(coords), generator=generator) < scatter))
    grid.binaries.copy_(torch.stack(occupied).view(grid.binaries.shape))
    return grid


def random_rays(num_rays: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Rays from outside and inside the box, towards it and away from it, some grazing; unit directions."""
    generator = torch.Generator().manual_seed(seed)
    centre = torch.tensor(ROI).view(2, 3).mean(dim=0)
    origins = centre + torch.nn.functional.normalize(torch.randn(num_rays, 3, generator=generator), dim=-1) * 4
    inside = torch.rand(num_rays, generator=generator) < 0.2
    origins[inside] = centre + (torch.rand(int(inside.sum()), 3, generator=generator) - 0.5)
    targets = centre + (torch.rand(num_rays, 3, generator=generator) - 0.5) * 3
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    away = torch.rand(num_rays, generator=generator) < 0.1
    directions[away] = -directions[away]
    directions[:3] = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])  # axis-aligned
    return origins, directions


def reference_cells_occupied(grid: OccupancyGrid, rays_o: Tensor, rays_d: Tensor, mids: Tensor) -> Tensor:
    """Whether the point at each midpoint lies in an occupied cell of the finest level containing it."""
    lower, upper = grid.aabbs[0, :3], grid.aabbs[0, 3:]
    res = grid.resolution.float()
    origins, directions = (rays_o - lower) / (upper - lower) * res, rays_d / (upper - lower) * res
    coords = origins[:, None] + mids[..., None] * directions[:, None]
    level = torch.zeros(mids.shape, dtype=torch.long)
    half = res / 2
    for i in range(grid.levels - 1):
        level += (((coords - half).abs() / half).amax(dim=-1) > 2.0**i).long()
    for i in range(1, grid.levels):
        at_level = level == i
        coords[at_level] = (coords[at_level] - half) * 2.0**-i + half
    cells = torch.minimum(coords.floor().clamp(min=0), res - 1).long()
    return grid.binaries[level, cells[..., 0], cells[..., 1], cells[..., 2]]


def reference_march(
    grid: OccupancyGrid, rays_o: Tensor, rays_d: Tensor, nears: Tensor, fars: Tensor, step: float, cone: float = 0.0
) -> Samples:
    """Every step of every ray's lattice from its near plane, kept where the midpoint is inside the box, between the
    planes and in an occupied cell."""
    lower, upper = grid.aabbs[-1, :3], grid.aabbs[-1, 3:]
    inverse = 1.0 / rays_d
    to_lower, to_upper = (lower - rays_o) * inverse, (upper - rays_o) * inverse
    t_enter, t_exit = torch.fmin(to_lower, to_upper).amax(dim=-1), torch.fmax(to_lower, to_upper).amin(dim=-1)
    hit = (t_enter <= t_exit) & (t_exit > 0)
    t_lower, t_upper = torch.maximum(nears, t_enter), torch.minimum(fars, t_exit)
    last = lattice_index(nears, torch.where(hit, t_upper, nears), step, cone).max().item()
    steps = torch.arange(math.ceil(last) + 2, dtype=torch.float32)
    lattice = march_lattice(nears[:, None], steps, step, cone)
    starts, ends = lattice[:, :-1], lattice[:, 1:]
    mids = (starts + ends) * 0.5
    keep = hit[:, None] & (mids >= t_lower[:, None]) & (mids < t_upper[:, None])
    keep &= reference_cells_occupied(grid, rays_o, rays_d, mids)
    ray_indices = torch.arange(len(rays_o))[:, None].expand_as(keep)
    return ray_indices[keep], starts[keep], ends[keep]


def reference_visibility(
    ray_indices: Tensor, t_starts: Tensor, t_ends: Tensor, values: Tensor, is_alpha: bool, eps: float, thre: float
) -> Tensor:
    """Per-ray loop: a sample is kept while the light reaching it is >= eps and (if thre > 0) its alpha >= thre."""
    keep = torch.zeros(len(values), dtype=torch.bool)
    light, ray = 1.0, -1
    for i, value in enumerate(values.double().tolist()):
        if ray_indices[i] != ray:
            light, ray = 1.0, int(ray_indices[i])
        alpha = value if is_alpha else 1 - math.exp(-value * float(t_ends[i] - t_starts[i]))
        keep[i] = light >= eps and (thre <= 0 or alpha >= thre)
        light *= 1 - alpha
    return keep


def assert_same_samples(ours: Samples, reference: Samples) -> None:
    assert ours[0].dtype == torch.long
    for got, expected in zip(ours, reference, strict=True):
        assert torch.equal(got, expected)


def full_planes(num_rays: int, near: float, far: float) -> tuple[Tensor, Tensor]:
    return torch.full((num_rays,), near), torch.full((num_rays,), far)


# ---- buffers ------------------------------------------------------------------------------------------------------


def test_buffers_match_nerfaccs_estimator() -> None:
    grid = OccupancyGrid(ROI, resolution=(8, 6, 4), levels=3)
    state = grid.state_dict()
    assert set(state) == {"resolution", "aabbs", "occs", "binaries"}
    assert state["resolution"].dtype == torch.int32 and state["resolution"].tolist() == [8, 6, 4]
    assert state["aabbs"].shape == (3, 6)
    torch.testing.assert_close(state["aabbs"][0], torch.tensor(ROI))
    torch.testing.assert_close(state["aabbs"][2], torch.tensor([-4.0, -4.5, -3.5, 4.0, 3.5, 4.5]))  # 4x about centre
    assert state["occs"].shape == (3 * 8 * 6 * 4,) and state["binaries"].shape == (3, 8, 6, 4)
    assert state["binaries"].dtype == torch.bool
    # grid_coords lists cells in the order of the flattened binaries (x slowest, z fastest).
    flat = (grid.grid_coords * torch.tensor([6 * 4, 4, 1])).sum(dim=-1)
    assert torch.equal(flat, grid.grid_indices)
    # A scene box's (2, 3) aabb is taken as nerfacc's (6,).
    torch.testing.assert_close(OccupancyGrid(torch.tensor(ROI).view(2, 3), 4).aabbs[0], torch.tensor(ROI))


def test_state_dict_round_trip_changes_what_sampling_sees() -> None:
    source = blob_grid(16, seed=2)
    target = OccupancyGrid(ROI, 16)
    rays_o, rays_d = random_rays(64)
    assert len(target.sampling(rays_o, rays_d, render_step_size=0.05)[0]) == 0
    target.load_state_dict(source.state_dict())
    assert_same_samples(
        target.sampling(rays_o, rays_d, render_step_size=0.05), source.sampling(rays_o, rays_d, render_step_size=0.05)
    )


# ---- update -------------------------------------------------------------------------------------------------------


def coarsest_cell_centres(grid: OccupancyGrid, points: Tensor) -> Tensor:
    """The centre of the coarsest level's cell holding each point: it contains whole cells of every finer level."""
    lower, upper = grid.aabbs[-1, :3], grid.aabbs[-1, 3:]
    cells = ((points - lower) / (upper - lower) * grid.resolution).floor()
    return lower + (cells + 0.5) / grid.resolution * (upper - lower)


def sphere_by_cells(grid: OccupancyGrid, radius: float) -> Callable[[Tensor], Tensor]:
    """Occupancy 1 in the coarsest cells whose centre lies in a ball, else 0: constant over the cells of every
    level, so the random point drawn inside a cell does not matter."""
    return lambda points: (coarsest_cell_centres(grid, points).norm(dim=-1, keepdim=True) < radius).float()


def expected_sphere_cells(grid: OccupancyGrid, radius: float) -> Tensor:
    expected = []
    for level in range(grid.levels):
        lower, upper = grid.aabbs[level, :3], grid.aabbs[level, 3:]
        centres = lower + (grid.grid_coords + 0.5) / grid.resolution * (upper - lower)
        expected.append(coarsest_cell_centres(grid, centres).norm(dim=-1) < radius)
    return torch.stack(expected).view(grid.binaries.shape)


@pytest.mark.parametrize("levels", [1, 2])
def test_warm_up_update_marks_exactly_the_cells_of_a_sphere(levels: int) -> None:
    grid = OccupancyGrid(ROI, 16, levels)
    grid.update_every_n_steps(step=0, occ_eval_fn=sphere_by_cells(grid, 0.6))
    expected = expected_sphere_cells(grid, 0.6)
    assert 0 < expected.sum() < expected.numel() / 4
    assert torch.equal(grid.binaries, expected)


def test_update_is_an_ema_with_a_capped_mean_threshold() -> None:
    grid = OccupancyGrid(ROI, 4)
    grid.occs.copy_(torch.linspace(0.0, 0.02, 64))
    before = grid.occs.clone()
    grid.update_every_n_steps(step=0, occ_eval_fn=lambda x: torch.full((len(x), 1), 0.005), ema_decay=0.9)
    after = torch.maximum(before * 0.9, torch.tensor(0.005))
    torch.testing.assert_close(grid.occs, after)
    assert torch.equal(grid.binaries.flatten(), after > min(0.01, after.mean().item()))
    # With small occupancies, the mean is the threshold (occ_thre only caps it).
    grid.update_every_n_steps(step=0, occ_eval_fn=lambda x: torch.zeros(len(x), 1), occ_thre=1.0)
    assert torch.equal(grid.binaries.flatten(), grid.occs > grid.occs.mean())


def test_after_warm_up_occupied_cells_are_always_revisited() -> None:
    grid = OccupancyGrid(ROI, 8)
    grid.occs[:5] = 1.0
    grid.binaries.view(-1)[:5] = True
    before = grid.occs.clone()
    grid.update_every_n_steps(step=256, occ_eval_fn=lambda x: torch.zeros(len(x), 1), warmup_steps=256)
    torch.testing.assert_close(grid.occs[:5], torch.full((5,), 0.95))  # decayed once, though drawn maybe twice
    changed = grid.occs != before
    assert changed[:5].all() and changed.sum() == 5  # the others were 0 and stay 0
    assert grid.binaries.view(-1)[:5].all() and grid.binaries.sum() == 5


def test_cells_marked_invisible_are_never_updated_nor_averaged() -> None:
    grid = OccupancyGrid(ROI, 4)
    grid.occs[:32] = -1.0
    grid.update_every_n_steps(step=0, occ_eval_fn=lambda x: torch.full((len(x), 1), 0.5))
    assert (grid.occs[:32] == -1).all() and (grid.occs[32:] == 0.5).all()
    assert torch.equal(grid.binaries.flatten(), grid.occs > 0)
    grid.update_every_n_steps(step=320, occ_eval_fn=lambda x: torch.full((len(x), 1), 0.5))
    assert (grid.occs[:32] == -1).all()


def test_updates_run_every_n_steps_in_training_only_and_as_a_callback() -> None:
    context = ComponentContext(SceneBox(torch.tensor(ROI).view(2, 3)), near_plane=0.0, far_plane=10.0)
    sampler = OccupancySamplerConfig(grid_resolution=4, update_every=4).setup(context)
    grid = sampler.grid
    calls = []

    def occ_eval_fn(points: Tensor) -> Tensor:
        calls.append(len(points))
        return torch.ones(len(points), 1)

    callback = sampler.training_callback(occ_eval_fn)
    assert callback.where_to_run == [TrainingCallbackLocation.BEFORE_TRAIN_ITERATION]
    for iteration in range(1, 10):  # the trainer numbers iterations from 1
        callback.run_callback_at_location(iteration, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        callback.run_callback_at_location(iteration, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
    assert calls == [64, 64, 64]  # iterations 1, 5, 9 (0, 4, 8 steps done), every cell (warm-up)
    assert grid.binaries.all()
    grid.eval()
    with pytest.raises(RuntimeError, match="training"):
        grid.update_every_n_steps(step=0, occ_eval_fn=occ_eval_fn)


def test_update_evaluates_large_grids_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(occupancy_module, "EVAL_CHUNK", 100)
    grid = OccupancyGrid(ROI, 8)
    sizes = []

    def occ_eval_fn(points: Tensor) -> Tensor:
        sizes.append(len(points))
        return torch.ones(len(points), 1)

    grid.update_every_n_steps(0, occ_eval_fn)
    assert max(sizes) == 100 and sum(sizes) == 512 and grid.binaries.all()


# ---- sampling -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "levels", "step"),
    [(32, 1, 0.01), ((40, 20, 52), 1, 0.023), (32, 3, 0.03), (64, 2, 0.004), (16, 1, 0.01)],
    ids=["cube", "uneven", "three-levels", "fine-steps", "scattered"],
)
def test_sampling_matches_dense_marching(resolution: int | tuple[int, int, int], levels: int, step: float) -> None:
    grid = blob_grid(resolution, levels, seed=levels, blobs=12, scatter=0.01 if resolution == 16 else 0.0)
    rays_o, rays_d = random_rays(300, seed=levels)
    ours = grid.sampling(rays_o, rays_d, near_plane=0.2, far_plane=6.0, render_step_size=step)
    reference = reference_march(grid, rays_o, rays_d, *full_planes(300, 0.2, 6.0), step)
    assert len(reference[0]) > 500
    assert_same_samples(ours, reference)


def test_sampling_is_exact_around_a_single_occupied_cell() -> None:
    """Block skipping must not lose a cell at the corner of a coarse cell."""
    for cell in [(0, 0, 0), (7, 8, 15), (31, 31, 31), (8, 16, 24)]:
        grid = OccupancyGrid(ROI, 32)
        grid.binaries[(0, *cell)] = True
        lower, upper = grid.aabbs[0, :3], grid.aabbs[0, 3:]
        target = lower + (torch.tensor(cell) + 0.5) / 32 * (upper - lower)
        rays_o = target + torch.nn.functional.normalize(torch.randn(200, 3), dim=-1) * 3
        rays_d = torch.nn.functional.normalize(target + (torch.rand(200, 3) - 0.5) * 0.1 - rays_o, dim=-1)
        ours = grid.sampling(rays_o, rays_d, render_step_size=0.003)
        assert len(ours[0]) > 0
        assert_same_samples(ours, reference_march(grid, rays_o, rays_d, *full_planes(200, 0.0, 1e10), 0.003))


def test_sampling_is_exact_where_levels_meet() -> None:
    """A block of steps may start and end on a coarser level yet cut a corner of the finer box, whose cells count."""
    grid = OccupancyGrid(ROI, 32, levels=2)
    grid.binaries[0] = True
    lower, upper = grid.aabbs[0, :3], grid.aabbs[0, 3:]
    generator = torch.Generator().manual_seed(3)
    corners = lower + (upper - lower) * torch.randint(0, 2, (400, 3), generator=generator)
    targets = corners + (torch.rand(400, 3, generator=generator) - 0.5) * 0.2
    rays_o = targets + torch.nn.functional.normalize(torch.randn(400, 3, generator=generator), dim=-1) * 4
    rays_d = torch.nn.functional.normalize(targets - rays_o, dim=-1)
    ours = grid.sampling(rays_o, rays_d, render_step_size=0.01)
    assert_same_samples(ours, reference_march(grid, rays_o, rays_d, *full_planes(400, 0.0, 1e10), 0.01))


def test_per_ray_bounds_and_planes_are_respected() -> None:
    grid = blob_grid(16, seed=4)
    rays_o, rays_d = random_rays(200, seed=4)
    generator = torch.Generator().manual_seed(4)
    t_min, t_max = torch.rand(200, generator=generator) * 4, torch.rand(200, generator=generator) * 4 + 2
    ray_indices, t_starts, t_ends = grid.sampling(
        rays_o, rays_d, near_plane=1.0, far_plane=5.0, t_min=t_min, t_max=t_max, render_step_size=0.02
    )
    nears, fars = torch.clamp(t_min, min=1.0), torch.clamp(t_max, max=5.0)
    assert_same_samples((ray_indices, t_starts, t_ends), reference_march(grid, rays_o, rays_d, nears, fars, 0.02))
    mids = (t_starts + t_ends) / 2
    assert (mids >= nears[ray_indices]).all() and (mids < fars[ray_indices]).all()


def test_rays_that_miss_the_box_give_no_samples() -> None:
    grid = OccupancyGrid(ROI, 8)
    grid.binaries.fill_(True)
    rays_o = torch.tensor([[5.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, -0.5, 0.5], [5.0, 5.0, 5.0]])
    rays_d = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [-1.0, -1.0, -1.0]])
    rays_d = torch.nn.functional.normalize(rays_d, dim=-1)
    ray_indices, t_starts, _ = grid.sampling(rays_o, rays_d, render_step_size=0.01)
    assert set(ray_indices.tolist()) == {2, 3}  # beside, behind: nothing; from inside, through the box: samples
    assert t_starts[ray_indices == 2].min() < 0.01  # from inside, marching starts at the near plane


def test_no_rays_and_an_empty_grid_give_no_samples() -> None:
    grid = OccupancyGrid(ROI, 8)
    rays_o, rays_d = random_rays(10)
    for samples in (grid.sampling(rays_o, rays_d), blob_grid(8).sampling(rays_o[:0], rays_d[:0])):
        assert [len(s) for s in samples] == [0, 0, 0] and samples[0].dtype == torch.long


def test_stratified_samples_stay_in_their_step() -> None:
    grid = blob_grid(16, seed=5)
    rays_o, rays_d = random_rays(200, seed=5)
    torch.manual_seed(0)
    ray_indices, t_starts, t_ends = grid.sampling(
        rays_o, rays_d, near_plane=0.5, render_step_size=0.02, stratified=True
    )
    torch.manual_seed(0)
    nears = 0.5 + torch.rand(200) * 0.02
    expected = reference_march(grid, rays_o, rays_d, nears, torch.full((200,), 1e10), 0.02)
    assert_same_samples((ray_indices, t_starts, t_ends), expected)
    offsets = nears[ray_indices] - 0.5
    assert ((offsets >= 0) & (offsets < 0.02)).all() and offsets.unique().numel() > 20
    torch.testing.assert_close(t_ends - t_starts, torch.full_like(t_starts, 0.02), atol=1e-5, rtol=0)


def test_cone_angle_lattice_matches_nerfaccs_step_rule() -> None:
    """t_(k+1) = t_k + clamp(t_k * cone_angle, step, 1e10), accumulated step by step in float64."""
    nears = torch.tensor([0.0, 0.3, 2.0, 7.0])
    for cone in (0.004, 0.05):
        t = nears.double().clone()
        lattice = [t]
        for _ in range(400):
            t = t + torch.clamp(t * cone, min=0.01, max=1e10)
            lattice.append(t)
        steps = torch.arange(401, dtype=torch.float32)
        ours = march_lattice(nears[:, None], steps, 0.01, cone)
        torch.testing.assert_close(ours.double(), torch.stack(lattice, dim=-1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            lattice_index(nears[:, None], ours, 0.01, cone), steps.expand_as(ours), atol=1e-2, rtol=0
        )


def test_sampling_with_a_cone_angle_matches_dense_marching() -> None:
    grid = blob_grid(16, levels=2, seed=6)
    rays_o, rays_d = random_rays(200, seed=6)
    ours = grid.sampling(rays_o, rays_d, render_step_size=0.01, cone_angle=0.02)
    expected = reference_march(grid, rays_o, rays_d, *full_planes(200, 0.0, 1e10), 0.01, cone=0.02)
    assert_same_samples(ours, expected)
    widths = ours[2] - ours[1]
    assert widths.max() > 0.05 and widths.min() >= 0.01 - 1e-6  # steps grow with distance, never below the step


def test_chunked_marching_gives_the_same_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = blob_grid(16, seed=7)
    rays_o, rays_d = random_rays(300, seed=7)
    whole = grid.sampling(rays_o, rays_d, render_step_size=0.01)
    monkeypatch.setattr(occupancy_module, "CHUNK_SAMPLES", 64)
    assert_same_samples(grid.sampling(rays_o, rays_d, render_step_size=0.01), whole)


def density_field(rays_o: Tensor, rays_d: Tensor) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """A smooth density with dense cores, as a sigma_fn over packed samples."""

    def sigma_fn(t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor) -> Tensor:
        points = rays_o[ray_indices] + (t_starts + t_ends)[:, None] / 2 * rays_d[ray_indices]
        return 40 * torch.exp(-8 * (points - torch.tensor([0.2, -0.5, 0.5])).square().sum(dim=-1))

    return sigma_fn


@pytest.mark.parametrize(
    ("use_alpha", "early_stop_eps", "alpha_thre"), [(False, 1e-2, 0.0), (False, 1e-4, 0.05), (True, 0.1, 0.2)]
)
def test_early_termination_and_alpha_culling_match_a_per_ray_loop(
    use_alpha: bool, early_stop_eps: float, alpha_thre: float
) -> None:
    grid = blob_grid(16, seed=8, blobs=12)
    grid.occs.fill_(1.0)  # a high mean occupancy leaves alpha_thre as given
    rays_o, rays_d = random_rays(300, seed=8)
    sigma_fn = density_field(rays_o, rays_d)

    def alpha_fn(t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor) -> Tensor:
        return 1 - torch.exp(-sigma_fn(t_starts, t_ends, ray_indices) * (t_ends - t_starts))

    function = {"alpha_fn": alpha_fn} if use_alpha else {"sigma_fn": sigma_fn}
    ours = grid.sampling(
        rays_o, rays_d, render_step_size=0.01, early_stop_eps=early_stop_eps, alpha_thre=alpha_thre, **function
    )
    marched = grid.sampling(rays_o, rays_d, render_step_size=0.01)
    values = (alpha_fn if use_alpha else sigma_fn)(*marched[1:], marched[0])
    keep = reference_visibility(*marched, values, use_alpha, early_stop_eps, alpha_thre)
    assert 0 < keep.sum() < len(keep)
    assert_same_samples(ours, tuple(part[keep] for part in marched))  # type: ignore[arg-type]


def test_alpha_threshold_is_capped_by_the_mean_occupancy() -> None:
    grid = blob_grid(16, seed=9)
    rays_o, rays_d = random_rays(100, seed=9)
    sigma_fn = density_field(rays_o, rays_d)
    marched = grid.sampling(rays_o, rays_d, render_step_size=0.01)
    culled = grid.sampling(rays_o, rays_d, sigma_fn=sigma_fn, render_step_size=0.01, alpha_thre=0.5, early_stop_eps=0)
    assert len(culled[0]) == len(marched[0])  # occs are all 0: the threshold becomes 0


def test_cuda_kernels_backend_says_why_it_cannot_run() -> None:
    if package_status("nerfacc").usable:
        pytest.skip("nerfacc can run here")
    grid = OccupancyGrid(ROI, 8, backend="cuda-kernels")
    with pytest.raises(NerfkitError, match="nerfacc"):
        grid.sampling(*random_rays(4))


NERFACC = package_status("nerfacc")
needs_nerfacc = pytest.mark.skipif(
    not NERFACC.usable, reason=f"nerfacc's CUDA kernels cannot run here: {NERFACC.reason}"
)


@needs_nerfacc
def test_state_dicts_load_into_nerfaccs_estimator_and_back() -> None:
    import nerfacc

    grid = blob_grid(16, levels=2)
    estimator = nerfacc.OccGridEstimator(grid.aabbs[0], 16, levels=2)
    estimator.load_state_dict(grid.state_dict())
    round_trip = OccupancyGrid(ROI, 16, levels=2)
    round_trip.load_state_dict(estimator.state_dict())
    assert torch.equal(round_trip.binaries, grid.binaries)
    torch.testing.assert_close(estimator.aabbs, grid.aabbs)


@needs_nerfacc
@pytest.mark.parametrize("levels", [1, 3])
def test_torch_marching_matches_nerfacc(levels: int) -> None:
    """nerfacc accumulates t in float32 along each ray, so a few samples at cell faces may differ."""
    grid = blob_grid(32, levels=levels, seed=10).cuda()
    rays_o, rays_d = (part.cuda() for part in random_rays(2000, seed=10))
    sigma_fn = density_field(rays_o, rays_d)
    for settings in ({}, {"sigma_fn": sigma_fn, "early_stop_eps": 1e-3}, {"cone_angle": 0.01}):
        samples = {}
        for backend in ("torch", "cuda-kernels"):
            grid.backend = backend
            ray_indices, t_starts, _ = grid.sampling(rays_o, rays_d, render_step_size=0.005, **settings)
            steps = lattice_index(torch.zeros_like(t_starts), t_starts, 0.005, settings.get("cone_angle", 0.0))
            samples[backend] = set(zip(ray_indices.tolist(), steps.round().int().tolist(), strict=True))
        common = samples["torch"] & samples["cuda-kernels"]
        assert len(common) >= 0.99 * max(len(samples["torch"]), len(samples["cuda-kernels"])) > 0
