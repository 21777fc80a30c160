"""Where data and weights are looked for (``quantsr.artifacts.locations``): the variable, then ``../shared`` beside a
source checkout, then the user cache; else one line naming the variable. Fake checkouts and environments stand in
for the real ones, so these tests need no ../shared."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import quantsr
from quantsr.artifacts.locations import LocationNotFoundError, checkout_shared, locate, user_cache

ROOT = Path(__file__).resolve().parent.parent


def _checkout(tmp_path: Path, with_shared: bool = True) -> Path:
    """A fake source checkout ``tmp/work/repo/{pyproject.toml, quantsr/}`` (optionally with ``tmp/work/shared/
    data`` and ``.../weights``); returns its package folder."""
    package = tmp_path / "work" / "repo" / "quantsr"
    package.mkdir(parents=True)
    (package.parent / "pyproject.toml").write_text("[project]\nname = 'quantsr'\n")
    if with_shared:
        for kind in ("data", "weights"):
            (tmp_path / "work" / "shared" / kind).mkdir(parents=True)
    return package


def _installed(tmp_path: Path) -> Path:
    """A fake site-packages install: the package folder with no pyproject.toml beside it."""
    package = tmp_path / "site-packages" / "quantsr"
    package.mkdir(parents=True)
    return package


def _cache(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / "cache" / "quantsr" / kind
    folder.mkdir(parents=True)
    return folder


@pytest.mark.parametrize("kind, variable", [("data", "QUANTSR_DATA"), ("weights", "QUANTSR_WEIGHTS")])
def test_the_variable_wins_over_checkout_and_cache(tmp_path, kind, variable):
    package = _checkout(tmp_path)
    _cache(tmp_path, kind)
    mine = tmp_path / "mine"
    mine.mkdir()
    env = {variable: str(mine), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert locate(kind, package_dir=package, environ=env) == mine


def test_a_variable_naming_a_missing_folder_fails_naming_the_variable(tmp_path):
    package = _checkout(tmp_path)  # a fallback exists, and still a typo in the variable is not papered over
    missing = tmp_path / "typo"
    with pytest.raises(LocationNotFoundError) as info:
        locate("data", package_dir=package, environ={"QUANTSR_DATA": str(missing)})
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"QUANTSR_DATA={missing} is not a folder")
    assert "set QUANTSR_DATA to the folder holding benchmark/ and train/" in message
    assert isinstance(info.value, FileNotFoundError)  # the CLI reports OSErrors as one line, exit code 1


def test_the_checkout_shared_folder_is_the_fallback(tmp_path):
    package = _checkout(tmp_path)
    _cache(tmp_path, "weights")  # the checkout comes before the cache
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert locate("data", package_dir=package, environ=env) == tmp_path / "work" / "shared" / "data"
    assert locate("weights", package_dir=package, environ=env) == tmp_path / "work" / "shared" / "weights"


def test_this_checkout_resolves_to_its_shared_folder():
    # The repository keeps today's layout: ../shared beside the checkout (whether or not it holds data here).
    assert checkout_shared() == ROOT.parent / "shared"
    assert checkout_shared(Path(quantsr.__file__).parent) == ROOT.parent / "shared"


@pytest.mark.parametrize("checkout", [True, False], ids=["checkout-without-shared", "installed"])
def test_the_user_cache_is_the_last_fallback(tmp_path, checkout):
    package = _checkout(tmp_path, with_shared=False) if checkout else _installed(tmp_path)
    cached = _cache(tmp_path, "data")
    assert locate("data", package_dir=package, environ={"XDG_CACHE_HOME": str(tmp_path / "cache")}) == cached


def test_the_cache_defaults_to_home_dot_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_cache({}) == tmp_path / ".cache" / "quantsr"
    assert user_cache({"XDG_CACHE_HOME": "relative/cache"}) == tmp_path / ".cache" / "quantsr"  # XDG: ignored
    assert user_cache({"XDG_CACHE_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "quantsr"


@pytest.mark.parametrize("kind, variable, holding", [("data", "QUANTSR_DATA", "benchmark/ and train/"),
                                                     ("weights", "QUANTSR_WEIGHTS", "the public checkpoints")])
def test_nothing_found_is_one_line_naming_the_variable(tmp_path, kind, variable, holding):
    package = _checkout(tmp_path, with_shared=False)
    with pytest.raises(LocationNotFoundError) as info:
        locate(kind, package_dir=package, environ={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    message = str(info.value)
    assert "\n" not in message
    what = "benchmark data" if kind == "data" else "public weights"
    shared, cache = tmp_path / "work" / "shared" / kind, tmp_path / "cache" / "quantsr" / kind
    assert message.startswith(f"no {what} found: looked in ${variable} (unset), {shared}, {cache}; "
                              f"set {variable} to the folder holding {holding}")


def test_an_installed_package_says_it_skipped_the_checkout_step(tmp_path):
    with pytest.raises(LocationNotFoundError, match=r"\(unset\), \.\./shared/data \(not a source checkout\), "):
        locate("data", package_dir=_installed(tmp_path), environ={"XDG_CACHE_HOME": str(tmp_path / "cache")})


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="use one of data, weights"):
        locate("checkpoints")


def test_an_installed_copy_run_elsewhere_reports_missing_data_in_one_line(tmp_path):
    """The package copied out of the checkout (as into site-packages) and run from an unrelated folder, with no
    variables and an empty cache: each command prints the resolver's one line and exits 1."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "quantsr", site / "quantsr", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    env = {k: v for k, v in os.environ.items() if k not in ("QUANTSR_DATA", "QUANTSR_WEIGHTS", "PYTHONPATH")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    # sys.path first, so the copy and not the editable install of this checkout is imported; one interpreter for
    # both commands (torch loads once).
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); import quantsr\n"
            f"assert quantsr.__file__.startswith({str(site)!r}), quantsr.__file__\n"
            "from quantsr.cli.parser import main\n"
            "codes = [main(['eval', '--model', 'imdn', '--scale', '4']),\n"
            "         main(['train', '--model', 'edsr', '--scale', '2', '--out', 'run', '--iterations', '1'])]\n"
            "print(codes)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "[1, 1]", out.stdout + out.stderr
    cache = tmp_path / "cache" / "quantsr"
    assert out.stderr.strip().splitlines() == [
        "quantsr: error: no public weights found: looked in $QUANTSR_WEIGHTS (unset), ../shared/weights (not a "
        f"source checkout), {cache / 'weights'}; set QUANTSR_WEIGHTS to the folder holding the public checkpoints "
        "(e.g. IMDN_x4.pth)",
        "quantsr: error: no benchmark data found: looked in $QUANTSR_DATA (unset), ../shared/data (not a source "
        f"checkout), {cache / 'data'}; set QUANTSR_DATA to the folder holding benchmark/ and train/"]
