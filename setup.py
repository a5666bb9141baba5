"""Package layout only; all metadata lives in pyproject.toml.

The `methods/` folder installs as `nerfkit_methods`, so that nerfkit never adds a generic top-level `methods` module
to site-packages. `methods/template/` is a separate plug-in package with its own pyproject and is left out.
"""

from setuptools import find_packages, setup

method_packages = ["nerfkit_methods"] + [
    f"nerfkit_methods.{name}" for name in find_packages("methods", exclude=["template", "template.*"])
]
setup(
    packages=find_packages(include=["nerfkit", "nerfkit.*"]) + method_packages,
    package_dir={"nerfkit_methods": "methods"},
)
