"""`predict`'s work on each file, in this process or in worker processes, in input order.

`read_digits` is one image file to a FrameResult (decoded as small as it may be, boxes back in
the file's pixels). `process` is what predict does per input: read, recognize, maybe write the
annotated copy, and turn every problem with the file into a one-line error. `run_tasks` runs
`process` over the inputs, here (`jobs=1`) or in `jobs` worker processes, each with its own
interpreter, and yields the outcomes in input order as soon as each is ready.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mnist_edge.runtime.classifier import (
    DigitClassifier,
    ModelOutputError,
    native_stderr_silenced,
)
from mnist_edge.runtime.digits import FrameResult, recognize
from mnist_edge.runtime.drawing import draw_results
from mnist_edge.runtime.images import MAX_PIXELS, ImageReadError, decode_file

IN_FLIGHT_PER_WORKER = 4  # messages queued per worker: enough to keep it busy, few to wait on
CHUNK = 8  # files per message to a worker, at most


@dataclass(frozen=True)
class ReadOptions:
    """How each file is read; the same in every worker."""

    max_pixels: int = MAX_PIXELS
    min_confidence: float = 0.0
    drop_weak: bool = False
    quiet: bool = True  # keep the C decoders' own warnings off stderr


@dataclass(frozen=True)
class Task:
    shown: str  # the input as printed
    path: Path | None  # None when the input is already an error (missing, empty folder...)
    error: str | None = None
    annotated: Path | None = None  # where its annotated copy goes, if wanted


@dataclass(frozen=True)
class Outcome:
    task: Task
    result: FrameResult | None
    error: str | None


def read_digits(
    path: str | os.PathLike,
    classifier: DigitClassifier,
    options: ReadOptions = ReadOptions(),
    annotate: bool = False,
) -> tuple[FrameResult, np.ndarray | None]:
    """The digits in an image file (boxes in its own pixels), and its annotated copy if asked.

    Decoded grey unless annotated (the recognizer works in grey), a big JPEG at a reduced
    size; the annotated copy is drawn at the decoded size, with the recognizer's own boxes.
    """
    decoded = decode_file(path, options.max_pixels, grey=not annotate)
    result = recognize(
        decoded.pixels,
        classifier,
        min_confidence=options.min_confidence,
        drop_weak=options.drop_weak,
    )
    drawn = draw_results(decoded.pixels, result, insets=True) if annotate else None
    digits = [dataclasses.replace(d, box=decoded.to_full(d.box)) for d in result.digits]
    return dataclasses.replace(result, digits=digits), drawn


def process(task: Task, classifier: DigitClassifier, options: ReadOptions) -> Outcome:
    """One input, start to end; a problem with the file is its error, never an exception."""
    if task.error is not None or task.path is None:
        return Outcome(task, None, task.error or "no such file or directory")
    annotate = task.annotated is not None
    try:
        if options.quiet:
            with native_stderr_silenced():
                result, drawn = read_digits(task.path, classifier, options, annotate)
        else:
            result, drawn = read_digits(task.path, classifier, options, annotate)
    except ImageReadError as error:
        return Outcome(task, None, error.reason)
    except ModelOutputError as error:  # NaN or 75.2 for this image; other ModelErrors end all
        return Outcome(task, None, str(error))
    if drawn is not None and task.annotated is not None:
        try:
            write_png(task.annotated, drawn)
        except OSError as error:
            return Outcome(task, result, f"cannot write the annotated image ({error})")
    return Outcome(task, result, None)


def write_png(target: Path, image: np.ndarray) -> Path:
    """The image as a PNG at `target`, written atomically (a temporary file, then renamed):
    an annotated copy, or a digit's crop (`crop_files.py`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{target}: PNG encoding failed")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(png.tobytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


# -- in input order, here or in worker processes ------------------------------------------------


def run_tasks(
    tasks: list[Task],
    classifier: DigitClassifier,
    options: ReadOptions,
    jobs: int = 1,
    worker_threads: int | None = None,
    ignore_card: bool = False,
) -> Iterator[Outcome]:
    """`process` over the tasks, yielding outcomes in task order as each becomes ready.

    `jobs` > 1: `jobs` processes read files, this one (with `classifier`) and `jobs - 1`
    workers, each loading the same model itself (with `worker_threads` interpreter threads,
    and `ignore_card` as `classifier` was loaded). A ModelError other than a bad output for
    one image (the model hangs) ends the run, from a worker as from here.
    The workers are up within milliseconds when they can be forked from here (see `_may_fork`),
    and this process reads from the start either way, so a short batch never waits for
    them. A worker that dies (a crash in a native decoder, the kernel's OOM killer) costs
    only the file it was on: see `_in_workers`.
    """
    if jobs <= 1:
        for task in tasks:
            yield process(task, classifier, options)
        return
    setup = (str(classifier.path), worker_threads, options, ignore_card)

    def here(part: list[Task]) -> list[Outcome]:
        return [process(task, classifier, options) for task in part]

    yield from _in_workers(tasks, jobs - 1, setup, _work, CHUNK, here)


def in_chunks(tasks: list[Task], largest: int, processes: int) -> Iterator[list[Task]]:
    """The tasks in messages of `largest`, then fewer and fewer towards the end.

    Small files take a millisecond or two: sent one by one, the round trip to a worker would
    cost as much. But the chunks queued at a worker when the tasks run out are work the
    other processes wait for at the end, so there the chunks shrink to single files (each
    a fraction of what is left), and every process finishes at about the same time.
    """
    start = 0
    while start < len(tasks):
        left = len(tasks) - start
        size = max(1, min(largest, left // (2 * processes * IN_FLIGHT_PER_WORKER)))
        yield tasks[start : start + size]
        start += size


def _in_workers(
    tasks: list[Task],
    workers: int,
    setup: tuple,
    work: Callable[[list[Task]], list[Outcome]],
    chunk: int = 1,
    here: Callable[[list[Task]], list[Outcome]] | None = None,
) -> Iterator[Outcome]:
    """Ordered results from a pool of `workers` processes, tasks sent up to `chunk` at a time
    (`in_chunks`), up to IN_FLIGHT_PER_WORKER chunks per worker queued. With `here`, this
    process reads chunks itself until a worker is up, and then whenever the oldest chunk
    sent is not back yet.

    While it runs, OpenCV is single-threaded in this process as in the workers: each
    process has a core of its own, and OpenCV's pool threads would only fight the other
    processes for it (they wait for each other by spinning). Stopping them first is also
    what makes forking the workers from here safe (`_may_fork`).

    If the pool breaks (a worker died), which of the queued tasks killed it is unknown: each
    of them is then run again alone in a fresh pool, so only the file that kills a worker
    again gets an error line, and the rest of the batch goes on.
    """
    queue: deque[tuple[list[Task], Future, bool]] = deque()  # in task order; sent or here
    chunks = in_chunks(tasks, chunk, workers + (here is not None))
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    pool = None
    sent = 0  # chunks in the queue that went to the pool
    try:
        forked = _may_fork()
        pool = _pool(workers, setup, forked)
        ready: list[Future] = []
        starter = None
        if forked:  # here and now, from this thread (see `_may_fork`): a few milliseconds
            with _heap_frozen():
                _submit_quietly(pool, ready)
        elif here is not None:  # starting a server process blocks until it has imported
            # its modules: in a thread, so that reading starts at once
            starter = threading.Thread(target=_submit_quietly, args=(pool, ready), daemon=True)
            starter.start()
        if here is not None:  # until a worker is up, this process reads on its own
            while (starter is not None and starter.is_alive()) or (ready and not ready[0].done()):
                part = next(chunks, None)
                if part is None:
                    if starter is not None:
                        starter.join()
                    return
                yield from here(part)
            if not ready or ready[0].exception() is not None:  # no worker could start
                for part in chunks:
                    yield from here(part)
                return
        while True:
            while sent < workers * IN_FLIGHT_PER_WORKER:
                part = next(chunks, None)
                if part is None:
                    break
                try:
                    future = pool.submit(work, part)
                except BrokenProcessPool as error:  # a worker died since the last submit:
                    future = Future()  # this chunk is then handled as one lost in the death
                    future.set_exception(error)
                queue.append((part, future, True))
                sent += 1
            if not queue:
                return
            if here is not None and not queue[0][1].done():
                part = next(chunks, None)
                if part is not None:
                    done: Future = Future()
                    done.set_result(here(part))
                    queue.append((part, done, False))
                    continue
            part, future, remote = queue.popleft()
            try:
                outcomes = future.result()
            except BrokenProcessPool:
                pool.shutdown(wait=False, cancel_futures=True)
                broken = [(part, future, remote), *queue]
                queue.clear()
                yield from _after_a_death(broken, setup, work)
                sent = 0
                pool = _pool(workers, setup)
                continue
            sent -= remote
            yield from outcomes
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        cv2.setNumThreads(opencv_threads)


def _after_a_death(
    queued: list[tuple[list[Task], Future, bool]],
    setup: tuple,
    work: Callable[[list[Task]], list[Outcome]],
) -> Iterator[Outcome]:
    """The queued chunks, in order, once the pool broke: results that did come back as they
    are; every task of the others run again alone."""
    for part, future, _ in queued:
        if future.done() and future.exception() is None:
            yield from future.result()
        else:
            for task in part:
                yield _alone(task, setup, work)


def _alone(task: Task, setup: tuple, work: Callable[[list[Task]], list[Outcome]]) -> Outcome:
    pool = _pool(1, setup)
    try:
        return pool.submit(work, [task]).result()[0]
    except BrokenProcessPool:
        return Outcome(task, None, "the worker process reading it died (a crash, or out of memory)")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _may_fork() -> bool:
    """Whether workers may be forked from this process now.

    A fork copies this process in a few milliseconds; a server process must first start
    Python and import NumPy, OpenCV and LiteRT (0.2 s and more, while this process reads
    alone). But a fork copies only the thread that forks: another thread's lock, held at
    that moment, stays locked in the copy for ever. So this process forks only when no
    other Python thread runs, on Linux, with OpenCV's pool stopped (`_in_workers`): at the
    start of a run, from its only thread. The threads left then are OpenBLAS's idle ones
    (NumPy's and OpenCV's copies), which OpenBLAS itself stops around a fork; a LiteRT
    interpreter's threads, if this process's has any, only wait, and the copy never uses
    them (each worker loads the model itself). Later pools (after a worker died, when the
    executor's and the interpreter's watchdog threads run) come from the server process.
    (Python 3.12 and later warn of any fork with threads, OpenBLAS's too: a DeprecationWarning,
    not shown by default.)
    """
    return sys.platform.startswith("linux") and threading.active_count() == 1


@contextlib.contextmanager
def _heap_frozen() -> Iterator[None]:
    """The objects made so far left out of garbage collection while workers are forked: the
    copies never collect them (no finalizer of this process's runs in a copy), and their
    pages stay shared (the gc module's advice for fork without exec)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _pool(jobs: int, setup: tuple, fork: bool = False) -> ProcessPoolExecutor:
    """Workers forked from this process (`fork`: see `_may_fork`), else forked from a clean
    server process (forkserver) where there is one, else spawned."""
    methods = multiprocessing.get_all_start_methods()
    if fork:
        context = multiprocessing.get_context("fork")
    elif "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(jobs, mp_context=context, initializer=_start, initargs=setup)


_WORKER: dict = {}


def _start(model: str, threads: int | None, options: ReadOptions, ignore_card: bool) -> None:
    # Ctrl+C reaches the whole process group: the parent stops the pool, workers finish
    # their file quietly instead of each printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)  # a core each: OpenCV's own threads would fight the other processes
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    with native_stderr_silenced():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate"
        _WORKER["classifier"] = DigitClassifier(model, threads, ignore_card)
    _WORKER["options"] = options


def _ready() -> bool:
    return True


def _submit_quietly(pool: ProcessPoolExecutor, ready: list[Future]) -> None:
    try:
        ready.append(pool.submit(_ready))
    except Exception:  # the pool cannot start: this process reads everything itself
        pass


def _work(tasks: list[Task]) -> list[Outcome]:
    return [process(task, _WORKER["classifier"], _WORKER["options"]) for task in tasks]
