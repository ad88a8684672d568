"""A certificate's pictures are drawn once per variant and kept in the instance folder: the
same request is answered with the very bytes first drawn, the buyer's variant (beneficiary
shown) is another picture, and a changed certificate row is drawn again, never served stale."""

import io
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from server.db import get_db
from server.registry import orders
from tests import registry_world as rw


def retire_one_tonne(app) -> dict:
    db = get_db()
    bundle, _, _ = rw.stocked_bundle(db, app.world.user_ids["verifier"])
    order = rw.order(db, bundle["id"], 1, beneficiary="王小红", reason="抵消一次航班")
    orders.confirm_payment(db, order, "bank", "ICBC-KEEP-1", "user:3")
    cert = db.execute("SELECT id FROM certificates").fetchone()[0]
    return {"certificate": (cert, db.execute("SELECT public_id FROM orders").fetchone()[0])}


@pytest.fixture(scope="session")
def retired(snapshots, seeded):
    return snapshots.extend("certificate_renders.retired", retire_one_tonne, on=seeded)


@pytest.fixture
def app(instance, retired):
    """Every test here starts from the world with one retired tonne."""
    return retired.app(instance)


@pytest.fixture
def certificate(world) -> tuple[str, str]:
    return world.built["certificate"]


def kept(app) -> list[Path]:
    folder = Path(app.instance_path) / "rendered"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("picture", ["image.png", "card.png", "document.pdf"])
def test_each_picture_is_drawn_once_per_variant(app, client, db, certificate, picture):
    cert, order = certificate
    url = f"/api/v1/certificates/{cert}/{picture}"

    first, again = client.get(url), client.get(url)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.data == first.data
    assert [path.read_bytes() for path in kept(app)] == [first.data]

    buyers = client.get(f"{url}?order={order}")  # the buyer's own, beneficiary shown
    assert buyers.status_code == 200 and buyers.data != first.data
    assert len(kept(app)) == 2

    db.execute("UPDATE certificates SET reason = '别的用途'")
    db.conn.commit()
    changed = client.get(url)
    assert changed.status_code == 200
    assert len(kept(app)) == 3  # drawn again for the changed row


def test_the_kept_png_is_a_palette_image_whose_qr_still_reads(client, certificate):
    cert, _ = certificate
    image = Image.open(io.BytesIO(client.get(f"/api/v1/certificates/{cert}/image.png").data))

    assert image.mode == "P" and image.size == (1600, 1130)
    (barcode,) = zxingcpp.read_barcodes(image.convert("RGB"))
    assert barcode.text.endswith(f"/verify/{cert}")
