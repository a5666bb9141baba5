"""Occupancy-grid sampling, shared by every model that marches rays through a grid; it keeps the grid up to date."""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.model_components import OccupancySamplerConfig
from nerfkit.data.scene_box import SceneBox
from nerfkit.engine.callbacks import TrainingCallback, TrainingCallbackLocation
from nerfkit.engine.distributed import broadcast_from_rank_zero
from nerfkit.kernels.backends import Backend
from nerfkit.kernels.occupancy_grid import OccupancyGrid

DensityFn = Callable[[Float[Tensor, "num_points 3"]], Float[Tensor, "num_points 1"]]


class OccupancySampler(nn.Module):
    """Packed samples (ray_indices, t_starts, t_ends) from the grid, and the callback that keeps it up to date."""

    def __init__(
        self,
        config: OccupancySamplerConfig,
        scene_box: SceneBox,
        near_plane: float,
        far_plane: float,
        backend: Backend,
    ) -> None:
        super().__init__()
        self.config = config
        self.near_plane = near_plane
        self.far_plane = far_plane
        self.render_step_size = config.render_step_size or float(torch.linalg.norm(scene_box.size)) / 1024
        self.grid = OccupancyGrid(
            roi_aabb=scene_box.aabb.flatten(),
            resolution=config.grid_resolution,
            levels=config.grid_levels,
            backend=backend,
        )

    def training_callback(self, density_fn: DensityFn) -> TrainingCallback:
        """Refreshes the grid before every `update_every`-th training iteration.

        nerfkit numbers iterations from 1 while the schedule counts completed steps (as nerfacc does), so iteration
        1 updates the grid at step 0 and training never starts on the empty initial grid.
        """

        def opacity_over_one_step(positions: Tensor) -> Tensor:
            # The alpha of one render step: the quantity marching compares with alpha_thre, so the grid and the
            # culling never disagree about what is visible.
            return -torch.expm1(-density_fn(positions) * self.render_step_size)

        def update(step: int) -> None:
            done = step - 1
            if done % self.config.update_every:
                return
            self.grid.update_occupancy(done, opacity_over_one_step, warmup_steps=self.config.warmup_steps)
            # Ranks drew different cells and jitter; all take rank 0's estimate, so the grids (and the samples they
            # give) stay identical, as if one process had trained.
            broadcast_from_rank_zero(self.grid.occs)
            self.grid.mark_occupied(self.config.occupancy_threshold)

        return TrainingCallback(where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], func=update)

    @torch.no_grad()
    def forward(
        self, ray_bundle: RayBundle, density_fn: DensityFn
    ) -> tuple[Int[Tensor, " num_samples"], Float[Tensor, " num_samples"], Float[Tensor, " num_samples"]]:
        origins, directions = ray_bundle.origins, ray_bundle.directions

        def sigma_fn(t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor) -> Tensor:
            midpoints = (t_starts + t_ends)[:, None] / 2
            return density_fn(origins[ray_indices] + directions[ray_indices] * midpoints).squeeze(-1)

        return self.grid.sampling(
            origins,
            directions,
            sigma_fn=sigma_fn,
            near_plane=self.near_plane,
            far_plane=self.far_plane,
            render_step_size=self.render_step_size,
            alpha_thre=self.config.alpha_thre,
            early_stop_eps=self.config.early_stop_eps,
            cone_angle=self.config.cone_angle,
            stratified=self.training,
        )
