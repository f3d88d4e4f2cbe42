"""``xentc score``: a loss over arrays stored in ``.npy``/``.npz`` files, read in chunks of rows.

A ``.npy`` file is memory-mapped; an ``.npz`` member is streamed out of the zip archive (stored or
compressed) one chunk at a time. Either way only a chunk of each array is in memory at once, so a
file larger than memory can be scored. Chunks are cut along the first axis (the samples); each
chunk goes to the public loss function with ``reduction="sum"`` and the chunk sums are added
exactly (``math.fsum``), so the mean is (sum of chunk sums) / (number of samples), as one call over
the whole array would give it, up to the rounding of each chunk sum in the computation dtype.
"""
from __future__ import annotations

import errno
import math
import os
import re
import sys
import tempfile
import time
import tokenize
import zipfile
import zlib
from typing import IO, Any, Callable, Dict, Iterator, Optional, Tuple

import numpy as np

import xentc

# loss name -> (public function, whether it takes classes on the last axis, whether it takes gamma/alpha)
LOSSES: Dict[str, Tuple[Callable[..., Any], bool, bool]] = {
    "bce": (xentc.binary_cross_entropy, False, False),
    "binary-focal": (xentc.binary_focal_loss, False, True),
    "ce": (xentc.cross_entropy, True, False),
    "focal": (xentc.focal_loss, True, True),
}

# Default chunk: about this many bytes of PRED.
CHUNK_BYTES = 32 << 20


# What reading a damaged .npy/.npz can raise (zlib.error: a corrupt compressed member).
# tokenize.TokenError: NumPy's parser of a header dictionary whose brackets do not close.
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, tokenize.TokenError)


class ScoreError(Exception):
    """A problem with the input files or their contents, reported as one line, exit status 2."""


# ---------------------------------------------------------------------------------------------
# Reading arrays in chunks of rows
# ---------------------------------------------------------------------------------------------
class ArraySource:
    """One array in a ``.npy`` file (memory-mapped) or an ``.npz`` member (streamed), read
    front to back in chunks of rows (``read(n)`` returns the next ``n`` rows)."""

    def __init__(self, role: str, path: str, key: Optional[str]) -> None:
        self.role = role  # "PRED" or "LABELS": how error messages name the argument
        self.path = path
        self._mmap: Optional[np.ndarray] = None
        self._stream: Optional[IO[bytes]] = None
        self._zip: Optional[zipfile.ZipFile] = None
        self._whole: Optional[np.ndarray] = None
        self._pos = 0
        if not os.path.exists(path):
            raise ScoreError(f"{role}: no such file: {path!r}")
        if os.path.isdir(path):
            raise ScoreError(f"{role}: {path!r} is a directory, expected a .npy or .npz file")
        try:
            with open(path, "rb") as f:
                magic = f.read(6)
            if magic[:2] == b"PK":
                self._open_npz_member(key)
            elif magic != b"\x93NUMPY":
                raise ScoreError(f"{role}: {path!r} is neither a .npy file nor an .npz archive "
                                 "(it does not start with either's signature)")
            else:
                if key is not None:
                    raise ScoreError(f"{role}: --{role.lower()}-key is only for .npz files, and {path!r} is not one")
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
                if not isinstance(arr, np.ndarray):
                    raise ScoreError(f"{role}: {path!r} does not hold one array")
                self._mmap = arr
                self.shape: Tuple[int, ...] = arr.shape
                self.dtype: np.dtype = arr.dtype
        except ScoreError:
            self.close()
            raise
        except _READ_ERRORS + (KeyError, UnicodeDecodeError) as exc:
            self.close()
            raise ScoreError(f"{role}: cannot read {path!r} as a NumPy array file ({_reason(exc)})") from None
        if self.dtype.hasobject or self.dtype.fields is not None or self.dtype.kind not in "biuf":
            self.close()
            raise ScoreError(f"{role}: {path!r} holds dtype {self.dtype}, expected a real numeric array")
        if len(self.shape) == 0:
            self.close()
            raise ScoreError(f"{role}: {path!r} holds a 0-d array, expected one row per sample")

    def _open_npz_member(self, key: Optional[str]) -> None:
        zf = zipfile.ZipFile(self.path)
        self._zip = zf
        members = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        if key is None:
            if len(members) != 1:
                raise ScoreError(f"{self.role}: {self.path!r} holds {len(members)} arrays "
                                 f"({', '.join(members) or 'none'}); choose one with --{self.role.lower()}-key")
            key = members[0]
        elif key not in members:
            raise ScoreError(f"{self.role}: {self.path!r} has no array {key!r} "
                             f"(it holds: {', '.join(members) or 'none'})")
        stream = zf.open(key + ".npy")
        self._stream = stream
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        if any(d < 0 for d in self.shape):   # read_array_header_* let it through; np.load does not
            raise ScoreError(f"{self.role}: cannot read {self.path!r} as a NumPy array file (member {key!r}: "
                             f"its header gives the shape {self.shape})")
        if fortran and len(self.shape) > 1:
            # Column-major data cannot be cut into rows while streaming: read it whole.
            data = self._read_exact(int(np.prod(self.shape)) * self.dtype.itemsize)
            self._whole = np.frombuffer(data, self.dtype).reshape(self.shape[::-1]).T

    def _read_exact(self, nbytes: int) -> bytes:
        assert self._stream is not None
        parts = []
        left = nbytes
        while left > 0:
            part = self._stream.read(left)
            if not part:
                raise ScoreError(f"{self.role}: {self.path!r} is truncated (the array data ends early)")
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def read(self, rows: int) -> np.ndarray:
        """The next ``rows`` rows (fewer at the end)."""
        start, stop = self._pos, min(self._pos + rows, self.shape[0])
        self._pos = stop
        try:
            if self._mmap is not None:
                return self._mmap[start:stop]
            if self._whole is not None:
                return self._whole[start:stop]
            row_shape = self.shape[1:]
            per_row = int(np.prod(row_shape, dtype=np.int64)) * self.dtype.itemsize
            data = self._read_exact((stop - start) * per_row)
            return np.frombuffer(data, self.dtype).reshape((stop - start,) + row_shape)
        except _READ_ERRORS as exc:
            raise ScoreError(f"{self.role}: cannot read {self.path!r} ({_reason(exc)})") from None

    def close(self) -> None:
        for f in (self._stream, self._zip):
            if f is not None:
                f.close()
        self._stream = self._zip = None
        self._mmap = self._whole = None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Progress on stderr
# ---------------------------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on ``stream``.

    ``enabled=None`` shows it only when ``stream`` is a terminal and the run has lasted more than
    ``delay`` seconds; True shows it from the start; False never.
    """

    def __init__(self, total: int, enabled: Optional[bool], stream: Any = None, delay: float = 1.0) -> None:
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
            self.delay = delay
        else:
            self.delay = 0.0
        self.enabled = enabled
        self.total = total
        self.t0 = time.perf_counter()
        self.last = -math.inf
        self.shown = False

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.t0 < self.delay or (now - self.last < 0.1 and done < self.total):
            return
        self.last = now
        frac = done / self.total if self.total else 1.0
        bar = "#" * int(30 * frac)
        self.stream.write(f"\rscore [{bar:<30}] {100 * frac:5.1f}%  {done}/{self.total} rows  "
                          f"{now - self.t0:.1f} s")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------------------------------------
# The score
# ---------------------------------------------------------------------------------------------
def _check_shapes(pred: ArraySource, labels: ArraySource, categorical: bool) -> None:
    if categorical and len(pred.shape) < 2:
        raise ScoreError(f"PRED: shape {pred.shape}: expected (samples, ..., classes) with the classes "
                         "on the last axis")
    if categorical:
        ok = labels.shape in (pred.shape, pred.shape[:-1])
        want = f"{pred.shape[:-1]} (integer labels) or {pred.shape} (soft labels)"
        # the label form's rules of cross_entropy, said here with the files' shapes (the call sees a chunk's)
        if ok and (labels.dtype.kind in "iu") != (labels.shape == pred.shape[:-1]):
            if labels.dtype.kind in "iu":
                raise ScoreError(f"LABELS: integer labels must have shape {pred.shape[:-1]} (PRED's shape "
                                 f"without its last axis), got {labels.shape}")
            raise ScoreError(f"LABELS: class labels of shape {labels.shape} must have an integer dtype, "
                             f"got {labels.dtype}")
    else:
        ok = labels.shape == pred.shape
        want = str(pred.shape)
    if not ok:
        raise ScoreError(f"LABELS: shape {labels.shape} does not match PRED: expected {want}")


# The loss functions' keyword arguments that score passes from options: the options' names.
_OPTIONS = {"gamma": "--gamma", "alpha": "--alpha", "label_smoothing": "--label-smoothing", "n_threads": "--threads"}


def _global_message(msg: str, start: int, pred: ArraySource, labels: ArraySource) -> str:
    """A loss function's error for one chunk, with the argument named as on the command line and
    the flat index counted from the start of the file instead of the chunk."""
    name, sep, rest = msg.partition(": ")
    sources = {"y_pred": pred, "y_true": labels}
    if sep and name in _OPTIONS:
        return f"{_OPTIONS[name]}: {rest}"
    if not sep or name not in sources:
        return msg
    src = sources[name]
    per_row = int(np.prod(src.shape[1:], dtype=np.int64))
    rest = re.sub(r"at index (\d+)", lambda m: f"at index {start * per_row + int(m.group(1))}", rest)
    return f"{src.role}: {rest}"


def score(pred_path: str, labels_path: str, loss: str, *, from_logits: bool = False, gamma: Optional[float] = None,
          alpha: Optional[float] = None, label_smoothing: float = 0.0, reduction: str = "mean",
          out: Optional[str] = None, chunk_rows: Optional[int] = None, pred_key: Optional[str] = None,
          labels_key: Optional[str] = None, n_threads: Optional[int] = None,
          progress: Optional[bool] = None, progress_stream: Any = None) -> Optional[float]:
    """Compute a loss over arrays in files, chunk by chunk.

    Returns the mean or sum as a Python float, or None with ``reduction="none"`` (the per-sample
    losses are then written to ``out``, a ``.npy`` file, chunk by chunk). Raises
    :class:`ScoreError` for unreadable, corrupt or mismatched files and for bad values.
    """
    fn, categorical, focal = LOSSES[loss]
    if not focal and (gamma is not None or alpha is not None):
        raise ScoreError(f"--gamma and --alpha: only for the focal losses (focal, binary-focal), not {loss}")
    if reduction == "none" and out is None:
        raise ScoreError("--out: required with --reduction none (the per-sample losses go to a .npy file)")
    if reduction != "none" and out is not None:
        raise ScoreError(f"--out: only with --reduction none (the {reduction} is printed, not written)")
    if reduction == "none":
        assert out is not None
        # before anything is opened: writing onto an input would destroy it (and, memory-mapped, crash)
        _check_output_path(out, {"PRED": pred_path, "LABELS": labels_path})
    kwargs: Dict[str, Any] = {"from_logits": from_logits, "label_smoothing": label_smoothing,
                              "n_threads": n_threads, "reduction": "none" if reduction == "none" else "sum"}
    if focal:
        kwargs["gamma"] = 2.0 if gamma is None else gamma
        kwargs["alpha"] = alpha
    pred = ArraySource("PRED", pred_path, pred_key)
    try:
        labels = ArraySource("LABELS", labels_path, labels_key)
    except ScoreError:
        pred.close()
        raise
    try:
        _check_shapes(pred, labels, categorical)
        n = pred.shape[0]
        per_sample = int(np.prod(pred.shape[1:-1] if categorical else pred.shape[1:], dtype=np.int64))
        if chunk_rows is None:
            row_bytes = int(np.prod(pred.shape[1:], dtype=np.int64)) * pred.dtype.itemsize
            chunk_rows = max(1, CHUNK_BYTES // max(1, row_bytes))
        sums = []
        writer: Optional[np.memmap] = None
        bar = Progress(n, progress, progress_stream)
        # --reduction none writes to a temporary file beside --out, moved onto it only once complete,
        # so a failure part way leaves an existing --out as it was
        tmp = _make_temporary(out) if reduction == "none" else None
        try:
            # an empty file still makes one (empty) call: it gives --out its dtype
            for start, stop in list(iter_rows(n, chunk_rows)) or [(0, 0)]:
                p, y = pred.read(stop - start), labels.read(stop - start)
                try:
                    value = fn(y, p, **kwargs)
                except (ValueError, TypeError) as exc:
                    raise ScoreError(_global_message(str(exc), start, pred, labels)) from None
                except MemoryError:
                    raise ScoreError(f"out of memory at rows {start}..{stop} (chunks of {chunk_rows} rows); "
                                     "try a smaller --chunk-rows") from None
                if reduction == "none":
                    if writer is None:
                        assert tmp is not None
                        writer = _open_output(out, tmp[1], (n,) + value.shape[1:], value.dtype)
                    writer[start:stop] = value
                else:
                    sums.append(float(value))
                bar.update(stop)
            if tmp is not None:
                assert writer is not None
                try:
                    writer.flush()
                except OSError as exc:
                    raise ScoreError(f"--out: cannot write {out!r} ({_os_reason(exc)})") from None
                writer = None  # unmaps the temporary (a mapped file cannot be renamed on Windows)
                _replace_output(out, tmp)
                tmp = None
                return None
        finally:
            bar.close()
            writer = None
            if tmp is not None:
                _remove_quietly(tmp[1])
        total = math.fsum(sums)
        if reduction == "sum":
            return total
        count = n * per_sample
        return total / count if count else 0.0
    finally:
        pred.close()
        labels.close()


def _check_output_path(out: str, inputs: Dict[str, str]) -> None:
    """Refuse an ``--out`` that is one of the input files (by any name: a symbolic or hard link
    included), a directory or not a regular file, before any file is opened."""
    out_exists = os.path.exists(out)
    for role, path in inputs.items():
        if out_exists and os.path.exists(path):
            try:
                same = os.path.samefile(out, path)
            except OSError:
                same = os.path.realpath(out) == os.path.realpath(path)
        else:
            same = os.path.realpath(out) == os.path.realpath(path)
        if same:
            raise ScoreError(f"--out: {out!r} is the same file as {role} ({path!r}); writing it would destroy "
                             "the input: choose another output file")
    if os.path.isdir(out):
        raise ScoreError(f"--out: {out!r} is a directory, expected a .npy file name")
    if out_exists and not os.path.isfile(out):
        raise ScoreError(f"--out: {out!r} is not a regular file")


def _make_temporary(out: Optional[str]) -> Tuple[str, str]:
    """(the file --out names, through any symbolic links; a new empty temporary file beside it)."""
    assert out is not None
    target = os.path.realpath(out)
    folder, name = os.path.split(target)
    stem, ext = os.path.splitext(name)
    try:
        fd, tmp = tempfile.mkstemp(suffix=ext, prefix=f".{stem}.", dir=folder)
    except OSError as exc:
        raise ScoreError(f"--out: cannot write {out!r} ({_os_reason(exc)})") from None
    os.close(fd)
    return target, tmp


def _open_output(out: Optional[str], tmp: str, shape: Tuple[int, ...], dtype: np.dtype) -> np.memmap:
    try:
        writer = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        _reserve(tmp)
        return writer
    except OSError as exc:
        raise ScoreError(f"--out: cannot write {out!r} ({_os_reason(exc)})") from None


def _replace_output(out: Optional[str], tmp: Tuple[str, str]) -> None:
    """Move the finished temporary onto the target, with the permissions the target had (or those a
    new file gets under the umask; mkstemp makes it readable by the owner only)."""
    target, path = tmp
    try:
        try:
            mode = os.stat(target).st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0o022)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(path, mode)
        os.replace(path, target)
    except OSError as exc:
        raise ScoreError(f"--out: cannot write {out!r} ({_os_reason(exc)})") from None


def _reserve(path: str) -> None:
    """Allocate the disk blocks of the (sparse) file open_memmap made: a full disk is then an
    OSError here instead of a SIGBUS while the mapping is written."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)):
                raise
            # EOPNOTSUPP, EINVAL, ...: a file system without it; write the mapping as before


def _os_reason(exc: OSError) -> str:
    """Why writing --out failed, without the name of the temporary file, which the user never gave."""
    return f"{type(exc).__name__}: {exc.strerror}" if exc.strerror else _reason(exc)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def iter_rows(n: int, chunk_rows: int) -> Iterator[Tuple[int, int]]:
    """(start, stop) of each chunk of ``chunk_rows`` rows out of ``n``."""
    for start in range(0, n, chunk_rows):
        yield start, min(start + chunk_rows, n)
