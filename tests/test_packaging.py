"""The install files agree with each other: the pins, the Python version and the torch-first rule."""

import re
import tomllib

from livervae.paths import repo_root

ROOT = repo_root()


def _pins(lines):
    return {line.split("==")[0].lower(): line.split("==")[1] for line in lines if "==" in line}


def test_environment_yml_mirrors_requirements():
    requirements = _pins(
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    environment = (ROOT / "environment.yml").read_text()
    mirrored = _pins(m.group(1) for m in re.finditer(r"^\s+- ([A-Za-z0-9_.\-\[\],]+==[^\s]+)$", environment, re.M))
    assert requirements == mirrored
    assert "python=3.11" in environment
    for package in ("monai", "torch", "simpleitk", "highdicom", "pydicom", "nibabel", "pytorch-ignite", "tensorboard"):
        assert package in requirements, package
    assert requirements["torch"] == "2.13.0" and requirements["monai"] == "1.6.1"


def test_makefile_installs_torch_before_anything_else():
    makefile = (ROOT / "Makefile").read_text()
    torch = makefile.index("$(PIP) install --quiet $(TORCH_SPEC)")
    rest = makefile.index("$(PIP) install --quiet -r requirements.txt")
    assert torch < rest and "TORCH_SPEC ?= torch==2.13.0" in makefile


def test_console_script_and_python_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["livervae"] == "livervae.cli:main"
    assert project["requires-python"] == ">=3.11,<3.12"
