"""methods/template as a third party uses it: pip-installed on its own, found by kit-train, and trained on lego."""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from kit_flags import TINY_MODEL

from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.fields import FrequencyEncodingConfig
from nerfkit.configs.model_components import PDFSamplerConfig
from nerfkit.configs.serialization import read_yaml
from nerfkit.data.scene_box import SceneBox
from nerfkit.engine.checkpoints import checkpoint_step, find_checkpoint
from nerfkit.errors import NerfkitError
from nerfkit.model_components.component_context import ComponentContext
from nerfkit.plugins.registry import ENV_VAR

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "methods" / "template"
KIT_TRAIN = Path(sys.executable).parent / "kit-train"
NUM_STEPS = 4


@pytest.fixture(scope="module")
def template_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only the pip-installed template; putting it on PYTHONPATH is what installs the plug-in."""
    root = tmp_path_factory.mktemp("template_plugin")
    # Building writes build/ and *.egg-info next to the sources, so build a copy and leave the checkout untouched.
    source = shutil.copytree(
        TEMPLATE_DIR, root / "source", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    site = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
    result = subprocess.run(
        [*pip, "--disable-pip-version-check", "--target", str(site), str(source)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(site.glob("nerfkit_template-*.dist-info"))
    return site


def kit_train(*args: str, pythonpath: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs the installed console script, with only `pythonpath` (if any) added to where it looks for plug-ins."""
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", ENV_VAR)}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(KIT_TRAIN), *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_kit_train_lists_my_method_only_when_installed(template_site: Path) -> None:
    without = kit_train("--help")
    assert without.returncode == 0, without.stderr
    assert "vanilla-nerf" in without.stdout
    assert "my-method" not in without.stdout, "nerfkit-template is already installed here; uninstall it"

    with_plugin = kit_train("--help", pythonpath=template_site)
    assert with_plugin.returncode == 0, with_plugin.stderr
    assert "my-method" in with_plugin.stdout and "vanilla-nerf" in with_plugin.stdout
    assert "warning" not in with_plugin.stderr


def test_the_template_keeps_help_screens_free_of_torch(template_site: Path) -> None:
    """The example plug-in follows nerfkit's own pattern: its configs import no torch, so installing it keeps
    `kit-train --help` and `kit-train my-method --help` from importing torch."""
    script = (
        "import contextlib, io, sys\n"
        "from nerfkit.scripts.train import main\n"
        "for argv in (['--help'], ['my-method', '--help'], ['vanilla-nerf', '--help']):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main(argv)\n"
        "print('torch' in sys.modules)\n"
    )
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", ENV_VAR)}
    env["PYTHONPATH"] = str(template_site)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]


def test_template_sampler_is_offered_to_every_model_only_when_installed(
    template_site: Path, lego_dir: Path, lego_cache_dir: Path, tmp_path: Path
) -> None:
    choice = "pipeline.model.coarse-sampler:log"
    without = kit_train("vanilla-nerf", "--help")
    assert without.returncode == 0 and choice not in without.stdout
    with_plugin = kit_train("vanilla-nerf", "--help", pythonpath=template_site)
    assert with_plugin.returncode == 0, with_plugin.stderr
    assert choice in with_plugin.stdout and "Evenly spaced in log distance" in " ".join(with_plugin.stdout.split())

    result = kit_train(
        "vanilla-nerf", choice,
        "--data", str(lego_dir),
        "--pipeline.datamanager.dataparser.downscale-factor", "16",
        "--pipeline.datamanager.cache-dir", str(lego_cache_dir),
        "--max-num-iterations", "2",
        "--run-dir", str(tmp_path / "run"),
        "--vis", "none",
        *TINY_MODEL,
        pythonpath=template_site,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    saved = read_yaml(tmp_path / "run" / "config.yml")["config"]["pipeline"]["model"]["coarse_sampler"]
    assert saved == {"type": "log", "num_samples": 8, "train_stratified": True}


def test_log_sampler_steps_grow_by_a_constant_factor(template: ModuleType) -> None:
    sampler_module = importlib.import_module("nerfkit_template.template_sampler")
    nears, fars = torch.tensor([[2.0], [0.5]]), torch.tensor([[6.0], [50.0]])
    bins = sampler_module.log_spaced_bins(nears, fars, 8, stratified=False)
    torch.testing.assert_close(bins[:, :1], nears)
    torch.testing.assert_close(bins[:, -1:], fars)
    ratios = bins[:, 1:] / bins[:, :-1]
    torch.testing.assert_close(ratios, ratios[:, :1].expand_as(ratios))
    config_module = importlib.import_module("nerfkit_template.template_config")
    with pytest.raises(NerfkitError, match="near plane above 0"):
        config_module.LogSamplerConfig().setup(ComponentContext(SceneBox.cube(1.0), near_plane=0.0, far_plane=1.0))


def test_my_method_trains_on_lego(template_site: Path, lego_dir: Path, lego_cache_dir: Path, tmp_path: Path) -> None:
    result = kit_train(
        "my-method",
        "--data", str(lego_dir),
        "--pipeline.datamanager.dataparser.downscale-factor", "8",
        "--max-num-iterations", str(NUM_STEPS),
        "--output-dir", str(tmp_path),
        "--vis", "none",
        "--machine.device-type", "cpu",
        "--pipeline.datamanager.cache-dir", str(lego_cache_dir),
        *TINY_MODEL,
        "--steps-per-eval-batch", "2",
        "--steps-per-eval-image", str(NUM_STEPS),
        pythonpath=template_site,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = list((tmp_path / "lego" / "my-method").iterdir())
    assert len(runs) == 1
    saved = read_yaml(runs[0] / "config.yml")
    assert saved["method_name"] == "my-method"
    assert saved["config"]["pipeline"]["model"]["accumulation_entropy_mult"] > 0
    assert saved["config"]["pipeline"]["model"]["coarse_sampler"]["type"] == "log"
    model_dir = runs[0] / saved["config"]["relative_model_dir"]
    assert checkpoint_step(find_checkpoint(model_dir)) == NUM_STEPS
    assert "train/accumulation_entropy_loss" in (runs[0] / "metrics.csv").read_text()

    # Resuming rebuilds the config from the plug-in's registered defaults plus config.yml.
    resumed = kit_train("--resume", str(runs[0]), "--max-num-iterations", str(NUM_STEPS + 1), pythonpath=template_site)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert checkpoint_step(find_checkpoint(model_dir)) == NUM_STEPS + 1


@pytest.fixture
def template(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The template package imported from its source folder, with its `template_model` and `template_config`."""
    monkeypatch.syspath_prepend(str(TEMPLATE_DIR))
    importlib.import_module("nerfkit_template.template_config")
    return importlib.import_module("nerfkit_template")


def tiny_model(template: ModuleType, accumulation_entropy_mult: float) -> torch.nn.Module:
    """my-method's own model config, shrunk so that a step takes milliseconds."""
    model_config = template.template_config.my_method.config.pipeline.model
    config = dataclasses.replace(
        model_config,
        coarse_sampler=dataclasses.replace(model_config.coarse_sampler, num_samples=8),
        fine_sampler=PDFSamplerConfig(num_samples=8),
        position_encoding=FrequencyEncodingConfig(num_frequencies=4),
        direction_encoding=FrequencyEncodingConfig(num_frequencies=2),
        base_mlp_num_layers=3,
        base_mlp_layer_width=32,
        head_mlp_layer_width=16,
        near_plane=2.0,
        far_plane=6.0,
        accumulation_entropy_mult=accumulation_entropy_mult,
    )
    return config.setup(scene_box=SceneBox.cube(1.5), num_train_data=1).train()


def train_steps(
    model: torch.nn.Module, rays: RayBundle, num_steps: int
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Fits fixed rays for a few steps; returns each step's losses and the rays' opacities at the end."""
    batch = {"image": torch.rand(len(rays), 4, generator=torch.Generator().manual_seed(1))}
    optimizer = torch.optim.Adam(model.get_param_groups()["fields"], lr=1e-2)
    history = []
    for _ in range(num_steps):
        outputs = model(rays)
        loss_dict = model.get_loss_dict(outputs, batch, model.get_metrics_dict(outputs, batch))
        optimizer.zero_grad()
        sum(loss_dict.values()).backward()
        optimizer.step()
        history.append({name: value.detach() for name, value in loss_dict.items()})
    with torch.no_grad():
        return history, model(rays)["accumulation"]


def test_template_model_trains_and_its_loss_makes_rays_empty_or_opaque(
    template: ModuleType, random_rays: Callable[..., RayBundle]
) -> None:
    torch.manual_seed(0)
    model = tiny_model(template, accumulation_entropy_mult=1.0)
    assert isinstance(model, template.template_model.TemplateModel)
    history, opacity_with = train_steps(model, random_rays(32), 10)
    assert set(history[0]) == {"rgb_loss_coarse", "rgb_loss_fine", "accumulation_entropy_loss"}
    assert all(torch.isfinite(value) for losses in history for value in losses.values())
    assert history[0]["accumulation_entropy_loss"] > 0

    torch.manual_seed(0)
    history_off, opacity_without = train_steps(tiny_model(template, accumulation_entropy_mult=0.0), random_rays(32), 10)
    assert "accumulation_entropy_loss" not in history_off[0]
    # Same start, same data: only the extra loss can make the opacities end up closer to 0 or 1.
    entropy_with = template.template_model.accumulation_entropy(opacity_with)
    entropy_without = template.template_model.accumulation_entropy(opacity_without)
    assert entropy_with < 0.5 * entropy_without, (float(entropy_with), float(entropy_without))


def test_accumulation_entropy_is_zero_only_for_empty_or_opaque_rays(template: ModuleType) -> None:
    accumulation_entropy = template.template_model.accumulation_entropy
    opacity = torch.tensor([[0.0], [1.0], [0.5]], requires_grad=True)
    entropy = accumulation_entropy(opacity)
    torch.testing.assert_close(accumulation_entropy(opacity[:2]), torch.tensor(0.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(entropy, torch.log(torch.tensor(2.0)) / 3, atol=1e-4, rtol=0)
    (gradient,) = torch.autograd.grad(entropy, opacity)
    assert torch.isfinite(gradient).all()
