"""Applying a batch of policy changes as a transaction, with a write-ahead journal.

A batch is all or nothing: the changes are applied one by one and verified against what the
node reads back; the first failure stops the batch and every change already applied is put
back, newest first. Every step is written to a `Journal` (the shell keeps it in its database)
*before* the node is asked to do it, so after a crash `reconcile` can find out what really
happened from the node itself and finish each batch consistently.

Only node calls run under the retry policy (transient errors: node unavailable, timeout,
connection error); a refusal is final. A crash (any `BaseException` such as cancellation or
process death) is never caught here: the journal says how far the batch got.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from .backoff import JITTER
from .changes import PolicyChange, policy_matches
from .node_source import NodeSource, NodeSourceError, RoutingPolicy

T = TypeVar("T")


class ItemStatus:
    """Status of one change in the journal (plain strings: the shell stores them as text)."""

    PENDING = "PENDING"  # recorded, not attempted (yet, or ever: the batch stopped before it)
    SENDING = "SENDING"  # the node was asked; the answer is not recorded yet (write-ahead)
    APPLIED = "APPLIED"  # the node reads back the wanted values
    FAILED = "FAILED"  # not applied: refused, unreachable, changed by someone else, ignored
    RESTORED = "RESTORED"  # was applied, then put back to the `before` values
    RESTORE_FAILED = "RESTORE_FAILED"  # was applied and could not be put back
    SKIPPED = "SKIPPED"  # the node already had the wanted values: nothing sent

    ALL = frozenset((PENDING, SENDING, APPLIED, FAILED, RESTORED, RESTORE_FAILED, SKIPPED))


class BatchStatus:
    PENDING = "PENDING"  # recorded, running (or interrupted: see `reconcile`)
    SUCCESS = "SUCCESS"  # every change applied or already in place
    FAILED = "FAILED"  # a change failed before anything was applied: the node is unchanged
    ROLLED_BACK = "ROLLED_BACK"  # a change failed and every applied change was put back
    PARTIAL = "PARTIAL"  # some channels could not be put back: `detail` names them

    ALL = frozenset((PENDING, SUCCESS, FAILED, ROLLED_BACK, PARTIAL))


NOT_BEFORE = "policy changed on the node since the proposal"
CHANGED_SINCE = "policy changed on the node since the change was applied; left alone"


# -- journal ----------------------------------------------------------------------------


@dataclass(slots=True)
class JournalItem:
    batch_id: str
    change: PolicyChange
    status: str = ItemStatus.PENDING
    readback: RoutingPolicy | None = None  # the node's policy when the status was set
    error: str | None = None  # why it failed, or a note ("confirmed after restart")


class Journal(Protocol):
    """Where the executor records a batch. Every method must be durable when it returns."""

    async def record_batch(self, batch_id: str, changes: Sequence[PolicyChange]) -> None:
        """Record a new batch (status PENDING, items PENDING). Recording an existing batch
        again with the same changes is a re-run: the batch goes back to PENDING and the items
        keep their statuses. Different changes under an existing id are an error."""
        ...

    async def mark_sending(self, batch_id: str, change_id: str) -> None:
        """Written before the node is asked to apply the change."""
        ...

    async def mark_item(
        self,
        batch_id: str,
        change_id: str,
        status: str,
        readback: RoutingPolicy | None,
        error: str | None,
    ) -> None: ...

    async def mark_batch(self, batch_id: str, status: str, detail: str) -> None: ...

    async def items_in_state(self, state: str) -> list[tuple[str, PolicyChange]]:
        """(batch_id, change) of every item in this state, oldest batch first."""
        ...

    async def batch_items(self, batch_id: str) -> list[JournalItem]:
        """The batch's items in batch order; empty for an unknown batch."""
        ...

    async def batches_in_state(self, status: str) -> list[str]:
        """Ids of the batches in this status, oldest first."""
        ...


@dataclass(slots=True)
class _MemoryBatch:
    batch_id: str
    status: str
    detail: str
    items: dict[str, JournalItem]


class MemoryJournal:
    """The reference semantics of `Journal`, in memory (tests). `events` logs every write."""

    def __init__(self) -> None:
        self.batches: dict[str, _MemoryBatch] = {}
        self.events: list[tuple[str, ...]] = []

    async def record_batch(self, batch_id: str, changes: Sequence[PolicyChange]) -> None:
        existing = self.batches.get(batch_id)
        if existing is not None:
            if [item.change for item in existing.items.values()] != list(changes):
                raise ValueError(f"batch {batch_id} already recorded with other changes")
            existing.status, existing.detail = BatchStatus.PENDING, ""
        else:
            items = {c.change_id: JournalItem(batch_id, c) for c in changes}
            if len(items) != len(changes):
                raise ValueError(f"batch {batch_id}: duplicate change ids")
            self.batches[batch_id] = _MemoryBatch(batch_id, BatchStatus.PENDING, "", items)
        self.events.append(("record", batch_id))

    async def mark_sending(self, batch_id: str, change_id: str) -> None:
        self._item(batch_id, change_id).status = ItemStatus.SENDING
        self.events.append(("sending", batch_id, change_id))

    async def mark_item(
        self,
        batch_id: str,
        change_id: str,
        status: str,
        readback: RoutingPolicy | None,
        error: str | None,
    ) -> None:
        if status not in ItemStatus.ALL:
            raise ValueError(f"unknown item status {status!r}")
        item = self._item(batch_id, change_id)
        item.status, item.readback, item.error = status, readback, error
        self.events.append(("item", batch_id, change_id, status))

    async def mark_batch(self, batch_id: str, status: str, detail: str) -> None:
        if status not in BatchStatus.ALL:
            raise ValueError(f"unknown batch status {status!r}")
        batch = self.batches[batch_id]
        batch.status, batch.detail = status, detail
        self.events.append(("batch", batch_id, status))

    async def items_in_state(self, state: str) -> list[tuple[str, PolicyChange]]:
        return [
            (batch.batch_id, item.change)
            for batch in self.batches.values()
            for item in batch.items.values()
            if item.status == state
        ]

    async def batch_items(self, batch_id: str) -> list[JournalItem]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return []
        return [
            JournalItem(i.batch_id, i.change, i.status, i.readback, i.error)
            for i in batch.items.values()
        ]

    async def batches_in_state(self, status: str) -> list[str]:
        return [b.batch_id for b in self.batches.values() if b.status == status]

    def batch_status(self, batch_id: str) -> tuple[str, str]:
        batch = self.batches[batch_id]
        return batch.status, batch.detail

    def _item(self, batch_id: str, change_id: str) -> JournalItem:
        return self.batches[batch_id].items[change_id]


# -- retries ----------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    """How node calls are retried: `attempts` tries in all, exponential delays from
    `base_seconds` up to `cap_seconds` with jitter, each call bounded by `timeout_seconds`.
    `sleep` is injectable so tests do not wait."""

    attempts: int = 4
    base_seconds: float = 1.0
    cap_seconds: float = 30.0
    timeout_seconds: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random | None = None

    def delay(self, failures: int) -> float:
        nominal = min(self.cap_seconds, self.base_seconds * 2 ** max(0, failures - 1))
        return nominal * (self.rng or random).uniform(1 - JITTER, 1 + JITTER)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the node did not answer. A refusal or a bug is not."""
    if isinstance(exc, NodeSourceError):
        return exc.transient
    return isinstance(exc, asyncio.TimeoutError | OSError)


async def _call(retry: RetryPolicy, make: Callable[[], Awaitable[T]]) -> T:
    failures = 0
    while True:
        try:
            return await asyncio.wait_for(make(), retry.timeout_seconds)
        except Exception as exc:
            failures += 1
            if not is_transient(exc) or failures >= retry.attempts:
                raise
        await retry.sleep(retry.delay(failures))


def _describe_error(exc: Exception, retry: RetryPolicy) -> str:
    if isinstance(exc, asyncio.TimeoutError) and not str(exc):
        what = f"no answer within {retry.timeout_seconds:g} s"
    else:
        what = f"{type(exc).__name__}: {exc}"
    if is_transient(exc) and retry.attempts > 1:
        what += f" (after {retry.attempts} attempts)"
    return what


def _show(policy: RoutingPolicy, names: list[str]) -> str:
    return ", ".join(f"{n}={getattr(policy, n)}" for n in names) or "no fields"


# -- results ----------------------------------------------------------------------------


@dataclass(slots=True)
class ItemResult:
    change_id: str
    channel_id: str
    status: str
    error: str | None = None
    readback: RoutingPolicy | None = None


@dataclass(slots=True)
class BatchResult:
    batch_id: str
    status: str
    items: list[ItemResult]
    detail: str
    failed_channels: list[str] = field(default_factory=list)  # changes that failed
    unsettled_channels: list[str] = field(default_factory=list)  # not back at `before`

    @property
    def statuses(self) -> dict[str, str]:
        return {item.change_id: item.status for item in self.items}


# -- node steps -------------------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    ok: bool
    readback: RoutingPolicy | None
    error: str | None


async def _read(source: NodeSource, channel_id: str, retry: RetryPolicy) -> RoutingPolicy:
    return await _call(retry, lambda: source.get_policy(channel_id))


async def _restore(source: NodeSource, change: PolicyChange, retry: RetryPolicy) -> _Outcome:
    """Put `change.before` back, only if the node still has `change.after`."""
    names = change.changed_fields()
    try:
        current = await _read(source, change.channel_id, retry)
    except Exception as exc:
        return _Outcome(False, None, f"could not read the policy: {_describe_error(exc, retry)}")
    if policy_matches(current, change.before, names):
        return _Outcome(True, current, None)
    if not policy_matches(current, change.after, names):
        return _Outcome(False, current, f"{CHANGED_SINCE} (node has {_show(current, names)})")
    update = change.reverse(f"{change.change_id}:rollback").update()
    try:
        readback = await _call(retry, lambda: source.set_policy(change.channel_id, update))
    except Exception as exc:
        error = f"restore failed: {_describe_error(exc, retry)}"
        try:  # the answer may have been lost after the node applied it
            readback = await _read(source, change.channel_id, retry)
        except Exception:
            return _Outcome(False, None, error)
        if not policy_matches(readback, change.before, names):
            return _Outcome(False, readback, error)
    if not policy_matches(readback, change.before, names):
        wanted, got = _show(change.before, names), _show(readback, names)
        return _Outcome(False, readback, f"node did not restore {wanted}: read back {got}")
    return _Outcome(True, readback, None)


async def _settle_failed(
    source: NodeSource, change: PolicyChange, retry: RetryPolicy
) -> str | None:
    """A change that was sent and failed may still have landed (an answer lost to a timeout).
    Make sure the channel is back at `before`; return the problem if it could not be."""
    names = change.changed_fields()
    try:
        current = await _read(source, change.channel_id, retry)
    except Exception as exc:
        return f"state unknown: could not read the policy back ({_describe_error(exc, retry)})"
    if policy_matches(current, change.before, names):
        return None
    if policy_matches(current, change.after, names):
        outcome = await _restore(source, change, retry)
        return None if outcome.ok else f"applied despite the error; {outcome.error}"
    return f"left at an unknown policy ({_show(current, names)})"


def _check_batch(changes: Sequence[PolicyChange]) -> None:
    if len({c.change_id for c in changes}) != len(changes):
        raise ValueError("a batch cannot hold the same change twice")
    if len({c.channel_id for c in changes}) != len(changes):
        raise ValueError("a batch holds at most one change per channel")


class _Run:
    """One pass over a batch: mirrors the journal's item statuses and collects the result."""

    def __init__(
        self,
        source: NodeSource,
        journal: Journal,
        batch_id: str,
        items: list[JournalItem],
        retry: RetryPolicy,
    ):
        self.source, self.journal, self.batch_id, self.retry = source, journal, batch_id, retry
        self.items = {i.change.change_id: i for i in items}
        self.results = {
            i.change.change_id: ItemResult(i.change.change_id, i.change.channel_id, i.status)
            for i in items
        }
        self.failed: dict[str, str] = {}  # channel -> why its change failed
        self.problems: dict[str, str] = {}  # channel -> why it is not back at `before`

    async def mark(
        self,
        change: PolicyChange,
        status: str,
        readback: RoutingPolicy | None,
        error: str | None,
        *,
        shown: str | None = None,
    ) -> None:
        await self.journal.mark_item(self.batch_id, change.change_id, status, readback, error)
        item = self.items[change.change_id]
        item.status, item.readback, item.error = status, readback, error
        self.results[change.change_id] = ItemResult(
            change.change_id, change.channel_id, shown or status, error, readback
        )

    async def fail(
        self, change: PolicyChange, error: str, readback: RoutingPolicy | None, *, sent: bool
    ) -> None:
        await self.mark(change, ItemStatus.FAILED, readback, error)
        self.failed[change.channel_id] = error
        if sent:
            problem = await _settle_failed(self.source, change, self.retry)
            if problem:
                self.problems[change.channel_id] = problem

    async def conclude(self, prefix: str = "") -> tuple[str, str]:
        """Final status; on failure, roll back every APPLIED change newest first."""
        changes = [i.change for i in self.items.values()]
        done = (ItemStatus.APPLIED, ItemStatus.SKIPPED)
        if not self.failed and all(i.status in done for i in self.items.values()):
            status, detail = BatchStatus.SUCCESS, f"{len(changes)} change(s) in place"
        else:
            for change in reversed(changes):
                if self.items[change.change_id].status != ItemStatus.APPLIED:
                    continue
                outcome = await _restore(self.source, change, self.retry)
                ok = ItemStatus.RESTORED if outcome.ok else ItemStatus.RESTORE_FAILED
                await self.mark(change, ok, outcome.readback, outcome.error)
            restored, applied_any = [], False
            for item in self.items.values():
                if item.status == ItemStatus.RESTORED:
                    restored.append(item.change.channel_id)
                    applied_any = True
                elif item.status == ItemStatus.RESTORE_FAILED:
                    self.problems[item.change.channel_id] = item.error or "restore failed"
                    applied_any = True
            if self.problems:
                status = BatchStatus.PARTIAL
            else:
                status = BatchStatus.ROLLED_BACK if applied_any else BatchStatus.FAILED
            parts = [f"channel {ch}: {why}" for ch, why in self.failed.items()]
            if restored:
                parts.append(f"restored {len(restored)} applied change(s): {', '.join(restored)}")
            if self.problems:
                parts.append(
                    "NOT back at the old policy, check by hand: "
                    + "; ".join(f"channel {ch}: {why}" for ch, why in self.problems.items())
                )
            pending = [i.change.channel_id for i in self.items.values() if i.status == "PENDING"]
            if pending:
                parts.append(f"not attempted: {', '.join(pending)}")
            detail = "; ".join(parts)
        detail = prefix + detail
        await self.journal.mark_batch(self.batch_id, status, detail)
        return status, detail

    def result(self, status: str, detail: str) -> BatchResult:
        return BatchResult(
            self.batch_id,
            status,
            list(self.results.values()),
            detail,
            list(self.failed),
            list(self.problems),
        )


# -- the executor -----------------------------------------------------------------------


async def apply_batch(
    source: NodeSource,
    batch_id: str,
    changes: Sequence[PolicyChange],
    journal: Journal,
    retry: RetryPolicy | None = None,
) -> BatchResult:
    """Apply `changes` in order, all or nothing (see the module docstring).

    Idempotent: re-running a batch sends nothing for a change the node already has (SKIPPED
    in the result). The journal keeps APPLIED for the changes an earlier run of this batch
    applied, and those are rolled back with the rest if the re-run fails."""
    retry = retry or RetryPolicy()
    _check_batch(changes)
    if any(i.status == ItemStatus.SENDING for i in await journal.batch_items(batch_id)):
        raise ValueError(f"batch {batch_id} was interrupted: run reconcile() first")
    await journal.record_batch(batch_id, changes)
    run = _Run(source, journal, batch_id, await journal.batch_items(batch_id), retry)
    prior = {cid: item.status for cid, item in run.items.items()}
    for cid, item in run.items.items():  # this run's view: only earlier applies still count
        if item.status != ItemStatus.APPLIED:
            item.status = ItemStatus.PENDING
        run.results[cid].status = ItemStatus.PENDING

    for change in changes:
        names = change.changed_fields()
        try:
            current = await _read(source, change.channel_id, retry)
        except Exception as exc:
            error = f"could not read the policy: {_describe_error(exc, retry)}"
            await run.fail(change, error, None, sent=False)
            break
        if policy_matches(current, change.after, names):
            if prior[change.change_id] == ItemStatus.APPLIED:
                # An earlier run of this batch put it there: it stays APPLIED (and is rolled
                # back with the rest if this run fails).
                await run.mark(change, ItemStatus.APPLIED, current, None, shown=ItemStatus.SKIPPED)
            else:
                await run.mark(change, ItemStatus.SKIPPED, current, None)
            continue
        if not policy_matches(current, change.before, names):
            expected, found = _show(change.before, names), _show(current, names)
            error = f"{NOT_BEFORE} (expected {expected}, node has {found})"
            await run.fail(change, error, current, sent=False)
            break

        await journal.mark_sending(batch_id, change.change_id)  # write-ahead
        run.items[change.change_id].status = ItemStatus.SENDING
        update = change.update()
        try:
            readback = await _call(
                retry, lambda c=change, u=update: source.set_policy(c.channel_id, u)
            )
        except Exception as exc:
            error = f"node did not accept the change: {_describe_error(exc, retry)}"
            await run.fail(change, error, None, sent=True)
            break
        if not policy_matches(readback, change.after, names):
            wanted, got = _show(change.after, names), _show(readback, names)
            await run.fail(
                change, f"node did not apply {wanted}: read back {got}", readback, sent=True
            )
            break
        await run.mark(change, ItemStatus.APPLIED, readback, None)

    status, detail = await run.conclude()
    return run.result(status, detail)


async def reconcile(
    source: NodeSource, journal: Journal, retry: RetryPolicy | None = None
) -> list[str]:
    """Finish what a crash interrupted. Run at startup, before any new batch.

    Items left SENDING are resolved from the node (the wanted values -> APPLIED, the old ones
    -> FAILED, anything else -> FAILED with the policy found, and the batch PARTIAL); then
    every batch left PENDING gets its final status: SUCCESS if all its changes are in place,
    otherwise its applied changes are rolled back. Returns notes for the log."""
    retry = retry or RetryPolicy()
    notes: list[str] = []
    unknown: dict[str, dict[str, str]] = {}  # batch -> {channel: what the node has}
    for batch_id, change in await journal.items_in_state(ItemStatus.SENDING):
        names = change.changed_fields()
        try:
            current = await _read(source, change.channel_id, retry)
        except Exception as exc:
            notes.append(
                f"batch {batch_id}, channel {change.channel_id}: still unknown, "
                f"could not read the policy ({_describe_error(exc, retry)})"
            )
            continue
        if policy_matches(current, change.after, names):
            status, note = ItemStatus.APPLIED, "confirmed after restart"
        elif policy_matches(current, change.before, names):
            status, note = ItemStatus.FAILED, "not applied before the crash"
        else:
            status = ItemStatus.FAILED
            note = (
                "interrupted by a crash; the node has neither the old nor the new policy "
                f"({_show(current, names)})"
            )
            unknown.setdefault(batch_id, {})[change.channel_id] = note
        await journal.mark_item(batch_id, change.change_id, status, current, note)
        notes.append(f"batch {batch_id}, channel {change.channel_id}: {status} ({note})")

    for batch_id in await journal.batches_in_state(BatchStatus.PENDING):
        items = await journal.batch_items(batch_id)
        if any(i.status == ItemStatus.SENDING for i in items):
            notes.append(f"batch {batch_id}: left PENDING, a change is still unknown")
            continue
        run = _Run(source, journal, batch_id, items, retry)
        run.failed = {
            i.change.channel_id: i.error or "failed" for i in items if i.status == ItemStatus.FAILED
        }
        run.problems = dict(unknown.get(batch_id, {}))
        status, detail = await run.conclude("interrupted by a restart; ")
        notes.append(f"batch {batch_id}: {status} ({detail})")
    return notes


async def rollback_changes(
    source: NodeSource,
    changes_applied: Sequence[PolicyChange],
    journal: Journal,
    batch_id: str,
    retry: RetryPolicy | None = None,
) -> BatchResult:
    """Admin rollback of changes of batch `batch_id` (one, a subset or all of them).

    Each change is undone newest first, only where the node still has its `after` values; a
    channel changed since is reported (RESTORE_FAILED) and left alone. Unlike a batch, a
    rollback does not stop at the first failure. The result is ROLLED_BACK when every change
    was undone, PARTIAL when some were, FAILED when none could be. In the journal the batch
    becomes ROLLED_BACK when none of its changes remains applied, PARTIAL otherwise."""
    retry = retry or RetryPolicy()
    run = _Run(source, journal, batch_id, await journal.batch_items(batch_id), retry)
    for change in changes_applied:
        if change.change_id not in run.items:
            raise ValueError(f"change {change.change_id} is not in batch {batch_id}")
    for change in reversed(changes_applied):
        outcome = await _restore(source, change, retry)
        if outcome.ok:
            await run.mark(change, ItemStatus.RESTORED, outcome.readback, outcome.error)
        else:
            error = outcome.error or "restore failed"
            await run.mark(change, ItemStatus.RESTORE_FAILED, outcome.readback, error)
            run.problems[change.channel_id] = error
    restored = [c.channel_id for c in changes_applied if c.channel_id not in run.problems]
    if not run.problems:
        status = BatchStatus.ROLLED_BACK
    else:
        status = BatchStatus.PARTIAL if restored else BatchStatus.FAILED
    parts = [f"rolled back by admin: {', '.join(restored)}"] if restored else []
    parts += [f"channel {ch}: {why}" for ch, why in run.problems.items()]
    detail = "; ".join(parts) or "nothing to roll back"

    still = [
        i.change.channel_id
        for i in run.items.values()
        if i.status in (ItemStatus.APPLIED, ItemStatus.SENDING, ItemStatus.RESTORE_FAILED)
    ]
    batch_status = BatchStatus.PARTIAL if still else BatchStatus.ROLLED_BACK
    batch_detail = detail + (
        f"; still applied or not restored: {', '.join(still)}" if still else ""
    )
    await journal.mark_batch(batch_id, batch_status, batch_detail)
    wanted = {c.change_id for c in changes_applied}
    items = [r for cid, r in run.results.items() if cid in wanted]
    return BatchResult(batch_id, status, items, detail, list(run.problems), list(run.problems))
