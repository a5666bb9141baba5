"""CPU kernels shipped as C source and compiled on first use (see `build.py`); each has a PyTorch fallback."""
