"""Encodings: maps from coordinates to features that let a small MLP represent high-frequency detail."""

from __future__ import annotations

from abc import abstractmethod

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.configs.fields import MAX_SH_LEVELS
from nerfkit.data.scene_box import SceneBox
from nerfkit.errors import NerfkitError
from nerfkit.kernels.backends import Backend
from nerfkit.kernels.tcnn import import_tinycudann


class Encoding(nn.Module):
    """A coordinate-to-feature map; fields size the MLP that follows from `get_out_dim`."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim

    @abstractmethod
    def get_out_dim(self) -> int:
        """Number of features per input point."""

    @abstractmethod
    def forward(self, in_tensor: Float[Tensor, "*bs in_dim"]) -> Float[Tensor, "*bs out_dim"]:
        """Encodes each point independently."""


class NeRFEncoding(Encoding):
    """Sines and cosines of the input at octave-spaced frequencies, NeRF's positional encoding.

    Frequencies are 2^k for `num_frequencies` values of k evenly spaced in [min_freq_exp, max_freq_exp]; NeRF uses
    k = 0..9 for positions and 0..3 for directions, with the input kept, giving 63 and 27 features. There is no factor
    of pi: the Blender scenes span [-1.5, 1.5], so 2^0 already varies slowly across them.
    """

    def __init__(
        self,
        in_dim: int,
        num_frequencies: int,
        min_freq_exp: float,
        max_freq_exp: float,
        include_input: bool = True,
    ) -> None:
        super().__init__(in_dim)
        self.num_frequencies = num_frequencies
        self.include_input = include_input
        frequencies = 2.0 ** torch.linspace(min_freq_exp, max_freq_exp, num_frequencies)
        # Derived from the arguments, so it stays out of checkpoints.
        self.register_buffer("frequencies", frequencies, persistent=False)

    def get_out_dim(self) -> int:
        return self.in_dim * (2 * self.num_frequencies + int(self.include_input))

    def forward(self, in_tensor: Float[Tensor, "*bs in_dim"]) -> Float[Tensor, "*bs out_dim"]:
        scaled = (in_tensor[..., None] * self.frequencies).flatten(start_dim=-2)
        features = [torch.sin(scaled), torch.cos(scaled)]
        if self.include_input:
            features.insert(0, in_tensor)
        return torch.cat(features, dim=-1)


def spherical_harmonics(directions: Float[Tensor, "*bs 3"], levels: int) -> Float[Tensor, "*bs levels*levels"]:
    """Real spherical harmonics of unit `directions` up to degree `levels - 1`, in tiny-cuda-nn's order and signs.

    The constants are tiny-cuda-nn's (include/tiny-cuda-nn/encodings/spherical_harmonics.h), orthonormal on the
    sphere; each comment gives the closed form.
    """
    x, y, z = directions.unbind(-1)
    features = [torch.full_like(x, 0.28209479177387814)]  # 1/(2*sqrt(pi))
    if levels > 1:
        features += [
            -0.48860251190291987 * y,  # -sqrt(3)*y/(2*sqrt(pi))
            0.48860251190291987 * z,  # sqrt(3)*z/(2*sqrt(pi))
            -0.48860251190291987 * x,  # -sqrt(3)*x/(2*sqrt(pi))
        ]
    if levels > 2:
        xy, yz, xz, x2, y2, z2 = x * y, y * z, x * z, x * x, y * y, z * z
        features += [
            1.0925484305920792 * xy,  # sqrt(15)*xy/(2*sqrt(pi))
            -1.0925484305920792 * yz,  # -sqrt(15)*yz/(2*sqrt(pi))
            0.94617469575755997 * z2 - 0.31539156525251999,  # sqrt(5)*(3*z2 - 1)/(4*sqrt(pi))
            -1.0925484305920792 * xz,  # -sqrt(15)*xz/(2*sqrt(pi))
            0.54627421529603959 * x2 - 0.54627421529603959 * y2,  # sqrt(15)*(x2 - y2)/(4*sqrt(pi))
        ]
    if levels > 3:
        features += [
            0.59004358992664352 * y * (-3.0 * x2 + y2),  # sqrt(70)*y*(-3*x2 + y2)/(8*sqrt(pi))
            2.8906114426405538 * xy * z,  # sqrt(105)*xy*z/(2*sqrt(pi))
            0.45704579946446572 * y * (1.0 - 5.0 * z2),  # sqrt(42)*y*(1 - 5*z2)/(8*sqrt(pi))
            0.3731763325901154 * z * (5.0 * z2 - 3.0),  # sqrt(7)*z*(5*z2 - 3)/(4*sqrt(pi))
            0.45704579946446572 * x * (1.0 - 5.0 * z2),  # sqrt(42)*x*(1 - 5*z2)/(8*sqrt(pi))
            1.4453057213202769 * z * (x2 - y2),  # sqrt(105)*z*(x2 - y2)/(4*sqrt(pi))
            0.59004358992664352 * x * (-x2 + 3.0 * y2),  # sqrt(70)*x*(-x2 + 3*y2)/(8*sqrt(pi))
        ]
    if levels > 4:
        x4, y4, z4 = x2 * x2, y2 * y2, z2 * z2
        features += [
            2.5033429417967046 * xy * (x2 - y2),  # 3*sqrt(35)*xy*(x2 - y2)/(4*sqrt(pi))
            1.7701307697799304 * yz * (-3.0 * x2 + y2),  # 3*sqrt(70)*yz*(-3*x2 + y2)/(8*sqrt(pi))
            0.94617469575756008 * xy * (7.0 * z2 - 1.0),  # 3*sqrt(5)*xy*(7*z2 - 1)/(4*sqrt(pi))
            0.66904654355728921 * yz * (3.0 - 7.0 * z2),  # 3*sqrt(10)*yz*(3 - 7*z2)/(8*sqrt(pi))
            # 3*(35*z4 - 30*z2 + 3)/(16*sqrt(pi))
            -3.1735664074561294 * z2 + 3.7024941420321507 * z4 + 0.31735664074561293,
            0.66904654355728921 * xz * (3.0 - 7.0 * z2),  # 3*sqrt(10)*xz*(3 - 7*z2)/(8*sqrt(pi))
            0.47308734787878004 * (x2 - y2) * (7.0 * z2 - 1.0),  # 3*sqrt(5)*(x2 - y2)*(7*z2 - 1)/(8*sqrt(pi))
            1.7701307697799304 * xz * (-x2 + 3.0 * y2),  # 3*sqrt(70)*xz*(-x2 + 3*y2)/(8*sqrt(pi))
            # 3*sqrt(35)*(x4 - 6*x2*y2 + y4)/(16*sqrt(pi))
            -3.7550144126950569 * x2 * y2 + 0.62583573544917614 * x4 + 0.62583573544917614 * y4,
        ]
    return torch.stack(features, dim=-1)


class SHEncoding(Encoding):
    """Real spherical harmonics of the view direction, instant-ngp's direction encoding: `levels`^2 smooth features.

    Same order, signs and constants as tiny-cuda-nn's SphericalHarmonics encoding with degree = `levels`, so either
    backend gives the same features. Inputs are unit directions in [-1, 1]^3; tiny-cuda-nn wants them mapped to the
    unit cube as (d + 1) / 2 (it maps back with 2x - 1), which the cuda-kernels backend does here. That backend
    returns tiny-cuda-nn's precision (half on most GPUs).
    """

    def __init__(self, levels: int = 4, backend: Backend = "torch") -> None:
        super().__init__(in_dim=3)
        if not 1 <= levels <= MAX_SH_LEVELS:
            raise NerfkitError(
                f"spherical harmonics levels must be between 1 and {MAX_SH_LEVELS}, got {levels}",
                hint="instant-ngp uses 4 (16 features)",
            )
        self.levels = levels
        self.backend = backend
        # Kept out of the module tree: it has no weights, and as a child it would add a key that only checkpoints
        # written with tiny-cuda-nn have.
        self._tcnn_encoding: nn.Module | None = None
        if backend == "cuda-kernels":
            encoding = import_tinycudann().Encoding(3, {"otype": "SphericalHarmonics", "degree": levels})
            object.__setattr__(self, "_tcnn_encoding", encoding)
        self.register_load_state_dict_pre_hook(self._drop_tcnn_state)

    @staticmethod
    def _drop_tcnn_state(module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: object) -> None:
        """Checkpoints written with tiny-cuda-nn before it left the module tree hold its empty `params`."""
        state_dict.pop(f"{prefix}tcnn_encoding.params", None)

    def get_out_dim(self) -> int:
        return self.levels**2

    def forward(self, in_tensor: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs out_dim"]:
        # tiny-cuda-nn refuses empty batches; the torch formula gives the empty result.
        if self._tcnn_encoding is None or in_tensor.numel() == 0:
            return spherical_harmonics(in_tensor, self.levels)
        flat = (in_tensor.reshape(-1, 3) + 1.0) / 2.0
        return self._tcnn_encoding(flat).reshape(*in_tensor.shape[:-1], self.get_out_dim())


class InSceneBox(Encoding):
    """Feeds an encoding of the unit cube with positions in the scene box; positions outside get the box's faces."""

    def __init__(self, encoding: nn.Module, scene_box: SceneBox) -> None:
        super().__init__(in_dim=3)
        self.encoding = encoding
        self.register_buffer("aabb", scene_box.aabb.clone(), persistent=False)

    def get_out_dim(self) -> int:
        return self.encoding.get_out_dim()

    def forward(self, in_tensor: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs out_dim"]:
        normalized = (in_tensor - self.aabb[0]) / (self.aabb[1] - self.aabb[0])
        return self.encoding(normalized.clamp(0.0, 1.0))
