"""Where a build's finished directory goes: ``out_dir`` checked before any work, temporary
directories of killed builds cleaned, and the finished corpus moved into place in one step.

Free of torch and FAISS, so that the command line checks ``--out`` before importing them.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import uuid
from pathlib import Path

from ..errors import CorpusError
from .manifest import MANIFEST


def clean_stale(out: Path) -> None:
    """Remove temporary directories left by killed builds of the same out_dir."""
    for stale in out.parent.glob(f".{out.name}.building-*"):
        try:
            pid = int(stale.name.rsplit("-", 2)[-2])
            os.kill(pid, 0)  # still running: leave it
        except (ValueError, ProcessLookupError):
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:
            pass


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system does not offer it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return done == 0


def move_into_place(tmp: Path, out: Path) -> None:
    """Put the finished corpus at ``out``. An existing corpus there is swapped out in one atomic
    step where the system allows it (so ``out`` always holds a complete corpus), else by two
    renames."""
    if out.exists():
        check_out_dir(out)  # again: something may have appeared there during the build
        if exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous corpus
            return
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def check_out_dir(out_dir: str | os.PathLike) -> None:
    """Refuse an ``out_dir`` a build could not replace: a file, or a directory holding anything
    but a corpus. Checked before any work, and again before the finished corpus moves in.

    Raises:
        CorpusError: saying what is at ``out_dir``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CorpusError(
            f"{str(out)!r} is a file, not a corpus directory; choose another out_dir."
        )
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise CorpusError(
            f"{str(out)!r} exists and is not a corpus (it holds other files); refusing to "
            "replace it. Choose another out_dir."
        )
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CorpusError(f"Cannot write a corpus under {str(parent)!r}: not a writable directory.")
