"""Galleries of enrolled faces in a database: the source of truth that survives crashes and that several processes
share. Selected by URI (:func:`open_store`):

* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (the SQLAlchemy spelling): the embedded default.
  One file in WAL mode: any number of processes read while one writes; ``synchronous=FULL``, so an acknowledged
  enrolment is on disk (even after a power cut), and each enrolment is one transaction, so after ``kill -9`` a face
  is fully enrolled or absent.
* ``postgresql://user@host:port/dbname`` (psycopg 3): a server that users already run, shared between machines.
  Same tables, same transactions. Vectors are stored as ``bytea`` (float32) and searched exactly in numpy:
  the pgvector extension is not part of PostgreSQL (a separate build of the server extension), and exact search in
  numpy over a cached copy is fast up to ~10^5 faces (see ``facenet_tf.recognition.search``).

Search reads every vector once into a :class:`facenet_tf.recognition.Gallery` (exact numpy search; ``index="hnsw"``
uses faiss when installed) and keeps it until the store changes: every write bumps a generation counter in the
same transaction, and a search first reads that counter (one tiny query), so a change made by another process or
machine is seen by the next search.

Tables: ``faces`` (id, name, source, embedding, thumbnail, created), ``meta`` (format, model, dimension: a store
holds the embeddings of one model only) and ``state`` (the generation). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from facenet_tf.recognition.gallery import Gallery, Matches
from facenet_tf.recognition.search import as_embeddings
from facenet_tf.serving.settings import URI_HELP

#: Version of the tables, stored in ``meta`` and checked on open.
STORE_FORMAT = 1
#: Longest identity name accepted.
MAX_NAME_LENGTH = 200


class StoreError(ValueError):
    """A request the store refuses (bad name, wrong dimension or model, unknown face): the caller's mistake."""


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or is busy (server down or restarting, file locked too long): try again."""


@dataclasses.dataclass(frozen=True)
class FaceEntry:
    """One enrolled face (without its vector)."""

    id: int
    name: str
    source: str
    created: float
    has_thumbnail: bool


def check_name(name: Any) -> str:
    """``name`` as an identity name: a non-empty string of at most :data:`MAX_NAME_LENGTH` printable characters,
    without surrounding spaces. StoreError otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise StoreError("name: an identity name must be a non-empty string")
    if name != name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise StoreError(f"name: at most {MAX_NAME_LENGTH} printable characters without surrounding spaces; "
                         f"got {name[:40]!r}")
    return name


class FaceStore:
    """A gallery in a database. Thread-safe (one connection, used under a lock). Subclasses give the connection and
    the SQL dialect; everything else (transactions, checks, the cached gallery) is here."""

    #: Placeholder of the dialect's parameters.
    mark = "?"
    blob_type = "BLOB"
    id_type = "INTEGER PRIMARY KEY"

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._lock = threading.RLock()
        self._cache: tuple[int, Gallery, np.ndarray] | None = None
        self._connection = None
        with self._transaction() as cursor:
            self._create(cursor)

    # ------------------------------------------------------------------------------------ dialect hooks

    def _connect(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _errors(self) -> tuple[type[BaseException], ...]:
        """The driver's errors that mean "the database is unavailable"."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _begin(self, cursor, write: bool) -> None:
        cursor.execute("BEGIN")

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.mark)

    # ---------------------------------------------------------------------------------------- plumbing

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        """A cursor inside one transaction: committed when the block ends, rolled back on any error. Driver errors
        that mean the database is gone become :class:`StoreUnavailable` (the connection is dropped and made again
        on the next call)."""
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._connect()
                cursor = self._connection.cursor()
                self._begin(cursor, write)
                try:
                    yield cursor
                except BaseException:
                    self._connection.rollback()
                    raise
                self._connection.commit()
            except self._errors() as error:
                self._drop_connection()
                raise StoreUnavailable(f"gallery {self.display_uri}: {str(error).strip().splitlines()[0]}") from None

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._connection = None

    @property
    def display_uri(self) -> str:
        """The URI without a password."""
        if "@" in self.uri and "://" in self.uri:
            scheme, rest = self.uri.split("://", 1)
            credentials, host = rest.rsplit("@", 1)
            return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"
        return self.uri

    def _create(self, cursor) -> None:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS faces (id {self.id_type}, name TEXT NOT NULL, "
                       f"source TEXT NOT NULL, embedding {self.blob_type} NOT NULL, thumbnail {self.blob_type}, "
                       "created DOUBLE PRECISION NOT NULL)")
        cursor.execute("CREATE INDEX IF NOT EXISTS faces_name ON faces (name)")
        cursor.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        cursor.execute("CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY, generation BIGINT NOT NULL)")
        cursor.execute(self._sql("INSERT INTO state (id, generation) VALUES (1, 0) ON CONFLICT (id) DO NOTHING"))
        cursor.execute(self._sql("INSERT INTO meta (key, value) VALUES ('format', ?) ON CONFLICT (key) DO NOTHING"),
                       (str(STORE_FORMAT),))
        cursor.execute("SELECT value FROM meta WHERE key = 'format'")
        stored = cursor.fetchone()[0]
        if stored != str(STORE_FORMAT):
            raise StoreError(f"gallery {self.display_uri} has format {stored}; this version reads {STORE_FORMAT}")

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def __enter__(self) -> "FaceStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- contents

    def info(self) -> dict[str, Any]:
        """``{"uri", "model", "dimension", "faces", "people", "generation"}``."""
        with self._transaction(write=False) as cursor:
            cursor.execute("SELECT key, value FROM meta")
            meta = dict(cursor.fetchall())
            cursor.execute("SELECT COUNT(*), COUNT(DISTINCT name) FROM faces")
            faces, people = cursor.fetchone()
            cursor.execute("SELECT generation FROM state WHERE id = 1")
            generation = cursor.fetchone()[0]
        return {"uri": self.display_uri, "model": meta.get("model"),
                "dimension": int(meta["dimension"]) if "dimension" in meta else None,
                "faces": int(faces), "people": int(people), "generation": int(generation)}

    def __len__(self) -> int:
        return self.info()["faces"]

    def people(self) -> dict[str, int]:
        """Faces per identity, by name."""
        with self._transaction(write=False) as cursor:
            cursor.execute("SELECT name, COUNT(*) FROM faces GROUP BY name ORDER BY name")
            return {str(name): int(count) for name, count in cursor.fetchall()}

    def faces(self, name: str | None = None, limit: int | None = None, offset: int = 0) -> list[FaceEntry]:
        """The enrolled faces (of ``name`` only, when given), oldest first: ``limit`` of them (all when None) after
        the first ``offset``."""
        where, parameters = ("", []) if name is None else (" WHERE name = ?", [name])
        page = " LIMIT ? OFFSET ?" if limit is not None else ""
        parameters += [int(limit), int(offset)] if limit is not None else []
        with self._transaction(write=False) as cursor:
            cursor.execute(self._sql("SELECT id, name, source, created, thumbnail IS NOT NULL FROM faces" + where
                                     + " ORDER BY id" + page), parameters)
            return [FaceEntry(int(i), str(n), str(s), float(c), bool(t)) for i, n, s, c, t in cursor.fetchall()]

    def thumbnail(self, face_id: int) -> bytes | None:
        """The JPEG thumbnail stored with a face; None when it has none. StoreError for an unknown face."""
        with self._transaction(write=False) as cursor:
            cursor.execute(self._sql("SELECT thumbnail FROM faces WHERE id = ?"), (int(face_id),))
            row = cursor.fetchone()
        if row is None:
            raise StoreError(f"face {face_id} is not in the gallery")
        return None if row[0] is None else bytes(row[0])

    # ---------------------------------------------------------------------------------------------- writes

    def _bind(self, cursor, model: str | None, dimension: int) -> None:
        """Inside a write: the store's model and dimension are these (set on the first enrolment)."""
        cursor.execute("SELECT key, value FROM meta WHERE key IN ('model', 'dimension')")
        meta = dict(cursor.fetchall())
        if "dimension" in meta and int(meta["dimension"]) != dimension:
            raise StoreError(f"gallery {self.display_uri} holds {meta['dimension']}-D embeddings; got {dimension}-D")
        if model is not None and meta.get("model") not in (None, model):
            raise StoreError(f"gallery {self.display_uri} holds embeddings of model {meta['model']}, not {model}")
        insert = self._sql("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
        cursor.execute(insert, ("dimension", str(dimension)))
        if model is not None:
            cursor.execute(insert, ("model", model))

    def _bump(self, cursor) -> None:
        cursor.execute("UPDATE state SET generation = generation + 1 WHERE id = 1")

    def enrol(self, names: str | Sequence[str], embeddings: np.ndarray, sources: str | Sequence[str] = "",
              thumbnails: Sequence[bytes | None] | None = None, model: str | None = None,
              replace: bool = False) -> list[int]:
        """Enrol ``embeddings`` ((n, d) or one (d,) vector) under ``names`` (one for all, or one per row), in one
        transaction: all of them or none. ``model`` names the model of the embeddings (a store holds one model's);
        ``replace`` removes every face first (same transaction). Returns the new faces' ids."""
        embeddings = as_embeddings(embeddings, "embeddings")
        count = len(embeddings)
        labels = [check_name(name) for name in Gallery._per_row(names, count, "names")]
        origins = Gallery._per_row(sources, count, "sources")
        images = list(thumbnails) if thumbnails is not None else [None] * count
        if len(images) != count:
            raise StoreError(f"thumbnails: got {len(images)} for {count} embeddings")
        now = time.time()
        insert = self._sql("INSERT INTO faces (name, source, embedding, thumbnail, created) VALUES (?, ?, ?, ?, ?) "
                           "RETURNING id")
        ids = []
        with self._transaction() as cursor:
            if replace:
                cursor.execute("DELETE FROM faces")
                cursor.execute("DELETE FROM meta WHERE key IN ('model', 'dimension')")
            self._bind(cursor, model, embeddings.shape[1])
            for label, origin, vector, image in zip(labels, origins, embeddings, images):
                cursor.execute(insert, (label, origin, vector.astype("<f4").tobytes(), image, now))
                ids.append(int(cursor.fetchone()[0]))
            self._bump(cursor)
        return ids

    def remove(self, name: str | None = None, face_id: int | None = None) -> int:
        """Remove every face of identity ``name``, or the face ``face_id``; returns how many were removed.
        StoreError when there is no such identity or face."""
        if (name is None) == (face_id is None):
            raise StoreError("remove: give a name or a face id (one of them)")
        with self._transaction() as cursor:
            if name is not None:
                cursor.execute(self._sql("DELETE FROM faces WHERE name = ?"), (name,))
            else:
                cursor.execute(self._sql("DELETE FROM faces WHERE id = ?"), (int(face_id),))
            removed = cursor.rowcount
            if removed == 0:
                raise StoreError(f"{'identity ' + repr(name) if name is not None else f'face {face_id}'} is not in "
                                 "the gallery")
            self._bump(cursor)
        return int(removed)

    # -------------------------------------------------------------------------------------------- search

    def gallery(self) -> tuple[Gallery, np.ndarray]:
        """The store as a :class:`Gallery` and the face id of each of its rows, read again only when the store
        changed (its generation moved)."""
        with self._transaction(write=False) as cursor:
            cursor.execute("SELECT generation FROM state WHERE id = 1")
            generation = int(cursor.fetchone()[0])
            if self._cache is not None and self._cache[0] == generation:
                return self._cache[1], self._cache[2]
            cursor.execute("SELECT key, value FROM meta")
            meta = dict(cursor.fetchall())
            cursor.execute("SELECT id, name, source, embedding FROM faces ORDER BY id")
            rows = cursor.fetchall()
        dimension = int(meta["dimension"]) if "dimension" in meta else None
        gallery = Gallery(dim=dimension, metadata={"model": meta["model"]} if "model" in meta else None)
        ids = np.asarray([row[0] for row in rows], np.int64)
        if rows:
            vectors = np.frombuffer(b"".join(bytes(row[3]) for row in rows), "<f4").reshape(len(rows), -1)
            gallery.add([row[1] for row in rows], vectors, [row[2] for row in rows])
        self._cache = (generation, gallery, ids)
        return gallery, ids

    def search(self, probes: np.ndarray, k: int = 1, index: str = "exact") -> Matches:
        """The ``k`` nearest identities of each probe (see :meth:`facenet_tf.recognition.Gallery.search`);
        StoreError when the store is empty or the probes have another dimension."""
        gallery, _ = self.gallery()
        try:
            return gallery.search(probes, k=k, index=index)
        except ValueError as error:
            raise StoreError(str(error)) from None


class SQLiteStore(FaceStore):
    """The embedded default: one SQLite file in WAL mode (see the module docstring)."""

    #: How long a writer waits for another process's write to finish before giving up (StoreUnavailable).
    busy_timeout_s = 10.0

    def __init__(self, uri: str, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"gallery '{self.path}' is a folder, not a database file")
        if not self.path.parent.is_dir():
            raise StoreError(f"gallery '{self.path}': folder '{self.path.parent}' does not exist")
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb") as handle:
                if handle.read(16) != b"SQLite format 3\x00":
                    raise StoreError(f"gallery '{self.path}' is not an SQLite database")
        super().__init__(uri)

    def _connect(self):
        connection = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                                     check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    def _errors(self):
        return (sqlite3.OperationalError,)

    def _begin(self, cursor, write: bool) -> None:
        # a writer takes the write lock at once (no deadlock upgrading a read lock); a reader reads one snapshot
        cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")


class PostgresStore(FaceStore):
    """A gallery in PostgreSQL (psycopg 3), selected by a ``postgresql://`` URI."""

    mark = "%s"
    blob_type = "BYTEA"
    id_type = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    connect_timeout_s = 5

    def __init__(self, uri: str) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreError("a postgresql:// gallery needs psycopg: pip install 'facenet-tf[serve]'") from None
        super().__init__(uri)

    def _connect(self):
        import psycopg

        return psycopg.connect(self.uri, connect_timeout=self.connect_timeout_s)

    def _errors(self):
        import psycopg

        return (psycopg.OperationalError, psycopg.InterfaceError)

    def _begin(self, cursor, write: bool) -> None:
        # psycopg opens the transaction by itself; reads see one snapshot, writers queue on the state row
        if not write:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def _create(self, cursor) -> None:
        # two processes creating the tables at once: one waits for the other
        cursor.execute("SELECT pg_advisory_xact_lock(2026120601)")
        super()._create(cursor)


def open_store(uri: str) -> FaceStore:
    """The store at ``uri`` (see the module docstring), created when new. StoreError naming the URI when it is
    none of the accepted forms or not a gallery; StoreUnavailable when the database cannot be reached."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if not path or path.endswith("/"):
            raise StoreError(f"gallery '{uri}' names no file; {URI_HELP}")
        return SQLiteStore(uri, path)
    if uri.startswith(("postgresql://", "postgres://")):
        return PostgresStore(uri)
    raise StoreError(f"gallery '{uri}' is not a gallery URI; {URI_HELP}")


def import_npz(npz: str | os.PathLike, uri: str, overwrite: bool = False) -> dict[str, Any]:
    """Copy a ``.npz`` gallery (``facenet_tf.recognition.Gallery.save``) into the store at ``uri``, in one
    transaction. Refuses (StoreError) a store that already holds faces unless ``overwrite`` (which replaces them).
    Returns ``{"faces", "people", "model", "to"}``."""
    gallery = Gallery.load(npz)  # ValueError naming the file
    if not len(gallery):
        raise StoreError(f"'{npz}' holds no faces; nothing to import")
    model = gallery.metadata.get("model")
    model = model.replace("/", "@") if model else None
    with open_store(uri) as store:
        held = len(store)
        if held and not overwrite:
            raise StoreError(f"gallery {store.display_uri} already holds {held} face(s); pass --overwrite to "
                             "replace them")
        store.enrol(gallery.names.tolist(), gallery.embeddings, gallery.sources.tolist(), model=model,
                    replace=overwrite)
        return {"faces": len(gallery), "people": len(gallery.identities), "model": model, "to": store.display_uri}
