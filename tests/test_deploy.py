"""Deployment files that work as written: the Dockerfile (docker cannot run here) and the packaging it relies on."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _instructions() -> list[tuple[str, str]]:
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_is_slim_non_root_with_the_catalog_on_a_volume():
    steps = _instructions()
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.") and steps[0][1].endswith("-slim")
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(op == "VOLUME" and "/catalog" in arg for op, arg in steps)
    for op, arg in steps:
        if op == "COPY":
            for source in arg.split()[:-1]:
                assert (ROOT / source).exists(), source
    uid = next(arg for op, arg in steps if op == "RUN" and "useradd" in arg).split("--uid")[1].split()[0]
    cron = next(d for d in yaml.safe_load_all((ROOT / "deploy/k8s/cronjob.yaml").read_text()) if d["kind"] == "CronJob")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert str(pod["securityContext"]["runAsUser"]) == uid
    image = pod["containers"][0]["image"]
    assert f"docker build -t {image} ." in (ROOT / "docs/scheduling.md").read_text()  # the image the docs build


def test_every_python_package_is_in_the_explicit_packages_list():
    # `pip install .` (what the Dockerfile runs) installs only the listed packages.
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    found = set()
    for base, prefix in ((ROOT / "src" / "mlcrawl", "mlcrawl"), (ROOT / "crawlers", "mlcrawl.crawlers")):
        for init in base.rglob("__init__.py"):
            found.add(".".join([prefix, *init.parent.relative_to(base).parts]))
    assert found <= listed, sorted(found - listed)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"mlcrawl": "mlcrawl.cli:main"}
