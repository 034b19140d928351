"""isonet_ij.segment against real ImageJ 1.x (Debian's ij.jar through scyjava/JPype).

Everything ImageJ computes here is computed by ImageJ itself: ``AutoThresholder``,
``StackStatistics``, ``IJ.setAutoThreshold(imp, "<Method> dark stack")``, the mask code
of *Convert to Mask* for 16/32-bit stacks (``Thresholder.applyShortOrFloatThreshold``,
called through reflection because headless ImageJ cannot resolve menu commands) and
*Fill Holes* (``ij.plugin.filter.Binary``, slice by slice as ImageJ runs it on a stack).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from isonet_ij.volume_io import read_volume
from isonet_ij.segment import (
    auto_threshold,
    fill_holes,
    imagej_histogram,
    intermodes_bin,
    otsu_bin,
    threshold_mask,
)

N_RANDOM_HISTOGRAMS = 600


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def ij(imagej_jvm):
    """A namespace of the ImageJ classes the tests use."""
    import jpype

    class NS:
        pass

    ns = NS()
    for name in (
        "ij.IJ",
        "ij.ImagePlus",
        "ij.ImageStack",
        "ij.Prefs",
        "ij.process.ByteProcessor",
        "ij.process.ShortProcessor",
        "ij.process.FloatProcessor",
        "ij.process.AutoThresholder",
        "ij.process.StackStatistics",
        "ij.plugin.Thresholder",
        "ij.plugin.filter.Binary",
    ):
        setattr(ns, name.rsplit(".", 1)[1], jpype.JClass(name))
    ns.Method = jpype.JClass("ij.process.AutoThresholder$Method")
    ns.JArray, ns.JInt = jpype.JArray, jpype.JInt
    ns.JByte, ns.JShort, ns.JFloat = jpype.JByte, jpype.JShort, jpype.JFloat
    ns.version = imagej_jvm
    return ns


def to_imageplus(ij, vol: np.ndarray):
    """(Z, Y, X) uint8/uint16/float32 -> ImagePlus stack (a copy)."""
    z, y, x = vol.shape
    stack = ij.ImageStack(x, y)
    for k in range(z):
        plane = np.ascontiguousarray(vol[k]).ravel()
        if vol.dtype == np.uint8:
            ip = ij.ByteProcessor(x, y, ij.JArray(ij.JByte)(plane.view(np.int8)), None)
        elif vol.dtype == np.uint16:
            ip = ij.ShortProcessor(x, y, ij.JArray(ij.JShort)(plane.view(np.int16)), None)
        elif vol.dtype == np.float32:
            ip = ij.FloatProcessor(x, y, ij.JArray(ij.JFloat)(plane))
        else:
            raise TypeError(vol.dtype)
        stack.addSlice(ip)
    return ij.ImagePlus("test", stack)


def mask_from_imageplus(imp) -> np.ndarray:
    """8-bit ImagePlus stack -> (Z, Y, X) bool (pixel != 0)."""
    stack = imp.getStack()
    planes = [
        np.array(stack.getProcessor(k + 1).getPixels(), dtype=np.int8) != 0
        for k in range(stack.getSize())
    ]
    return np.stack(planes).reshape(stack.getSize(), imp.getHeight(), imp.getWidth())


def imagej_convert_to_mask(ij, imp) -> np.ndarray:
    """The mask *Convert to Mask* makes from a thresholded stack (modifies ``imp``).

    16/32-bit: ``Thresholder.applyShortOrFloatThreshold`` (private; reflection).
    8-bit: ``ByteProcessor.createMask()`` slice by slice with the stack's thresholds.
    """
    if imp.getBitDepth() == 8:
        lo, hi = imp.getProcessor().getMinThreshold(), imp.getProcessor().getMaxThreshold()
        stack = imp.getStack()
        planes = []
        for k in range(stack.getSize()):
            ip = stack.getProcessor(k + 1)
            ip.setThreshold(lo, hi, 2)
            planes.append(np.array(ip.createMask().getPixels(), dtype=np.int8) != 0)
        return np.stack(planes).reshape(stack.getSize(), imp.getHeight(), imp.getWidth())
    method = ij.Thresholder.class_.getDeclaredMethod(
        "applyShortOrFloatThreshold", ij.ImagePlus.class_
    )
    method.setAccessible(True)
    method.invoke(ij.Thresholder(), imp)
    assert imp.getBitDepth() == 8
    return mask_from_imageplus(imp)


def imagej_stack_threshold(ij, vol: np.ndarray, method: str = "Intermodes"):
    """ImageJ's (histogram, bin, lower, upper, mask) for a stack, dark background."""
    imp = to_imageplus(ij, vol)
    stats = ij.StackStatistics(imp)
    # the int[] `histogram` field that IJ.setStackThreshold passes to AutoThresholder (the
    # plain attribute name resolves to the getHistogram() method in JPype)
    jhist = stats.getClass().getField("histogram").get(stats)
    hist = np.array(jhist, dtype=np.int64)
    t = int(ij.AutoThresholder().getThreshold(getattr(ij.Method, method), jhist))
    ij.IJ.setAutoThreshold(imp, f"{method} dark stack")
    ip = imp.getProcessor()
    lower, upper = float(ip.getMinThreshold()), float(ip.getMaxThreshold())
    mask = imagej_convert_to_mask(ij, imp)
    return hist, t, lower, upper, mask


def imagej_bin(ij, hist, method="Intermodes") -> int:
    jhist = ij.JArray(ij.JInt)(np.asarray(hist, dtype=np.int32))
    return int(ij.AutoThresholder().getThreshold(getattr(ij.Method, method), jhist))


# --------------------------------------------------------------------------- histograms


def random_histograms(n: int, seed: int = 20170919) -> list[tuple[str, np.ndarray]]:
    """Unimodal, bimodal, flat-topped and sparse 256-bin histograms, plus edge cases."""
    rng = np.random.default_rng(seed)
    x = np.arange(256, dtype=float)
    out = []

    def bump(mu, sd, amp):
        return amp * np.exp(-0.5 * ((x - mu) / sd) ** 2)

    edge = {
        "single bin": np.eye(256, dtype=np.int64)[rng.integers(256)] * 1000,
        "bin 0 only": np.eye(256, dtype=np.int64)[0] * 7,
        "bin 255 only": np.eye(256, dtype=np.int64)[255] * 7,
        "two adjacent": np.r_[np.zeros(100), [5, 9], np.zeros(154)].astype(np.int64),
        "two far, equal": np.r_[np.zeros(10), [50], np.zeros(200), [50], np.zeros(44)],
        "ends only": np.r_[[300], np.zeros(254), [300]],
        "all equal": np.full(256, 1234),
        "twin plateaus": np.r_[np.zeros(40), np.full(20, 80), np.zeros(60), np.full(20, 80),
                               np.zeros(116)],
        "staircase": np.repeat(np.arange(16), 16) * 3,
        "huge counts": np.rint(bump(60, 10, 4e8) + bump(190, 15, 2e8)),
        "alternating": np.tile([0, 10], 128),
    }
    for name, h in edge.items():
        out.append((name, np.asarray(h, dtype=np.int64)))
    kinds = ("unimodal", "bimodal", "flat-topped", "sparse")
    i = 0
    while len(out) < n:
        kind = kinds[i % 4]
        i += 1
        if kind == "unimodal":
            shape = rng.integers(3)
            mu, sd, amp = rng.uniform(0, 255), rng.uniform(2, 60), 10 ** rng.uniform(1, 6)
            if shape == 0:
                lam = bump(mu, sd, amp)
            elif shape == 1:
                lam = amp * np.exp(-np.abs(x - mu) / sd)
            else:
                lam = amp * np.exp(-0.5 * (np.log1p(x) - np.log1p(mu)) ** 2 / 0.3)
            h = rng.poisson(lam) if rng.random() < 0.7 else np.rint(lam)
        elif kind == "bimodal":
            m1, m2 = np.sort(rng.uniform(0, 255, 2))
            lam = bump(m1, rng.uniform(2, 40), 10 ** rng.uniform(2, 6))
            lam += bump(m2, rng.uniform(2, 40), 10 ** rng.uniform(1, 6))
            h = rng.poisson(lam) if rng.random() < 0.6 else np.rint(lam)
        elif kind == "flat-topped":
            h = np.zeros(256)
            for _ in range(rng.integers(1, 4)):
                a = rng.integers(0, 250)
                b = min(256, a + rng.integers(2, 60))
                h[a:b] = rng.integers(1, 5) * 100  # exact ties on the tops
            if rng.random() < 0.5:
                h += np.rint(bump(rng.uniform(0, 255), rng.uniform(3, 30), 300))
        else:  # sparse
            k = rng.integers(1, 13)
            h = np.zeros(256)
            h[rng.choice(256, size=k, replace=False)] = rng.integers(1, 10000, size=k)
        h = np.asarray(h, dtype=np.int64)
        if h.sum() == 0:
            continue
        out.append((kind, h))
    return out


@pytest.mark.imagej
def test_intermodes_bin_equals_imagej_autothresholder_on_random_histograms(ij):
    hists = random_histograms(N_RANDOM_HISTOGRAMS)
    assert len(hists) >= 500
    mismatches = []
    n_fallback = 0
    for name, h in hists:
        ref = imagej_bin(ij, h)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            got = intermodes_bin(h)
        n_fallback += ref == 0
        if got != ref:
            mismatches.append((name, got, ref))
    assert not mismatches, f"{len(mismatches)}/{len(hists)} differ, e.g. {mismatches[:5]}"
    # the families exercise both outcomes: two modes found, and ImageJ's fallback
    assert 0 < n_fallback < len(hists)


@pytest.mark.imagej
def test_otsu_bin_equals_imagej_autothresholder_on_random_histograms(ij):
    hists = random_histograms(N_RANDOM_HISTOGRAMS)
    mismatches = [
        (name, otsu_bin(h), imagej_bin(ij, h, "Otsu"))
        for name, h in hists
        if otsu_bin(h) != imagej_bin(ij, h, "Otsu")
    ]
    assert not mismatches, f"{len(mismatches)}/{len(hists)} differ, e.g. {mismatches[:5]}"


# --------------------------------------------------------------------------- volumes


def _bimodal_volume(rng, shape, lo, hi, frac=0.3):
    n = int(np.prod(shape))
    fg = rng.random(n) < frac
    v = np.where(fg, rng.normal(hi, abs(hi - lo) * 0.15 + 1e-3, n), rng.normal(lo, abs(hi - lo) * 0.1 + 1e-3, n))
    return v.reshape(shape)


def _volumes(real_data_dir):
    """(name, volume) for 8-, 16- and 32-bit stacks, real and synthetic."""
    rng = np.random.default_rng(7)
    a1 = read_volume(real_data_dir / "A1_arabidopsis_embryo_membrane_confocal_iso.tif").data
    a3 = read_volume(real_data_dir / "A3_cells3d_nuclei_confocal_0.29z_0.26xy_crop208.tif").data
    b1 = read_volume(real_data_dir / "B1_cellseg3d_mesospim_brain_nuclei_c5image.tif").data
    shp = (6, 48, 64)
    vols = [
        ("A1 real 8-bit", a1),
        ("A1 8-bit inverted", (255 - a1).astype(np.uint8)),
        ("8-bit bimodal", np.clip(_bimodal_volume(rng, shp, 30, 180), 0, 255).astype(np.uint8)),
        ("8-bit narrow", np.clip(_bimodal_volume(rng, shp, 100, 112), 0, 255).astype(np.uint8)),
        ("A3 real 16-bit", a3),
        ("B1 real 16-bit", b1),
        ("A3 16-bit z-subsampled", np.ascontiguousarray(a3[::4])),
        ("16-bit bimodal full range", np.clip(_bimodal_volume(rng, shp, 3000, 50000), 0, 65535).astype(np.uint16)),
        ("16-bit range < 256", np.clip(_bimodal_volume(rng, shp, 1000, 1100), 0, 65535).astype(np.uint16)),
        ("16-bit range 257", np.clip(_bimodal_volume(rng, shp, 500, 700), 500, 757).astype(np.uint16)),
        ("16-bit exponential", np.clip(rng.exponential(800, shp), 0, 65535).astype(np.uint16)),
        ("A3 real as 32-bit", a3.astype(np.float32) / np.float32(65535.0)),
        ("B1 real as 32-bit + noise", (b1.astype(np.float32) + rng.normal(0, 3, b1.shape)).astype(np.float32)),
        ("A1 real as 32-bit", a1.astype(np.float32) * np.float32(0.1)),
        ("32-bit bimodal negative", _bimodal_volume(rng, shp, -2.5, 1.3).astype(np.float32)),
        ("32-bit tiny range, big offset", (1e4 + 1e-3 * _bimodal_volume(rng, shp, 0, 1)).astype(np.float32)),
        ("32-bit heavy tail", (rng.lognormal(0, 1.5, shp)).astype(np.float32)),
        ("32-bit quantised", np.round(_bimodal_volume(rng, shp, 10, 40)).astype(np.float32)),
    ]
    return vols


@pytest.mark.imagej
@pytest.mark.parametrize("method", ["Intermodes", "Otsu"])
def test_stack_threshold_equals_imagej_on_8_16_32_bit_volumes(ij, real_data_dir, method):
    vols = _volumes(real_data_dir)
    assert {v.dtype for _, v in vols} == {np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32")}
    failures = []
    for name, vol in vols:
        ij_hist, ij_bin, ij_lower, ij_upper, ij_mask = imagej_stack_threshold(ij, vol, method)
        hist, _, _ = imagej_histogram(vol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            thr = auto_threshold(vol, method=method.lower())
        mask = threshold_mask(vol, thr)
        checks = {
            "histogram": np.array_equal(hist, ij_hist),
            "bin": thr.bin == ij_bin,
            "lower": thr.lower == ij_lower,  # exact float equality, not approx
            "upper": thr.upper == ij_upper,
            "mask": np.array_equal(mask, ij_mask),
        }
        if not all(checks.values()):
            failures.append((name, checks, (thr.bin, thr.lower, thr.upper), (ij_bin, ij_lower, ij_upper)))
    assert not failures, f"{len(failures)}/{len(vols)} volumes differ: {failures}"


@pytest.mark.imagej
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_voxels_at_the_lower_threshold_are_foreground_like_imagej(ij, dtype):
    """Pins the boundary: ``v == lower`` is foreground, the next value below is not."""
    rng = np.random.default_rng(3)
    shp = (4, 40, 50)
    if dtype == "uint8":
        vol = np.clip(_bimodal_volume(rng, shp, 40, 170), 0, 255).astype(np.uint8)
        vol.ravel()[:256] = np.arange(256)  # every grey level present
    elif dtype == "uint16":
        vol = np.clip(_bimodal_volume(rng, shp, 300, 900), 0, 65535).astype(np.uint16)
        vol.ravel()[:1000] = np.arange(1000)
    else:
        vol = _bimodal_volume(rng, shp, 0.2, 1.0).astype(np.float32)
        vol.ravel()[::5] = rng.uniform(0.2, 1.0, vol.size // 5)  # voxels in the valley too
    thr = auto_threshold(vol)
    lo = np.float32(thr.lower)
    if dtype == "float32":
        # put exact-threshold values into bins that already hold them, keeping the histogram
        below = np.nextafter(lo, np.float32(-np.inf))
        hist0, _, _ = imagej_histogram(vol)
        flat = vol.ravel()
        idx_bin = lambda v: int((256.0 / (thr.hist_max - thr.hist_min)) * (float(v) - thr.hist_min))  # noqa: E731
        same_lo = np.flatnonzero([idx_bin(v) == idx_bin(lo) for v in flat[:5000]])
        same_below = np.flatnonzero([idx_bin(v) == idx_bin(below) for v in flat[:5000]])
        flat[same_lo[:3]] = lo
        flat[same_below[-3:]] = below
        assert np.array_equal(imagej_histogram(vol)[0], hist0)
        assert auto_threshold(vol) == thr
    else:
        below = lo - 1
    at, under = vol == lo, vol == below
    assert at.any() and under.any()
    _, _, ij_lower, _, ij_mask = imagej_stack_threshold(ij, vol)
    assert ij_lower == thr.lower
    assert ij_mask[at].all() and not ij_mask[under].any()
    ours = threshold_mask(vol, thr)
    assert ours[at].all() and not ours[under].any()
    assert np.array_equal(ours, ij_mask)


# --------------------------------------------------------------------------- fill holes


def _hole_masks():
    rng = np.random.default_rng(11)
    masks = []
    for sigma, level in [(1.5, 0.5), (2.5, 0.45), (1.0, 0.55), (3.0, 0.5)]:
        noise = ndi.gaussian_filter(rng.random((6, 70, 90)), (0, sigma, sigma))
        masks.append(noise > np.quantile(noise, level))
    # rings, holes touching the edge, and diagonal-only background links (4- vs 8-conn)
    m = np.zeros((3, 30, 30), dtype=bool)
    m[0, 5:15, 5:15] = True
    m[0, 8:12, 8:12] = False  # closed hole
    m[1, 0:10, 0:10] = True
    m[1, 0:5, 3:6] = False  # open to the top edge: not a hole
    m[2, 10:20, 10:20] = True
    m[2, 12:15, 12:15] = False
    m[2, 15, 15] = False  # touches the hole only diagonally
    m[2, 16:20, 16:20] = False  # and reaches the object's corner
    masks.append(m)
    return masks


@pytest.mark.imagej
def test_fill_holes_2d_equals_imagej_fill_holes_per_slice(ij):
    ij.Prefs.blackBackground = True  # 255 = foreground, as the masks are made
    for m in _hole_masks():
        vol = m.astype(np.uint8) * np.uint8(255)
        imp = to_imageplus(ij, vol)
        binary = ij.Binary()
        binary.setup("fill", imp)
        for k in range(imp.getStackSize()):
            binary.run(imp.getStack().getProcessor(k + 1))
        ref = mask_from_imageplus(imp)
        got = fill_holes(m, mode="2d")
        assert np.array_equal(got, ref), f"{np.count_nonzero(got != ref)} voxels differ"
        assert got.sum() >= m.sum()


# --------------------------------------------------------------------------- menu commands

_MENU_SCRIPT = r"""
import sys
import numpy as np
from isonet_ij.imagej import start_jvm

start_jvm(headless=False)
import jpype

IJ = jpype.JClass("ij.IJ")
ImagePlus, ImageStack = jpype.JClass("ij.ImagePlus"), jpype.JClass("ij.ImageStack")
jpype.JClass("ij.Prefs").blackBackground = True
procs = {
    "uint8": (jpype.JClass("ij.process.ByteProcessor"), jpype.JByte, np.int8),
    "uint16": (jpype.JClass("ij.process.ShortProcessor"), jpype.JShort, np.int16),
    "float32": (jpype.JClass("ij.process.FloatProcessor"), jpype.JFloat, np.float32),
}

def to_imp(vol):
    proc, jtype, view = procs[str(vol.dtype)]
    z, y, x = vol.shape
    st = ImageStack(x, y)
    for k in range(z):
        pix = jpype.JArray(jtype)(np.ascontiguousarray(vol[k]).ravel().view(view))
        st.addSlice(proc(x, y, pix) if view is np.float32 else proc(x, y, pix, None))
    return ImagePlus("v", st)

def mask_of(imp):
    st = imp.getStack()
    return np.stack([np.array(st.getProcessor(k + 1).getPixels(), dtype=np.int8) != 0
                     for k in range(st.getSize())]).reshape(st.getSize(), imp.getHeight(), imp.getWidth())

data = np.load(sys.argv[1])
out = {}
for name in data.files:
    imp = to_imp(data[name])
    if name.startswith("holes"):
        IJ.run(imp, "Fill Holes", "stack")
    else:
        IJ.setAutoThreshold(imp, "Intermodes dark stack")
        IJ.run(imp, "Convert to Mask", "method=Intermodes background=Dark black")
    out[name] = mask_of(imp)
np.savez(sys.argv[2], **out)
print("done", len(out))
"""


@pytest.mark.imagej
def test_menu_commands_convert_to_mask_and_fill_holes_equal_ours_under_xvfb(tmp_path, real_data_dir):
    """The real menu commands (need a display: run under Xvfb) give our masks."""
    import subprocess
    import sys

    from conftest import require_java_and_ij_jar, require_xvfb_run

    require_java_and_ij_jar()
    xvfb = require_xvfb_run("menu commands need a display")
    rng = np.random.default_rng(13)
    a3 = read_volume(real_data_dir / "A3_cells3d_nuclei_confocal_0.29z_0.26xy_crop208.tif").data
    vols = {
        "u8": np.clip(_bimodal_volume(rng, (5, 40, 50), 30, 180), 0, 255).astype(np.uint8),
        "u16_real_A3": np.ascontiguousarray(a3[::6]),
        "f32": _bimodal_volume(rng, (5, 40, 50), -1.0, 2.5).astype(np.float32),
    }
    holes = _hole_masks()[:2]
    for i, m in enumerate(holes):
        vols[f"holes{i}"] = m.astype(np.uint8) * np.uint8(255)
    np.savez(tmp_path / "in.npz", **vols)
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [xvfb, "-a", sys.executable, "-c", _MENU_SCRIPT, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        cwd=repo, capture_output=True, text=True, timeout=180,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    for name, vol in vols.items():
        if name.startswith("holes"):
            ours = fill_holes(vol > 0, mode="2d")
        else:
            ours = threshold_mask(vol, auto_threshold(vol))
        assert np.array_equal(got[name], ours), name


# --------------------------------------------------------------------------- JVM starter


def test_find_ij_jar_honours_env_and_explains_what_to_do(tmp_path, monkeypatch):
    from isonet_ij.imagej import find_ij_jar

    jar = tmp_path / "my ij.jar"
    jar.write_bytes(b"PK")
    monkeypatch.setenv("ISONET_IJ_JAR", str(jar))
    assert find_ij_jar() == jar
    monkeypatch.setenv("ISONET_IJ_JAR", str(tmp_path / "missing.jar"))
    with pytest.raises(FileNotFoundError, match="ISONET_IJ_JAR"):
        find_ij_jar()


def test_find_java_rejects_a_java_home_without_java(tmp_path, monkeypatch):
    from isonet_ij.imagej import JVMError, find_java

    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(JVMError, match="JAVA_HOME"):
        find_java()


@pytest.mark.imagej
def test_start_jvm_is_idempotent_and_reports_the_imagej_version(imagej_jvm):
    from isonet_ij.imagej import jvm_started, start_jvm

    assert jvm_started()
    assert start_jvm() == imagej_jvm == start_jvm(headless=True)
    assert imagej_jvm.startswith("1.")
