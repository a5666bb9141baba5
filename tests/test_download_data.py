"""kit-download-data against a local HTTP server that misbehaves on request.

Every failure must exit 1 with a message naming the URL or file, and leave no scene folder and no extraction folder
behind; an interrupted download must resume with a Range request, and a corrupt one must be deleted so a rerun starts
clean.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from nerfkit.scripts.download_data import main
from nerfkit.utils.cli import run_cli
from nerfkit.utils.downloads import MIRROR_ENV_VAR

EXIT_USER_ERROR = 1


@dataclass
class Behaviour:
    """What the server does: the file it serves and how it misbehaves."""

    body: bytes = b""
    cut_after: int | None = None
    """Close the connection after this many body bytes, on the next request only."""
    ignore_range: bool = False
    missing: bool = False
    content_type: str = "application/zip"
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """Path and Range header of every request."""


class ArchiveServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ArchiveHandler)
        self.behaviour = Behaviour()

    def url(self, path: str = "nerf_synthetic.zip") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path}"


class ArchiveHandler(BaseHTTPRequestHandler):
    server: ArchiveServer

    def do_GET(self) -> None:
        behaviour = self.server.behaviour
        requested = self.headers.get("Range")
        behaviour.requests.append((self.path, requested))
        if behaviour.missing:
            self.send_error(404)
            return
        body = behaviour.body
        match = re.fullmatch(r"bytes=(\d+)-", requested or "")
        start = 0 if match is None or behaviour.ignore_range else int(match[1])
        if start >= len(body) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Type", behaviour.content_type)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if behaviour.cut_after is not None:
            payload, behaviour.cut_after = payload[: behaviour.cut_after], None
            self.close_connection = True
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        """Keeps the test output quiet."""


@pytest.fixture
def server() -> Iterator[ArchiveServer]:
    server = ArchiveServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh download cache, and no mirror from the developer's environment."""
    monkeypatch.setenv("NERFKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(MIRROR_ENV_VAR, raising=False)
    return tmp_path / "cache" / "downloads"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Kit = Callable[..., Result]


@pytest.fixture
def kit(capsys: pytest.CaptureFixture[str]) -> Kit:
    """Runs kit-download-data in this process, as its console script does."""

    def run(*args: str) -> Result:
        with pytest.raises(SystemExit) as exited:
            run_cli(main, list(args))
        captured = capsys.readouterr()
        return Result(exited.value.code, captured.out, captured.err)

    return run


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (4, 3), (200, 100, 50, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def scene_files(folder: str) -> dict[str, bytes]:
    """A tiny Blender scene: one transforms file and the image it names."""
    frames = [
        {"file_path": "./train/r_0", "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]}
    ]
    transforms = json.dumps({"camera_angle_x": 0.7, "frames": frames}).encode()
    return {f"{folder}/transforms_train.json": transforms, f"{folder}/train/r_0.png": png_bytes()}


NERF_SYNTHETIC = {**scene_files("nerf_synthetic/lego"), **scene_files("nerf_synthetic/chair")}
"""Two scenes in one archive, as the real one holds eight."""


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def tar_gz_bytes(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


ARCHIVE = zip_bytes(NERF_SYNTHETIC)
SHA256 = hashlib.sha256(ARCHIVE).hexdigest()


def blender(server: ArchiveServer, output: Path, *extra: str) -> list[str]:
    return ["blender", "--scene", "lego", "--output-dir", str(output), "--url", server.url(), *extra]


def checksums(*, size: int = len(ARCHIVE), sha256: str = SHA256) -> list[str]:
    return ["--size", str(size), "--sha256", sha256]


def files_under(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def assert_scene(folder: Path, name: str = "lego") -> None:
    expected = scene_files(f"nerf_synthetic/{name}")
    assert files_under(folder) == {key.split(f"nerf_synthetic/{name}/")[1]: data for key, data in expected.items()}


def assert_nothing_extracted(output: Path) -> None:
    """No scene folder, no extraction folder: at most the empty dataset folder."""
    assert [path for path in output.rglob("*") if path != output / "blender"] == []


def assert_clean_failure(result: Result, *expected: str) -> None:
    assert result.code == EXIT_USER_ERROR, result
    assert "Traceback" not in result.err
    for text in expected:
        assert text in result.err


def corrupted(data: bytes, start: int = 0) -> bytes:
    """`data` with every byte from `start` on inverted."""
    return data[:start] + bytes(byte ^ 0xFF for byte in data[start:])


def test_help_lists_the_datasets(kit: Kit) -> None:
    result = kit("--help")
    assert result.code == 0
    for text in ("blender", "nerfstudio", "mipnerf360", MIRROR_ENV_VAR):
        assert text in result.out
    result = kit("nerfstudio", "--help")
    assert result.code == 0 and "--capture-name" in result.out and "poster" in result.out


@pytest.mark.parametrize("archive", [zip_bytes, tar_gz_bytes], ids=["zip", "tar.gz"])
def test_downloads_one_scene_and_reuses_the_archive_for_another(
    kit: Kit, server: ArchiveServer, tmp_path: Path, cache_dir: Path, archive: Callable[[Mapping[str, bytes]], bytes]
) -> None:
    body = archive(NERF_SYNTHETIC)
    server.behaviour.body = body
    output = tmp_path / "data"
    sha256 = hashlib.sha256(body).hexdigest()
    result = kit(*blender(server, output, *checksums(size=len(body), sha256=sha256)))
    assert result.code == 0, result
    assert_scene(output / "blender" / "lego")
    assert f"kit-train instant-ngp --data {output / 'blender' / 'lego'}" in result.out
    result = kit(*blender(server, output, "--scene", "chair"))
    assert result.code == 0, result
    assert_scene(output / "blender" / "chair")
    assert len(server.behaviour.requests) == 1
    assert sorted(path.name for path in output.joinpath("blender").iterdir()) == ["chair", "lego"]
    assert [hashlib.sha256(path.read_bytes()).hexdigest() for path in cache_dir.iterdir()] == [sha256]


def test_interrupted_download_resumes_with_a_range_request(
    kit: Kit, server: ArchiveServer, tmp_path: Path, cache_dir: Path
) -> None:
    cut = len(ARCHIVE) // 2
    server.behaviour.body, server.behaviour.cut_after = ARCHIVE, cut
    output = tmp_path / "data"
    result = kit(*blender(server, output, *checksums()))
    assert_clean_failure(result, f"download of {server.url()} failed", "kept", "rerunning resumes")
    [part] = cache_dir.iterdir()
    assert part.name.endswith(".part") and part.read_bytes() == ARCHIVE[:cut]
    assert not output.exists()

    result = kit(*blender(server, output, *checksums()))
    assert result.code == 0, result
    assert server.behaviour.requests == [("/nerf_synthetic.zip", None), ("/nerf_synthetic.zip", f"bytes={cut}-")]
    [archive] = cache_dir.iterdir()
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == SHA256
    assert_scene(output / "blender" / "lego")


def test_a_complete_partial_download_is_not_fetched_again(
    kit: Kit, server: ArchiveServer, tmp_path: Path, cache_dir: Path
) -> None:
    server.behaviour.body, server.behaviour.cut_after = ARCHIVE, 10
    output = tmp_path / "data"
    assert_clean_failure(kit(*blender(server, output)), "rerunning resumes")
    [part] = cache_dir.iterdir()
    part.write_bytes(ARCHIVE)
    result = kit(*blender(server, output, "--sha256", SHA256))
    assert result.code == 0, result
    assert server.behaviour.requests[-1] == ("/nerf_synthetic.zip", f"bytes={len(ARCHIVE)}-")
    assert_scene(output / "blender" / "lego")


def test_a_web_page_instead_of_the_archive_is_refused(
    kit: Kit, server: ArchiveServer, tmp_path: Path, cache_dir: Path
) -> None:
    server.behaviour.body, server.behaviour.content_type = b"<html>quota exceeded</html>", "text/html; charset=utf-8"
    result = kit(*blender(server, tmp_path / "data"))
    assert_clean_failure(result, f"{server.url()} answered with a web page", "--url file://")
    assert list(cache_dir.iterdir()) == []


def test_a_server_ignoring_range_makes_the_download_start_over(
    kit: Kit, server: ArchiveServer, tmp_path: Path, cache_dir: Path
) -> None:
    server.behaviour.body, server.behaviour.cut_after, server.behaviour.ignore_range = ARCHIVE, 100, True
    output = tmp_path / "data"
    assert_clean_failure(kit(*blender(server, output, *checksums())), "rerunning resumes")
    result = kit(*blender(server, output, *checksums()))
    assert result.code == 0, result
    assert "starting over" in result.out
    assert [header for _, header in server.behaviour.requests] == [None, "bytes=100-"]
    assert_scene(output / "blender" / "lego")


def test_checksum_mismatch_deletes_the_download(
    kit: Kit, server: ArchiveServer, tmp_path: Path, cache_dir: Path
) -> None:
    server.behaviour.body = corrupted(ARCHIVE, start=len(ARCHIVE) // 3)
    output = tmp_path / "data"
    result = kit(*blender(server, output, *checksums()))
    assert_clean_failure(result, "checksum mismatch", server.url(), SHA256, "deleted")
    assert list(cache_dir.iterdir()) == []
    assert not output.exists()
    server.behaviour.body = ARCHIVE
    assert kit(*blender(server, output, *checksums())).code == 0
    assert server.behaviour.requests[-1] == ("/nerf_synthetic.zip", None)
    assert_scene(output / "blender" / "lego")


@pytest.mark.parametrize("start", [0, len(ARCHIVE) // 3], ids=["no-zip-at-all", "corrupt-members"])
def test_corrupt_archive_without_checksum_is_refused_and_deleted(
    kit: Kit, server: ArchiveServer, tmp_path: Path, cache_dir: Path, start: int
) -> None:
    server.behaviour.body = corrupted(ARCHIVE, start)
    output = tmp_path / "data"
    result = kit(*blender(server, output))
    assert_clean_failure(result, "not a valid zip", "deleted")
    assert list(cache_dir.iterdir()) == []
    assert_nothing_extracted(output)


def test_wrong_size_fails_before_anything_is_written(
    kit: Kit, server: ArchiveServer, tmp_path: Path, cache_dir: Path
) -> None:
    server.behaviour.body = ARCHIVE
    result = kit(*blender(server, tmp_path / "data", "--size", str(len(ARCHIVE) + 1)))
    assert_clean_failure(result, server.url(), f"should be {len(ARCHIVE) + 1:,} bytes")
    assert list(cache_dir.iterdir()) == []


@pytest.mark.parametrize("size", ["0", "-5"])
def test_a_size_below_1_is_refused_before_any_request(
    kit: Kit, server: ArchiveServer, tmp_path: Path, cache_dir: Path, size: str
) -> None:
    result = kit(*blender(server, tmp_path / "data", "--size", size))
    assert_clean_failure(result, f"--size must be >= 1, got {size}")
    assert server.behaviour.requests == [] and not cache_dir.exists()
    assert not (tmp_path / "data").exists()


def test_missing_file_names_the_url(kit: Kit, server: ArchiveServer, tmp_path: Path, cache_dir: Path) -> None:
    server.behaviour.missing = True
    result = kit(*blender(server, tmp_path / "data"))
    assert_clean_failure(result, f"download of {server.url()} failed: HTTP 404")
    assert list(cache_dir.iterdir()) == []
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("archive", [zip_bytes, tar_gz_bytes], ids=["zip", "tar.gz"])
@pytest.mark.parametrize("name", ["nerf_synthetic/lego/../../../evil.txt", "/tmp/evil.txt"])
def test_path_traversal_is_refused(
    kit: Kit,
    server: ArchiveServer,
    tmp_path: Path,
    cache_dir: Path,
    archive: Callable[[Mapping[str, bytes]], bytes],
    name: str,
) -> None:
    server.behaviour.body = archive({**NERF_SYNTHETIC, name: b"gotcha"})
    output = tmp_path / "data" / "nested"
    result = kit(*blender(server, output))
    assert_clean_failure(result, "unsafe path", name)
    assert not any(path.name == "evil.txt" for path in tmp_path.rglob("*"))
    assert list(cache_dir.iterdir()) == []
    assert_nothing_extracted(output)


def test_existing_scene_is_left_alone_unless_forced(kit: Kit, server: ArchiveServer, tmp_path: Path) -> None:
    server.behaviour.body = ARCHIVE
    output = tmp_path / "data"
    scene = output / "blender" / "lego"
    scene.mkdir(parents=True)
    (scene / "mine.txt").write_text("keep me")
    result = kit(*blender(server, output))
    assert result.code == 0 and "already exists" in result.out and "--force" in result.out
    assert files_under(scene) == {"mine.txt": b"keep me"} and server.behaviour.requests == []
    result = kit(*blender(server, output, "--force"))
    assert result.code == 0, result
    assert_scene(scene)
    assert sorted(path.name for path in (output / "blender").iterdir()) == ["lego"]


def test_capture_archive_with_one_folder_becomes_the_scene(
    kit: Kit, server: ArchiveServer, tmp_path: Path, cache_dir: Path
) -> None:
    server.behaviour.body = zip_bytes({"poster_v2/transforms.json": b"{}", "poster_v2/images/frame_1.png": b"png"})
    output = tmp_path / "data"
    url = server.url("poster.zip")
    result = kit(
        "nerfstudio", "--capture-name", "poster", "--output-dir", str(output), "--url", url, "--no-keep-archive"
    )
    assert result.code == 0, result
    assert files_under(output / "nerfstudio" / "poster") == {"transforms.json": b"{}", "images/frame_1.png": b"png"}
    assert f"kit-train nerfacto --data {output / 'nerfstudio' / 'poster'}" in result.out
    assert list(cache_dir.iterdir()) == []


def test_mirror_replaces_the_host(
    kit: Kit, server: ArchiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.behaviour.body = ARCHIVE
    monkeypatch.setenv(MIRROR_ENV_VAR, server.url("mirror/"))
    result = kit("blender", "--scene", "lego", "--output-dir", str(tmp_path / "data"))
    assert result.code == 0, result
    assert server.behaviour.requests == [("/mirror/nerf_synthetic.zip", None)]
    assert_scene(tmp_path / "data" / "blender" / "lego")
