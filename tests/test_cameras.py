"""Ray generation checked against rays worked out by hand."""

from __future__ import annotations

import torch

from nerfkit.cameras.cameras import Cameras
from nerfkit.cameras.rays import RayBundle

# A 100x80 image, focal 100 px, principal point at the image centre.
FOCAL, WIDTH, HEIGHT = 100.0, 100, 80
IDENTITY = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
# Rotated 90 degrees about world y, so the camera's -z looks along world -x, its +x along world -z; moved to (1, 2, 3).
ROTATED = [[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 2.0], [-1.0, 0.0, 0.0, 3.0]]


def make_cameras(*poses: list[list[float]]) -> Cameras:
    num = len(poses)
    return Cameras(
        camera_to_worlds=torch.tensor(poses),
        fx=torch.full((num,), FOCAL),
        fy=torch.full((num,), FOCAL),
        cx=torch.full((num,), WIDTH / 2),
        cy=torch.full((num,), HEIGHT / 2),
        width=torch.full((num,), WIDTH),
        height=torch.full((num,), HEIGHT),
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
