"""Uploaded datasets over HTTP: each kind accepted with its metadata; bad ones refused, unstored."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend.config import get_settings


def _png(width: int = 8, height: int = 8, value: int = 0) -> bytes:
    """A grayscale PNG, written by hand (the API process needs no imaging library for tests)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes([value % 256]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _upload(api: TestClient, data: bytes, kind: str, filename: str, **fields: Any) -> Any:
    form = {"name": fields.pop("name", f"my {kind}"), "kind": kind, **fields}
    return api.post("/api/v1/datasets", data=form, files={"file": (filename, data)})


def _stored(api: TestClient) -> tuple[list[int], list[str]]:
    """Ids the API lists, and what lies in the dataset store (staging folders included)."""
    ids = [d["id"] for d in api.get("/api/v1/datasets").json()["items"]]
    root = get_settings().home.resolve() / "datasets"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
    return ids, [f for f in files if f != ".staging"]


@pytest.fixture
def nothing_stored(api: TestClient) -> Iterator[None]:
    before = _stored(api)
    yield
    assert _stored(api) == before


IRIS_LIKE = "sepal,petal,species\n" + "".join(
    f"{i * 0.1:.1f},{(i % 3) + 0.5},{['setosa', 'versicolor', 'virginica'][i % 3]}\n"
    for i in range(30)
)


def test_csv_is_accepted_with_its_classes_and_shape(api: TestClient) -> None:
    response = _upload(api, IRIS_LIKE.encode(), "csv", "iris.csv", target_column="species")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "csv" and body["name"] == "my csv" and body["filename"] == "iris.csv"
    assert body["num_examples"] == 30 and body["num_classes"] == 3
    assert body["class_names"] == ["setosa", "versicolor", "virginica"]
    assert body["input_shape"] == [2] and body["size_bytes"] == len(IRIS_LIKE)
    assert api.get(f"/api/v1/datasets/{body['id']}").json() == body
    assert body["id"] in [d["id"] for d in api.get("/api/v1/datasets").json()["items"]]
    folder = get_settings().home.resolve() / "datasets" / str(body["id"])
    assert (folder / "data.csv").read_text() == IRIS_LIKE and (folder / "meta.json").is_file()


def test_text_csv_keeps_only_the_text_column_and_sorts_integer_labels(api: TestClient) -> None:
    text = "id,review,stars\n" + "".join(
        f'{i},"a ""fine"" film, number {i}",{[2, 10][i % 2]}\n' for i in range(10)
    )
    response = _upload(
        api, text.encode(), "csv", "r.csv", target_column="stars", text_column="review"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["class_names"] == ["2", "10"] and body["input_shape"] == [1]
    assert body["options"] == {"target_column": "stars", "text_column": "review"}


def test_npz_is_accepted_with_one_hot_labels_and_a_test_split(api: TestClient) -> None:
    rng = np.random.default_rng(0)
    data = _npz(
        x_train=rng.random((20, 4, 4), dtype=np.float32),
        y_train=np.eye(3, dtype=np.float32)[np.arange(20) % 3],
        x_test=rng.random((6, 4, 4), dtype=np.float32),
        y_test=np.eye(3, dtype=np.float32)[np.arange(6) % 3],
    )
    response = _upload(api, data, "npz", "d.npz")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["num_examples"] == 26 and body["class_names"] == ["0", "1", "2"]
    assert body["input_shape"] == [4, 4] and body["options"] == {"has_test": True}


def test_image_zip_is_accepted_with_folder_classes_and_image_size(api: TestClient) -> None:
    entries = {f"digits/{c}/{i}.png": _png(12, 10, i) for c in ("cat", "dog") for i in range(3)}
    entries["digits/notes.txt"] = b"not an image, not a class"
    entries["__MACOSX/digits/._x.png"] = b"resource fork"
    response = _upload(api, _zip(entries), "image_zip", "pets.zip")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["class_names"] == ["cat", "dog"] and body["num_examples"] == 6
    assert body["input_shape"] == [10, 12, 1]
    assert body["options"]["color_mode"] == "grayscale"
    folder = get_settings().home.resolve() / "datasets" / str(body["id"]) / "images"
    assert sorted(p.name for p in folder.iterdir()) == ["cat", "dog"]
    assert not list(folder.parent.glob("*.zip")) and not list(folder.parent.glob("*.bin"))


def _refused(response: Any, status: int, field: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    if status == 422:
        assert [e["field"] for e in body["errors"]] == [field], body
    for word in words:
        assert word in body["detail"], body


@pytest.mark.usefixtures("nothing_stored")
class TestRefusedAndNotStored:
    def test_zip_entry_escaping_its_folder(self, api: TestClient) -> None:
        entries = {f"{c}/{i}.png": _png() for c in "ab" for i in range(2)}
        entries["../evil.png"] = _png()
        _refused(_upload(api, _zip(entries), "image_zip", "z.zip"), 422, "file", "'../evil.png'")

    def test_zip_entry_with_an_absolute_path(self, api: TestClient) -> None:
        entries = {f"{c}/{i}.png": _png() for c in "ab" for i in range(2)}
        entries["/etc/evil.png"] = _png()
        _refused(_upload(api, _zip(entries), "image_zip", "z.zip"), 422, "file", "absolute")

    def test_zip_symlink(self, api: TestClient) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for c in "ab":
                for i in range(2):
                    archive.writestr(f"{c}/{i}.png", _png())
            link = zipfile.ZipInfo("a/link.png")
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(link, "/etc/passwd")
        response = _upload(api, buffer.getvalue(), "image_zip", "z.zip")
        _refused(response, 422, "file", "'a/link.png'", "symbolic link")

    def test_zip_bomb(self, api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FITBOARD_MAX_UNZIPPED_MB", "1")
        get_settings.cache_clear()
        try:
            entries = {f"{c}/{i}.png": _png() for c in "ab" for i in range(2)}
            entries["a/bomb.png"] = b"\0" * (3 * 2**20)  # compresses to a few KB
            response = _upload(api, _zip(entries), "image_zip", "z.zip")
        finally:
            monkeypatch.delenv("FITBOARD_MAX_UNZIPPED_MB")
            get_settings.cache_clear()
        _refused(response, 422, "file", "'a/bomb.png'", "1 MB unpacked")

    def test_zip_file_that_is_not_its_image_type(self, api: TestClient) -> None:
        entries = {f"{c}/{i}.png": _png() for c in "ab" for i in range(2)}
        entries["b/fake.jpg"] = b"GIF89a not a jpeg"
        _refused(_upload(api, _zip(entries), "image_zip", "z.zip"), 422, "file", "'b/fake.jpg'")

    def test_zip_with_a_single_class(self, api: TestClient) -> None:
        entries = {f"only/{i}.png": _png() for i in range(3)}
        _refused(_upload(api, _zip(entries), "image_zip", "z.zip"), 422, "file", "2 classes")

    def test_not_a_zip(self, api: TestClient) -> None:
        _refused(_upload(api, b"hello", "image_zip", "z.zip"), 422, "file", "not a zip")

    def test_pickled_npz(self, api: TestClient) -> None:
        x = np.empty(4, dtype=object)
        x[:] = [[1], [2, 3], [4], [5]]
        buffer = io.BytesIO()
        np.savez(buffer, x_train=x, y_train=np.array([0, 1, 0, 1]))
        _refused(_upload(api, buffer.getvalue(), "npz", "p.npz"), 422, "file", "pickled")

    def test_npz_with_mismatched_lengths(self, api: TestClient) -> None:
        data = _npz(x_train=np.zeros((10, 3)), y_train=np.arange(9) % 2)
        _refused(_upload(api, data, "npz", "m.npz"), 422, "file", "9 labels", "10 examples")

    def test_npz_without_y_train(self, api: TestClient) -> None:
        _refused(_upload(api, _npz(x_train=np.zeros((4, 2))), "npz", "m.npz"), 422, "file")

    def test_npz_with_a_single_class(self, api: TestClient) -> None:
        data = _npz(x_train=np.zeros((4, 2)), y_train=np.zeros(4, dtype=int))
        _refused(_upload(api, data, "npz", "m.npz"), 422, "file", "single class")

    def test_npz_with_test_examples_of_another_shape(self, api: TestClient) -> None:
        data = _npz(
            x_train=np.zeros((4, 2)),
            y_train=np.arange(4) % 2,
            x_test=np.zeros((2, 3)),
            y_test=np.arange(2),
        )
        _refused(_upload(api, data, "npz", "m.npz"), 422, "file", "x_test")

    def test_csv_with_a_non_numeric_column(self, api: TestClient) -> None:
        text = "height,colour,label\n1.0,red,a\n2.0,blue,b\n"
        response = _upload(api, text.encode(), "csv", "c.csv", target_column="label")
        _refused(response, 422, "file", "'colour' is not numeric", "row 2")

    def test_csv_without_the_target_column(self, api: TestClient) -> None:
        response = _upload(api, IRIS_LIKE.encode(), "csv", "c.csv", target_column="kind")
        _refused(response, 422, "target_column", "no column 'kind'", "species")

    def test_csv_without_a_target_column_given(self, api: TestClient) -> None:
        _refused(_upload(api, IRIS_LIKE.encode(), "csv", "c.csv"), 422, "target_column")

    def test_csv_with_a_single_class(self, api: TestClient) -> None:
        text = "x,label\n1,a\n2,a\n3,a\n"
        response = _upload(api, text.encode(), "csv", "c.csv", target_column="label")
        _refused(response, 422, "target_column", "single class")

    def test_csv_with_a_ragged_row(self, api: TestClient) -> None:
        text = "x,label\n1,a\n2,b,7\n"
        response = _upload(api, text.encode(), "csv", "c.csv", target_column="label")
        _refused(response, 422, "file", "row 3")

    def test_unknown_kind(self, api: TestClient) -> None:
        _refused(_upload(api, b"x", "parquet", "c.parquet"), 422, "kind")

    def test_missing_file(self, api: TestClient) -> None:
        response = api.post("/api/v1/datasets", data={"name": "n", "kind": "csv"}, files={})
        assert response.status_code == 422

    def test_over_the_size_limit(self, api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FITBOARD_MAX_UPLOAD_MB", "1")
        get_settings.cache_clear()
        big = ("x,label\n" + "1,a\n2,b\n" * 200_000).encode()  # 1.6 MB
        try:
            response = _upload(api, big, "csv", "big.csv", target_column="label")
            # no Content-Length: the limit is enforced while the body streams in
            chunked = api.post(
                "/api/v1/datasets",
                content=iter([_multipart(big)[0]]),
                headers={"content-type": _multipart(big)[1]},
            )
        finally:
            monkeypatch.delenv("FITBOARD_MAX_UPLOAD_MB")
            get_settings.cache_clear()
        for r in (response, chunked):
            _refused(r, 413, "file", "1 MB", "FITBOARD_MAX_UPLOAD_MB")
            assert r.json()["code"] == "too_large"


def _multipart(data: bytes) -> tuple[bytes, str]:
    boundary = "fitboardtestboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in {"name": "big", "kind": "csv", "target_column": "label"}.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _upload_spec(upload_id: int) -> dict[str, Any]:
    return {
        "dataset": {"name": "upload", "upload_id": upload_id},
        "model": {"layers": [{"type": "Dense", "units": 3, "activation": "softmax"}]},
    }


def test_a_run_on_an_upload_and_deleting_it(api: TestClient) -> None:
    upload = _upload(api, IRIS_LIKE.encode(), "csv", "iris.csv", target_column="species").json()
    missing = api.post("/api/v1/runs", json={"name": "r", "spec": _upload_spec(999999)})
    _refused(missing, 422, "spec.dataset.upload_id", "999999")
    no_id = api.post(
        "/api/v1/runs",
        json={"name": "r", "spec": _upload_spec(1) | {"dataset": {"name": "upload"}}},
    )
    assert no_id.status_code == 422
    assert no_id.json()["errors"][0]["field"] == "spec.dataset.upload_id"
    bad_class = _upload_spec(upload["id"])
    bad_class["dataset"]["classes"] = ["setosa", "tulip"]
    _refused(
        api.post("/api/v1/runs", json={"name": "r", "spec": bad_class}),
        422,
        "spec.dataset.classes",
        "tulip",
    )

    run = api.post("/api/v1/runs", json={"name": "r", "spec": _upload_spec(upload["id"])})
    assert run.status_code == 201, run.text
    busy = api.delete(f"/api/v1/datasets/{upload['id']}")
    assert busy.status_code == 409 and str(run.json()["id"]) in busy.json()["detail"]
    assert api.post(f"/api/v1/runs/{run.json()['id']}/cancel").status_code == 200
    assert api.delete(f"/api/v1/datasets/{upload['id']}").status_code == 204
    assert api.get(f"/api/v1/datasets/{upload['id']}").status_code == 404
    assert not (get_settings().home.resolve() / "datasets" / str(upload["id"])).exists()
    assert api.delete(f"/api/v1/datasets/{upload['id']}").status_code == 404


def test_upload_form_is_in_the_openapi_schema(api: TestClient) -> None:
    body = api.get("/openapi.json").json()["paths"]["/api/v1/datasets"]["post"]["requestBody"]
    props = body["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"file", "name", "kind", "target_column", "text_column"} <= set(props)
    assert os.environ.get("FITBOARD_HOME")  # the fixture's temporary home, not the real one
    assert Path(os.environ["FITBOARD_HOME"]).exists()
