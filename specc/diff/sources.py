"""The two sides of a diff: a spec file, a spec at a git revision, or a compiled dataset.

``open_side(arg)`` decides which, in this order:

1. a directory holding ``manifest.json`` is a compiled dataset;
2. an existing file is a spec file, or a document an importer reads (``.md``: the Model Spec
   markup, ``specc.importers``), imported on the fly;
3. ``REV:path`` where ``REV`` is a commit of the git repository around the current directory
   is the spec (or document) ``path`` at that revision. As with ``git show``, ``path`` is relative to the
   repository root, or to the current directory when written ``REV:./path``. Its imports are
   read from the same revision (stdlib imports come from the installed specc).

Anything else is a :class:`DiffError` with a message for the user (the CLI exits 1).
"""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from specc.diagnostics import Diagnostic, SourceCache
from specc.diff.model import SideInfo
from specc.emit.manifest import Manifest, ManifestError, read_manifest
from specc.files import MAX_SPEC_BYTES, SpecReadError, decode_spec, name_too_long, read_spec
from specc.importers import ImportProblem, convert_text, format_for, is_importable
from specc.ir.model import Spec
from specc.ir.resolve import Reader, load, load_text


class DiffError(Exception):
    """A side cannot be opened. ``diagnostics`` are the spec's errors, if that is why."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None,
                 sources: SourceCache | None = None):
        super().__init__(message)
        self.diagnostics = diagnostics or []
        self.sources = sources or SourceCache()


@dataclass(frozen=True)
class SpecSide:
    info: SideInfo
    spec: Spec


@dataclass(frozen=True)
class DatasetSide:
    info: SideInfo
    path: Path
    manifest: Manifest


Side = SpecSide | DatasetSide


def document_id(arg: str) -> str | None:
    """The spec id a document ``arg`` (a path or ``REV:path``) imports under by default, or None
    for anything that is not a document an importer reads."""
    module = format_for(arg)
    return module.default_id(Path(Path(arg).name.rpartition(":")[2])) if module else None


def open_side(arg: str, cwd: Path | None = None, spec_id: str | None = None) -> Side:
    """``spec_id``: the id a document (``.md``) is imported under (default: from its file name)."""
    cwd = Path(cwd or Path.cwd())
    path = cwd / arg
    too_long = name_too_long(path)  # no such file (pathlib would raise): maybe a REV:path
    if too_long is None and path.is_dir():
        if (path / "manifest.json").is_file():
            return open_dataset(path, arg)
        raise DiffError(f"{arg}: a directory, but not a compiled dataset (it has no manifest.json)")
    if too_long is None and path.is_file():
        if is_importable(path):
            try:
                text = read_spec(path)
            except (OSError, UnicodeDecodeError) as e:
                raise DiffError(f"{arg}: cannot read: {e}") from None
            return _spec_side(_imported(text, arg, path, spec_id), SideInfo(kind="spec", source=arg))
        return _spec_side(load(path), SideInfo(kind="spec", source=arg))
    rev, sep, rel = arg.partition(":")
    if sep and rev and rel:
        repo = git_toplevel(cwd)
        if repo is None:
            raise DiffError(f"{arg}: no such file; and as REV:path it needs a git repository around "
                            f"the current directory")
        sha = resolve_revision(repo, rev)
        if sha is None:
            raise DiffError(f"{arg}: `{rev}` is not a revision of the git repository at {repo}")
        return open_git(repo, rev, sha, rel, cwd, spec_id)
    raise DiffError(f"{arg}: " + (f"not a file name ({too_long})" if too_long else
                                  "no such file, dataset directory or REV:path"))


def _imported(text: str, shown: str, path: Path, spec_id: str | None = None):
    """A document in another format, imported and loaded as the spec it becomes."""
    module = format_for(path)
    try:
        imported = convert_text(text, shown, spec_id or module.default_id(path), module.default_version(path))
    except ImportProblem as e:
        raise DiffError(str(e)) from None
    return load_text(imported.text, str(path.with_name(imported.name)))


def _spec_side(result, info: SideInfo) -> SpecSide:
    if not result.ok:
        raise DiffError(f"{info.source}: {len(result.errors)} error(s); fix them first "
                        f"(see `specc check`)", result.errors, result.sources)
    s = result.spec
    return SpecSide(SideInfo(kind=info.kind, source=info.source, id=s.id, version=s.version, hash=s.hash), s)


# -- git -------------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)


def git_toplevel(cwd: Path) -> Path | None:
    try:
        p = _git(cwd, "rev-parse", "--show-toplevel")
    except FileNotFoundError:  # git is not installed
        return None
    if p.returncode != 0:
        return None
    return Path(p.stdout.decode().strip()).resolve()


def resolve_revision(repo: Path, rev: str) -> str | None:
    if rev.startswith("-"):
        return None
    p = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    return p.stdout.decode().strip() if p.returncode == 0 else None


class GitReader(Reader):
    """Reads files under the repository root from one commit; files elsewhere (the stdlib)
    from disk. Paths are the files' would-be locations in the working tree."""

    on_disk = False  # paths name blobs of a commit, not files of the working tree

    def __init__(self, repo: Path, rev: str, sha: str):
        self.repo, self.rev, self.sha = repo, rev, sha

    def _rel(self, path: Path) -> str | None:
        try:
            return PurePosixPath(Path(os.path.normpath(path)).relative_to(self.repo)).as_posix()
        except ValueError:
            return None

    def read(self, path: Path) -> str:
        rel = self._rel(path)
        if rel is None:
            return super().read(path)
        size = _git(self.repo, "cat-file", "-s", f"{self.sha}:{rel}")
        if size.returncode != 0:
            raise FileNotFoundError(f"{self.rev}:{rel}")
        if int(size.stdout.decode().strip() or 0) > MAX_SPEC_BYTES:  # refused before it is read whole
            raise SpecReadError(errno.EFBIG, f"larger than the limit of {MAX_SPEC_BYTES // (1024 * 1024)} MiB for a "
                                "spec file", f"{self.rev}:{rel}")
        p = _git(self.repo, "cat-file", "blob", f"{self.sha}:{rel}")
        if p.returncode != 0:
            raise FileNotFoundError(f"{self.rev}:{rel}")
        return decode_spec(p.stdout)  # the same decoder as for files: a BOM reads the same

    def identity(self, path: Path) -> str:
        return os.path.normpath(path)  # a blob of a commit: no symlink to follow on disk

    def display(self, path: Path) -> str:
        rel = self._rel(path)
        return super().display(path) if rel is None else f"{self.rev}:{rel}"

    def resolve(self, path: Path) -> Path:
        return Path(os.path.normpath(path if path.is_absolute() else self.repo / path))


def open_git(repo: Path, rev: str, sha: str, rel: str, cwd: Path, spec_id: str | None = None) -> SpecSide:
    if rel.startswith(("./", "../")) or rel in (".", ".."):
        target = Path(os.path.normpath(cwd.resolve() / rel))
    else:
        target = Path(os.path.normpath(repo / rel))
    reader = GitReader(repo, rev, sha)
    shown = f"{rev}:{rel}"
    relpath = reader._rel(target)
    if relpath is None:
        raise DiffError(f"{shown}: the path is outside the git repository at {repo}")
    if _git(repo, "cat-file", "-e", f"{sha}:{relpath}").returncode != 0:
        hint = ""
        if not rel.startswith("./") and Path(cwd).resolve() != repo:
            hint = (f" (after `:` a path is relative to the repository root; "
                    f"write {rev}:./{rel} for one relative to the current directory)")
        raise DiffError(f"{shown}: {rev} has no file {relpath}{hint}")
    if is_importable(target):
        try:
            text = reader.read(target)
        except (OSError, UnicodeDecodeError) as e:
            raise DiffError(f"{shown}: cannot read: {e}") from None
        return _spec_side(_imported(text, shown, target, spec_id), SideInfo(kind="git", source=shown))
    return _spec_side(load(target, reader), SideInfo(kind="git", source=shown))


# -- datasets --------------------------------------------------------------------------------


def open_dataset(path: Path, shown: str) -> DatasetSide:
    """A compiled dataset, its manifest validated (:func:`specc.emit.manifest.read_manifest`)."""
    try:
        manifest = read_manifest(path / "manifest.json")
    except ManifestError as e:
        raise DiffError(str(e)) from None
    spec = manifest.spec
    info = SideInfo(kind="dataset", source=shown, id=spec.id, version=spec.version, hash=spec.hash)
    return DatasetSide(info, path, manifest)
