"""Damaged archives: every decoder error is a 422 naming the entry, and nothing is stored."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api.test_uploads import _npz, _png, _refused, _upload, nothing_stored

__all__ = ["nothing_stored"]  # the fixture, used below by name

ENTRIES = {f"{c}/{i}.png": _png(value=i + (50 if c == "a" else 0)) for c in "ab" for i in (1, 2)}
VICTIM = "b/2.png"


def _archive(method: int) -> tuple[bytearray, zipfile.ZipInfo]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in ENTRIES.items():
            archive.writestr(name, data)
    data = bytearray(buffer.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(VICTIM)
    return data, info


def _data_offset(data: bytearray, info: zipfile.ZipInfo) -> int:
    name_len, extra_len = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    return info.header_offset + 30 + name_len + extra_len


def _find_central(data: bytearray, name: str) -> int:
    start = 0
    while True:
        at = data.index(b"PK\x01\x02", start)
        name_len = struct.unpack("<H", data[at + 28 : at + 30])[0]
        if data[at + 46 : at + 46 + name_len].decode() == name:
            return at
        start = at + 4


def bad_crc() -> bytes:
    data, info = _archive(zipfile.ZIP_STORED)
    at = _data_offset(data, info) + info.file_size - 20  # inside the PNG, not its signature
    data[at] ^= 0xFF
    return bytes(data)


def corrupt_deflate() -> bytes:
    data, info = _archive(zipfile.ZIP_DEFLATED)
    at = _data_offset(data, info)
    data[at : at + 4] = b"\xff\xff\xff\xff"  # deflate block type 3: invalid
    return bytes(data)


def unknown_method() -> bytes:
    data, info = _archive(zipfile.ZIP_STORED)
    struct.pack_into("<H", data, info.header_offset + 8, 99)
    struct.pack_into("<H", data, _find_central(data, info.filename) + 10, 99)
    return bytes(data)


def lying_size() -> bytes:
    data, info = _archive(zipfile.ZIP_DEFLATED)
    # the directory says the entry unpacks to 10 bytes; it holds a whole PNG
    struct.pack_into("<I", data, _find_central(data, info.filename) + 24, 10)
    struct.pack_into("<I", data, info.header_offset + 22, 10)
    return bytes(data)


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    "make", [bad_crc, corrupt_deflate, unknown_method, lying_size], ids=lambda f: f.__name__
)
def test_damaged_image_zip_is_a_422_naming_the_entry(api: TestClient, make: object) -> None:
    assert callable(make)
    response = _upload(api, make(), "image_zip", "damaged.zip")
    _refused(response, 422, "file", repr(VICTIM))


def _npy_claiming(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    buffer.write(np.zeros(4).tobytes())  # 32 bytes of data, whatever the header says
    return buffer.getvalue()


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize("shape", [(10**12, 10**6), (2**40,), (10**6, 784)])
def test_npz_header_declaring_an_absurd_shape_is_a_422(
    api: TestClient, shape: tuple[int, ...]
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x_train.npy", _npy_claiming(shape))
        archive.writestr("y_train.npy", _npy_claiming((4,)))
    response = _upload(api, buffer.getvalue(), "npz", "absurd.npz")
    _refused(response, 422, "file", "'x_train.npy'", "declares shape")


@pytest.mark.usefixtures("nothing_stored")
def test_npz_with_a_bad_crc_is_a_422_naming_the_entry(api: TestClient) -> None:
    good = bytearray(_npz(x_train=np.arange(40.0).reshape(10, 4), y_train=np.arange(10) % 2))
    info = zipfile.ZipFile(io.BytesIO(bytes(good))).getinfo("x_train.npy")
    # stored (np.savez does not compress): flip a byte of the array data
    good[_data_offset(good, info) + info.file_size - 3] ^= 0xFF
    response = _upload(api, bytes(good), "npz", "crc.npz")
    _refused(response, 422, "file", "x_train.npy")
