"""nerfkit: a configurable, resumable trainer for neural radiance fields."""

__version__ = "0.2.0"
