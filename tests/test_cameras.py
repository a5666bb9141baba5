"""Ray generation checked against rays worked out by hand, and against points projected through lens distortion."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from test_distortion import FISHEYE_LENSES, OPENCV_LENSES, reference_fisheye, reference_opencv

from nerfkit.cameras.cameras import Cameras
from nerfkit.cameras.distortion import CameraModel, distortion_params
from nerfkit.cameras.rays import RayBundle
from nerfkit.errors import NerfkitError

# A 100x80 image, focal 100 px, principal point at the image centre.
FOCAL, WIDTH, HEIGHT = 100.0, 100, 80
IDENTITY = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
# Rotated 90 degrees about world y, so the camera's -z looks along world -x, its +x along world -z; moved to (1, 2, 3).
ROTATED = [[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 2.0], [-1.0, 0.0, 0.0, 3.0]]


def make_cameras(
    *poses: list[list[float]], lens: dict[str, float] | None = None, model: CameraModel = "PINHOLE"
) -> Cameras:
    num = len(poses)
    return Cameras(
        camera_to_worlds=torch.tensor(poses),
        fx=torch.full((num,), FOCAL),
        fy=torch.full((num,), FOCAL),
        cx=torch.full((num,), WIDTH / 2),
        cy=torch.full((num,), HEIGHT / 2),
        width=torch.full((num,), WIDTH),
        height=torch.full((num,), HEIGHT),
        distortion_params=None if lens is None else distortion_params(**lens).expand(num, 6),
        camera_model=model,
    )


def unit(*xyz: float) -> torch.Tensor:
    vector = torch.tensor(xyz, dtype=torch.float32)
    return vector / vector.norm()


def rays_at(cameras: Cameras, camera_index: int, *pixels: tuple[float, float]) -> RayBundle:
    indices = torch.full((len(pixels),), camera_index, dtype=torch.long)
    return cameras.generate_rays(indices, torch.tensor(pixels, dtype=torch.float32))


def test_identity_pose_rays() -> None:
    cameras = make_cameras(IDENTITY)
    # The principal point, the first pixel's centre, the top-left corner, the bottom-right corner.
    rays = rays_at(cameras, 0, (50.0, 40.0), (0.5, 0.5), (0.0, 0.0), (100.0, 80.0))
    expected = torch.stack(
        [unit(0, 0, -1), unit(-0.495, 0.395, -1), unit(-0.5, 0.4, -1), unit(0.5, -0.4, -1)],
    )
    torch.testing.assert_close(rays.directions, expected)
    torch.testing.assert_close(rays.origins, torch.zeros(4, 3))
    assert rays.camera_indices.shape == (4, 1)


def test_rotated_translated_pose_rays() -> None:
    cameras = make_cameras(IDENTITY, ROTATED)
    # One focal length right of centre: camera (1, 0, -1) -> world (-1, 0, -1).
    # One focal length above centre: camera (0, 1, -1) -> world (-1, 1, 0).
    rays = rays_at(cameras, 1, (50.0, 40.0), (150.0, 40.0), (50.0, -60.0))
    torch.testing.assert_close(rays.directions, torch.stack([unit(-1, 0, 0), unit(-1, 0, -1), unit(-1, 1, 0)]))
    torch.testing.assert_close(rays.origins, torch.tensor([[1.0, 2.0, 3.0]]).expand(3, 3))
    assert rays.camera_indices.flatten().tolist() == [1, 1, 1]


def test_directions_are_unit_length() -> None:
    cameras = make_cameras(IDENTITY, ROTATED)
    torch.manual_seed(0)
    pixels = torch.rand(64, 2) * torch.tensor([WIDTH, HEIGHT])
    rays = cameras.generate_rays(torch.randint(2, (64,)), pixels)
    torch.testing.assert_close(rays.directions.norm(dim=-1), torch.ones(64))


def test_image_rays_are_row_major_through_pixel_centres() -> None:
    cameras = make_cameras(IDENTITY, ROTATED)
    image_rays = cameras.generate_image_rays(1)
    assert image_rays.shape == (HEIGHT, WIDTH)
    assert image_rays.directions.shape == (HEIGHT, WIDTH, 3)
    assert bool((image_rays.camera_indices == 1).all())
    for y, x in [(0, 0), (0, WIDTH - 1), (HEIGHT - 1, 0), (17, 63)]:
        expected = rays_at(cameras, 1, (x + 0.5, y + 0.5))
        torch.testing.assert_close(image_rays.directions[y, x], expected.directions[0])
        torch.testing.assert_close(image_rays.origins[y, x], expected.origins[0])


def test_rescale_output_resolution_keeps_rays() -> None:
    cameras = make_cameras(IDENTITY, ROTATED)
    half = cameras.rescale_output_resolution(0.5)
    assert half.fx.tolist() == [FOCAL / 2] * 2
    assert half.cx.tolist() == [WIDTH / 4] * 2
    assert half.cy.tolist() == [HEIGHT / 4] * 2
    assert half.width.tolist() == [WIDTH // 2] * 2
    assert half.height.tolist() == [HEIGHT // 2] * 2
    assert half.width.dtype == torch.long
    # The same image point, in half-resolution pixels, gives the same ray.
    full_rays = rays_at(cameras, 1, (12.0, 70.0))
    half_rays = rays_at(half, 1, (6.0, 35.0))
    torch.testing.assert_close(half_rays.directions, full_rays.directions)


DISTORTED = [("OPENCV", lens) for lens in OPENCV_LENSES] + [("OPENCV_FISHEYE", lens) for lens in FISHEYE_LENSES]
# Camera-space points (OpenGL axes) in front of the camera, up to about 50 degrees off axis.
CAMERA_POINTS = [(0.0, 0.0, -2.0), (0.3, -0.2, -1.0), (-1.0, 0.6, -1.5), (0.9, 0.9, -1.2), (-0.4, -0.7, -3.0)]


def project_to_pixel(point: tuple[float, float, float], model: str, lens: dict[str, float]) -> tuple[float, float]:
    """Pixel of a camera-space point by the distortion formulas, in OpenCV image axes (y down)."""
    x, y, z = point
    distort = reference_fisheye if model == "OPENCV_FISHEYE" else reference_opencv
    xd, yd = distort(x / -z, y / z, **lens)
    return FOCAL * xd + WIDTH / 2, FOCAL * yd + HEIGHT / 2


@pytest.mark.parametrize(("model", "lens"), DISTORTED)
def test_distorted_rays_pass_through_projected_points(model: CameraModel, lens: dict[str, float]) -> None:
    cameras = make_cameras(IDENTITY, ROTATED, lens=lens, model=model)
    camera_points = torch.tensor(CAMERA_POINTS)
    c2w = cameras.camera_to_worlds[1]
    world_points = camera_points @ c2w[:, :3].T + c2w[:, 3]
    rays = rays_at(cameras, 1, *(project_to_pixel(point, model, lens) for point in CAMERA_POINTS))
    towards_points = torch.nn.functional.normalize(world_points - rays.origins, dim=-1)
    torch.testing.assert_close(rays.directions, towards_points, atol=1e-5, rtol=0)


def test_pinhole_rays_are_bit_identical_to_the_plain_formula() -> None:
    cameras = make_cameras(IDENTITY, ROTATED)
    pixels = torch.rand(256, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([WIDTH, HEIGHT])
    indices = torch.arange(256) % 2
    fx, fy, cx, cy = (getattr(cameras, name)[indices] for name in ("fx", "fy", "cx", "cy"))
    camera_directions = torch.stack([(pixels[:, 0] - cx) / fx, -(pixels[:, 1] - cy) / fy, -torch.ones_like(fx)], dim=-1)
    c2w = cameras.camera_to_worlds[indices]
    expected = torch.nn.functional.normalize(torch.einsum("nij,nj->ni", c2w[:, :, :3], camera_directions), dim=-1)
    assert torch.equal(cameras.generate_rays(indices, pixels).directions, expected)
    # PINHOLE ignores distortion parameters.
    ignored = make_cameras(IDENTITY, ROTATED, lens=OPENCV_LENSES[0])
    assert torch.equal(ignored.generate_rays(indices, pixels).directions, expected)


@pytest.mark.parametrize(("model", "lens"), DISTORTED)
def test_rescaled_distorted_cameras_keep_rays(model: CameraModel, lens: dict[str, float]) -> None:
    cameras = make_cameras(IDENTITY, ROTATED, lens=lens, model=model)
    half = cameras.rescale_output_resolution(0.5)
    assert half.camera_model == model
    assert half.distortion_params is not None and torch.equal(half.distortion_params, cameras.distortion_params)
    torch.testing.assert_close(rays_at(half, 1, (6.0, 35.0)).directions, rays_at(cameras, 1, (12.0, 70.0)).directions)


def test_indexing_and_moving_keep_distortion() -> None:
    lenses = torch.stack([distortion_params(**lens) for lens in OPENCV_LENSES])
    cameras = replace(make_cameras(IDENTITY, ROTATED, model="OPENCV"), distortion_params=lenses)
    second = cameras[1].to("meta")
    assert second.camera_model == "OPENCV"
    assert second.distortion_params is not None and second.distortion_params.device.type == "meta"
    assert torch.equal(cameras[1].distortion_params, lenses[1:])
    assert cameras[torch.tensor([1, 0])].distortion_params.shape == (2, 6)


def test_unknown_camera_model_names_the_field() -> None:
    with pytest.raises(NerfkitError, match="camera_model"):
        make_cameras(IDENTITY, model="EQUIRECTANGULAR")  # type: ignore[arg-type]


def test_distortion_params_must_have_one_row_per_camera() -> None:
    with pytest.raises(ValueError, match="distortion_params"):
        replace(make_cameras(IDENTITY, ROTATED), distortion_params=torch.zeros(3, 6))
