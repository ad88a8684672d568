"""Writers of one database file take turns through the process's writer lock, and a
writer that cannot get it in time still writes, waiting on SQLite's own lock instead."""

import threading

from server import db as database
from server.db import connect, transaction


def table(path):
    db = connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS writes (who TEXT)")
    return db


def test_connections_to_one_file_share_one_writer_lock_and_other_files_do_not(tmp_path):
    one, again, other = (
        connect(tmp_path / "a.db"),
        connect(tmp_path / "a.db"),
        connect(tmp_path / "b.db"),
    )
    assert one._writer is again._writer
    assert one._writer is not other._writer


def test_a_second_writer_waits_for_the_first_and_both_writes_are_kept(tmp_path):
    path = tmp_path / "a.db"
    first, second = table(path), connect(path)
    inside, finish = threading.Event(), threading.Event()

    def write_first():
        with transaction(first):
            first.execute("INSERT INTO writes VALUES ('first')")
            inside.set()
            finish.wait(10)

    def write_second():
        with transaction(second):
            second.execute("INSERT INTO writes VALUES ('second')")

    one = threading.Thread(target=write_first)
    one.start()
    assert inside.wait(10)
    two = threading.Thread(target=write_second)
    two.start()
    two.join(0.3)
    assert two.is_alive()  # queued behind the first writer
    finish.set()
    one.join(10)
    two.join(10)
    rows = [row[0] for row in connect(path).execute("SELECT who FROM writes ORDER BY rowid")]
    assert rows == ["first", "second"]


def test_a_writer_that_cannot_get_the_lock_in_time_still_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(database, "WRITER_WAIT_S", 0.05)
    path = tmp_path / "a.db"
    db = table(path)
    db._writer.acquire()  # held by a thread of this process that is not writing
    try:
        with transaction(db):
            db.execute("INSERT INTO writes VALUES ('anyway')")
    finally:
        db._writer.release()
    assert [row[0] for row in db.execute("SELECT who FROM writes")] == ["anyway"]
    assert db._writer.acquire(blocking=False)  # not left held by the transaction
