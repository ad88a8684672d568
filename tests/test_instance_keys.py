"""Keys the instance folder holds from the start, so a backup taken before any use has them."""

import re

from server import create_app


def test_the_test_providers_key_is_made_at_start_when_it_is_on(tmp_path):
    on, off = tmp_path / "on", tmp_path / "off"
    app = create_app({"INSTANCE_PATH": str(on), "TESTPAY_ENABLED": True})
    create_app({"INSTANCE_PATH": str(off)})

    key = (on / "testpay.key").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert app.config["TESTPAY_SECRET"] == key
    assert (on / "testpay.key").stat().st_mode & 0o077 == 0  # the owner's only
    assert not (off / "testpay.key").exists()
