"""Dataset archives, downloaded so that an interruption costs nothing and a failure leaves no half-written scene.

An archive is fetched into `<name>.part` in the download cache. An interrupted transfer keeps that file and the next
attempt continues it with an HTTP Range request (or starts over when the server ignores Range). Only a complete file
that matches its known size and SHA-256 gets its final name; one that does not is deleted, since resuming it could
never repair it. A scene is extracted into a hidden folder next to its destination and renamed into place, so the
destination either holds the whole scene or does not exist.

$NERFKIT_DOWNLOAD_MIRROR, a base URL, fetches every built-in archive from `<mirror>/<archive path>` instead of its
original host (for example `file:///mnt/datasets`, holding `nerf_synthetic.zip`, `360_v2.zip`,
`nerfstudio/poster.zip`, ...). A mirror serves the same files, so the built-in sizes and checksums still apply.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from http.client import HTTPException, HTTPResponse
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.error import HTTPError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

import nerfkit
from nerfkit.errors import NerfkitError

MIRROR_ENV_VAR = "NERFKIT_DOWNLOAD_MIRROR"
"""Environment variable holding the base URL of a mirror of every built-in archive."""
URL_SCHEMES = ("http", "https", "file")
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
"""How a zip starts: with its first member, or, when empty, with its end record."""
CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60.0
"""How long a stalled connection may stay silent before the download fails (and can be resumed)."""
USER_AGENT = f"nerfkit/{nerfkit.__version__}"
TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
"""Python's own tar sanitising (links, devices, permissions) where this Python has it."""
SOURCE_HINT = f"check the URL (--url, or ${MIRROR_ENV_VAR}) and the network connection, then rerun"
BROKEN_ARCHIVE_HINT = (
    "it was deleted from the download cache, so a rerun downloads it again; check --url if that fails the same way"
)
WEB_PAGE_HINT = (
    "Google Drive answers with a page instead of the file when its download quota is exceeded; try again later, "
    "or download the file in a browser and pass --url file:///path/to/the/archive"
)


@dataclass(frozen=True)
class ArchiveSource:
    """An archive to download, and what is known about it before downloading."""

    url: str
    path: str
    """Its path on a mirror; the last component also names the cached file."""
    sha256: str | None = None
    size: int | None = None
    """Length in bytes."""


@dataclass(frozen=True)
class SceneSource:
    """One scene: the archive holding it and where inside."""

    archive: ArchiveSource
    member: str | None
    """The scene's folder inside the archive; None: the archive's only top-level folder, else all of it."""


def resolve_source(
    source: ArchiveSource,
    url: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> ArchiveSource:
    """The source after overrides: --url names a different file, so the built-in checksums stop applying."""
    if url is not None:
        source = ArchiveSource(url=url, path=source.path)
    elif mirror := environ.get(MIRROR_ENV_VAR):
        source = replace(source, url=f"{mirror.rstrip('/')}/{source.path}")
    if urlsplit(source.url).scheme not in URL_SCHEMES:
        raise NerfkitError(
            f"cannot download {source.url!r}", hint=f"use a URL starting with {' or '.join(URL_SCHEMES)}"
        )
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise NerfkitError(f"--sha256 {sha256!r} is not a SHA-256 digest", hint="give its 64 hexadecimal digits")
    digest = source.sha256 if sha256 is None else sha256
    return replace(source, sha256=digest and digest.lower(), size=source.size if size is None else size)


def cached_archive(source: ArchiveSource, downloads_dir: Path) -> Path:
    """Keyed by URL: another scene from the same archive reuses it, a different URL never does."""
    digest = hashlib.sha256(source.url.encode()).hexdigest()[:12]
    return downloads_dir / f"{digest}-{PurePosixPath(source.path).name}"


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def file_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _body_span(response: HTTPResponse, url: str) -> tuple[int, int | None]:
    """Where the body starts in the file, and the file's full length when the server tells."""
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", content_range)
        if match is None:
            raise NerfkitError(f"{url} sent part of the file with a Content-Range of {content_range!r}", SOURCE_HINT)
        return int(match[1]), None if match[2] == "*" else int(match[2])
    length = response.headers.get("Content-Length", "")
    return 0, int(length) if length.isdigit() else None


def _check_response(response: HTTPResponse, url: str, total: int | None, size: int | None) -> None:
    """Fails before writing anything: a web page, or a file of the wrong length, is not the archive."""
    if response.headers.get_content_type() == "text/html":
        raise NerfkitError(f"{url} answered with a web page, not an archive", WEB_PAGE_HINT)
    if size is not None and total is not None and total != size:
        raise NerfkitError(
            f"{url} is {total:,} bytes, but the archive should be {size:,} bytes",
            "the file at that URL changed, or the URL is wrong; pass --size (and --sha256) if the new file is right",
        )


def _transfer(url: str, part: Path, offset: int, size: int | None, console: Console) -> None:
    """Appends the rest of the file to `part`, or rewrites it from the start when the server ignores Range."""
    headers = {"User-Agent": USER_AGENT} | ({"Range": f"bytes={offset}-"} if offset else {})
    with urlopen(Request(url, headers=headers), timeout=TIMEOUT_SECONDS) as response:
        start, total = _body_span(response, url)
        if start not in (0, offset):
            raise NerfkitError(f"{url} answered a request for bytes {offset}- with bytes {start}-", SOURCE_HINT)
        _check_response(response, url, total, size)
        if offset:
            console.print(f"resuming at {offset:,} bytes" if start else f"{url} cannot resume; starting over")
        with part.open("ab" if start else "wb") as file, _progress(console) as progress:
            task = progress.add_task(part.name.removesuffix(".part"), total=total, completed=start)
            while chunk := response.read(CHUNK_BYTES):
                file.write(chunk)
                progress.advance(task, len(chunk))
    if total is not None and file_size(part) < total:
        raise ConnectionError(f"the connection closed after {file_size(part):,} of {total:,} bytes")


def _range_total(content_range: str) -> int | None:
    """The file length in a 416 answer's `Content-Range: bytes */LENGTH`."""
    match = re.fullmatch(r"bytes \*/(\d+)", content_range)
    return None if match is None else int(match[1])


def _download_error(url: str, part: Path, reason: str) -> NerfkitError:
    kept = file_size(part)
    resume = f"; the partial download is kept in {part} ({kept:,} bytes) and rerunning resumes it" if kept else ""
    return NerfkitError(f"download of {url} failed: {reason}", SOURCE_HINT + resume)


def fetch(url: str, part: Path, size: int | None, console: Console) -> None:
    """Completes `part` from `url`, continuing from its current length when the server allows."""
    offset = file_size(part)
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if offset == size:
        return
    try:
        _transfer(url, part, offset, size, console)
    except HTTPError as error:
        if error.code != 416 or not offset:
            raise _download_error(url, part, f"HTTP {error.code} {error.reason}") from error
        if _range_total(error.headers.get("Content-Range", "")) == offset:
            return
        part.unlink()
        fetch(url, part, size, console)
    except (OSError, HTTPException) as error:
        raise _download_error(url, part, str(getattr(error, "reason", error)) or type(error).__name__) from error
    except KeyboardInterrupt as error:
        raise _download_error(url, part, "interrupted") from error


def verify(path: Path, source: ArchiveSource, console: Console) -> None:
    """Deletes a file that does not match its known size or checksum, so the next attempt starts clean."""
    length = path.stat().st_size
    if source.size is not None and length != source.size:
        problem = f"is {length:,} bytes, but should be {source.size:,} (size mismatch)"
    elif source.sha256 is not None:
        with console.status(f"checking the SHA-256 of {path.name}"):
            digest = file_sha256(path)
        if digest == source.sha256:
            return
        problem = f"has SHA-256 {digest}, but should have {source.sha256} (checksum mismatch)"
    else:
        return
    path.unlink()
    raise NerfkitError(
        f"the archive from {source.url} {problem}",
        "the corrupt file was deleted; rerun to download it again, or check --url, --sha256 and --size",
    )


def ensure_archive(source: ArchiveSource, archive: Path, console: Console) -> None:
    """A verified copy of the archive at `archive`: the cached one, else a (resumed) download."""
    if archive.is_file():
        console.print(f"using the archive downloaded before: {archive}")
        verify(archive, source, console)
        return
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(archive)
    console.print(f"downloading {source.url}\n  to {part}")
    fetch(source.url, part, source.size, console)
    verify(part, source, console)
    part.replace(archive)


def _member_path(name: str, archive: Path) -> PurePosixPath:
    """A member's path, refused when it could land outside the extraction folder (path traversal)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or PureWindowsPath(name).drive:
        raise NerfkitError(f"{archive} holds the unsafe path {name!r}, which points outside the extraction folder")
    return path


def _in_scene(path: PurePosixPath, member: str | None) -> bool:
    return member is None or path == PurePosixPath(member) or PurePosixPath(member) in path.parents


def _check_found(found: bool, archive: Path, member: str | None) -> None:
    if not found:
        raise NerfkitError(f"{archive} has no folder {member!r}" if member else f"{archive} is empty")


def _extract_zip(archive: Path, folder: Path, member: str | None) -> None:
    with zipfile.ZipFile(archive) as bundle:
        members = [info for info in bundle.infolist() if _in_scene(_member_path(info.filename, archive), member)]
        _check_found(bool(members), archive, member)
        for info in members:
            bundle.extract(info, folder)


def _extract_tar(archive: Path, folder: Path, member: str | None) -> None:
    with tarfile.open(archive) as bundle:
        members = [info for info in bundle.getmembers() if _in_scene(_member_path(info.name, archive), member)]
        for info in members:
            if info.issym() or info.islnk():
                _member_path(info.linkname, archive)
        _check_found(bool(members), archive, member)
        bundle.extractall(folder, members=members, **TAR_FILTER)


def _starts_like_zip(archive: Path) -> bool:
    """By the leading signature: zipfile.is_zipfile looks at the end, where a tar may hold a zip member's."""
    with archive.open("rb") as file:
        return file.read(4) in ZIP_SIGNATURES


def _extract(archive: Path, folder: Path, member: str | None) -> None:
    try:
        if _starts_like_zip(archive):
            _extract_zip(archive, folder, member)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, folder, member)
        else:
            raise NerfkitError(f"{archive} is not a valid zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as error:
        raise NerfkitError(f"{archive} is not a valid zip or tar archive: {error}") from error


def _scene_root(extracted: Path, member: str | None) -> Path:
    if member is not None:
        return extracted / member
    entries = list(extracted.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else extracted


def extract_scene(archive: Path, member: str | None, destination: Path, console: Console) -> None:
    """Extracts into a hidden sibling folder, then renames it into place: `destination` is never half-written."""
    staging = destination.parent / f".{destination.name}.download"
    shutil.rmtree(staging, ignore_errors=True)
    made = [folder for folder in (destination.parent, *destination.parent.parents) if not folder.exists()]
    extracted = staging / "extracted"
    extracted.mkdir(parents=True)
    try:
        with console.status(f"extracting {member or 'the scene'} from {archive.name}"):
            _extract(archive, extracted, member)
        root = _scene_root(extracted, member)
        if destination.exists():
            destination.rename(staging / "replaced")
        root.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # deepest first: the folders made for the scene, so a failure leaves none behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)


def is_present(path: Path) -> bool:
    """Whether `path` holds anything; an empty folder is as good as none."""
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def install_scene(
    scene: SceneSource, destination: Path, downloads_dir: Path, console: Console, keep_archive: bool = True
) -> None:
    """Puts the scene at `destination`, replacing whatever is there, downloading its archive unless cached."""
    archive = cached_archive(scene.archive, downloads_dir)
    ensure_archive(scene.archive, archive, console)
    try:
        extract_scene(archive, scene.member, destination, console)
    except NerfkitError as error:
        # Kept, the broken file would fail every rerun the same way.
        archive.unlink(missing_ok=True)
        raise NerfkitError(f"{error.message} (downloaded from {scene.archive.url})", BROKEN_ARCHIVE_HINT) from error
    if keep_archive:
        console.print(f"the archive stays in {archive} ({archive.stat().st_size:,} bytes) for other scenes in it")
    else:
        archive.unlink()
