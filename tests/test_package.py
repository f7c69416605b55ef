"""The installable package: declared dependencies, data files found from anywhere, the setup script, and
a real wheel installed into a fresh virtual environment that runs the main job from an empty folder."""
from __future__ import annotations

import configparser
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from avfewshot import paths

REPO = Path(__file__).resolve().parents[1]
RESOURCES = {"prompts": ["templates.yaml", "classnames/ave.txt", "classnames/llp.txt"],
             "demo_recipes": sorted(p.name for p in (REPO / "runners" / "demo").glob("*.yaml"))}


# -- declared dependencies ----------------------------------------------------------------------
def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def _lines(text: str) -> list:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def test_requirements_txt_matches_setup_cfg():
    cfg = _setup_cfg()
    install = _lines(cfg["options"]["install_requires"])
    dev = _lines(cfg["options.extras_require"]["dev"])
    requirements = _lines((REPO / "requirements.txt").read_text())
    assert requirements == install + dev
    assert len(set(requirements)) == len(requirements)
    setup_env = (REPO / "scripts" / "setup_env.sh").read_text()
    for pin in ("torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.*"):  # the script's pinned stack
        assert pin in install and pin in setup_env
    names = {re.split(r"[<>=!~ ]", r)[0].lower() for r in install}
    # every third-party import of the package (laion-clap aside: installed with --no-deps, see setup.cfg)
    for needed in ("numpy", "pandas", "pyyaml", "tqdm", "open_clip_torch", "transformers", "tokenizers", "torchlibrosa",
                   "librosa", "h5py", "decord", "av", "safetensors", "matplotlib", "scikit-learn", "ftfy", "regex",
                   "scipy", "pillow", "zlib-ng"):
        assert needed in names, needed
    assert not any(n.startswith("laion") for n in names)
    assert "tensorboard" in cfg["options.extras_require"]["tensorboard"]


# -- data files ---------------------------------------------------------------------------------
def test_checkout_resources_are_found(monkeypatch):
    monkeypatch.delenv("AVFEWSHOT_PROMPTS", raising=False)
    monkeypatch.delenv("AVFEWSHOT_RUNNERS", raising=False)
    assert paths.packaged_dir("prompts") is None  # the checkout's avfewshot/_resources holds no data
    assert paths.prompts_dir() == REPO / "prompts"
    assert paths.demo_recipe("dgsct") == REPO / "runners" / "demo" / "dgsct.yaml"
    assert paths.demo_recipe("zeroshot") is None  # no demo recipe: no layer


def test_packaged_resources_win_over_the_checkout_and_env_wins_over_both(tmp_path, monkeypatch):
    monkeypatch.delenv("AVFEWSHOT_PROMPTS", raising=False)
    monkeypatch.delenv("AVFEWSHOT_RUNNERS", raising=False)
    installed = tmp_path / "site-packages" / "avfewshot" / "_resources"
    (installed / "prompts").mkdir(parents=True)
    (installed / "demo_recipes").mkdir()
    (installed / "demo_recipes" / "coop.yaml").write_text("train:\n  lr: 0.5\n")
    monkeypatch.setattr(paths, "_resources_root", lambda: installed)
    assert paths.prompts_dir() == installed / "prompts"
    assert paths.demo_recipe("coop") == installed / "demo_recipes" / "coop.yaml"
    assert paths.demo_recipe("dgsct") is None  # only what the wheel ships

    from avfewshot.config import resolve_config

    assert resolve_config({"method": "coop"}).train.lr == 0.5
    runners = tmp_path / "runners"
    (runners / "demo").mkdir(parents=True)
    (runners / "demo" / "coop.yaml").write_text("train:\n  lr: 0.25\n")
    monkeypatch.setenv("AVFEWSHOT_RUNNERS", str(runners))
    monkeypatch.setenv("AVFEWSHOT_PROMPTS", str(tmp_path / "my-prompts"))
    assert paths.demo_recipe("coop") == runners / "demo" / "coop.yaml"
    assert paths.prompts_dir() == tmp_path / "my-prompts"
    assert resolve_config({"method": "coop"}).train.lr == 0.25


# -- scripts/setup_env.sh -----------------------------------------------------------------------
def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fake_setup(tmp_path):
    """A checkout copy of the build files, a venv whose stack stamp is current, and logging stubs for
    pip, apt-get, ldconfig (no tcmalloc) and id (root)."""
    here = tmp_path / "checkout"
    (here / "scripts").mkdir(parents=True)
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "requirements.txt", "scripts/setup_env.sh"):
        shutil.copy(REPO / name, here / name)
    stubs, log = tmp_path / "stubs", tmp_path / "calls.log"
    stubs.mkdir()
    for name in ("pip", "apt-get"):
        _stub(stubs, name, f'echo "{name} $*" >> "{log}"')
    _stub(stubs, "ldconfig", "exit 0")
    _stub(stubs, "id", 'echo 0')
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    _stub(venv / "bin", "python", "exit 0")
    (venv / "bin" / "activate").write_text("")
    digest = subprocess.run(["sha256sum", str(here / "requirements.txt")], capture_output=True, text=True).stdout[:16]
    (venv / ".avfewshot-stack").write_text(f"torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.*; {digest}\n")
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "AVFEWSHOT_VENV": str(venv)}
    env.pop("AVFEWSHOT_INSTALL_SYSTEM", None)

    def run(**extra):
        log.unlink(missing_ok=True)
        out = subprocess.run(["bash", str(here / "scripts" / "setup_env.sh")], env={**env, **extra},
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout, log.read_text().splitlines() if log.exists() else []

    return run


def test_setup_env_installs_no_system_package_unasked_and_is_idempotent(fake_setup):
    out, calls = fake_setup()
    assert [c.split()[0] for c in calls] == ["pip"] and "-e" in calls[0].split()  # the editable install only
    assert "apt-get install libtcmalloc-minimal4" in out  # the install line is printed, not run
    out, calls = fake_setup()
    assert calls == []  # a second call installs nothing
    out, calls = fake_setup(AVFEWSHOT_INSTALL_SYSTEM="1")
    assert calls == ["apt-get install -y -q libtcmalloc-minimal4"]


# -- a real wheel in a fresh virtual environment ------------------------------------------------
def _copy_sources(dest: Path) -> Path:
    """Only what a build reads (a clean tree: nothing from the checkout's build/ or egg-info leaks in)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    dest.mkdir(parents=True)
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / "avfewshot", dest / "avfewshot", ignore=ignore)
    shutil.copytree(REPO / "prompts", dest / "prompts", ignore=ignore)
    shutil.copytree(REPO / "runners" / "demo", dest / "runners" / "demo", ignore=ignore)
    return dest


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _fresh_venv(venv: Path) -> Path:
    """A venv without pip whose site-packages reuses this interpreter's (a .pth file: no second torch download);
    returns its site-packages folder."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    site = Path(_run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_avfewshot_test_base.pth").write_text("\n".join(sorted(here)) + "\n")
    return site


def _pip_into(venv: Path, *args: str) -> None:
    """pip of this interpreter installing into ``venv``, from local files only."""
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index",
          "--ignore-installed", "-q", *args], timeout=300)


def _clean_env(root: Path, venv: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "AVFEWSHOT_PROMPTS", "AVFEWSHOT_RUNNERS", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", AVFEWSHOT_CACHE=str(root / "cache"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _where(venv: Path, cwd: Path, env: dict) -> list:
    """Where the venv's interpreter, started in ``cwd``, finds the package, the prompts and the DG-SCT demo recipe."""
    return _run([str(venv / "bin" / "python"), "-c",
                 "import avfewshot, avfewshot.paths as p; print(avfewshot.__file__); print(p.prompts_dir()); "
                 "print(p.demo_recipe('dgsct'))"], cwd=cwd, env=env).stdout.split()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the wheel and install it into a fresh venv from the file alone (--no-index)."""
    root = tmp_path_factory.mktemp("package")
    src = _copy_sources(root / "src")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"), str(src)],
         timeout=300)
    wheel = next((root / "dist").glob("avfewshot-*.whl"))
    venv = root / "venv"
    site = _fresh_venv(venv)
    _pip_into(venv, str(wheel))
    return {"wheel": wheel, "venv": venv, "site": site, "env": _clean_env(root, venv), "root": root}


@pytest.mark.slow
def test_editable_install_reads_the_checkout_folders(tmp_path):
    """What scripts/setup_env.sh does (pip install -e): the data files stay in the checkout's folders."""
    src = _copy_sources(tmp_path / "checkout")
    venv = tmp_path / "venv"
    _fresh_venv(venv)
    _pip_into(venv, "--no-build-isolation", "-e", str(src))
    (tmp_path / "elsewhere").mkdir()
    assert _where(venv, tmp_path / "elsewhere", _clean_env(tmp_path, venv)) == [
        str(src / "avfewshot" / "__init__.py"), str(src / "prompts"), str(src / "runners" / "demo" / "dgsct.yaml")]


@pytest.mark.slow
def test_wheel_ships_the_data_files(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for folder, files in RESOURCES.items():
        for name in files:
            assert f"avfewshot/_resources/{folder}/{name}" in names
    assert "avfewshot/encoders/model_configs/clip-tiny.json" in names and "avfewshot/encoders/tiny_corpus.txt" in names
    assert not any(n.startswith(("prompts/", "runners/", "tests/")) for n in names)  # nothing at the top level


def _run_job(installed, tmp_path, method: str, overrides=()):
    """``avfewshot run --shots 16 --task llp_cls [--method M]`` from an empty folder with the installed command."""
    work = tmp_path / "empty"
    work.mkdir()
    # the session's cache: the synthetic demo media and the demo towers are built once per test session (what
    # is under test here is the installed package, not building them again)
    env = {**installed["env"], "AVFEWSHOT_CACHE": os.environ["AVFEWSHOT_CACHE"]}
    package = installed["site"] / "avfewshot"
    assert _where(installed["venv"], work, env) == [str(package / "__init__.py"), str(package / "_resources" / "prompts"),
                     str(package / "_resources" / "demo_recipes" / "dgsct.yaml")]  # the wheel, not the checkout
    command = shutil.which("avfewshot", path=env["PATH"])
    assert command == str(installed["venv"] / "bin" / "avfewshot")
    extra = [] if method == "dgsct" else ["--method", method]
    started = time.perf_counter()
    out = subprocess.run([command, "run", "--shots", "16", "--task", "llp_cls", "--no-progress", *extra, *overrides], cwd=work, env=env,
                         capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert re.search(rf"llp_cls / {method} / 16-shot / seed 1: test accuracy \d+\.\d\d", out.stdout), out.stdout
    metrics_file = work / "results" / "llp_cls" / method / "shot16" / "seed1" / "metrics.json"
    assert metrics_file.is_file()
    import json

    metrics = json.loads(metrics_file.read_text())
    assert metrics["demo"] is True and 0.0 <= metrics["test"]["accuracy"] <= 100.0
    assert metrics["environment"]["argv"].split()[0] == command
    assert sorted(p.name for p in work.iterdir()) == ["results"]  # nothing else written to the working folder
    print(f"[package test] avfewshot run --method {method}: {seconds:.1f} s")
    return metrics


@pytest.mark.slow
def test_installed_wheel_runs_the_main_job_from_an_empty_folder(installed, tmp_path):
    """The main job (DG-SCT, llp_cls, 16 shots) end to end with the demo recipe shipped in the wheel: towers,
    data, split, training loop, test and result files. One epoch on one thread (``train.epochs=1``): the five
    epochs of the demo recipe are the same loop again and cost about 90 s more; the demo's accuracy is tested in
    test_demo_towers.py."""
    metrics = _run_job(installed, tmp_path, "dgsct", ["train.epochs=1", "train.threads=1"])
    assert metrics["method"] == "dgsct" and metrics["shots"] == 16
    assert len(metrics["history"]) == 1 and metrics["trainable_parameters"] > 0
