"""The README's install steps, followed on Linux in a clean virtual environment (issue #14): a wheel built from the
repository (the file copied to the Windows machine) installs, and the commands the README then runs work.

The dependencies are not downloaded here (no network in tests): the clean venv sees the test venv's installed
packages through a .pth path line, which puts them on sys.path without running their own .pth files, so the
editable install of this checkout stays invisible and `xtqueue` can only come from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # The README's command, plus --no-build-isolation (offline: the build backend comes from this venv).
    assert "python3 -m pip wheel --no-deps -w dist ." in README
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out),
                           str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (found,) = out.glob("xtqueue-*-py3-none-any.whl")  # pure Python: the same file serves Windows
    return found


def test_wheel_holds_the_packages_and_their_type_marker(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("producer_lib", "executor", "xtqueue"):
        assert f"{package}/__init__.py" in names and f"{package}/py.typed" in names
    assert "executor/sim/qmt/xtpythonclient.py" in names  # the simulated MiniQMT's stand-in ships too
    assert not any(n.startswith("tests/") for n in names)
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Requires-Dist: click" in text  # core: `xtqueue tail` works on a strategy's plain install
    assert 'Provides-Extra: executor' in text


def test_clean_venv_installs_the_wheel_and_runs_the_commands(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XTQUEUE_", "PYTHONPATH"))}
    # The README's step: pip install "<the wheel>[executor]" (here without fetching the dependencies) ...
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-index", f"{wheel}[executor]"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "Successfully installed xtqueue" in proc.stdout, proc.stdout + proc.stderr
    # ... which the .pth line then provides (written after the install, so pip saw a venv without xtqueue).
    (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run([str(python), "-c", "import xtqueue, producer_lib; print(xtqueue.__file__)"],
                           capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert str(site) in where.stdout, where.stdout + where.stderr  # the wheel's copy, not this checkout
    script = bin_dir / ("xtqueue.exe" if os.name == "nt" else "xtqueue")
    for args, says in ((["executor", "--help"], "--qmt-path"), (["tail", "--help"], "--type"),
                       (["--help"], "status")):
        run = subprocess.run([str(script), *args], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                             timeout=120)
        assert run.returncode == 0 and says in run.stdout, run.stdout + run.stderr
