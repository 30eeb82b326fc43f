"""The files of one corpus build, held open from the moment the corpus is opened.

An open :class:`~exbert_widget.corpus.Corpus` must keep serving the build it opened, even when
the same directory is rebuilt meanwhile (a build swaps the whole directory in one step and
deletes the old one). So every file is opened at once, relative to one handle on the corpus
directory (on systems that allow it), and read only through these handles afterwards: a
rebuild replaces the directory's entries, not the files held here. Files are opened without
following symbolic links and must be regular files (a FIFO would hang a read, a link could point
anywhere on the machine).

Reads use ``os.pread`` (no shared file position), so the token table, a checksum and a FAISS load
may read the same file from different threads.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import CorpusError

CHUNK = 1 << 20  # bytes per read while hashing or handing a file to FAISS
PROGRESS_FROM = 1 << 30  # bytes to verify from which a progress bar is shown (~2 s and more)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class _Reader(io.RawIOBase):
    """A read-only file over a descriptor that reads with ``os.pread`` (its own position, so
    reads elsewhere do not move it), for HDF5's file-object driver. Closed quietly when
    collected: an unclosed corpus is normal in a notebook."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._pos = 0
        self._lock = threading.Lock()  # for systems without os.pread

    def pread(self, n: int, offset: int) -> bytes:
        if hasattr(os, "pread"):
            return os.pread(self._fd, n, offset)
        with self._lock:
            os.lseek(self._fd, offset, os.SEEK_SET)
            return os.read(self._fd, n)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.pread(len(view), self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: os.fstat(self._fd).st_size}
        self._pos = base[whence] + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class HeldFile:
    """One file of a corpus, open for reading, with what the manifest says about it.

    ``name`` is its path relative to the corpus directory (what error messages show),
    ``size`` its real size when it was opened, ``record`` the manifest's ``{"size", "sha256"}``
    (None for corpora built before checksums).
    """

    def __init__(self, root: Path, name: str, handle: _Reader, record: dict | None) -> None:
        self.root = root
        self.name = name
        self.handle = handle
        self.record = record
        self.size = os.fstat(handle.fileno()).st_size
        self.verified = False  # content checked against the manifest's checksum

    def error(self, what: str) -> CorpusError:
        """A :class:`CorpusError` naming this file."""
        return CorpusError(f"{self.root / self.name}: {what}.")

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``offset`` (fewer at the end of the file)."""
        return self.handle.pread(n, offset)

    def check_size(self) -> None:
        """Refuse a file whose size is not the one the manifest recorded."""
        if self.record is not None and self.size != self.record["size"]:
            raise self.error(
                f"has {self.size} bytes where the build wrote {self.record['size']} (truncated "
                "or replaced); build the corpus again"
            )

    def verify(self) -> None:
        """Hash the whole file and compare with the manifest (once; nothing without a record)."""
        if self.record is None or self.verified:
            return
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        self.check_digest(digest.hexdigest())

    def check_digest(self, hexdigest: str) -> None:
        """Compare a SHA-256 of the whole file with the manifest's."""
        if self.record is not None and hexdigest != self.record["sha256"]:
            raise self.error(
                "does not match its checksum in the manifest (damaged, or from another "
                "build); build the corpus again"
            )
        self.verified = True

    def chunks(self) -> Iterable[bytes]:
        """The file's content from the start, in pieces of at most ``CHUNK`` bytes."""
        offset = 0
        while offset < self.size:
            chunk = self.read_at(offset, min(CHUNK, self.size - offset))
            if not chunk:
                raise self.error(f"ends at byte {offset}, before its {self.size} bytes")
            offset += len(chunk)
            yield chunk

    def streaming_reader(self) -> tuple[Callable[[int], bytes], Callable[[], None]]:
        """A ``read(n)`` callback over the whole file that hashes what it hands out, and a
        ``finish()`` that checks the whole file was read and matches its checksum."""
        state: dict[str, Any] = {"offset": 0, "digest": hashlib.sha256()}

        def read(n: int) -> bytes:
            chunk = self.read_at(state["offset"], min(n, self.size - state["offset"]))
            state["offset"] += len(chunk)
            state["digest"].update(chunk)
            return chunk

        def finish() -> None:
            if state["offset"] != self.size:
                raise self.error(f"was read to byte {state['offset']} of {self.size}")
            self.check_digest(state["digest"].hexdigest())

        return read, finish

    def close(self) -> None:
        self.handle.close()


class BuildFiles:
    """Every data file of one corpus build, held open.

    Raises:
        CorpusError: a file is missing, not a regular file, a symbolic link, unreadable, or
            (with records) of another size than the build wrote.
    """

    def __init__(self, root: Path, records: dict[str, dict | None]) -> None:
        self.root = root
        self.files: dict[str, HeldFile] = {}
        dir_fd = _open_dir(root)
        try:
            missing = []
            for name, record in records.items():
                try:
                    handle = _open_file(root, name, dir_fd)
                except FileNotFoundError:
                    missing.append(name)
                    continue
                self.files[name] = HeldFile(root, name, handle, record)
            if missing:
                raise CorpusError(
                    f"{str(root)!r} is incomplete: missing {', '.join(missing[:4])}"
                    f"{' and more' if len(missing) > 4 else ''}. Build it again."
                )
            for held in self.files.values():
                held.check_size()
        except BaseException:
            self.close()
            raise
        finally:
            if dir_fd is not None:
                os.close(dir_fd)

    def __getitem__(self, name: str) -> HeldFile:
        return self.files[name]

    def verify_all(self, progress: bool = False) -> None:
        """Hash every file and compare with the manifest (a progress bar for large corpora)."""
        todo = [held for held in self.files.values() if held.record and not held.verified]
        total = sum(held.size for held in todo)
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc="Verifying corpus",
            disable=not progress or total < PROGRESS_FROM,
        ) as bar:
            for held in todo:
                held.verify()
                bar.update(held.size)

    def close(self) -> None:
        for held in self.files.values():
            held.close()


def _open_dir(root: Path) -> int | None:
    """A handle on the corpus directory, so that every file comes from the same build; None
    where the system cannot open files relative to one."""
    if os.open not in os.supports_dir_fd or not hasattr(os, "O_DIRECTORY"):
        return None
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise CorpusError(f"{str(root)!r} cannot be opened ({exc.strerror}).") from exc


def _open_file(root: Path, name: str, dir_fd: int | None) -> _Reader:
    """Open ``name`` (relative, '/'-separated) under the corpus directory: no symbolic links,
    regular files only."""
    flags = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | getattr(os, "O_BINARY", 0)
    parts = name.split("/")
    fd = None
    try:
        if dir_fd is not None:
            parent = dir_fd
            for part in parts[:-1]:  # each directory level without following links
                step = os.open(part, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=parent)
                if parent != dir_fd:
                    os.close(parent)
                parent = step
            try:
                fd = os.open(parts[-1], flags, dir_fd=parent)
            finally:
                if parent != dir_fd:
                    os.close(parent)
        else:
            fd = os.open(root.joinpath(*parts), flags)
        info = os.fstat(fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if fd is not None:
            os.close(fd)
        what = (
            "is a symbolic link" if _is_link(root, parts) else f"cannot be opened ({exc.strerror})"
        )
        raise CorpusError(f"{root / name} {what}; a corpus holds regular files only.") from exc
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CorpusError(
            f"{root / name} is not a regular file; a corpus holds regular files only."
        )
    return _Reader(fd)


def _is_link(root: Path, parts: list[str]) -> bool:
    path = root
    for part in parts:
        path = path / part
        if path.is_symlink():
            return True
    return False
