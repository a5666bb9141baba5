"""Lens distortion checked against the OpenCV formulas evaluated point by point in plain Python (no cv2 needed)."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.cameras.distortion import (
    camera_ray_directions,
    distort_fisheye,
    distort_opencv,
    distortion_params,
    undistort_fisheye,
    undistort_opencv,
)
from nerfkit.errors import NerfkitError

# Realistic coefficients: a barrel and a pincushion phone lens, and two mild fisheyes.
OPENCV_LENSES = [
    dict(k1=-0.3, k2=0.1, k3=-0.01, p1=1e-3, p2=-1e-3),
    dict(k1=0.1, k2=-0.05, k3=0.01, p1=-1e-3, p2=2e-3),
]
FISHEYE_LENSES = [
    dict(k1=0.05, k2=-0.02, k3=0.005, k4=-0.001),
    dict(k1=-0.05, k2=0.01, k3=-0.002, k4=0.0005),
]
FX, FY, CX, CY = 800.0, 780.0, 640.5, 360.25


def reference_opencv(x: float, y: float, k1=0.0, k2=0.0, k3=0.0, p1=0.0, p2=0.0, k4=0.0) -> tuple[float, float]:
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    return (
        x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
        y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
    )


def reference_theta_d(theta: float, k1=0.0, k2=0.0, k3=0.0, k4=0.0, p1=0.0, p2=0.0) -> float:
    return theta * (1 + k1 * theta**2 + k2 * theta**4 + k3 * theta**6 + k4 * theta**8)


def reference_fisheye(x: float, y: float, **lens: float) -> tuple[float, float]:
    r = math.hypot(x, y)
    if r == 0:
        return x, y
    scale = reference_theta_d(math.atan(r), **lens) / r
    return x * scale, y * scale


def project(direction: list[float], model: str, lens: dict[str, float]) -> tuple[float, float]:
    """Pixel of a camera-space direction in OpenGL axes, straight from the model's definition."""
    dx, dy, dz = direction
    if model == "OPENCV_FISHEYE":
        sideways = math.hypot(dx, dy)
        theta_d = reference_theta_d(math.atan2(sideways, -dz), **lens)
        x, y = (0.0, 0.0) if sideways == 0 else (theta_d * dx / sideways, -theta_d * dy / sideways)
    else:
        x, y = reference_opencv(dx / -dz, dy / dz, **lens)
    return FX * x + CX, FY * y + CY


def unit_directions(max_angle_degrees: float, num: int = 300) -> torch.Tensor:
    """Directions within a cone around -z (OpenGL), including the optical axis itself, in float64."""
    generator = torch.Generator().manual_seed(0)
    theta = torch.rand(num, generator=generator, dtype=torch.float64) * math.radians(max_angle_degrees)
    phi = torch.rand(num, generator=generator, dtype=torch.float64) * 2 * math.pi
    theta[0] = 0.0
    return torch.stack([theta.sin() * phi.cos(), theta.sin() * phi.sin(), -theta.cos()], dim=-1)


def grid(extent: float, steps: int = 81) -> torch.Tensor:
    line = torch.linspace(-extent, extent, steps)
    return torch.stack(torch.meshgrid(line, line, indexing="ij"), dim=-1).reshape(-1, 2)


def random_points(num: int = 64) -> torch.Tensor:
    return torch.rand(num, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2.4 - 1.2


MODELS = [
    pytest.param(distort_opencv, undistort_opencv, reference_opencv, lens, id=f"opencv{i}")
    for i, lens in enumerate(OPENCV_LENSES)
] + [
    pytest.param(distort_fisheye, undistort_fisheye, reference_fisheye, lens, id=f"fisheye{i}")
    for i, lens in enumerate(FISHEYE_LENSES)
]


@pytest.mark.parametrize("distort, undistort, reference, lens", MODELS)
def test_distort_matches_formulas(distort, undistort, reference, lens) -> None:
    points = torch.cat([torch.zeros(1, 2, dtype=torch.float64), random_points()])
    expected = torch.tensor([reference(x, y, **lens) for x, y in points.tolist()], dtype=torch.float64)
    torch.testing.assert_close(distort(points, distortion_params(**lens, dtype=torch.float64)), expected)


@pytest.mark.parametrize("distort, undistort, reference, lens", MODELS)
def test_round_trips_to_float32_precision(distort, undistort, reference, lens) -> None:
    # |x|, |y| <= 1 is about 90 degrees of field of view for the pinhole model, well over 120 for the fisheyes.
    points, params = grid(1.0), distortion_params(**lens)
    torch.testing.assert_close(undistort(distort(points, params), params), points, atol=1e-6, rtol=0)
    torch.testing.assert_close(distort(undistort(points, params), params), points, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "model, lens, max_angle",
    [pytest.param("OPENCV", lens, 50.0, id=f"opencv{i}") for i, lens in enumerate(OPENCV_LENSES)]
    + [pytest.param("OPENCV_FISHEYE", lens, 85.0, id=f"fisheye{i}") for i, lens in enumerate(FISHEYE_LENSES)]
    + [pytest.param("PINHOLE", {}, 50.0, id="pinhole")],
)
def test_distorts_known_rays_and_recovers_them(model: str, lens: dict[str, float], max_angle: float) -> None:
    known = unit_directions(max_angle)
    pixels = torch.tensor([project(d, model, lens) for d in known.tolist()], dtype=torch.float32)
    directions = camera_ray_directions(pixels, FX, FY, CX, CY, distortion_params(**lens), model)
    recovered = torch.nn.functional.normalize(directions, dim=-1)
    torch.testing.assert_close(recovered, known.float(), atol=1e-5, rtol=0)


def test_zero_distortion_gives_exactly_pinhole_rays() -> None:
    pixels = grid(1.0) * 500 + torch.tensor([CX, CY])
    pinhole = torch.stack([(pixels[:, 0] - CX) / FX, -(pixels[:, 1] - CY) / FY, -torch.ones(len(pixels))], dim=-1)
    assert torch.equal(camera_ray_directions(pixels, FX, FY, CX, CY), pinhole)
    assert torch.equal(camera_ray_directions(pixels, FX, FY, CX, CY, distortion_params(), "OPENCV"), pinhole)
    # An undistorted fisheye is the ideal equidistant lens: the angle off axis is the normalised radius.
    fisheye = camera_ray_directions(pixels, FX, FY, CX, CY, None, "OPENCV_FISHEYE")
    radius = pinhole[:, :2].norm(dim=-1, keepdim=True)
    sin_over_radius = torch.where(radius > 0, radius.sin() / radius, 1.0)
    equidistant = torch.cat([pinhole[:, :2] * sin_over_radius, -radius.cos()], dim=-1)
    torch.testing.assert_close(fisheye, equidistant)


@pytest.mark.parametrize("model", ["PINHOLE", "OPENCV", "OPENCV_FISHEYE"])
def test_principal_point_is_exact(model: str) -> None:
    lens = distortion_params(**OPENCV_LENSES[0], k4=0.01)
    centre = torch.tensor([[CX, CY]])
    assert torch.equal(camera_ray_directions(centre, FX, FY, CX, CY, lens, model), torch.tensor([[0.0, 0.0, -1.0]]))
    origin = torch.zeros(1, 2)
    for function in (distort_opencv, undistort_opencv, distort_fisheye, undistort_fisheye):
        assert torch.equal(function(origin, lens), origin)


@pytest.mark.parametrize("distort, undistort, reference, lens", MODELS)
def test_per_point_parameters_broadcast(distort, undistort, reference, lens) -> None:
    points = random_points(8).float()
    scales = torch.linspace(0.0, 1.5, len(points))
    per_point = distortion_params(**{name: value * scales for name, value in lens.items()})
    assert per_point.shape == (len(points), 6)
    for function in (distort, undistort):
        one_by_one = torch.cat([function(p[None], row) for p, row in zip(points, per_point, strict=True)])
        torch.testing.assert_close(function(points, per_point), one_by_one, atol=1e-7, rtol=0)


@pytest.mark.parametrize("distort, undistort, reference, lens", MODELS)
def test_gradients_flow(distort, undistort, reference, lens) -> None:
    points = torch.cat([torch.zeros(1, 2, dtype=torch.float64), random_points(4)]).requires_grad_()
    params = distortion_params(**lens, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(distort, (points, params))
    assert torch.autograd.gradcheck(undistort, (points[1:].detach().requires_grad_(), params))
    # Unrolled Newton differentiates like the true inverse: its Jacobian inverts the distortion's.
    target = torch.tensor([0.4, -0.3], dtype=torch.float64)
    solution = undistort(target[None], params.detach())[0]
    inverse = torch.autograd.functional.jacobian(lambda y: undistort(y[None], params.detach())[0], target)
    forward = torch.autograd.functional.jacobian(lambda x: distort(x[None], params.detach())[0], solution)
    torch.testing.assert_close(inverse @ forward, torch.eye(2, dtype=torch.float64))


def test_distortion_params_layout() -> None:
    assert distortion_params(k1=1, k2=2, k3=3, k4=4, p1=5, p2=6).tolist() == [1, 2, 3, 4, 5, 6]
    per_camera = distortion_params(k1=torch.tensor([0.1, 0.2, 0.3]), p2=1e-3)
    assert per_camera.shape == (3, 6)
    assert per_camera[:, 0].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert per_camera[:, 5].tolist() == pytest.approx([1e-3] * 3)


def test_unknown_camera_model_is_a_user_error() -> None:
    with pytest.raises(NerfkitError, match="EQUIRECTANGULAR"):
        camera_ray_directions(torch.zeros(1, 2), FX, FY, CX, CY, None, "EQUIRECTANGULAR")
