"""What the viewer draws in the 3D scene besides the render: the training cameras with their images, the scene box
and the crop box."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import viser
from jaxtyping import Float, UInt8
from torch import Tensor

from nerfkit.cameras.cameras import Cameras
from nerfkit.data.scene_box import SceneBox
from nerfkit.viewer.views import View, vertical_fov, viser_pose

SCENE_BOX_COLOUR = (90, 90, 90)
CROP_BOX_COLOUR = (230, 120, 20)
CAMERA_COLOUR = (30, 90, 200)
FRUSTUM_LINE_PIXELS = 2.0

MoveBrowser = Callable[[viser.ClientHandle, View], None]
"""Moves a browser's camera to a view."""


def thumbnail(image: UInt8[Tensor, "height width channels"], size: int) -> UInt8[np.ndarray, "h w 3"]:
    """The image shrunk so its longer side is at most `size`, transparent pixels shown white."""
    pixels = image.float() / 255.0
    if pixels.shape[-1] == 4:
        pixels = pixels[..., :3] * pixels[..., 3:] + (1.0 - pixels[..., 3:])
    height, width = pixels.shape[:2]
    scale = min(1.0, size / max(height, width))
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    small = torch.nn.functional.interpolate(pixels.permute(2, 0, 1)[None], size=shape, mode="area")[0]
    return (small.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def spread_indices(count: int, limit: int) -> set[int]:
    """`limit` indices of `count`, evenly spread (all of them when there are no more than `limit`)."""
    if count <= limit:
        return set(range(count))
    return {round(i * (count - 1) / max(1, limit - 1)) for i in range(limit)} if limit > 0 else set()


def camera_view(cameras: Cameras, index: int) -> View:
    """A training camera as a browser view (its field of view and image shape)."""
    height, width = float(cameras.height[index]), float(cameras.width[index])
    return View(
        cameras.camera_to_worlds[index].double().cpu().numpy(),
        vertical_fov(float(cameras.fy[index]), height),
        width / height,
    )


def add_training_cameras(
    scene: viser.SceneApi,
    cameras: Cameras,
    images: UInt8[Tensor, "num_images height width channels"] | None,
    scale: float,
    max_thumbnails: int,
    thumbnail_size: int,
    jump_to: MoveBrowser,
) -> list[viser.CameraFrustumHandle]:
    """One frustum per training camera, some with their image; clicking one moves that browser to the camera."""
    with_image = spread_indices(len(cameras), max_thumbnails if images is not None else 0)
    handles = []
    for index in range(len(cameras)):
        view = camera_view(cameras, index)
        wxyz, position = viser_pose(view.camera_to_world)
        handle = scene.add_camera_frustum(
            f"/training_cameras/{index:05d}",
            fov=view.fov,
            aspect=view.aspect,
            scale=scale,
            thickness=FRUSTUM_LINE_PIXELS,
            thickness_units="screen",
            color=CAMERA_COLOUR,
            image=thumbnail(images[index], thumbnail_size) if images is not None and index in with_image else None,
            wxyz=wxyz,
            position=position,
        )
        handle.on_click(lambda event, view=view: jump_to(event.client, view))
        handles.append(handle)
    return handles


def box_corners(aabb: Float[np.ndarray, "2 3"]) -> tuple[Float[np.ndarray, "3"], Float[np.ndarray, "3"]]:
    """(centre, dimensions) of an axis-aligned box, as viser places boxes."""
    return (aabb[0] + aabb[1]) / 2.0, aabb[1] - aabb[0]


def add_box(
    scene: viser.SceneApi, name: str, aabb: Float[np.ndarray, "2 3"], colour: tuple[int, int, int]
) -> viser.BoxHandle:
    centre, dimensions = box_corners(aabb)
    return scene.add_box(name, color=colour, dimensions=dimensions, wireframe=True, position=centre)


def scene_up(cameras: Cameras) -> Float[np.ndarray, "3"]:
    """The training cameras' mean up direction: the world axis the browser orbits around."""
    up = cameras.camera_to_worlds[:, :, 1].double().mean(dim=0).cpu().numpy()
    norm = np.linalg.norm(up)
    return up / norm if norm > 1e-6 else np.array([0.0, 0.0, 1.0])


def scene_box_array(scene_box: SceneBox) -> Float[np.ndarray, "2 3"]:
    return scene_box.aabb.double().cpu().numpy()
