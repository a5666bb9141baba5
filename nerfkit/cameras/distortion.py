"""Lens distortion of real cameras: the OpenCV radial-tangential and fisheye models, and rays through their pixels.

All functions work on normalised image coordinates in OpenCV axes, x = (u - cx) / fx to the right and
y = (v - cy) / fy downwards, and are vectorised over points. Distortion parameters are a `DistortionParams` tensor
`[k1, k2, k3, k4, p1, p2]` (Nerfstudio's `distortion_params` order), either one row shared by every point or one row
per point.

Undistortion runs a fixed number of Newton steps with no early exit, so it is deterministic, batch-friendly and can be
differentiated by unrolling. It starts from the distorted point and reaches float32 precision in a handful of steps
whenever the model is one-to-one between the point and the image centre:

- radial-tangential: the 2x2 Jacobian stays invertible, e.g. phone-like |k1| <= 0.3, |k2| <= 0.1, |p1|, |p2| ~ 1e-3
  over |x|, |y| <= 1 (about 90 degrees of field of view);
- fisheye: theta_d(theta) increases on [0, theta], e.g. |k1..k4| <= 0.05 with mixed signs up to about 80 degrees off
  axis. theta is clamped to [0, pi/2) as the equidistant model cannot see behind the camera.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor

from nerfkit.errors import NerfkitError

DistortionParams = Float[Tensor, "*batch 6"]
"""`[k1, k2, k3, k4, p1, p2]`; the radial-tangential model ignores k4, the fisheye model ignores p1 and p2."""

CameraModel = Literal["PINHOLE", "OPENCV", "OPENCV_FISHEYE"]
CAMERA_MODELS: tuple[CameraModel, ...] = get_args(CameraModel)

# Both solvers reach float32 precision in 4-5 steps over the range above; the rest is margin for harsher lenses.
OPENCV_ITERATIONS = 10
FISHEYE_ITERATIONS = 10
MAX_FISHEYE_THETA = math.pi / 2 - 1e-4
"""Just under 90 degrees, so that tan(theta) stays finite even after rounding to float32."""
_SINGULAR = 1e-12


def distortion_params(
    k1: float | Tensor = 0.0,
    k2: float | Tensor = 0.0,
    k3: float | Tensor = 0.0,
    k4: float | Tensor = 0.0,
    p1: float | Tensor = 0.0,
    p2: float | Tensor = 0.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> DistortionParams:
    """Parameters from named coefficients, so call sites never depend on the layout; tensors broadcast together."""
    values = [torch.as_tensor(v, dtype=dtype, device=device) for v in (k1, k2, k3, k4, p1, p2)]
    return torch.stack(torch.broadcast_tensors(*values), dim=-1)


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator, and 0 where the denominator vanishes (with no NaN leaking into gradients)."""
    usable = denominator.abs() > _SINGULAR
    return torch.where(usable, numerator / torch.where(usable, denominator, torch.ones_like(denominator)), 0.0)


def _ratio_or_one(numerator: Tensor, radius: Tensor) -> Tensor:
    """numerator / radius for a radial rescaling whose limit at the centre (radius 0) is exactly 1."""
    centre = radius == 0
    return torch.where(centre, 1.0, numerator / torch.where(centre, 1.0, radius))


def _norm(xy: Float[Tensor, "num_points 2"]) -> Float[Tensor, " num_points"]:
    """|xy|, with a finite (zero) gradient at the origin where sqrt's own is infinite."""
    r2 = (xy * xy).sum(dim=-1)
    return torch.where(r2 > 0, torch.sqrt(torch.where(r2 > 0, r2, 1.0)), 0.0)


def _radial_tangential(
    x: Tensor, y: Tensor, params: DistortionParams
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
    """Distorted (x, y) and the symmetric Jacobian (dxd/dx, dxd/dy = dyd/dx, dyd/dy) that Newton needs."""
    k1, k2, k3, _, p1, p2 = params.unbind(dim=-1)
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    radial_slope = k1 + r2 * (2 * k2 + 3 * k3 * r2)  # d radial / d r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    jxx = radial + 2 * x * x * radial_slope + 2 * p1 * y + 6 * p2 * x
    jxy = 2 * x * y * radial_slope + 2 * p1 * x + 2 * p2 * y
    jyy = radial + 2 * y * y * radial_slope + 6 * p1 * y + 2 * p2 * x
    return xd, yd, (jxx, jxy, jyy)


def distort_opencv(xy: Float[Tensor, "num_points 2"], params: DistortionParams) -> Float[Tensor, "num_points 2"]:
    """OpenCV radial (k1, k2, k3) and tangential (p1, p2) distortion of normalised image coordinates."""
    xd, yd, _ = _radial_tangential(xy[..., 0], xy[..., 1], params)
    return torch.stack([xd, yd], dim=-1)


def undistort_opencv(
    xy_distorted: Float[Tensor, "num_points 2"], params: DistortionParams, iterations: int = OPENCV_ITERATIONS
) -> Float[Tensor, "num_points 2"]:
    """Inverse of `distort_opencv` by 2-D Newton steps; the Jacobian is solved in closed form (Cramer's rule)."""
    x, y = xy_distorted[..., 0], xy_distorted[..., 1]
    for _ in range(iterations):
        xd, yd, (jxx, jxy, jyy) = _radial_tangential(x, y, params)
        ex, ey = xd - xy_distorted[..., 0], yd - xy_distorted[..., 1]
        determinant = jxx * jyy - jxy * jxy
        x = x - _safe_divide(jyy * ex - jxy * ey, determinant)
        y = y - _safe_divide(jxx * ey - jxy * ex, determinant)
    return torch.stack([x, y], dim=-1)


def _fisheye_theta_d(theta: Tensor, params: DistortionParams) -> tuple[Tensor, Tensor]:
    """Distorted angle theta_d(theta) and its derivative d theta_d / d theta."""
    k1, k2, k3, k4, _, _ = params.unbind(dim=-1)
    t2 = theta * theta
    theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    slope = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
    return theta_d, slope


def distort_fisheye(xy: Float[Tensor, "num_points 2"], params: DistortionParams) -> Float[Tensor, "num_points 2"]:
    """OpenCV fisheye (equidistant) distortion: the point moves radially to distance theta_d, theta = atan(r)."""
    r = _norm(xy)
    theta_d, _ = _fisheye_theta_d(torch.atan(r), params)
    return xy * _ratio_or_one(theta_d, r)[..., None]


def _fisheye_theta(
    xy_distorted: Float[Tensor, "num_points 2"], params: DistortionParams, iterations: int
) -> tuple[Float[Tensor, " num_points"], Float[Tensor, " num_points"]]:
    """Angle off the optical axis of each distorted point, by 1-D Newton steps on theta; also returns theta_d."""
    theta_d = _norm(xy_distorted)
    theta = theta_d.clamp(max=MAX_FISHEYE_THETA)
    for _ in range(iterations):
        value, slope = _fisheye_theta_d(theta, params)
        theta = (theta - _safe_divide(value - theta_d, slope)).clamp(0.0, MAX_FISHEYE_THETA)
    return theta, theta_d


def undistort_fisheye(
    xy_distorted: Float[Tensor, "num_points 2"], params: DistortionParams, iterations: int = FISHEYE_ITERATIONS
) -> Float[Tensor, "num_points 2"]:
    """Inverse of `distort_fisheye` on its range: back to pinhole coordinates at distance tan(theta)."""
    theta, theta_d = _fisheye_theta(xy_distorted, params, iterations)
    return xy_distorted * _ratio_or_one(torch.tan(theta), theta_d)[..., None]


def camera_ray_directions(
    pixels: Float[Tensor, "num_points 2"],
    fx: Float[Tensor, " num_points"] | float,
    fy: Float[Tensor, " num_points"] | float,
    cx: Float[Tensor, " num_points"] | float,
    cy: Float[Tensor, " num_points"] | float,
    distortion: DistortionParams | None = None,
    camera_model: CameraModel = "PINHOLE",
) -> Float[Tensor, "num_points 3"]:
    """Camera-space direction through each pixel (u, v), in nerfkit's OpenGL axes (x right, y up, looking down -z).

    PINHOLE ignores `distortion`; `None` means no distortion. PINHOLE and OPENCV give (x, -y, -1), which is not unit
    length (callers normalise after rotating to world space); OPENCV_FISHEYE gives unit vectors, since its rays can
    reach 90 degrees off axis where the z = -1 plane cannot.
    """
    if camera_model not in CAMERA_MODELS:
        raise NerfkitError(f"Unknown camera model {camera_model!r}.", hint=f"Use one of {', '.join(CAMERA_MODELS)}.")
    xy = torch.stack([(pixels[..., 0] - cx) / fx, (pixels[..., 1] - cy) / fy], dim=-1)
    if distortion is None:
        distortion = torch.zeros(6, dtype=xy.dtype, device=xy.device)
    if camera_model == "OPENCV_FISHEYE":
        theta, theta_d = _fisheye_theta(xy, distortion, FISHEYE_ITERATIONS)
        sideways = xy * _ratio_or_one(torch.sin(theta), theta_d)[..., None]
        return torch.stack([sideways[..., 0], -sideways[..., 1], -torch.cos(theta)], dim=-1)
    if camera_model == "OPENCV":
        xy = undistort_opencv(xy, distortion)
    return torch.stack([xy[..., 0], -xy[..., 1], -torch.ones_like(xy[..., 0])], dim=-1)
