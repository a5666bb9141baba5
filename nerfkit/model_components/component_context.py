"""What a model hands to every replaceable component it builds (samplers, encodings, colliders, backgrounds)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nerfkit.data.scene_box import SceneBox
from nerfkit.kernels.backends import Backends


@dataclass(frozen=True)
class ComponentContext:
    """The run-time values a model hands to every component it builds; each implementation takes what it needs."""

    scene_box: SceneBox
    """Box holding the scene (hash grids normalise positions by it, the AABB collider clips rays to it)."""
    near_plane: float
    """Where sampling starts along each ray."""
    far_plane: float
    """Where sampling ends along each ray."""
    backends: Backends = field(default_factory=Backends)
    """Backend of each accelerated operation."""
