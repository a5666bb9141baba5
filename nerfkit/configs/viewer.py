"""Settings of the live viewer (`--vis viewer`, `kit-viewer`); torch-free like the rest of the config tree."""

from __future__ import annotations

from dataclasses import dataclass

from nerfkit.configs.base_config import PrintableConfig
from nerfkit.configs.ranges import Count, Fraction, NonNegativeInt, Positive, ranged


@dataclass
class ViewerConfig(PrintableConfig):
    """The web viewer: where it listens and how it shares the machine with training."""

    port: ranged(int, min=1, max=65535) = 7007
    """Port to serve the viewer on; when it is taken, the next free one (the URL printed says which)."""
    host: str = "0.0.0.0"
    """Interface to listen on (0.0.0.0: every interface, so an SSH tunnel or a remote browser reaches it)."""
    keep_open: bool = False
    """Keep the viewer up after training ends, until Ctrl-C; else it closes with the run."""
    max_resolution: Count = 512
    """Longest side, in pixels, of the sharpest render (the panel's slider starts here)."""
    preview_resolution: Count = 64
    """Longest side of the first, coarse render after the camera moves."""
    render_share: Fraction = 0.5
    """Share of the time that rendering may take from training while a browser waits for a frame."""
    num_rays_per_chunk: Count = 4096
    """Rays rendered between two checks for a newer camera or a training step that is due."""
    max_thumbnails: NonNegativeInt = 100
    """Training cameras drawn with their image as a thumbnail (others as bare frustums)."""
    thumbnail_size: Count = 64
    """Longest side of a training camera's thumbnail."""
    frustum_scale: Positive = 0.04
    """Size of the training-camera frustums, as a fraction of the scene box's diagonal."""
    jpeg_quality: ranged(int, min=1, max=100) = 80
    """Quality of the JPEG frames sent to the browser."""
