"""kit-train flags shared by tests that train (tests/ is on sys.path, so test modules import this directly)."""

TINY_MODEL = [
    "--pipeline.datamanager.train-num-rays-per-batch", "64",
    "--pipeline.datamanager.eval-num-rays-per-batch", "64",
    "--pipeline.model.coarse-sampler.num-samples", "8",
    "--pipeline.model.fine-sampler.num-samples", "8",
    "--pipeline.model.base-mlp-num-layers", "2",
    "--pipeline.model.base-mlp-layer-width", "32",
    "--pipeline.model.skip-connections", "1",
    "--pipeline.model.head-mlp-layer-width", "16",
    "--pipeline.model.eval-num-rays-per-chunk", "2500",
]  # fmt: skip
"""vanilla-nerf-style model and batch sizes that make a training step take milliseconds on a CPU."""

TINY_NGP_MODEL = [
    "--pipeline.datamanager.dataparser.downscale-factor", "8",
    "--pipeline.datamanager.train-num-rays-per-batch", "256",
    "--pipeline.target-num-samples", "4096",
    "--pipeline.model.num-levels", "4",
    "--pipeline.model.log2-hashmap-size", "12",
    "--pipeline.model.max-resolution", "64",
    "--pipeline.model.hidden-dim", "16",
    "--pipeline.model.hidden-dim-color", "16",
    "--pipeline.model.sampler.grid-resolution", "32",
    "--pipeline.model.sampler.warmup-steps", "4",
    "--pipeline.model.sampler.update-every", "2",
    "--pipeline.model.sampler.render-step-size", "0.02",
    "--pipeline.model.eval-num-rays-per-chunk", "2500",
]  # fmt: skip
"""instant-ngp on lego at 1/8 with a small hash grid and a 32^3 occupancy grid that warms up in 4 steps and updates
every 2: a step takes milliseconds, and grid updates, warm-up and dynamic batch all happen within a few steps."""
