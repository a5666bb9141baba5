"""kit-download-data: fetch a public NeRF scene into <output-dir>/<dataset>/<scene>, ready for kit-train.

Examples: `kit-download-data blender --scene lego`, `kit-download-data nerfstudio --capture-name poster`,
`kit-download-data mipnerf360 --scene garden --output-dir data/`.

Rerunning resumes an interrupted download. Archives stay in $NERFKIT_CACHE_DIR/downloads, so another scene from the
same archive needs no new download. A scene folder that already exists is left alone unless --force.

NERFKIT_DOWNLOAD_MIRROR=<base URL> fetches every archive from <base URL>/<archive path> instead, for example
file:///mnt/datasets holding nerf_synthetic.zip, 360_v2.zip and nerfstudio/poster.zip; --url replaces one URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import tyro
from rich.console import Console

from nerfkit.configs.ranges import check_ranges, ranged
from nerfkit.data.datasets import cache_root
from nerfkit.utils.cli import run_cli
from nerfkit.utils.downloads import ArchiveSource, SceneSource, install_scene, is_present, resolve_source
from nerfkit.utils.files import check_writable_folder

GOOGLE_DRIVE = "https://drive.usercontent.google.com/download?id={}&export=download&confirm=t"
MIPNERF360_URL = "https://storage.googleapis.com/gresearch/refraw360/{}"

NERF_SYNTHETIC = ArchiveSource(GOOGLE_DRIVE.format("18JxhpWD-4ZmuFKLzKlAw-w5PpzZxXOcG"), "nerf_synthetic.zip")
# Sizes as Google Cloud Storage reports them (Content-Length); the host publishes no checksums.
MIPNERF360 = ArchiveSource(MIPNERF360_URL.format("360_v2.zip"), "360_v2.zip", size=12_535_427_936)
MIPNERF360_EXTRA = ArchiveSource(
    MIPNERF360_URL.format("360_extra_scenes.zip"), "360_extra_scenes.zip", size=4_488_140_217
)
NERFSTUDIO_DRIVE_IDS = {
    "bww_entrance": "1ylkRHtfB3n3IRLf2wplpfxzPTq7nES9I",
    "campanile": "13aOfGJRRH05pOOk9ikYGTwqFc2L1xskU",
    "desolation": "14IzOOQm9KBJ3kPbunQbUTHPnXnmZus-f",
    "library": "1Hjbh_-BuaWETQExn2x2qGD74UwrFugHx",
    "poster": "1dmjWGXlJnUxwosN6MVooCDQe970PkD-1",
    "redwoods2": "1rg-4NoXT8p6vkmbWxMOY6PSG4j3rfcJ8",
    "storefront": "16b792AguPZWDA_YC4igKCwXJqW0Tb21o",
    "vegetation": "1wBhLQ2odycrtU39y2akVurXEAt9SsVI3",
    "Egypt": "1YktD85afw7uitC3nPamusk0vcBdAfjlF",
    "person": "1HsGMwkPu-R7oU7ySMdoo6Eppq8pKhHF3",
    "kitchen": "1IRmNyNZSNFidyj93Tt5DtaEU9h6eJdi1",
    "plane": "1tnv2NC2Iwz4XRYNtziUWvLJjObkZNo2D",
    "dozer": "1jQJPz5PhzTH--LOcCxvfzV_SDLEp1de3",
    "floating-tree": "1mVEHcO2ep13WPx92IPDvdQg66vLQwFSy",
    "aspen": "1X1PQcji_QpxGfMxbETKMeK8aOnWCkuSB",
    "stump": "1yZFAAEvtw2hs4MXrrkvhVAzEliLLXPB7",
    "sculpture": "1CUU_k0Et2gysuBn_R5qenDMfYXEhNsd1",
    "Giannini-Hall": "1UkjWXLN4qybq_a-j81FsTKghiXw39O8E",
}
"""Nerfstudio's example captures: one zip each, holding one folder."""

BLENDER_SCENES = {
    name: SceneSource(NERF_SYNTHETIC, f"nerf_synthetic/{name}")
    for name in ("chair", "drums", "ficus", "hotdog", "lego", "materials", "mic", "ship")
}
MIPNERF360_SCENES = {
    **{
        name: SceneSource(MIPNERF360, name)
        for name in ("bicycle", "bonsai", "counter", "garden", "kitchen", "room", "stump")
    },
    **{name: SceneSource(MIPNERF360_EXTRA, name) for name in ("flowers", "treehill")},
}
NERFSTUDIO_CAPTURES = {
    name: SceneSource(ArchiveSource(GOOGLE_DRIVE.format(file_id), f"nerfstudio/{name}.zip"), None)
    for name, file_id in NERFSTUDIO_DRIVE_IDS.items()
}

BlenderScene = Literal[tuple(BLENDER_SCENES)]
MipNerf360Scene = Literal[tuple(MIPNERF360_SCENES)]
NerfstudioCapture = Literal[tuple(NERFSTUDIO_CAPTURES)]


@dataclass
class DownloadConfig:
    """The options every dataset shares."""

    output_dir: Path = Path("data")
    """The scene goes to <output-dir>/<dataset>/<scene>."""
    url: str | None = None
    """Download the archive from here, not its built-in source or mirror; its built-in size and checksum then lapse."""
    sha256: str | None = None
    """The archive's expected SHA-256; a download that does not match is deleted."""
    size: ranged(int | None, min=1) = None
    """The archive's expected length in bytes, checked before and after downloading."""
    force: bool = False
    """Replace the scene folder if it already exists, instead of leaving it alone."""
    keep_archive: bool = True
    """Keep the archive in $NERFKIT_CACHE_DIR/downloads, so other scenes from it need no download."""

    dataset: ClassVar[str]
    scenes: ClassVar[Mapping[str, SceneSource]]
    method: ClassVar[str] = "nerfacto"
    """The method the "train on it" hint suggests: nerfacto for real captures."""


@dataclass
class BlenderDownload(DownloadConfig):
    """NeRF-synthetic scenes in the Blender layout; one zip holds all eight."""

    scene: BlenderScene = "lego"
    """The scene to extract."""

    dataset: ClassVar[str] = "blender"
    scenes: ClassVar[Mapping[str, SceneSource]] = BLENDER_SCENES
    method: ClassVar[str] = "instant-ngp"


@dataclass
class NerfstudioDownload(DownloadConfig):
    """Nerfstudio's example captures; one zip each."""

    scene: Annotated[NerfstudioCapture, tyro.conf.arg(name="capture-name")] = "poster"
    """The capture to download."""

    dataset: ClassVar[str] = "nerfstudio"
    scenes: ClassVar[Mapping[str, SceneSource]] = NERFSTUDIO_CAPTURES


@dataclass
class MipNerf360Download(DownloadConfig):
    """Mip-NeRF 360 scenes; one zip holds seven of them, another flowers and treehill."""

    scene: MipNerf360Scene = "garden"
    """The scene to extract."""

    dataset: ClassVar[str] = "mipnerf360"
    scenes: ClassVar[Mapping[str, SceneSource]] = MIPNERF360_SCENES


Command = (
    Annotated[BlenderDownload, tyro.conf.subcommand("blender")]
    | Annotated[NerfstudioDownload, tyro.conf.subcommand("nerfstudio")]
    | Annotated[MipNerf360Download, tyro.conf.subcommand("mipnerf360")]
)


def download(config: BlenderDownload | NerfstudioDownload | MipNerf360Download, console: Console) -> Path:
    """Installs the scene unless it is already there; returns its folder."""
    check_writable_folder(config.output_dir, "--output-dir", config.output_dir)
    destination = config.output_dir / config.dataset / config.scene
    if is_present(destination) and not config.force:
        console.print(f"{destination} already exists and is left as it is (--force replaces it)")
        return destination
    entry = config.scenes[config.scene]
    scene = SceneSource(resolve_source(entry.archive, config.url, config.sha256, config.size), entry.member)
    install_scene(scene, destination, cache_root() / "downloads", console, keep_archive=config.keep_archive)
    console.print(f"{config.dataset} scene {config.scene} is in {destination}")
    return destination


def main(argv: list[str]) -> int:
    config = tyro.cli(Command, args=argv, prog="kit-download-data", description=__doc__)
    check_ranges(config)
    console = Console(highlight=False, markup=False, soft_wrap=True)
    destination = download(config, console)
    console.print(f"train on it: kit-train {config.method} --data {destination}")
    return 0


def entrypoint() -> None:
    run_cli(main)


if __name__ == "__main__":
    entrypoint()
