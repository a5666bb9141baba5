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
