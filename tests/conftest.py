"""Shared fixtures."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"


def load_benchmark(name: str):
    """The benchmark script ``benchmarks/<name>.py`` as a module, loaded once per session.

    ``benchmarks/`` goes first on ``sys.path``, as when a script runs directly, so that the
    script's ``from common import ...`` finds the harness (``benchmarks/common.py``).
    """
    bench_dir = str(REPO / "benchmarks")
    if bench_dir not in sys.path:
        sys.path.insert(0, bench_dir)
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(bench_dir) / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def real_data_dir():
    """``../shared/data/real`` beside the checkout (read-only; copy before writing)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real test volumes not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def imagej_jvm():
    """ImageJ 1.x (``ij.jar``) in a headless JVM, started once per test session.

    Returns ImageJ's version string. Skips only when Java or the jar is absent (CI
    installs both: ``default-jre-headless`` and ``libij-java``).
    """
    from isonet_ij.imagej import start_jvm

    require_java_and_ij_jar()
    return start_jvm(headless=True)


def require_java_and_ij_jar() -> None:
    """Skip the calling test when Java or ImageJ's jar is missing (CI installs both)."""
    from isonet_ij.imagej import JVMError, find_ij_jar, find_java

    try:
        find_java()
        find_ij_jar()
    except (FileNotFoundError, JVMError) as exc:
        pytest.skip(f"ImageJ tests need Java and ij.jar: {exc}")


def require_xvfb_run(why: str) -> str:
    """Path of ``xvfb-run``; skip the calling test when it is missing (CI installs xvfb)."""
    import shutil

    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        pytest.skip(f"xvfb-run not installed (apt-get install xvfb): {why}")
    return xvfb


# --------------------------------------------------------------------------- ImageJ bridge


def nuclei_stack(shape=(24, 48, 48), factor=3, n=6, seed=1):
    """A small anisotropic uint16 stack of blurred bright spheres (every ``factor``-th slice)."""
    import numpy as np
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    z, y, x = shape
    vol = np.zeros(shape, np.float32)
    zz, yy, xx = np.mgrid[:z, :y, :x]
    for _ in range(n):
        c = rng.uniform([4, 8, 8], [z - 4, y - 8, x - 8])
        r = rng.uniform(4, 7)
        vol[((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < r * r] = 1
    vol = ndi.gaussian_filter(vol, (2, 1, 1))[::factor]
    vol = 100 + 1000 * vol + rng.normal(0, 10, vol.shape)
    return np.clip(vol, 0, 65535).astype(np.uint16)


@pytest.fixture(scope="session")
def imagej_bridge(imagej_jvm):
    """The IsoNet commands registered in the session's (headless) ImageJ."""
    from isonet_ij.imagej import bridge

    bridge.install_commands(menus=False)
    return bridge


@pytest.fixture(scope="session")
def imagej_stack():
    """(8, 48, 48) uint16 nuclei stack, voxel (0.6, 0.2, 0.2) um: anisotropy factor 3."""
    return nuclei_stack(), (0.6, 0.2, 0.2)


@pytest.fixture(scope="session")
def imagej_tiny_model(tmp_path_factory, imagej_stack):
    """A tiny IsoNet-1 model (mode none, 1 epoch x 2 steps) in a folder with spaces."""
    pytest.importorskip("tensorflow")
    from isonet_ij.config import Config
    from isonet_ij.training import train

    data, _ = imagej_stack
    model_dir = tmp_path_factory.mktemp("imagej models") / "tiny model"
    cfg = Config(factor=3.0, arch="isonet1", mode="none", patch_size=16, batch_size=4,
                 epochs=1, steps_per_epoch=2, n_validation=4, seed=0)
    train(data, cfg, model_dir=model_dir)
    return model_dir


def smooth_volume(shape, seed=0, factor=3):
    """A smooth random (Z, Y, X) float32 volume, every ``factor``-th slice of a finer one."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    z, y, x = shape
    v = gaussian_filter(np.random.default_rng(seed).random((z * factor, y, x)), 2)[::factor]
    return (100 + 1000 * (v - v.min()) / np.ptp(v)).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_trained_model(tmp_path_factory):
    """A briefly trained IsoNet-2 model directory (mode none, a few steps), shared by tests."""
    from isonet_ij.config import Config
    from isonet_ij.training import train

    d = tmp_path_factory.mktemp("tiny") / "model"
    cfg = Config(factor=3, arch="isonet2", mode="none", patch_size=16, batch_size=4, epochs=1,
                 steps_per_epoch=4, n_validation=4, seed=0)
    train(smooth_volume((8, 36, 36)), cfg, model_dir=d)
    return d


def constant_output_net(arch: str = "isonet1"):
    """A network whose output is 0.5 everywhere (all weights zero, last bias 0.5): it learned nothing."""
    import numpy as np

    from isonet_ij import nets

    net = nets.build_model(arch, dropout=0.0, seed=0)
    for layer in net.layers:
        if layer.get_weights():
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    last = net.layers[-1]
    last.set_weights([np.zeros_like(last.get_weights()[0]), np.full_like(last.get_weights()[1], 0.5)])
    return net


def sigkill_when(proc, ready, *, timeout: float = 300.0, settle: float = 0.0) -> None:
    """SIGKILL ``proc`` (a ``subprocess.Popen``) once ``ready()`` holds, ``settle`` seconds later.

    A real kill, not an exception. ``ready`` is polled every 50 ms; the process must still be
    running when it is killed (else its piped stderr is shown).
    """
    import os
    import signal
    import time

    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.05)
        time.sleep(settle)
        ended = proc.poll() is not None
        assert not ended, proc.stderr.read().decode()[-2000:] if proc.stderr else "the process ended"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
