"""Periodic reports (daily, weekly, monthly): what the node earned, what it cost, how its
channels did. Pure: the shell reads the period's rows from the database into the input
dataclasses below and stores `build_report(...).to_dict()`.

Conventions:

- A period is [start, end) in epoch seconds, UTC; `period_bounds(kind, at)` gives the one
  that ended most recently at or before `at` (a report made at midnight covers the day just
  over). Rows outside the period are ignored, so the shell may fetch generously.
- Forwards are attributed like the rest of Daznode (crud.forward_stats_by_channel): fees,
  volume out and failures to the outgoing channel, where the fee is charged; volume in to
  the incoming one. Volume forwarded is the amount sent onward (amt_out_msat) of settled
  forwards.
- Failures are known only when the backend reports them (Core Lightning does, LND's
  forwarding history holds settled forwards only): `failures_known` says which, and without
  it the failed count and the success ratio are None, reported as "unknown".
- A rebalance's cost is its fee (a failed one records 0: a failed payment costs nothing) and
  is charged to the channel it refilled (in_channel). Net profit = fees - rebalancing cost.
- Local ratio = local / (local + remote) when the remote balance is known (what the
  dashboard shows), else local / capacity. Thresholds compare integers, so a channel at
  exactly 10 % is not drained whatever floats would say.
- Drained: local ratio under 10 % at the end of the period, or in more than half of its
  balance samples (a roll-up bucket counts as the snapshots it stands for). Idle: a listed
  channel without a settled forward in or out. Uptime: share of samples active, per channel
  and pooled over the listed channels.

Money is integer msat (capacities in sat); only ratios are floats.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

DAY_SECONDS = 86_400
WEEK_SECONDS = 7 * DAY_SECONDS

PeriodKind = Literal["daily", "weekly", "monthly"]
PERIOD_KINDS: tuple[str, ...] = ("daily", "weekly", "monthly")

SETTLED = "settled"
FORWARD_STATUSES = frozenset({SETTLED, "failed", "local_failed"})
OUTCOME_ORDER = ("improved", "neutral", "hurt", "inconclusive")  # impact.py's verdicts
OUTCOMES = frozenset(OUTCOME_ORDER)
PENDING = "pending"  # a change whose effect has not been measured yet

DRAINED_PERCENT = 10  # local ratio below this is drained
OFTEN_OFFLINE = 0.9  # uptime below this is called out in the highlights
# Local-ratio buckets of the balance distribution, in percent: [lo, hi), the last one closed.
BUCKET_EDGES: tuple[tuple[int, int], ...] = ((0, 10), (10, 30), (30, 70), (70, 90), (90, 100))
NAMES_IN_A_SENTENCE = 3


def _whole(name: str, value: Any, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value!r}")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected text, got {value!r}")
    return value


# -- periods --------------------------------------------------------------------------------


def _kind(kind: Any) -> PeriodKind:
    if kind not in PERIOD_KINDS:
        raise ValueError(f"kind: expected one of {', '.join(PERIOD_KINDS)}, got {kind!r}")
    return kind


def _utc(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def _month_start(year: int, month: int) -> int:
    return calendar.timegm((year, month, 1, 0, 0, 0))


def _start_of(kind: PeriodKind, ts: int) -> int:
    """Start of the period of `kind` that contains `ts`."""
    if kind == "daily":
        return ts // DAY_SECONDS * DAY_SECONDS
    if kind == "weekly":
        days = ts // DAY_SECONDS
        monday = days - (days + 3) % 7  # day 0, 1970-01-01, was a Thursday
        return monday * DAY_SECONDS
    moment = _utc(ts)
    return _month_start(moment.year, moment.month)


def _next_start(kind: PeriodKind, start: int) -> int:
    """Start of the period after the one starting at `start`."""
    if kind == "daily":
        return start + DAY_SECONDS
    if kind == "weekly":
        return start + WEEK_SECONDS
    moment = _utc(start)
    # year * 12 + month counts months from year 0 with January as 1, so the same count read
    # with January as 0 is the month after.
    year, month_index = divmod(moment.year * 12 + moment.month, 12)
    return _month_start(year, month_index + 1)


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in epoch seconds, UTC."""

    kind: PeriodKind
    start: int
    end: int

    def __post_init__(self) -> None:
        _kind(self.kind)
        _whole("start", self.start, None)
        _whole("end", self.end, None)
        if self.end <= self.start:
            raise ValueError(f"end: must be after start ({self.start}), got {self.end}")

    @property
    def seconds(self) -> int:
        return self.end - self.start

    @property
    def label(self) -> str:
        """2024-02-29, 2024-W09 (ISO week) or 2024-02: names files and headings."""
        moment = _utc(self.start)
        if self.kind == "daily":
            return moment.strftime("%Y-%m-%d")
        if self.kind == "weekly":
            year, week, _ = moment.isocalendar()
            return f"{year}-W{week:02d}"
        return moment.strftime("%Y-%m")

    def contains(self, ts: int) -> bool:
        return self.start <= ts < self.end

    def previous(self) -> Period:
        return Period(self.kind, _start_of(self.kind, self.start - 1), self.start)

    def next(self) -> Period:
        return Period(self.kind, self.end, _next_start(self.kind, self.end))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "end": self.end, "label": self.label}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Period:
        return cls(data["kind"], data["start"], data["end"])


def period_bounds(kind: str, at: int) -> Period:
    """The UTC period of `kind` that ended most recently at or before `at`: the day, the ISO
    week (Monday to Monday) or the calendar month."""
    k = _kind(kind)
    end = _start_of(k, _whole("at", at, None))
    return Period(k, _start_of(k, end - 1), end)


def period_containing(kind: str, ts: int) -> Period:
    """The period of `kind` that `ts` falls in (still running when `ts` is now)."""
    k = _kind(kind)
    start = _start_of(k, _whole("ts", ts, None))
    return Period(k, start, _next_start(k, start))


# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportChannel:
    """An open channel at the end of the period (daznode.channels)."""

    channel_id: str
    peer_alias: str
    capacity_sat: int
    local_msat: int  # at the end of the period
    remote_msat: int | None = None  # None: the ratio is taken against the capacity
    opened_at: int | None = None  # first seen (epoch s); None: open before the period

    def __post_init__(self) -> None:
        _text("channel_id", self.channel_id)
        _text("peer_alias", self.peer_alias)
        _whole("capacity_sat", self.capacity_sat)
        _whole("local_msat", self.local_msat)
        if self.remote_msat is not None:
            _whole("remote_msat", self.remote_msat)
        if self.opened_at is not None:
            _whole("opened_at", self.opened_at, None)

    @property
    def total_msat(self) -> int:
        if self.remote_msat is not None:
            return self.local_msat + self.remote_msat
        return self.capacity_sat * 1000


@dataclass(frozen=True, slots=True)
class ReportForward:
    """One forward as daznode.forwards stores it (crud.store_forwards)."""

    ts: int
    chan_in: str
    chan_out: str
    amt_in_msat: int
    amt_out_msat: int
    fee_msat: int
    status: str = SETTLED  # settled | failed | local_failed

    def __post_init__(self) -> None:
        _whole("ts", self.ts, None)
        _text("chan_in", self.chan_in)
        _text("chan_out", self.chan_out)
        for name in ("amt_in_msat", "amt_out_msat", "fee_msat"):
            _whole(name, getattr(self, name))
        if self.status not in FORWARD_STATUSES:
            raise ValueError(f"status: expected one of {sorted(FORWARD_STATUSES)}")

    @property
    def settled(self) -> bool:
        return self.status == SETTLED

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ReportForward:
        """From a daznode.forwards row; other columns (idx, fail_reason, ...) are ignored."""
        return cls(*(row[f.name] for f in fields(cls)))


@dataclass(frozen=True, slots=True)
class ReportRebalance:
    """One rebalance as daznode.rebalances stores it: out through out_channel, back in
    through in_channel (the channel refilled)."""

    ts: int
    out_channel: str
    in_channel: str
    amount_msat: int
    fee_msat: int  # what it cost; 0 when it failed
    ok: bool

    def __post_init__(self) -> None:
        _whole("ts", self.ts, None)
        _text("out_channel", self.out_channel)
        _text("in_channel", self.in_channel)
        _whole("amount_msat", self.amount_msat)
        _whole("fee_msat", self.fee_msat)
        if not isinstance(self.ok, bool):
            raise ValueError(f"ok: expected true or false, got {self.ok!r}")

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ReportRebalance:
        return cls(
            row["ts"],
            row["out_channel"],
            row["in_channel"],
            row["amount_msat"],
            row["fee_msat"],
            bool(row["ok"]),
        )


@dataclass(frozen=True, slots=True)
class ReportFeeChange:
    """A fee change applied in the period (batch_items APPLIED) and, once measured, its
    effect (daznode.impact: the verdict's outcome and adjusted_change)."""

    ts: int  # applied at
    channel_id: str
    fee_before_ppm: int
    fee_after_ppm: int
    outcome: str | None = None  # improved | neutral | hurt | inconclusive; None: not yet
    adjusted_change: float | None = None  # earnings after / expected - 1
    rolled_back: bool = False
    node_change: float | None = None  # the node as a whole, after / before - 1

    def __post_init__(self) -> None:
        _whole("ts", self.ts, None)
        _text("channel_id", self.channel_id)
        _whole("fee_before_ppm", self.fee_before_ppm)
        _whole("fee_after_ppm", self.fee_after_ppm)
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise ValueError(f"outcome: expected one of {sorted(OUTCOMES)} or None")
        for name in ("adjusted_change", "node_change"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not number:
                raise ValueError(f"{name}: expected a number, got {value!r}")
        if not isinstance(self.rolled_back, bool):
            raise ValueError(f"rolled_back: expected true or false, got {self.rolled_back!r}")


@dataclass(frozen=True, slots=True)
class BalanceSample:
    """A channel snapshot, or a roll-up bucket standing for `samples` snapshots (hourly and
    daily tables keep sums, so a bucket is exact for uptime and its mean for the balance)."""

    channel_id: str
    ts: int
    local_msat: int  # a bucket's mean: sum_local_msat // samples
    samples: int = 1
    active_samples: int = 1
    total_msat: int | None = None  # local + remote (a bucket's capacity_msat); None: capacity

    def __post_init__(self) -> None:
        _text("channel_id", self.channel_id)
        _whole("ts", self.ts, None)
        _whole("local_msat", self.local_msat)
        _whole("samples", self.samples, 1)
        _whole("active_samples", self.active_samples)
        if self.active_samples > self.samples:
            raise ValueError(f"active_samples: at most samples ({self.samples})")
        if self.total_msat is not None:
            _whole("total_msat", self.total_msat)

    @classmethod
    def snapshot(
        cls, channel_id: str, ts: int, local_msat: int, active: bool, remote_msat: int | None
    ) -> BalanceSample:
        total = None if remote_msat is None else local_msat + remote_msat
        return cls(channel_id, ts, local_msat, 1, int(bool(active)), total)

    @classmethod
    def from_snapshot_row(cls, row: Mapping[str, Any]) -> BalanceSample:
        """From a daznode.snapshots row."""
        return cls.snapshot(
            row["channel_id"], row["ts"], row["local_msat"], bool(row["active"]), row["remote_msat"]
        )

    @classmethod
    def from_bucket_row(cls, row: Mapping[str, Any]) -> BalanceSample:
        """From a daznode.snapshots_hourly or snapshots_daily row."""
        samples = int(row["samples"])
        return cls(
            row["channel_id"],
            row["bucket"],
            int(row["sum_local_msat"]) // max(1, samples),
            samples,
            int(row["active_samples"]),
            int(row["capacity_msat"]),
        )


@dataclass(frozen=True, slots=True)
class ReportInput:
    period: Period
    channels: tuple[ReportChannel, ...] = ()
    forwards: tuple[ReportForward, ...] = ()
    rebalances: tuple[ReportRebalance, ...] = ()
    fee_changes: tuple[ReportFeeChange, ...] = ()
    samples: tuple[BalanceSample, ...] = ()
    failures_known: bool = False  # the backend reports failed forwards (CLN yes, LND no)

    def __post_init__(self) -> None:
        # Accept any iterable from the shell; keep tuples so the input stays immutable.
        for name in ("channels", "forwards", "rebalances", "fee_changes", "samples"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        counts = Counter(c.channel_id for c in self.channels)
        duplicates = sorted(i for i, n in counts.items() if n > 1)
        if duplicates:
            raise ValueError(f"channels: listed twice: {', '.join(duplicates)}")
        if not self.failures_known and any(not f.settled for f in self.forwards):
            raise ValueError(
                "failures_known: failed forwards were given, so the backend reports failures"
            )


# -- output ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Totals:
    fees_msat: int
    volume_msat: int  # sent onward by settled forwards
    forwards: int  # settled
    failures_known: bool
    failed: int | None  # None: unknown
    success_ratio: float | None  # settled / attempts; None: unknown or no attempts
    rebalances: int
    rebalances_failed: int
    rebalanced_msat: int  # moved by successful rebalances
    rebalance_cost_msat: int
    net_profit_msat: int  # fees - rebalancing cost
    fee_changes: int
    channels: int  # open at the end of the period
    capacity_sat: int
    local_msat: int
    uptime: float | None  # share of all channels' samples active; None without samples

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["failures"] = "known" if self.failures_known else "unknown"
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Totals:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class ChannelSummary:
    channel_id: str
    peer_alias: str
    listed: bool  # among the node's channels at the end; False: closed or unknown
    capacity_sat: int
    local_msat: int  # at the end
    local_ratio: float
    open_share: float  # share of the period the channel was open
    forwards_out: int
    forwards_in: int
    volume_out_msat: int
    volume_in_msat: int
    fees_msat: int
    fee_share: float  # of the node's fees; 0.0 when the node earned nothing
    failed: int | None  # failed on this channel (outgoing); None: unknown
    rebalance_cost_msat: int  # of rebalances that refilled this channel
    net_msat: int  # fees - rebalance cost
    samples: int
    uptime: float | None  # share of samples active; None without samples
    drained: bool
    idle: bool  # no settled forward in or out

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelSummary:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class FeeChangeResult:
    ts: int
    channel_id: str
    peer_alias: str
    fee_before_ppm: int
    fee_after_ppm: int
    direction: str  # raise | cut | same
    outcome: str  # improved | neutral | hurt | inconclusive | pending
    adjusted_change: float | None
    rolled_back: bool
    node_change: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeeChangeResult:
        # reports stored before node_change existed leave it out: its default stands
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True, slots=True)
class BalanceBucket:
    label: str  # "0-10%"
    low_percent: int
    high_percent: int  # exclusive, except 100
    channels: int
    capacity_sat: int
    local_msat: int

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BalanceBucket:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    totals: Totals
    channels: tuple[ChannelSummary, ...]  # by fees, then volume out, then id
    top_earners: tuple[str, ...]  # channel ids, best first
    idle: tuple[str, ...]  # listed channels without a settled forward
    drained: tuple[str, ...]
    fee_changes: tuple[FeeChangeResult, ...]  # in the order applied
    balance_buckets: tuple[BalanceBucket, ...]
    highlights: tuple[str, ...]
    outcomes: dict[str, int] = field(default_factory=dict)  # fee changes per outcome

    def channel(self, channel_id: str) -> ChannelSummary | None:
        return next((c for c in self.channels if c.channel_id == channel_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period.to_dict(),
            "totals": self.totals.to_dict(),
            "channels": [c.to_dict() for c in self.channels],
            "top_earners": list(self.top_earners),
            "idle": list(self.idle),
            "drained": list(self.drained),
            "fee_changes": [c.to_dict() for c in self.fee_changes],
            "outcomes": dict(self.outcomes),
            "balance_buckets": [b.to_dict() for b in self.balance_buckets],
            "highlights": list(self.highlights),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """A stored report back (the inverse of to_dict)."""
        return cls(
            period=Period.from_dict(data["period"]),
            totals=Totals.from_dict(data["totals"]),
            channels=tuple(ChannelSummary.from_dict(c) for c in data["channels"]),
            top_earners=tuple(data["top_earners"]),
            idle=tuple(data["idle"]),
            drained=tuple(data["drained"]),
            fee_changes=tuple(FeeChangeResult.from_dict(c) for c in data["fee_changes"]),
            balance_buckets=tuple(BalanceBucket.from_dict(b) for b in data["balance_buckets"]),
            highlights=tuple(data["highlights"]),
            outcomes=dict(data["outcomes"]),
        )


# -- building -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    """Running sums for one channel while the rows are read."""

    forwards_out: int = 0
    forwards_in: int = 0
    volume_out_msat: int = 0
    volume_in_msat: int = 0
    fees_msat: int = 0
    failed: int = 0
    rebalance_cost_msat: int = 0
    samples: int = 0
    active_samples: int = 0
    drained_samples: int = 0


def build_report(inp: ReportInput, top_n: int = 5) -> Report:
    """The report of `inp.period` (see the module docstring for the conventions)."""
    _whole("top_n", top_n)
    period = inp.period
    forwards = [f for f in inp.forwards if period.contains(f.ts)]
    rebalances = [r for r in inp.rebalances if period.contains(r.ts)]
    changes = sorted(
        (c for c in inp.fee_changes if period.contains(c.ts)),
        key=lambda c: (c.ts, c.channel_id, c.fee_before_ppm, c.fee_after_ppm),
    )
    listed = {c.channel_id: c for c in inp.channels}
    tallies = _tally(forwards, rebalances, inp.samples, listed, period)

    fees = sum(f.fee_msat for f in forwards if f.settled)
    rows = _channel_rows(tallies, listed, period, fees, inp.failures_known)
    totals = _totals(inp, forwards, rebalances, len(changes), tallies, fees)
    results = tuple(_fee_change_result(c, listed) for c in changes)
    outcomes = {name: 0 for name in (*OUTCOME_ORDER, PENDING)}
    for r in results:
        outcomes[r.outcome] += 1
    top = tuple(r.channel_id for r in rows if r.fees_msat > 0)[:top_n]
    idle = tuple(sorted(r.channel_id for r in rows if r.listed and r.idle))
    drained = tuple(sorted(r.channel_id for r in rows if r.drained))
    report = Report(
        period=period,
        totals=totals,
        channels=rows,
        top_earners=top,
        idle=idle,
        drained=drained,
        fee_changes=results,
        balance_buckets=_balance_buckets(inp.channels),
        highlights=(),
        outcomes=outcomes,
    )
    return _with_highlights(report)


def _tally(
    forwards: Iterable[ReportForward],
    rebalances: Iterable[ReportRebalance],
    samples: Iterable[BalanceSample],
    listed: Mapping[str, ReportChannel],
    period: Period,
) -> dict[str, _Tally]:
    # Every listed channel gets a row, and so does any other channel a forward or a rebalance
    # cost names, so the rows add up to the totals.
    tallies = {cid: _Tally() for cid in listed}
    for f in forwards:
        out = tallies.setdefault(f.chan_out, _Tally())
        if not f.settled:
            out.failed += 1
            continue
        into = tallies.setdefault(f.chan_in, _Tally())
        out.forwards_out += 1
        out.volume_out_msat += f.amt_out_msat
        out.fees_msat += f.fee_msat
        into.forwards_in += 1
        into.volume_in_msat += f.amt_in_msat
    for r in rebalances:
        tallies.setdefault(r.in_channel, _Tally()).rebalance_cost_msat += r.fee_msat
    for s in samples:
        channel = listed.get(s.channel_id)
        if channel is None or not period.contains(s.ts):
            continue  # closed channels have no place in uptime or balance figures
        t = tallies[s.channel_id]
        t.samples += s.samples
        t.active_samples += s.active_samples
        total = s.total_msat if s.total_msat is not None else channel.total_msat
        if _is_drained(s.local_msat, total):
            t.drained_samples += s.samples
    return tallies


def _is_drained(local_msat: int, total_msat: int) -> bool:
    return local_msat * 100 < DRAINED_PERCENT * total_msat


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _open_share(channel: ReportChannel | None, period: Period) -> float:
    if channel is None or channel.opened_at is None or channel.opened_at <= period.start:
        return 1.0
    return _ratio(max(0, period.end - channel.opened_at), period.seconds)


def _channel_rows(
    tallies: Mapping[str, _Tally],
    listed: Mapping[str, ReportChannel],
    period: Period,
    node_fees_msat: int,
    failures_known: bool,
) -> tuple[ChannelSummary, ...]:
    rows = [
        _channel_row(cid, t, listed.get(cid), period, node_fees_msat, failures_known)
        for cid, t in tallies.items()
    ]
    rows.sort(key=lambda r: (-r.fees_msat, -r.volume_out_msat, r.channel_id))
    return tuple(rows)


def _channel_row(
    channel_id: str,
    t: _Tally,
    channel: ReportChannel | None,
    period: Period,
    node_fees_msat: int,
    failures_known: bool,
) -> ChannelSummary:
    local = channel.local_msat if channel else 0
    total = channel.total_msat if channel else 0
    # Drained: below the threshold at the end, or in most of the period's samples.
    drained = channel is not None and (
        _is_drained(local, total) or t.drained_samples * 2 > t.samples
    )
    return ChannelSummary(
        channel_id=channel_id,
        peer_alias=channel.peer_alias if channel else "",
        listed=channel is not None,
        capacity_sat=channel.capacity_sat if channel else 0,
        local_msat=local,
        local_ratio=_ratio(local, total),
        open_share=_open_share(channel, period),
        forwards_out=t.forwards_out,
        forwards_in=t.forwards_in,
        volume_out_msat=t.volume_out_msat,
        volume_in_msat=t.volume_in_msat,
        fees_msat=t.fees_msat,
        fee_share=_ratio(t.fees_msat, node_fees_msat),
        failed=t.failed if failures_known else None,
        rebalance_cost_msat=t.rebalance_cost_msat,
        net_msat=t.fees_msat - t.rebalance_cost_msat,
        samples=t.samples,
        uptime=t.active_samples / t.samples if t.samples else None,
        drained=drained,
        idle=t.forwards_out == 0 and t.forwards_in == 0,
    )


def _totals(
    inp: ReportInput,
    forwards: list[ReportForward],
    rebalances: list[ReportRebalance],
    fee_changes: int,
    tallies: Mapping[str, _Tally],
    fees_msat: int,
) -> Totals:
    settled = [f for f in forwards if f.settled]
    failed = len(forwards) - len(settled)
    cost = sum(r.fee_msat for r in rebalances)
    samples = sum(tallies[c.channel_id].samples for c in inp.channels)
    active = sum(tallies[c.channel_id].active_samples for c in inp.channels)
    attempts = len(forwards)
    return Totals(
        fees_msat=fees_msat,
        volume_msat=sum(f.amt_out_msat for f in settled),
        forwards=len(settled),
        failures_known=inp.failures_known,
        failed=failed if inp.failures_known else None,
        success_ratio=len(settled) / attempts if inp.failures_known and attempts else None,
        rebalances=len(rebalances),
        rebalances_failed=sum(1 for r in rebalances if not r.ok),
        rebalanced_msat=sum(r.amount_msat for r in rebalances if r.ok),
        rebalance_cost_msat=cost,
        net_profit_msat=fees_msat - cost,
        fee_changes=fee_changes,
        channels=len(inp.channels),
        capacity_sat=sum(c.capacity_sat for c in inp.channels),
        local_msat=sum(c.local_msat for c in inp.channels),
        uptime=active / samples if samples else None,
    )


def _fee_change_result(
    change: ReportFeeChange, listed: Mapping[str, ReportChannel]
) -> FeeChangeResult:
    before, after = change.fee_before_ppm, change.fee_after_ppm
    channel = listed.get(change.channel_id)
    adjusted = None if change.adjusted_change is None else float(change.adjusted_change)
    return FeeChangeResult(
        ts=change.ts,
        channel_id=change.channel_id,
        peer_alias=channel.peer_alias if channel else "",
        fee_before_ppm=before,
        fee_after_ppm=after,
        direction="raise" if after > before else "cut" if after < before else "same",
        outcome=change.outcome or PENDING,
        adjusted_change=adjusted,
        rolled_back=change.rolled_back,
        node_change=None if change.node_change is None else float(change.node_change),
    )


def _bucket_index(local_msat: int, total_msat: int) -> int:
    # Integer comparisons: a channel at exactly 30 % lands in 30-70 %, never by rounding.
    return sum(1 for low, _ in BUCKET_EDGES[1:] if local_msat * 100 >= low * total_msat)


def _balance_buckets(channels: Iterable[ReportChannel]) -> tuple[BalanceBucket, ...]:
    counts = [[0, 0, 0] for _ in BUCKET_EDGES]  # channels, capacity_sat, local_msat
    for c in channels:
        slot = counts[_bucket_index(c.local_msat, c.total_msat)]
        slot[0] += 1
        slot[1] += c.capacity_sat
        slot[2] += c.local_msat
    return tuple(
        BalanceBucket(f"{low}-{high}%", low, high, n, capacity, local)
        for (low, high), (n, capacity, local) in zip(BUCKET_EDGES, counts, strict=True)
    )


# -- highlights -----------------------------------------------------------------------------


def format_sat(msat: int) -> str:
    """msat as sat for people, exact: 1234567 -> '1,234.567 sat', -5000 -> '-5 sat'."""
    sign = "-" if msat < 0 else ""
    whole, rest = divmod(abs(msat), 1000)
    fraction = f".{rest:03d}".rstrip("0") if rest else ""
    return f"{sign}{whole:,}{fraction} sat"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _name(row: ChannelSummary) -> str:
    return row.peer_alias or row.channel_id


def _names(rows: list[ChannelSummary]) -> str:
    shown = ", ".join(_name(r) for r in rows[:NAMES_IN_A_SENTENCE])
    more = len(rows) - NAMES_IN_A_SENTENCE
    return f"{shown} and {more} more" if more > 0 else shown


def _with_highlights(report: Report) -> Report:
    lines = [
        *_earnings_lines(report.totals),
        *_failure_lines(report.totals),
        *_cost_lines(report.totals),
        *_channel_lines(report),
        *_change_lines(report),
        *_uptime_lines(report),
    ]
    return replace(report, highlights=tuple(lines))


def _earnings_lines(t: Totals) -> list[str]:
    if t.forwards == 0:
        return ["No forwards settled in this period."]
    return [
        f"Earned {format_sat(t.fees_msat)} in fees from {_plural(t.forwards, 'forward')}, "
        f"{format_sat(t.volume_msat)} forwarded."
    ]


def _failure_lines(t: Totals) -> list[str]:
    if not t.failures_known or t.failed is None:
        return ["Failed forwards: unknown (this node reports settled forwards only)."]
    attempts = t.forwards + t.failed
    if attempts == 0:
        return []
    if t.failed == 0:
        return [f"No forward failed ({_plural(attempts, 'attempt')})."]
    if t.forwards == 0:
        return [f"All {_plural(attempts, 'forward attempt')} failed."]
    return [
        f"{_plural(t.failed, 'forward')} failed: {t.success_ratio:.0%} of "
        f"{_plural(attempts, 'attempt')} succeeded."
    ]


def _cost_lines(t: Totals) -> list[str]:
    lines = []
    if t.rebalances:
        failed = f", {t.rebalances_failed} failed" if t.rebalances_failed else ""
        lines.append(
            f"Rebalancing cost {format_sat(t.rebalance_cost_msat)} to move "
            f"{format_sat(t.rebalanced_msat)} ({_plural(t.rebalances, 'rebalance')}{failed})."
        )
    if t.net_profit_msat < 0:
        lines.append(
            f"Net loss: {format_sat(-t.net_profit_msat)}: rebalancing cost more than the fees."
        )
    elif t.fees_msat or t.rebalance_cost_msat:
        lines.append(f"Net profit: {format_sat(t.net_profit_msat)}.")
    return lines


def _channel_lines(report: Report) -> list[str]:
    lines = []
    by_id = {r.channel_id: r for r in report.channels}
    if report.top_earners:
        best = by_id[report.top_earners[0]]
        lines.append(f"Top earner: {_name(best)}, {best.fee_share:.0%} of the fees.")
    idle = [by_id[c] for c in report.idle]
    if idle:
        new = sum(1 for r in idle if r.open_share < 1)
        opened = f" ({new} opened during the period)" if new else ""
        lines.append(f"{_plural(len(idle), 'channel')} forwarded nothing{opened}: {_names(idle)}.")
    drained = [by_id[c] for c in report.drained]
    if drained:
        verb = "is" if len(drained) == 1 else "are"
        lines.append(
            f"{_plural(len(drained), 'channel')} {verb} drained (under {DRAINED_PERCENT}% "
            f"local): {_names(drained)}."
        )
    return lines


def _change_lines(report: Report) -> list[str]:
    if not report.fee_changes:
        return []
    counts = report.outcomes
    parts = [f"{counts[o]} {o}" for o in OUTCOME_ORDER]
    parts.append(f"{counts[PENDING]} not measured yet")
    shown = ", ".join(p for p in parts if not p.startswith("0 "))
    rolled = sum(1 for c in report.fee_changes if c.rolled_back)
    back = f"; {rolled} rolled back" if rolled else ""
    return [f"{_plural(len(report.fee_changes), 'fee change')} applied: {shown}{back}."]


def _uptime_lines(report: Report) -> list[str]:
    if report.totals.uptime is None:
        return []
    lines = [f"Channels were active {report.totals.uptime:.1%} of the time."]
    weak = sorted(
        (r for r in report.channels if r.uptime is not None and r.uptime < OFTEN_OFFLINE),
        key=lambda r: (r.uptime, r.channel_id),
    )
    if weak:
        listed = ", ".join(f"{_name(r)} ({r.uptime:.0%})" for r in weak[:NAMES_IN_A_SENTENCE])
        more = len(weak) - NAMES_IN_A_SENTENCE
        lines.append(f"Often offline: {listed}{f' and {more} more' if more > 0 else ''}.")
    return lines
