"""All-or-nothing writes: one file (`atomic_path`) or a whole set of files (`output_set`).

`train` writes four files into `--out` and `export` eleven; the runtime, the tests and the Pi
bundle read them there, by name (`models/mnist_int8.tflite` beside its card
`models/mnist_int8.json`). A set is switched in with one atomic step:

1. `--out` is locked (`fcntl.flock` on `--out/.mnist-edge.lock`), so a second train or export
   into the same folder stops at once with a message naming the process that holds it;
2. the writer fills an empty staging folder `.<out>.new-XXXX` beside `--out`;
3. every other entry of `--out` (the other stage's files, anything of yours) is hard-linked
   into the staging folder, which is now the complete new `--out`;
4. one `renameat2(RENAME_EXCHANGE)` swaps the two folders: a reader opening
   `models/mnist_int8.tflite` gets the old set or the new one, never a mix;
5. the old folder, now under the staging name, is removed.

A failed or killed run leaves `--out` as it was: at worst a staging folder, removed by the
next run once it holds the lock. A full disk fails in step 2, before `--out` is touched.

Where the exchange cannot be used (not Linux, a filesystem without it, `--out` holding
folders of its own, `--out` being the current folder, or a parent folder we cannot write),
the files are renamed into place one by one after all of them are complete: each file is
atomic, the set is not.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so no lock (the set switch still works file by file)
    fcntl = None

LOCK_NAME = ".mnist-edge.lock"
# Errors that mean "the disk cannot take the new files": one line, the previous set intact.
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
# Tests kill the process at a named step of the switch to check what a kill leaves behind.
KILL_AT_ENV = "MNIST_EDGE_TEST_KILL_AT"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_held_locks: dict[str, int] = {}  # folders this process has locked, and how many times


class OutputError(Exception):
    """The output folder cannot take the new set (locked, not writable, disk full); one line."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success rename it over `final`.

    The temporary file keeps the final suffix because some writers (Keras `.keras`,
    matplotlib) choose their format from it. On an error the temporary file is removed.
    """
    final = Path(final)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{final.name}.", suffix=f".tmp{final.suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; keep the usual mode
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(final: str | Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _checkpoint(step: str) -> None:
    if os.environ.get(KILL_AT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def output_lock(out: Path, command: str) -> Iterator[None]:
    """Hold `out`'s lock (creating `out` if needed) for the block; re-entrant in a process.

    If this call created `out` (and maybe its parents) and the block fails leaving them
    empty, they are removed again: a failed command leaves no empty output folder behind.
    """
    created = _make_folder(out)
    key = os.path.realpath(out)
    if key in _held_locks:
        _held_locks[key] += 1
        try:
            yield
        finally:
            _held_locks[key] -= 1
        return
    fd = _acquire(out / LOCK_NAME, out, command)
    _held_locks[key] = 1
    try:
        yield
    except BaseException:
        _release(out / LOCK_NAME, fd)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
        raise
    else:
        _release(out / LOCK_NAME, fd)
    finally:
        del _held_locks[key]


@contextlib.contextmanager
def output_set(out: str | Path, command: str) -> Iterator[Path]:
    """Lock `out`, yield an empty staging folder, and when the block succeeds switch what it
    wrote into `out` in one atomic step (see the module docstring). Files in `out` that the
    block did not write stay as they are."""
    out = Path(out)
    with output_lock(out, command):
        _remove_stale_staging(out)
        staging = _make_staging(out)
        try:
            try:
                yield staging
                _fsync_files(staging)
            except BaseException as error:
                disk = _disk_error_in_chain(error)
                if disk is None:
                    raise
                reason = disk.strerror or str(disk)
                raise OutputError(
                    f"{out}: cannot write the new files ({reason}); the previous files are "
                    "unchanged"
                ) from None
            _checkpoint("staged")
            try:
                _switch(staging, out)
            except OSError as error:
                raise OutputError(
                    f"{out}: cannot switch the new files in ({error.strerror or error})"
                ) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _make_folder(out: Path) -> list[Path]:
    """Create `out` and its missing parents; the folders created, innermost first."""
    missing = []
    for folder in (out, *out.parents):
        if folder.exists():
            break
        missing.append(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{out}: exists and is not a folder") from None
    except OSError as error:
        raise OutputError(f"{out}: cannot create output folder ({error.strerror})") from None
    return missing


def _acquire(lock_path: Path, out: Path, command: str) -> int:
    """flock the lock file, and make sure it is still the file at that path (a finishing
    holder removes it; a lock on the removed file would exclude no one)."""
    for _ in range(100):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is None:
                return fd
        except OSError as error:
            raise OutputError(f"{out}: output folder is not writable ({error.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise OutputError(
                f"{out}: {holder} is writing into this folder; wait for it to finish or "
                "choose another --out"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            note = f"mnist-edge {command} (pid {os.getpid()}, started {started})\n".encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, note, 0)
            return fd
        os.close(fd)
    raise OutputError(f"{out}: cannot take the lock {lock_path}")


def _release(lock_path: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        lock_path.unlink()  # before unlocking: a waiting process then sees it gone and retries
    os.close(fd)


def _staging_prefix(out: Path) -> str:
    return f".{out.resolve().name}.new-"


def _remove_stale_staging(out: Path) -> None:
    """Staging folders of killed runs: ours beside `out`, the older `.export-*` inside it.
    Called with the lock held, so no other run is using them."""
    real = out.resolve()
    stale = list(real.parent.glob(_staging_prefix(out) + "*")) + list(real.glob(".new-*"))
    stale += list(real.glob(".export-*"))
    for folder in stale:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)


def _make_staging(out: Path) -> Path:
    real = out.resolve()
    if os.access(real.parent, os.W_OK | os.X_OK):
        try:
            return Path(tempfile.mkdtemp(prefix=_staging_prefix(out), dir=real.parent))
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix=".new-", dir=real))


def _fsync_files(folder: Path) -> None:
    """The new files on disk before they are switched in (a power cut must not leave empty
    files at the final names)."""
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _switch(staging: Path, out: Path) -> None:
    real = out.resolve()
    new_names = sorted(p.name for p in staging.iterdir())
    if _can_exchange(staging, real):
        for entry in real.iterdir():
            if entry.name not in new_names:
                os.link(entry, staging / entry.name, follow_symlinks=False)
        os.chmod(staging, real.stat().st_mode & 0o7777)
        _checkpoint("linked")
        if _exchange(staging, real):
            _checkpoint("switched")
            _fsync_folder(real.parent)
            return  # the old set is now in `staging`, removed by the caller
    for name in new_names:  # one by one: each file atomic, the set not
        os.replace(staging / name, real / name)
        _checkpoint(f"renamed {name}")
    _fsync_folder(real)


def _can_exchange(staging: Path, real_out: Path) -> bool:
    return (
        sys.platform.startswith("linux")
        and staging.parent == real_out.parent
        and os.path.realpath(os.getcwd()) != str(real_out)
        and not any(e.is_dir() and not e.is_symlink() for e in real_out.iterdir())
    )


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux renameat2); False where that is not supported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without it
        return False
    if renameat2(_AT_FDCWD, bytes(a), _AT_FDCWD, bytes(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV, errno.EBUSY, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _disk_error_in_chain(error: BaseException) -> OSError | None:
    """A disk error wrapped by a library (Keras, matplotlib) in an exception of its own."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_ERRORS:
            return error
        error = error.__cause__ or error.__context__
    return None
