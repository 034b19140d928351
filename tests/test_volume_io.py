"""Volume IO: round trips keep data and calibration; bad files fail clearly, touching nothing."""

import json
import os

import numpy as np
import pytest
import tifffile

from isonet_ij.volume_io import (
    Volume,
    VolumeError,
    normalize_voxel_size,
    read_volume,
    write_json,
    write_volume,
)


def _snapshot(folder):
    """Name -> (size, mtime_ns, bytes) of every file in ``folder``."""
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.iterdir())
    }


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.uint8])
def test_round_trip_keeps_data_and_voxel_size(tmp_path, dtype):
    rng = np.random.default_rng(0)
    data = (rng.random((7, 12, 10)) * 200).astype(dtype)
    out = write_volume(tmp_path / "v.tif", data, voxel_size=(0.8, 0.1, 0.1), unit="um")
    vol = read_volume(out)
    assert vol.axes == "ZYX"
    assert vol.data.dtype == dtype
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.voxel_size, (0.8, 0.1, 0.1), rtol=1e-6)
    assert vol.unit == "um"
    assert vol.anisotropy == pytest.approx(8.0)


def test_round_trip_zcyx_and_tzcyx(tmp_path):
    rng = np.random.default_rng(1)
    zcyx = rng.random((5, 2, 8, 9)).astype(np.float32)
    vol = read_volume(write_volume(tmp_path / "c.tif", zcyx, voxel_size=(2.0, 0.5, 0.5)))
    assert vol.axes == "ZCYX"
    np.testing.assert_array_equal(vol.data, zcyx)
    np.testing.assert_allclose(vol.voxel_size, (2.0, 0.5, 0.5), rtol=1e-6)
    chans = list(vol.iter_zyx())
    assert [idx for idx, _ in chans] == [{"C": 0}, {"C": 1}]
    np.testing.assert_array_equal(chans[1][1], zcyx[:, 1])

    tzcyx = rng.integers(0, 60000, (3, 4, 2, 6, 5)).astype(np.uint16)
    vol = read_volume(write_volume(tmp_path / "t.tif", tzcyx, voxel_size=1.5))
    assert vol.axes == "TZCYX"
    np.testing.assert_array_equal(vol.data, tzcyx)
    assert len(list(vol.iter_zyx())) == 6


def test_metadata_is_stored_as_json(tmp_path):
    data = np.zeros((3, 4, 4), np.float32)
    meta = {"model": "m", "factor": 4.89}
    vol = read_volume(write_volume(tmp_path / "m.tif", data, metadata=meta))
    assert vol.metadata == meta


def test_ome_tiff_calibration_is_read(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)
    path = tmp_path / "x.ome.tif"
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeZ": 1.2,
            "PhysicalSizeY": 0.3,
            "PhysicalSizeX": 0.3,
        },
    )
    vol = read_volume(path)
    assert vol.axes == "ZYX"
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.voxel_size, (1.2, 0.3, 0.3))


def test_uncalibrated_file_has_no_voxel_size(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((4, 5, 6), np.uint8), imagej=True, metadata={"axes": "ZYX"})
    assert read_volume(path).voxel_size is None


def test_real_volume_reads_with_calibration(real_data_dir):
    vol = read_volume(real_data_dir / "A3_cells3d_nuclei_confocal_0.29z_0.26xy_crop208.tif")
    assert vol.data.shape == (60, 208, 208)
    assert vol.data.dtype == np.uint16
    np.testing.assert_allclose(vol.voxel_size, (0.29, 0.26, 0.26), rtol=0.02)


def test_truncated_tiff_gives_clear_error(tmp_path):
    good = write_volume(tmp_path / "g.tif", np.ones((6, 32, 32), np.float32))
    bad = tmp_path / "truncated.tif"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    before = _snapshot(tmp_path)
    with pytest.raises(VolumeError, match="truncated or not a TIFF"):
        read_volume(bad)
    assert _snapshot(tmp_path) == before


def test_2d_image_gives_clear_error(tmp_path):
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8))
    with pytest.raises(VolumeError, match="2D image"):
        read_volume(path)


def test_rgb_image_gives_clear_error(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((4, 16, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(VolumeError, match="RGB"):
        read_volume(path)


def test_nan_input_gives_clear_error(tmp_path):
    data = np.ones((4, 8, 8), np.float32)
    data[1, 2, 3] = np.nan
    path = write_volume(tmp_path / "nan.tif", data)
    with pytest.raises(VolumeError, match="1 NaN/inf voxels"):
        read_volume(path)
    assert np.isnan(read_volume(path, allow_nan=True).data[1, 2, 3])


def test_missing_file_gives_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="input file not found"):
        read_volume(tmp_path / "nope.tif")


def test_existing_output_is_not_overwritten(tmp_path):
    path = write_volume(tmp_path / "o.tif", np.ones((3, 4, 4), np.float32))
    before = _snapshot(tmp_path)
    with pytest.raises(FileExistsError, match="--force"):
        write_volume(path, np.zeros((3, 4, 4), np.float32))
    assert _snapshot(tmp_path) == before
    write_volume(path, np.zeros((3, 4, 4), np.float32), force=True)
    assert read_volume(path).data.max() == 0


def test_input_is_never_overwritten_even_with_force(tmp_path):
    path = write_volume(tmp_path / "in.tif", np.ones((3, 4, 4), np.float32))
    before = _snapshot(tmp_path)
    with pytest.raises(FileExistsError, match="is the input file"):
        write_volume(path, np.zeros((3, 4, 4), np.float32), force=True, inputs=[path])
    assert _snapshot(tmp_path) == before


def test_failed_write_leaves_no_partial_file(tmp_path):
    with pytest.raises(VolumeError, match="cannot store dtype float64"):
        write_volume(tmp_path / "f.tif", np.ones((3, 4, 4)))
    with pytest.raises(VolumeError, match="axes"):
        write_volume(tmp_path / "f.tif", np.ones((3, 4, 4), np.float32), axes="ZY")
    assert os.listdir(tmp_path) == []


def test_outputs_get_the_usual_file_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_volume(tmp_path / "o.tif", np.ones((3, 4, 4), np.float32))
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_write_json_is_atomic_and_serialises_numpy(tmp_path):
    path = write_json(tmp_path / "m.json", {"a": np.float32(1.5), "b": np.arange(3)})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2]}
    assert sorted(os.listdir(tmp_path)) == ["m.json"]


@pytest.mark.parametrize("bad", [(1.0, 0.2), (0.0, 1, 1), (-1, 1, 1), (np.nan, 1, 1)])
def test_bad_voxel_size_is_rejected(bad):
    with pytest.raises(VolumeError, match="3 positive numbers"):
        normalize_voxel_size(bad)


def test_volume_iter_zyx_of_plain_volume():
    vol = Volume(np.zeros((2, 3, 4)), (1, 1, 1))
    (idx, arr), = list(vol.iter_zyx())
    assert idx == {} and arr.shape == (2, 3, 4)
