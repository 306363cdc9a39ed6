"""The install layout. The repository keeps cli.py, backends/ and specs/ at its top
level and links them into the package (netspec/cli.py -> ../cli.py, ...); the built
wheel holds only the netspec package, one copy of each file, and works once installed
into an empty virtual environment the way a user installs it (its dependencies
resolved by pip within the bounds pyproject.toml gives); an editable install maps the
package alone, so nothing outside it becomes importable."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

pytest.importorskip("hatchling")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (whl,) = out.glob("netspec-*.whl")
    return whl


def fresh_venv(where: Path, *install: str) -> Path:
    """An empty venv with ``pip install`` of ``install`` (dependencies from the index)."""
    venv.create(where, with_pip=True, clear=True)
    r = subprocess.run(
        [str(where / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *install],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        message = f"pip could not install {install} into an empty venv:\n{r.stderr[-2000:]}"
        if "Could not find a version" in r.stderr and not os.environ.get("CI"):
            pytest.skip(message)  # offline: no index to resolve the dependencies from
        pytest.fail(message)
    return where


def run_in(env_dir: Path, code: str, cwd: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv with the wheel and the core's dependencies installed (no extras)."""
    return fresh_venv(tmp_path_factory.mktemp("venv"), str(wheel))


LINKS = {"netspec/cli.py": "../cli.py", "netspec/backends": "../backends", "netspec/specs": "../specs"}

#: what must not be importable: the repository's other folders, on their own or as
#: parts of the package
STRAYS = ("cli", "backends", "tests", "benchmarks", "netspec.tests", "netspec.benchmarks", "netspec.netspec")

PROBE = (
    "import importlib, netspec, netspec.cli, netspec.backends.common as c;"
    "print(netspec.__file__); print(netspec.cli.__file__); print(c.__file__); print(list(netspec.__path__));"
    "ok = []\n"
    "for m in {strays!r}:\n"
    "    try: importlib.import_module(m); ok.append(m)\n"
    "    except ImportError: pass\n"
    "print(ok)"
)


def test_the_package_links_to_the_top_level_folders() -> None:
    for link, target in LINKS.items():
        assert os.readlink(REPO / link) == target, f"{link} must stay a link to {target} (not a copy)"


def test_wheel_puts_only_netspec_at_the_top_level(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"netspec", next(t for t in top if t.endswith(".dist-info"))}
    for expected in (
        "netspec/cli.py",
        "netspec/backends/__init__.py",
        "netspec/specs/vgg16.yaml",
        "netspec/ops/conv2d.py",
    ):
        assert expected in names
    assert not [n for n in names if n.startswith(("netspec/tests/", "netspec/benchmarks/"))]
    assert len(names) == len(set(names))
    with zipfile.ZipFile(wheel) as z:  # the files themselves, not stale copies
        for name in ("netspec/cli.py", "netspec/backends/torch.py", "netspec/specs/resnet18.yaml"):
            assert z.read(name) == (REPO / name).read_bytes(), name
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "netspec = netspec.cli:main" in entry_points


def test_wheel_in_an_empty_venv_runs_the_console_script(installed: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run(
        [str(installed / "bin" / "netspec"), "summary", "alexnet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "61,100,840" in r.stdout
    (tmp_path / "bad.yaml").write_text("name: n\ninputs: {x: [3, 8, 8]}\nlayers:\n  - {op: conv2d, out: 4, kernl: 3}\n")
    r = subprocess.run(
        [str(installed / "bin" / "netspec"), "check", "bad.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("bad.yaml:4:")


def test_editable_install_maps_the_package_alone(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    env_dir = fresh_venv(tmp_path_factory.mktemp("editable"), "-e", str(REPO))
    site = next((env_dir / "lib").glob("python*/site-packages"))
    assert not (site / "netspec").exists()  # no copies of the repository's files
    where, cli, common, path, strays = run_in(env_dir, PROBE.format(strays=STRAYS), tmp_path)
    assert where == str(REPO / "netspec" / "__init__.py")
    assert cli == str(REPO / "netspec" / "cli.py")
    assert common == str(REPO / "netspec" / "backends" / "common.py")
    assert path == repr([str(REPO / "netspec")])
    assert strays == "[]"


def test_installed_package_is_the_venvs_copy_and_needs_no_backend_libraries(installed: Path, tmp_path: Path) -> None:
    where, cli, common, path, strays = run_in(installed, PROBE.format(strays=STRAYS), tmp_path)
    site = Path(where).parent.parent
    assert site.name == "site-packages" and site.is_relative_to(installed)
    assert (cli, common) == (str(site / "netspec" / "cli.py"), str(site / "netspec" / "backends" / "common.py"))
    assert path == repr([str(site / "netspec")])
    assert strays == "[]"
    # The core's dependencies only: torch, onnx and graphviz are extras.
    (extras,) = run_in(
        installed,
        "import importlib.util as u; print([m for m in ('torch', 'onnx', 'graphviz') if u.find_spec(m)])",
        tmp_path,
    )
    assert extras == "[]"


MISTYPED = """\
from netspec.backends.torch import generate_source
from netspec.cli import main

generate_source("vgg16")
main(42)
"""

#: torch's stubs are not what is under test, and take a minute to read: skipped
MYPY_INI = """\
[mypy]
strict = True
mypy_path = {repo}
[mypy-torch.*,onnx.*,yaml.*,networkx.*]
follow_imports = skip
ignore_missing_imports = True
"""


def test_mypy_checks_calls_into_the_backends_and_the_cli_with_their_real_types(tmp_path: Path) -> None:
    """The links make netspec.backends and netspec.cli ordinary modules for mypy: a
    wrong call into them is an error (an override typing them as Any would pass it)."""
    mypy_api = pytest.importorskip("mypy.api")
    config = (REPO / "pyproject.toml").read_text().split("[tool.mypy]", 1)[1]
    assert "netspec.backends" not in config and "netspec.cli" not in config
    (tmp_path / "probe.py").write_text(MISTYPED)
    (tmp_path / "mypy.ini").write_text(MYPY_INI.format(repo=REPO))
    out, err, status = mypy_api.run(
        [
            "--config-file",
            str(tmp_path / "mypy.ini"),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(tmp_path / "probe.py"),
        ]
    )
    errors = [line.split("error: ", 1)[1] for line in out.splitlines() if "probe.py" in line and ": error: " in line]
    assert status == 1, out + err
    assert any('"generate_source" has incompatible type "str"; expected "Analysis"' in e for e in errors), errors
    assert any('"main" has incompatible type "int"' in e for e in errors), errors
