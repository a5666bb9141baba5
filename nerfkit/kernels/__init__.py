"""The acceleration layer: occupancy grid, packed volume rendering, hash encoding and MLP, each with a CUDA-kernel
backend (nerfacc, tiny-cuda-nn) and a PyTorch backend of the same semantics. Nothing outside this package imports
nerfacc or tinycudann.
"""
