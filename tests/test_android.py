"""The Android demo's CI checks (android_demo/ci/check.sh): Gradle version pins, the pure-Kotlin core's JUnit tests
against tests/vectors, the app code compiled against the ExecuTorch/Android API stubs, ktlint.

Needs a JDK, kotlinc 2.0.21, junit4 + hamcrest jars and ktlint; a missing tool fails this test with the tool's name
and install command (it is never skipped). Takes about a minute on 2 cores."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "android_demo" / "ci" / "check.sh"


def test_android_demo_check_sh():
    if shutil.which("bash") is None:
        pytest.fail("bash is needed to run android_demo/ci/check.sh")
    env = dict(os.environ)
    env.setdefault("TOOLS", str(ROOT / ".tools"))
    proc = subprocess.run(["bash", str(CHECK)], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    out = proc.stdout + proc.stderr
    if proc.returncode == 2:
        missing = [line for line in out.splitlines() if "missing tool" in line or "install:" in line or "need" in line]
        pytest.fail("android_demo/ci/check.sh cannot run, a tool is missing:\n" + "\n".join(missing or [out[-2000:]]))
    assert proc.returncode == 0, f"android_demo/ci/check.sh failed (exit {proc.returncode}):\n{out[-6000:]}"
    assert "all Android demo checks passed" in proc.stdout


def test_gradle_files_pin_the_documented_versions():
    """Cheap duplicate of check.sh's version checks, so a wrong pin is reported even without the Kotlin tools."""
    demo = ROOT / "android_demo"
    top = (demo / "build.gradle.kts").read_text()
    app = (demo / "app" / "build.gradle.kts").read_text()
    wrapper = (demo / "gradle" / "wrapper" / "gradle-wrapper.properties").read_text()
    assert 'id("com.android.application") version "8.9.0"' in top
    assert 'id("org.jetbrains.kotlin.android") version "2.0.21"' in top
    for pin in ("compileSdk = 35", "targetSdk = 35", "minSdk = 24", 'jvmTarget = "11"',
                'implementation("org.pytorch:executorch-android:1.5.1")'):
        assert pin in app, pin
    assert "gradle-8.11.1-bin.zip" in wrapper
    assert not (demo / "gradle" / "wrapper" / "gradle-wrapper.jar").exists()
    assert "app/src/main/assets/" in (demo / ".gitignore").read_text()

