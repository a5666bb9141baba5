"""Method discovery: entry points (as installed plug-ins use), the env var, duplicates and broken plug-ins."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from nerfkit.errors import NerfkitError
from nerfkit.plugins.registry import ENV_VAR, discover_methods

PLUGIN_MODULE = """
import copy
from nerfkit.plugins.registry import MethodSpecification, get_registry

base = get_registry().get("vanilla-nerf").config
{name} = MethodSpecification(config=copy.deepcopy(base), description="{description}")
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path where fake installed distributions (dist-info + module) are written."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(ENV_VAR, raising=False)
    return tmp_path


def install_plugin(site: Path, distribution: str, entry_points: dict[str, str], module: str, source: str) -> None:
    """What `pip install` leaves behind: a module and a dist-info folder declaring its entry points."""
    (site / f"{module}.py").write_text(source)
    dist_info = site / f"{distribution}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[nerfkit.method_configs]\n{lines}\n")
    sys.modules.pop(module, None)


def quiet() -> Console:
    return Console(record=True, width=300, file=open("/dev/null", "w"))  # noqa: SIM115


def test_builtin_methods_come_through_entry_points(site: Path) -> None:
    registry = discover_methods(quiet())
    assert "vanilla-nerf" in registry.methods
    assert registry.methods["vanilla-nerf"].config.method_name == "vanilla-nerf"


def test_installed_plugin_is_discovered(site: Path) -> None:
    source = PLUGIN_MODULE.format(name="spec", description="A plug-in method.")
    install_plugin(site, "fake_plugin", {"fake-method": "fake_plugin_mod:spec"}, "fake_plugin_mod", source)
    registry = discover_methods(quiet())
    assert registry.methods["fake-method"].description == "A plug-in method."
    assert registry.methods["fake-method"].config.method_name == "fake-method"


def test_env_var_registers_unpackaged_methods(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (site / "loose_methods.py").write_text(PLUGIN_MODULE.format(name="loose", description="Loose."))
    monkeypatch.setenv(ENV_VAR, "loose-a=loose_methods:loose, loose-b=loose_methods:loose")
    registry = discover_methods(quiet())
    assert {"loose-a", "loose-b", "vanilla-nerf"} <= set(registry.methods)


def test_malformed_env_var_is_a_clear_error(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "just-a-name")
    with pytest.raises(NerfkitError, match=f"{ENV_VAR} entry 'just-a-name' is not of the form name=module:attribute"):
        discover_methods(quiet())


def test_duplicate_name_is_a_clear_error(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (site / "dupe.py").write_text(PLUGIN_MODULE.format(name="spec", description="Dupe."))
    monkeypatch.setenv(ENV_VAR, "vanilla-nerf=dupe:spec")
    with pytest.raises(NerfkitError, match="method name 'vanilla-nerf' is registered twice"):
        discover_methods(quiet())


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("raise ImportError('needs a missing package')", "ImportError: needs a missing package"),
        ("spec = 42", "gives a 'int', not a MethodSpecification"),
        ("", "AttributeError"),
    ],
)
def test_broken_plugin_is_reported_by_name_and_others_still_work(site: Path, source: str, reason: str) -> None:
    install_plugin(site, "broken_plugin", {"broken-method": "broken_mod:spec"}, "broken_mod", textwrap.dedent(source))
    console = quiet()
    registry = discover_methods(console)
    assert "vanilla-nerf" in registry.methods and "broken-method" not in registry.methods
    assert reason in registry.failures["broken-method"]
    assert "plug-in 'broken-method'" in console.export_text()
    with pytest.raises(NerfkitError, match="method 'broken-method' failed to load"):
        registry.get("broken-method")


def test_unknown_method_suggests_the_closest(site: Path) -> None:
    with pytest.raises(NerfkitError, match="unknown method 'vanila-nerf'") as error:
        discover_methods(quiet()).get("vanila-nerf")
    assert "did you mean 'vanilla-nerf'" in error.value.hint
