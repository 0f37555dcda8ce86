"""CPU-heavy engine work in a process of its own, so LNbits' event loop only waits.

A worker is a module run as `python -m engine.<name> IN OUT [options]` with the folder
holding engine/ as the working directory. It reads IN, writes OUT atomically, reports
"progress <fraction> <phase>" lines on stderr, and on failure prints "error: <message>" and
exits with status 1. `run_worker` is the shell's side: it starts the module with
asyncio.create_subprocess_exec, follows the progress lines and returns OUT as a dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import multiprocessing
import os
import resource
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

EXTENSION_ROOT = Path(__file__).resolve().parents[1]  # the folder holding engine/
PROGRESS = "progress"
ERROR_TAIL_LINES = 12
NICENESS = 10  # below LNbits' priority: the node's own work comes first

OnProgress = Callable[[float, str], Any]  # may return an awaitable


class WorkerError(RuntimeError):
    """The worker failed; the message ends with its last lines of stderr."""


# -- the worker's side ------------------------------------------------------------------------


class ProgressLines:
    """Writes "progress <fraction> <phase>" to stderr, at most once per percent or phase."""

    def __init__(self) -> None:
        self.last = (-1.0, "")

    def __call__(self, fraction: float, phase: str) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if phase == self.last[1] and fraction - self.last[0] < 0.01 and fraction < 1.0:
            return
        self.last = (fraction, phase)
        print(f"{PROGRESS} {fraction:.3f} {phase}", file=sys.stderr, flush=True)


# What a pool's processes read: set before the pool forks, never sent through pipes.
POOL_SHARED: dict[str, Any] = {}


def pool_map(
    fn: Callable[[Any], Any],
    jobs: list,
    processes: int,
    shared: dict[str, Any],
    ordered: bool = True,
) -> Iterator[Any]:
    """fn over jobs, in `processes` forked processes that inherit `shared` in POOL_SHARED
    (copy on write), or in this one. Results in the order of the jobs, or as they finish
    when not `ordered`."""
    POOL_SHARED.update(shared)
    try:
        if processes <= 1 or len(jobs) <= 1:
            yield from map(fn, jobs)
            return
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(processes, len(jobs))) as pool:
            yield from (pool.imap if ordered else pool.imap_unordered)(fn, jobs)
    finally:
        POOL_SHARED.clear()


def lower_priority(niceness: int) -> None:
    # not on this platform, or not allowed: run at the normal priority
    with contextlib.suppress(AttributeError, OSError):
        os.nice(niceness)


def peak_rss_mb() -> float:
    """The worker's own peak plus its helper processes' (ru_maxrss is in KiB on Linux)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round((own + children) / 1024, 1)


def finish(
    work: Callable[[], dict[str, Any]], output: Path, errors: tuple[type[Exception], ...]
) -> int:
    """Run the worker's work and write OUT with its peak memory; on one of `errors`, say
    "error: <message>" on stderr and return the exit status 1 (what run_worker reports)."""
    try:
        out = work()
        out["peak_rss_mb"] = peak_rss_mb()
        write_json(out, output)
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def write_json(doc: Any, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")  # a reader never sees half a file
    partial.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    os.replace(partial, path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# -- the shell's side -------------------------------------------------------------------------


def _progress_line(line: str) -> tuple[float, str] | None:
    parts = line.split(" ", 2)
    if len(parts) < 2 or parts[0] != PROGRESS:
        return None
    try:
        return float(parts[1]), parts[2] if len(parts) > 2 else ""
    except ValueError:
        return None


async def _follow(
    stream: asyncio.StreamReader, tail: deque[str], on_progress: OnProgress | None
) -> None:
    while raw := await stream.readline():
        line = raw.decode("utf-8", "replace").rstrip()
        progress = _progress_line(line)
        if progress is None:
            tail.append(line)
        elif on_progress is not None:
            outcome = on_progress(*progress)
            if inspect.isawaitable(outcome):
                await outcome


async def run_worker(
    module: str,
    source: Path,
    target: Path,
    options: Sequence[str] = (),
    *,
    label: str,
    on_progress: OnProgress | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run `python -m <module> source target *options`; return the OUT document. Raises
    WorkerError (naming `label`) when it fails or outlives `timeout` seconds; cancelling
    the caller kills it."""
    command = [sys.executable, "-m", module, str(source), str(target), *options]
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=EXTENSION_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        limit=1 << 20,  # a long traceback line must not break the reader
        start_new_session=True,  # its own process group: a kill reaches its pool's workers
    )
    tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
    try:
        assert proc.stderr is not None
        await asyncio.wait_for(_follow(proc.stderr, tail, on_progress), timeout)
        code = await proc.wait()
    except asyncio.TimeoutError:
        raise WorkerError(f"{label} gave no result within {timeout} s") from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: do not leave it running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    if code != 0:
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        said = " | ".join(line for line in tail if line) or "no output"
        raise WorkerError(f"{label} failed ({how}): {said}")
    try:
        return await asyncio.to_thread(read_json, target)
    except (OSError, ValueError) as exc:
        raise WorkerError(f"{label} left no readable result: {exc}") from None
