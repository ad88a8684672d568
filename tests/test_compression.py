"""Responses go out compressed for 2G, and nothing without a body gains one."""

import gzip

import brotli
import pytest

from tests.conftest import bearer


@pytest.mark.parametrize("encoding", ["gzip", "br"])
@pytest.mark.parametrize(
    "path", ["/app/", "/app/js/app.js", "/app/i18n/zh.json", "/api/v1/species"]
)
def test_text_is_compressed_and_decodes_to_the_same_bytes(client, path, encoding):
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    packed = client.get(path, headers={"Accept-Encoding": encoding})
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == encoding
    assert int(packed.headers["Content-Length"]) == len(packed.data) < len(plain.data)
    decode = gzip.decompress if encoding == "gzip" else brotli.decompress
    assert decode(packed.data) == plain.data
    assert "Accept-Encoding" in packed.headers["Vary"]


def test_head_and_empty_answers_stay_empty(client, world):
    head = client.head(
        "/api/v1/blobs/" + "a" * 64,
        headers={**bearer(world.tokens["measurer"]), "Accept-Encoding": "gzip, br"},
    )
    assert head.status_code == 200
    assert "Content-Encoding" not in head.headers
    assert head.data == b""
