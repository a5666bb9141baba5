"""Times the acceleration layer's operations on their own: hash encoding (eager vs fused CPU path), occupancy-grid
marching and packed volume rendering. Prints a table and writes JSON.

    python benchmarks/bench_kernels.py --threads 1 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from nerfkit.kernels.hash_encoding import HashGridLayout, fused_cpu_status, hash_encode, hash_encode_torch
from nerfkit.kernels.occupancy_grid import OccupancyGrid
from nerfkit.kernels.volrend import accumulate_along_rays, render_weight_from_density


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def hash_rows(num_points: int, repeats: int) -> list[dict[str, object]]:
    """instant-ngp's grid (16 levels, 2 features, 2^19, 16..2048): forward, and forward + backward to the table, then
    to the table and the positions (what pose refinement and eikonal losses need)."""
    layout = HashGridLayout.create(16, 2, 19, 16, 2048)
    params = (torch.rand(layout.num_params) * 2e-4 - 1e-4).requires_grad_()
    fixed = torch.rand(num_points, 3)
    moving = fixed.clone().requires_grad_()
    rows = []
    for name, encode in (("eager", hash_encode_torch), ("fused", hash_encode)):
        for points, gradients in ((fixed, ""), (moving, ", position gradients")):

            def run(points: torch.Tensor = points, encode: Callable[..., torch.Tensor] = encode) -> torch.Tensor:
                return encode(points, params, layout)

            forward = median_seconds(lambda run=run: run().detach(), repeats)
            both = median_seconds(lambda run=run: run().sum().backward(), repeats)
            rows.append({"operation": f"hash encoding, {name}{gradients}", "items": num_points,
                         "forward_s": forward, "forward_backward_s": both})  # fmt: skip
    return rows


def marching_row(num_rays: int, step: float, repeats: int) -> dict[str, object]:
    """Marching through a grid that is occupied in a ball of radius 0.5 (about 2% of the box, like lego's)."""
    grid = OccupancyGrid(torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]), resolution=128)
    centres = (grid.grid_coords.float() + 0.5) / 128 * 3 - 1.5
    grid.occs.copy_((centres.norm(dim=-1) < 0.5).float())
    grid.binaries.copy_(grid.occs.view(grid.binaries.shape) > 0)
    generator = torch.Generator().manual_seed(0)
    origins = torch.nn.functional.normalize(torch.randn(num_rays, 3, generator=generator), dim=-1) * 4
    directions = torch.nn.functional.normalize(torch.randn(num_rays, 3, generator=generator) * 0.2 - origins, dim=-1)
    samples = grid.sampling(origins, directions, near_plane=2.0, far_plane=6.0, render_step_size=step)[0].numel()
    seconds = median_seconds(
        lambda: grid.sampling(origins, directions, near_plane=2.0, far_plane=6.0, render_step_size=step), repeats
    )
    return {"operation": f"marching, step {step}", "items": num_rays, "forward_s": seconds, "samples": samples}


def volrend_row(num_rays: int, samples_per_ray: int, repeats: int) -> dict[str, object]:
    """Weights from densities, then colour, opacity and depth sums, for packed samples."""
    counts = torch.randint(0, 2 * samples_per_ray, (num_rays,))
    ray_indices = torch.repeat_interleave(torch.arange(num_rays), counts)
    num_samples = len(ray_indices)
    t_starts = torch.rand(num_samples)
    t_ends = t_starts + 0.01
    sigmas = torch.rand(num_samples, requires_grad=True)
    rgb = torch.rand(num_samples, 3, requires_grad=True)

    def render() -> torch.Tensor:
        weights, _, _ = render_weight_from_density(t_starts, t_ends, sigmas, ray_indices=ray_indices, n_rays=num_rays)
        colour = accumulate_along_rays(weights, rgb, ray_indices, num_rays)
        opacity = accumulate_along_rays(weights, None, ray_indices, num_rays)
        depth = accumulate_along_rays(weights, t_starts[:, None], ray_indices, num_rays)
        return colour.sum() + opacity.sum() + depth.sum()

    forward = median_seconds(lambda: render().detach(), repeats)
    both = median_seconds(lambda: render().backward(), repeats)
    return {"operation": "packed volume rendering", "items": num_samples, "forward_s": forward,
            "forward_backward_s": both}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions; the median is reported")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/out/kernels.json"))
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rows = hash_rows(1 << 16, args.repeats)
    rows += [marching_row(4096, step, args.repeats) for step in (0.005, 0.01)]
    rows.append(volrend_row(4096, 32, args.repeats))
    table = Table(title=f"kernels, torch {torch.__version__}, {torch.get_num_threads()} threads, medians")
    for column in ("operation", "items", "forward", "forward+backward", "items/s forward", "items/s fwd+bwd"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for row in rows:
        both = row.get("forward_backward_s")
        table.add_row(
            str(row["operation"]),
            f"{row['items']:,}",
            f"{row['forward_s'] * 1e3:.1f} ms",
            "-" if both is None else f"{both * 1e3:.1f} ms",
            f"{row['items'] / row['forward_s']:,.0f}",
            "-" if both is None else f"{row['items'] / both:,.0f}",
        )
    Console().print(table)
    Console().print(f"fused CPU hash encoding: {fused_cpu_status().reason}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}
    args.output.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
