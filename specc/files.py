"""Reading spec files safely, and writing files so that a crash or a full disk never leaves a
half-written one, and so that a symlink planted in an output directory never redirects a write
elsewhere.

Every spec text, wherever it comes from (a file, a git revision, a string), goes through
:func:`decode_spec`, so ``check``, ``fmt``, ``inspect`` and ``diff`` see the same text.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import stat
import uuid
from pathlib import Path


# Spec files larger than this are refused before they are read whole (docs/language.md, Limits);
# bench/frontend.py's 50,000-rule spec is 33 MB.
MAX_SPEC_BYTES = 64 * 1024 * 1024


class SpecReadError(OSError):
    """A spec file that is refused before it is read: not a regular file, or too large."""


def decode_spec(data: bytes) -> str:
    """The text of a spec file: strict UTF-8, one leading byte order mark (U+FEFF) dropped.

    Line ends ``\r\n`` and ``\r`` become ``\n`` (as Python's text mode reads them, so a file
    checked out with CRLF hashes the same); lines end at ``\n`` only (the grammar's rule):
    other separators (form feed, NEL, U+2028) are characters of a line everywhere. Raises
    ``UnicodeDecodeError``.
    """
    text = data.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def read_spec_bytes(path: Path | str, limit: int = MAX_SPEC_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, refused (:class:`SpecReadError`) when it is a
    FIFO, a device, a directory or a socket, or larger than ``limit``. Never blocks on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecReadError(errno.EINVAL, "not a regular file (a device, FIFO or directory is never read)",
                                str(path))
        if st.st_size > limit:
            raise SpecReadError(errno.EFBIG, f"larger than the limit of {limit // (1024 * 1024)} MiB for a spec file "
                                f"({st.st_size} bytes)", str(path))
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            data = f.read(limit + 1)  # a file that grows while it is read is still cut at the limit
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limit:
        raise SpecReadError(errno.EFBIG, f"larger than the limit of {limit // (1024 * 1024)} MiB for a spec file",
                            str(path))
    return data


def read_spec(path: Path | str) -> str:
    """:func:`read_spec_bytes` then :func:`decode_spec`."""
    return decode_spec(read_spec_bytes(path))


# What Linux file systems hold: a name of 255 bytes, a path of 4095 (NAME_MAX, PATH_MAX). Past
# them every call on the path fails with ENAMETOOLONG, which pathlib's is_dir() and exists()
# raise (Python 3.11) instead of answering False.
NAME_MAX, PATH_MAX = 255, 4095


def name_too_long(path: Path | str) -> str | None:
    """Why no file system can hold ``path`` (a name or the whole path over the limits), or None."""
    raw = os.fsencode(os.path.abspath(path))
    if len(raw) > PATH_MAX:
        return f"the path is {len(raw):,} bytes long; the limit is {PATH_MAX:,}"
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        return f"a name in it is {len(longest):,} bytes long; the limit is {NAME_MAX}"
    return None


def short_name(name: str) -> str:
    """``name`` cut so that a temporary name made of it (a dot, a suffix of up to 40 bytes) is
    still one the file system holds: a file named 250 bytes long can be written atomically."""
    raw = os.fsencode(name)
    return name if len(raw) <= NAME_MAX - 41 else os.fsdecode(raw[: NAME_MAX - 41])


class UnsafeWrite(OSError):
    """A write that would go through a symlink, or out of the directory it belongs to."""


def is_within(path: Path | str, root: Path | str) -> bool:
    """Whether ``path`` lies under ``root`` once both are resolved, symlinks included."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


_RENAME_EXCHANGE = 2  # linux/fs.h


@functools.lru_cache(maxsize=1)
def _renameat2():
    """libc's ``renameat2`` (glibc 2.28+, Linux), or None. Looked up once: ``find_library`` may
    run ``ldconfig``."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def exchange(a: Path | str, b: Path | str) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``): a reader sees
    one or the other at each name, never neither. False where the system or the file system
    cannot (another OS, an old kernel, some network file systems): the caller then renames in
    two steps. Other errors are raised as :class:`OSError`."""
    import ctypes

    fn = _renameat2()
    if fn is None:
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(os.path.abspath(a)), at_fdcwd, os.fsencode(os.path.abspath(b)), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


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
    tmp = target.with_name(f".{short_name(target.name)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
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


# -- text that is no Unicode ---------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value) -> bool:
    """Whether a string, or any string in a decoded JSON value, holds a lone surrogate (a
    ``"\\ud800"`` escape with no pair): valid JSON, but no Unicode text, so writing it anywhere
    as UTF-8 (a file, the store) fails."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


SURROGATE_MESSAGE = "a string holds a lone surrogate (an unpaired \\ud800-\\udfff escape): not Unicode text"


# -- JSON that specc did not write ----------------------------------------------------------------

# Deeper than any file specc writes (a record is 4 levels, an eval or diff file 6) and far below
# the depth at which Python's own recursion (json.loads, json.dumps, pydantic) gives out.
MAX_JSON_DEPTH = 64

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _deeper_than(value, limit: int) -> bool:
    """Whether a decoded JSON value nests its lists and objects deeper than ``limit``: one walk
    over its containers, no recursion."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(v, dict):
            stack.extend((c, depth + 1) for c in v.values() if isinstance(c, (dict, list)))
        elif isinstance(v, list):
            stack.extend((c, depth + 1) for c in v if isinstance(c, (dict, list)))
    return False


def validation_problem(error, top: str = "the file") -> str:
    """``where: message`` of the first problem a pydantic ``ValidationError`` names (``top`` where
    it is the whole value), for a message about a file someone else may have made."""
    first = error.errors()[0]
    return f"{'.'.join(str(x) for x in first['loc']) or top}: {first['msg']}"


def load_json(text: str):
    """``json.loads`` for a file someone else may have made (a dataset's records, a manifest, an
    eval or diff file): a :class:`ValueError` with a message for the user, never a traceback,
    where it nests deeper than :data:`MAX_JSON_DEPTH` (``RecursionError`` in Python's reader or
    later in its writer), holds an integer over Python's digit limit, or a lone surrogate."""
    try:
        value = json.loads(text)  # Python's reader gives up by itself near 1,000 levels, in linear time
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{e.msg} (line {e.lineno}, column {e.colno})") from None
    except ValueError as e:  # an integer over sys.get_int_max_str_digits()
        raise ValueError(" ".join(str(e).split(";")[0].split())) from None
    # too few brackets to nest that deep is the common case (a record line has about 20)
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    # text read as UTF-8 holds no surrogate itself: only a \\udXXX escape can make one
    if (_SURROGATE.search(text) or _SURROGATE_ESCAPE.search(text)) and lone_surrogate(value):
        raise ValueError(SURROGATE_MESSAGE)
    return value
