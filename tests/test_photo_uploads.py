"""Resumable photo uploads when two requests for one photo overlap: a phone that lost its
link resumes on a new connection while the server still reads the old request's body."""

import hashlib
import io
import random
import threading

import pytest

from server import photos
from server.db import connect
from server.errors import ApiError

PHOTO = random.Random(20261207).randbytes(60_000)
SHA = hashlib.sha256(PHOTO).hexdigest()


class StalledBody(io.RawIOBase):
    """A request body that sends `first` bytes, waits until released, then sends the rest
    (the old connection of a phone whose link dropped and came back)."""

    def __init__(self, data: bytes, first: int):
        self.data, self.first, self.sent = data, first, 0
        self.stalled, self.release = threading.Event(), threading.Event()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent == self.first and not self.release.is_set():
            self.stalled.set()
            self.release.wait(10)
        end = self.first if self.sent < self.first else len(self.data)
        piece = self.data[self.sent : min(end, self.sent + (size if size > 0 else end))]
        self.sent += len(piece)
        return piece


def receive(app, offset: int, body, size: int):
    with app.app_context():
        database = connect(app.config["DATABASE"])
        try:
            return photos.receive_chunk(database, SHA, offset, len(PHOTO), size, body)
        except photos.OffsetMismatch as mismatch:
            return mismatch
        finally:
            database.close()


def test_a_resumed_chunk_waits_for_the_old_request_and_the_photo_arrives_whole(app):
    old = StalledBody(PHOTO, first=10_000)
    answers = {}
    reader = threading.Thread(target=lambda: answers.update(old=receive(app, 0, old, len(PHOTO))))
    reader.start()
    assert old.stalled.wait(10)
    # The phone asks where the server's copy ends (HEAD) and goes on from there on a new
    # connection, while the old body is still being read.
    with app.app_context():
        have, _ = photos.held(SHA)
    assert have == 10_000
    rest = PHOTO[have:]
    resumed = threading.Thread(
        target=lambda: answers.update(new=receive(app, have, io.BytesIO(rest), len(rest)))
    )
    resumed.start()
    resumed.join(0.5)
    old.release.set()
    reader.join(10)
    resumed.join(10)

    # Whichever finished first made the photo whole; the other was told where it ends.
    assert (len(PHOTO), True) in answers.values()
    other = [a for a in answers.values() if a != (len(PHOTO), True)]
    assert all(isinstance(a, photos.OffsetMismatch) for a in other)
    with app.app_context():
        final, partial = photos.blob_paths(SHA)
    assert final.read_bytes() == PHOTO
    assert not partial.exists()


@pytest.mark.parametrize("cut", [1, 20_000, 59_999])
def test_a_chunk_cut_short_keeps_its_bytes_and_the_next_one_goes_on_from_there(app, cut):
    first = receive(app, 0, io.BytesIO(PHOTO[:cut]), len(PHOTO))
    assert first == (cut, False)
    rest = receive(app, cut, io.BytesIO(PHOTO[cut:]), len(PHOTO) - cut)
    assert rest == (len(PHOTO), True)


def test_a_resumed_chunk_that_cannot_wait_is_told_to_try_again_and_changes_nothing(
    app, monkeypatch
):
    monkeypatch.setattr(photos, "LOCK_WAIT_S", 0.2)
    old = StalledBody(PHOTO, first=10_000)
    answers = {}
    reader = threading.Thread(target=lambda: answers.update(old=receive(app, 0, old, len(PHOTO))))
    reader.start()
    assert old.stalled.wait(10)
    with pytest.raises(ApiError) as busy:
        receive(app, 10_000, io.BytesIO(PHOTO[10_000:]), len(PHOTO) - 10_000)
    assert (busy.value.status, busy.value.code) == (503, "upload_busy")
    with app.app_context():
        assert photos.held(SHA) == (10_000, False)
    old.release.set()
    reader.join(10)
    assert answers["old"] == (len(PHOTO), True)
