"""Writing outputs: every file a command writes goes through here.

Rules 1 to 3 hold for the command line and for the Python API (``Calibrator.save``,
``calibrate.report.write_report``); rule 4 is the commands' multi-file writer:

1. An output is a regular file or a new path. A directory, FIFO, device or socket is
   refused; a symbolic link is followed to the file it names (a dangling link is refused).
2. An output is never one of the command's inputs (compared as files with
   ``os.path.samefile``, so hard links and symbolic links are caught) and never named twice.
3. Only the files named are written, plus hidden temporaries that are gone when the
   command ends (also on an error, on SIGINT and on SIGTERM).
4. All outputs of one command are written as a unit (``write_outputs``):

   a. each file is written to a temporary ``.NAME.XXXXXXXX.tmp`` in its target's
      directory and fsynced;
   b. with more than one output, a journal ``.NAME0.calibrate-journal`` (NAME0: the first
      output) listing every target with its temporary and backup names is written and
      fsynced;
   c. every existing target is renamed to its backup ``.NAME.XXXXXXXX.old`` (phase 1), then
      every temporary is renamed to its target (phase 2), each directory fsynced;
   d. the journal is rewritten as "committed" (the commit point), then the backups and
      the journal are removed.

   SIGINT and SIGTERM are held during c and d (they take effect right after), and an
   error during c undoes it (the backups are renamed back). So at no moment is an old
   output beside a new one of the same set: a reader sees the old set, the new set, or
   an incomplete set with the journal beside it. After a hard kill (SIGKILL, power loss)
   the journal remains; the next write of the same set, or ``recover(journal)``, rolls
   it back to the old set before anything else (or, past the commit point, only removes
   the leftover backups). A journal left by a live process is not
   touched: that write is refused ("being written by process N").
   A single output needs no journal: one rename is atomic.

5. ``write_atomic`` writes one file the same way (temporary, fsync, rename) without
   touching the process's signal handlers or mask: it is the Python API's writer
   (``Calibrator.save``), for applications that install their own handlers. Its
   temporary is removed on any error or exception raised while it writes.

Every failure is an :class:`~calibrate._core.validation.InputError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import signal
import socket
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from calibrate._core.validation import InputError

JOURNAL_SUFFIX = ".calibrate-journal"
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(SystemExit):
    """Raised in the main thread when SIGTERM arrives while outputs are being written."""

    def __init__(self):
        super().__init__(EXIT_SIGTERM)


def _fail(path, msg):
    raise InputError(f"{path}: {msg}")


# ------------------------------------------------------------------ checking
def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_output(path, inputs: Iterable = ()) -> Path:
    """The real path ``path`` will be written to, after checking rules 1 and 2.

    Raises InputError (naming the path) when the output cannot or must not be written.
    """
    raw = os.fspath(path)
    if not raw:
        _fail("output", "empty file name; give a file name")
    if raw.endswith(os.sep):
        _fail(raw, "names a directory (trailing '/'); give a file name")
    p = Path(raw)
    if p.is_symlink():
        target = Path(os.path.realpath(p))
        if not target.exists():
            _fail(raw, f"is a symbolic link to '{target}', which does not exist; give a file name")
        p = target
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as e:
        _fail(raw, f"cannot check the output ({e.strerror or e})")
    if st is not None and not stat.S_ISREG(st.st_mode):
        _fail(raw, f"is {_kind(st.st_mode)}, not a regular file; outputs are only written to a "
                   "new path or over a regular file: give a file name")
    if st is not None:
        for inp in inputs:
            if inp is None:
                continue
            try:
                same = os.path.samefile(p, inp)
            except OSError:
                continue
            if same:
                how = "" if os.path.abspath(raw) == os.path.abspath(os.fspath(inp)) else f" ('{inp}', the same file)"
                _fail(raw, f"is also an input{how}; writing it would destroy the input: give another output name")
    parent = p.parent
    if not parent.exists():
        _fail(raw, f"cannot write: directory '{parent}' does not exist")
    if not parent.is_dir():
        _fail(raw, f"cannot write: '{parent}' is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        _fail(raw, f"cannot write: directory '{parent}' is not writable")
    return Path(os.path.abspath(p))


def check_outputs(paths: Iterable, inputs: Iterable = ()) -> list[Path]:
    """check_output for each path, and no file named twice. Returns the real paths."""
    inputs = [i for i in inputs if i is not None]
    raw = [p for p in paths if p is not None]
    real = [check_output(p, inputs) for p in raw]
    seen: dict[str, str] = {}
    for r, p in zip(real, raw):
        key = os.path.normcase(str(r))
        if key in seen:
            _fail(p, f"is named twice as an output (also as '{seen[key]}'); give each output its own name")
        seen[key] = os.fspath(p)
    return real


# ------------------------------------------------------------------ signals
@contextlib.contextmanager
def _signals_raise():
    """SIGTERM raises Terminated (exit 143) and SIGINT KeyboardInterrupt, so ``finally``
    blocks run and temporaries are removed. Main thread only; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        raise Terminated()

    old_term = signal.signal(signal.SIGTERM, on_term)
    old_int = signal.getsignal(signal.SIGINT)
    if old_int in (signal.SIG_DFL, None):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if old_int in (signal.SIG_DFL, None):
            signal.signal(signal.SIGINT, old_int or signal.SIG_DFL)


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM are held (delivered when the block ends)."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# ------------------------------------------------------------------ low level
_FULL = {errno.ENOSPC: "free some space on that disk or write to another one",
         errno.EDQUOT: "free some of your disk quota or write to another disk",
         errno.EFBIG: "the file is too large for that file system: write to another one"}


def _why(e: OSError) -> str:
    """The cause of a failed write."""
    return e.strerror or str(e) or type(e).__name__


def _fix(e: OSError) -> str:
    """What to do, for a disk that is full ("" otherwise)."""
    return f"; {_FULL[e.errno]}" if e.errno in _FULL else ""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _hidden(target: Path, tag: str, suffix: str) -> Path:
    return target.with_name(f".{target.name[:80]}.{tag}{suffix}")


def _write_temp(target: Path, content, tag: str) -> Path:
    tmp = _hidden(target, tag, ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode("utf-8") if isinstance(content, str) else bytes(content))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)  # keep the permissions of a file replaced
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _journal_path(target: Path) -> Path:
    return target.with_name(f".{target.name[:80]}{JOURNAL_SUFFIX}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(journal) -> bool:
    """Finish the interrupted output set of ``journal``. Returns True if it did anything.

    Before the commit point (the journal says "writing") the old set is restored: every
    backup goes back over its target and the new files are removed. After it ("committed")
    the new set stays and the leftover backups are removed. Refuses (InputError) when the
    process that wrote the journal is still running on this machine.
    """
    journal = Path(journal)
    try:
        rec = json.loads(journal.read_text(encoding="utf-8"))
        entries, phase = rec["entries"], rec["phase"]
        pid, host = int(rec["pid"]), str(rec["host"])
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError) as e:
        _fail(journal, f"unreadable output journal ({e}); check the files it names, then remove it")
    if host == socket.gethostname() and pid != os.getpid() and _pid_alive(pid):
        _fail(journal, f"these outputs are being written by process {pid} now; wait for it to finish")
    for e in entries:
        target, tmp, backup = Path(e["target"]), Path(e["tmp"]), Path(e["backup"])
        if phase == "writing":
            if backup.exists():
                os.replace(backup, target)
            elif not e["existed"] and not tmp.exists() and target.exists():
                os.unlink(target)  # a file of the unfinished new set
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(backup)
    for d in {Path(e["target"]).parent for e in entries}:
        _fsync_dir(d)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal)
    _fsync_dir(journal.parent)
    return True


def _write_journal(journal: Path, rec: dict, exclusive: bool) -> None:
    """The journal, fsynced. Rewritten (phase "committed") by an atomic rename."""
    path = journal if exclusive else journal.with_name(journal.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(rec, fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:  # a disk that fills up: no partial journal is left (ours: just created)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    if not exclusive:
        os.replace(path, journal)
    _fsync_dir(journal.parent)


# ------------------------------------------------------------------ the unit
Content = str | bytes | Callable


def write_outputs(outputs: Mapping, inputs: Iterable = ()) -> list[Path]:
    """Write ``outputs`` ({path: str | bytes | callable(binary file)}) as one unit.

    See the module docstring for the rules and the commit protocol. ``inputs``: the
    paths the command read, none of which may be overwritten. Returns the real paths.
    """
    items = list(outputs.items())
    targets = check_outputs([p for p, _ in items], inputs)
    journal = _journal_path(targets[0]) if len(targets) > 1 else None
    for t in targets:  # an earlier hard-killed write of one of these files
        j = _journal_path(t)
        if j.exists():
            recover(j)
    tag = secrets.token_hex(4)
    temps: list[Path] = []
    with _signals_raise():
        try:
            for (raw, content), t in zip(items, targets):
                try:
                    temps.append(_write_temp(t, content, tag))
                except OSError as e:
                    _fail(raw, f"cannot write ({_why(e)}){_fix(e)}")
            with _signals_held():
                _commit(items, targets, temps, journal, tag)
        except BaseException:
            for tmp in temps:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise
    return targets


def _commit(items, targets, temps, journal, tag):
    if journal is None:
        try:
            os.replace(temps[0], targets[0])
        except OSError as e:
            _fail(items[0][0], f"cannot write ({_why(e)}){_fix(e)}")
        _fsync_dir(targets[0].parent)
        return
    entries = [{"target": str(t), "tmp": str(tmp), "backup": str(_hidden(t, tag, ".old")), "existed": t.exists()}
               for t, tmp in zip(targets, temps)]
    rec = {"format": "calibrate.output-journal", "phase": "writing", "pid": os.getpid(),
           "host": socket.gethostname(), "entries": entries}
    try:
        _write_journal(journal, rec, exclusive=True)
    except FileExistsError:
        _fail(items[0][0], f"the output journal '{journal}' appeared meanwhile: another process is "
                           "writing these outputs; wait for it to finish")
    except OSError as e:
        _fail(items[0][0], f"cannot write ({_why(e)}){_fix(e)}")
    dirs = {t.parent for t in targets}
    moved: list[dict] = []
    placed: list[dict] = []
    try:
        for e in entries:  # phase 1: the old set out of the way
            if e["existed"]:
                os.replace(e["target"], e["backup"])
                moved.append(e)
        for d in dirs:
            _fsync_dir(d)
        for e in entries:  # phase 2: the new set in
            os.replace(e["tmp"], e["target"])
            placed.append(e)
        for d in dirs:
            _fsync_dir(d)
        _write_journal(journal, {**rec, "phase": "committed"}, exclusive=False)  # the commit point
    except OSError as err:
        for e in placed:  # undo: the new files out, the old ones back
            with contextlib.suppress(OSError):
                os.replace(e["target"], e["tmp"])
        for e in moved:
            with contextlib.suppress(OSError):
                os.replace(e["backup"], e["target"])
        with contextlib.suppress(OSError):
            os.unlink(journal)
        _fail(items[0][0], f"cannot write the outputs ({_why(err)}); the previous files were kept{_fix(err)}")
    for e in moved:
        with contextlib.suppress(OSError):
            os.unlink(e["backup"])
    for d in dirs:
        _fsync_dir(d)
    with contextlib.suppress(OSError):
        os.unlink(journal)
    _fsync_dir(journal.parent)


def write_atomic(path, content: Content, inputs: Iterable = ()) -> Path:
    """Write one file atomically: a temporary in its directory, fsync, rename over ``path``.

    content: str (UTF-8), bytes, or callable(binary file). The checks of rules 1 and 2
    apply (never over one of ``inputs``); a journal left for ``path`` by a hard-killed
    multi-file write is recovered first. Signal handlers and the signal mask are left as
    they are. On failure the previous file is intact, the temporary is removed, and an
    InputError names the file ("PATH: cannot write (reason)"). Returns the real path.
    """
    target = check_output(path, inputs)
    journal = _journal_path(target)
    if journal.exists():
        recover(journal)
    raw = os.fspath(path)
    try:
        tmp = _write_temp(target, content, secrets.token_hex(4))
    except OSError as e:
        _fail(raw, f"cannot write ({e.strerror or e})")
    try:
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            _fail(raw, f"cannot write ({e.strerror or e})")
        raise
    _fsync_dir(target.parent)
    return target


def write_text(path, text: str, inputs: Iterable = ()) -> Path:
    return write_outputs({path: text}, inputs)[0]


def save_npz(path, inputs: Iterable = (), **arrays) -> Path:
    """np.savez_compressed as a single output (temporary file, fsync, rename)."""
    import numpy as np

    return write_outputs({path: lambda fh: np.savez_compressed(fh, **arrays)}, inputs)[0]
