"""Writing files so that a crash or a full disk never leaves a half-written one, and so that a
symlink planted in an output directory never redirects a write elsewhere."""

from __future__ import annotations

import errno
import os
import stat
import uuid
from pathlib import Path


class UnsafeWrite(OSError):
    """A write that would go through a symlink, or out of the directory it belongs to."""


def is_within(path: Path | str, root: Path | str) -> bool:
    """Whether ``path`` lies under ``root`` once both are resolved, symlinks included."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def write_atomic(path: Path, data: bytes, *, within: Path | None = None) -> None:
    """Replace ``path`` with ``data`` in one step: a temporary file beside it, fsync, rename.

    An existing file keeps its permission bits; a new one gets the usual (umask) mode. On any
    failure the temporary file is removed and ``path`` is left as it was. ``path`` itself may not
    be a symlink (the write is refused: following it could overwrite any file the user can write),
    and with ``within`` its directory must resolve inside ``within`` (a symlinked ``data/`` in an
    output directory is refused too).
    """
    target = Path(os.path.abspath(path))
    if target.is_symlink():
        raise UnsafeWrite(errno.EPERM, "refusing to write through a symlink (it could lead anywhere); "
                                       "remove the link first", str(path))
    if within is not None and not is_within(target.parent, within):
        raise UnsafeWrite(errno.EPERM, f"refusing to write outside {within}: the directory resolves elsewhere "
                                       "(a symlink)", str(path))
    mode = stat.S_IMODE(target.lstat().st_mode) if target.exists() else None
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
