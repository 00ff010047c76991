"""The readers and answers of a study, in SQLite (write-ahead log, fully synchronous).

Every answer is committed before the server replies, so a crash or a kill of the server loses
none; the (reader, item) primary key stores each answer at most once, however many requests
race. Each reader has an unguessable token and an order of their own, drawn from the study's
seed and the reader's number, so a restarted server serves the same order to the same link.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.errors import DataError
from synthmed.study.layout import ANSWERS_FILE, StudySettings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readers (
    token TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    number INTEGER UNIQUE NOT NULL,
    item_order TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    token TEXT NOT NULL REFERENCES readers(token),
    item TEXT NOT NULL,
    confidence INTEGER NOT NULL,
    realism INTEGER,
    tumor_present INTEGER,
    hemisphere TEXT,
    seconds REAL,
    answered REAL NOT NULL,
    PRIMARY KEY (token, item)
);
"""

#: Fields of an answer besides the reader and the item.
ANSWER_FIELDS = ("confidence", "realism", "tumor_present", "hemisphere", "seconds")


@dataclass(frozen=True)
class Reader:
    """A reader: their name, link token and item order."""

    name: str
    token: str
    number: int
    order: tuple[str, ...]


class AlreadyAnswered(Exception):
    """This reader already answered this item."""


class AnswerStore:
    """The study's ``answers.sqlite`` (created on first use)."""

    def __init__(self, study: str | Path):
        self.path = Path(study) / ANSWERS_FILE
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except sqlite3.Error as err:
            raise DataError(f"cannot open the study's answer database ({err})", self.path) from err
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    # -- readers -----------------------------------------------------------------------------------
    def readers(self) -> list[Reader]:
        with self._connect() as db:
            rows = db.execute("SELECT name, token, number, item_order FROM readers ORDER BY number").fetchall()
        return [Reader(name, token, number, tuple(json.loads(order))) for name, token, number, order in rows]

    def add_readers(self, names: list[str], settings: StudySettings) -> list[Reader]:
        """Readers called ``names`` (created with a fresh token and order where new), in that order."""
        for name in names:
            if not name or len(name) > 100 or any(c in name for c in "\n\r\t"):
                raise DataError(f"invalid reader name {name!r}: 1-100 characters on one line", self.path)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                known = {name: number for name, number in db.execute("SELECT name, number FROM readers")}
                number = max(known.values(), default=-1) + 1
                for name in names:
                    if name in known:
                        continue
                    order = [settings.items[i] for i in
                             np.random.default_rng([settings.seed, number]).permutation(len(settings.items))]
                    db.execute("INSERT INTO readers VALUES (?, ?, ?, ?, ?)",
                               (secrets.token_urlsafe(24), name, number, json.dumps(order), time.time()))
                    known[name] = number
                    number += 1
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        by_name = {r.name: r for r in self.readers()}
        return [by_name[name] for name in names]

    # -- answers -----------------------------------------------------------------------------------
    def answered_items(self, token: str) -> set[str]:
        with self._connect() as db:
            return {item for (item,) in db.execute("SELECT item FROM answers WHERE token = ?", (token,))}

    def add_answer(self, token: str, item: str, answer: dict[str, Any]) -> None:
        """Store one answer, durably, before returning.

        Raises:
            AlreadyAnswered: the reader has an answer for ``item`` already (it is kept as it was).
        """
        values = [answer.get(k) for k in ANSWER_FIELDS]
        try:
            with self._connect() as db:
                db.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (token, item, *values, time.time()))
        except sqlite3.IntegrityError as err:
            raise AlreadyAnswered(item) from err

    def answers(self) -> list[dict[str, Any]]:
        """Every answer, with its reader's name, in the order they were given."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT r.name AS reader, a.* FROM answers a JOIN readers r USING (token) ORDER BY a.answered"
            ).fetchall()
        out = []
        for row in rows:
            d = dict(row)
            d.pop("token")
            if d["tumor_present"] is not None:
                d["tumor_present"] = bool(d["tumor_present"])
            out.append(d)
        return out
