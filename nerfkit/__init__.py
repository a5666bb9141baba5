"""nerfkit: a configurable, resumable trainer for neural radiance fields."""

__version__ = "0.1.0"
