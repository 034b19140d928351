"""ImagePlus <-> numpy against ImageJ's own accessors (real ij.jar, headless JVM)."""

import numpy as np
import pytest

from isonet_ij.imagej.convert import (
    ImageError,
    array_to_imageplus,
    calibration_of,
    imageplus_to_volume,
)

pytestmark = pytest.mark.imagej


def _random(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        return rng.normal(0, 1e3, shape).astype(np.float32)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_round_trip_is_exact_and_keeps_calibration(imagej_jvm, dtype):
    data = _random(dtype, (5, 17, 23))
    data.flat[:3] = [0, np.iinfo(dtype).max if dtype != np.float32 else -1.5, 1]  # sign bits
    imp = array_to_imageplus(data, title="rt", voxel_size=(1.5, 0.25, 0.2), unit="um")
    assert imp.getBitDepth() == {np.uint8: 8, np.uint16: 16, np.float32: 32}[dtype]
    assert (imp.getWidth(), imp.getHeight(), imp.getNSlices()) == (23, 17, 5)
    cal = imp.getCalibration()
    assert (cal.pixelWidth, cal.pixelHeight, cal.pixelDepth) == (0.2, 0.25, 1.5)
    assert str(cal.getUnit()) == "\u00b5m"  # as ImageJ shows microns
    vol = imageplus_to_volume(imp)
    assert vol.data.dtype == dtype and vol.axes == "ZYX"
    np.testing.assert_array_equal(vol.data, data)
    assert vol.voxel_size == (1.5, 0.25, 0.2) and vol.unit == "um"


def test_pixels_land_where_imagej_reads_them(imagej_jvm):
    # independent check of the axis order through ImageJ's own accessors
    data = _random(np.uint16, (2, 3, 2, 7, 9), seed=3)  # T Z C Y X
    imp = array_to_imageplus(data, axes="TZCYX", title="hyper")
    assert (imp.getNChannels(), imp.getNSlices(), imp.getNFrames()) == (2, 3, 2)
    assert imp.isHyperStack()
    for t, z, c, y, x in [(0, 0, 0, 0, 0), (1, 2, 1, 6, 8), (0, 1, 1, 3, 2), (1, 0, 0, 5, 7)]:
        ip = imp.getStack().getProcessor(imp.getStackIndex(c + 1, z + 1, t + 1))
        assert ip.get(x, y) == data[t, z, c, y, x]
    back = imageplus_to_volume(imp)
    assert back.axes == "TZCYX"
    np.testing.assert_array_equal(back.data, data)
    one = imageplus_to_volume(imp, channel=1, frame=0)
    assert one.axes == "ZYX"
    np.testing.assert_array_equal(one.data, data[0, :, 1])


def test_calibration_from_imagej_units(imagej_jvm):
    import jpype

    IJ = jpype.JClass("ij.IJ")
    imp = IJ.createImage("c", "32-bit ramp", 8, 8, 3)
    assert calibration_of(imp) == (None, "pixel")
    assert imageplus_to_volume(imp).voxel_size is None
    cal = imp.getCalibration()
    cal.pixelWidth, cal.pixelHeight, cal.pixelDepth = 0.1, 0.1, 0.8
    cal.setUnit("micron")
    assert calibration_of(imp) == ((0.8, 0.1, 0.1), "um")
    cal.setUnit("nm")
    assert calibration_of(imp)[1] == "nm"


def test_rgb_and_unsupported_dtypes_are_refused_with_what_to_do(imagej_jvm):
    import jpype

    rgb = jpype.JClass("ij.IJ").createImage("colour", "RGB black", 8, 8, 3)
    with pytest.raises(ImageError, match="RGB image.*Image > Type > 8-bit"):
        imageplus_to_volume(rgb)
    with pytest.raises(ImageError, match="uint8, uint16 or float32.*got float64"):
        array_to_imageplus(np.zeros((2, 4, 4)))
