"""The one gate every proposed change passes before Daznode applies it.

Pure functions over plain data: the global `Bounds`, per-channel `ChannelOverride`s, the
`UpdateLog` of recently applied policy updates and the current time. A `Verdict` lists every
reason a change is rejected (naming the channel, the value and the limit) and every check
that passed, so the dry-run display can show both. The rules, with their defaults, are
described in docs/SAFETY.md ("Validation").

Rules that need a definition beyond "min <= value <= max":

- Step limit. A fee rate may move by at most `max(floor(max_relative_change x reference),
  min_fee_step_ppm)` per update, so a fee of 0 (or 3 ppm) can still move by 10 ppm. The
  base fee follows the same relative limit with an absolute allowance of
  `min_base_fee_step_msat` (1000 msat). The reference is the current (`before`) value
  clamped into the allowed range: when the admin tightens the bounds, a change that brings
  the value back into range is always allowed, and the step is measured from the nearest
  allowed value.
- Override precedence. A channel override replaces the global bound on the side it sets. If
  it crosses the global bound on the other side (override minimum 6000 ppm with the global
  maximum 5000 ppm), the override wins and the other side moves to it (6000..6000).
- Inbound fees (LND): inbound fee rate and base fee must be <= 0 (discounts only) and the
  total with the channel's outbound value must stay >= 0. None (a backend without inbound
  fees) and 0 are the same for the "nothing to change" test.
- Time windows: an update counts against the daily budget while `now - at < 86400` and
  against the hourly node budget while `now - at < 3600`; changes already accepted in the
  same batch (`pending`) count as happening now.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from .changes import POLICY_FIELDS, PolicyChange, proposed_policy
from .decide import Recommendation
from .node_source import RoutingPolicy, normalize_channel_id

DAY_SECONDS = 86_400
HOUR_SECONDS = 3_600
# Sanity limits on the fields the fee bounds do not cover; checked only when a change
# touches the field (a change of the fee alone must not fail on an old cltv_delta).
MIN_CLTV_DELTA = 18  # LND refuses smaller deltas
MAX_CLTV_DELTA = 2016  # LND's maximum time lock delta (two weeks of blocks)
_EPS = 1e-9  # float slack when flooring max_relative_change x reference


class ValidationConfigError(ValueError):
    """Bad validation settings; the message starts with the offending field."""


# -- settings -------------------------------------------------------------------------------

# (minimum, maximum) of every numeric Bounds field.
_BOUNDS_LIMITS: dict[str, tuple[float, float]] = {
    "min_fee_ppm": (0, 1_000_000),
    "max_fee_ppm": (0, 1_000_000),
    "min_base_fee_msat": (0, 10_000_000),
    "max_base_fee_msat": (0, 10_000_000),
    "max_relative_change": (0.01, 10.0),
    "min_fee_step_ppm": (1, 100_000),
    "min_base_fee_step_msat": (1, 10_000_000),
    "cooldown_seconds": (0, 30 * DAY_SECONDS),
    "max_updates_per_channel_per_day": (1, 1_000),
    "max_updates_per_node_per_hour": (1, 100_000),
    "rebalance_max_amount_ratio": (0.01, 1.0),
    "rebalance_max_fee_ppm": (0, 100_000),
}
_FLOAT_FIELDS = frozenset({"max_relative_change", "rebalance_max_amount_ratio"})


def _number(name: str, value: Any, *, want_int: bool, lo: float, hi: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationConfigError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ValidationConfigError(f"{name}: expected a finite number, got {value!r}")
    if want_int and not float(value).is_integer():
        raise ValidationConfigError(f"{name}: expected a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise ValidationConfigError(f"{name}: must be between {lo:g} and {hi:g}, got {value!r}")
    return int(value) if want_int else float(value)


def _lo(name: str) -> float:
    return _BOUNDS_LIMITS[name][0]


def _hi(name: str) -> float:
    return _BOUNDS_LIMITS[name][1]


def _mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationConfigError(f"{what}: expected a mapping, got {type(data).__name__}")
    return data


def _reject_unknown(data: Mapping[str, Any], known: Iterable[str], what: str) -> None:
    unknown = sorted(str(k) for k in set(data) - set(known))
    if unknown:
        raise ValidationConfigError(f"{', '.join(unknown)}: unknown {what} setting")


def _channel_id(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationConfigError(f"{name}: expected a short channel id, got {value!r}")
    try:
        return normalize_channel_id(value)
    except ValueError as exc:
        raise ValidationConfigError(f"{name}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Bounds:
    """Global limits. Fee rates in ppm, base fees in msat, times in seconds."""

    min_fee_ppm: int = 0
    max_fee_ppm: int = 5000
    min_base_fee_msat: int = 0
    max_base_fee_msat: int = 10_000
    max_relative_change: float = 0.5  # of the current value, per update
    min_fee_step_ppm: int = 10  # a fee rate may always move this much (a fee of 0 too)
    min_base_fee_step_msat: int = 1000  # likewise for the base fee
    cooldown_seconds: int = 6 * HOUR_SECONDS  # per channel, between two updates
    max_updates_per_channel_per_day: int = 4  # gossip budget, rolling 24 h
    max_updates_per_node_per_hour: int = 20  # gossip budget, rolling hour, whole node
    rebalance_max_amount_ratio: float = 0.5  # of the channel's capacity
    rebalance_max_fee_ppm: int = 1000

    def __post_init__(self) -> None:
        for name, (lo, hi) in _BOUNDS_LIMITS.items():
            _number(name, getattr(self, name), want_int=name not in _FLOAT_FIELDS, lo=lo, hi=hi)
        if self.min_fee_ppm > self.max_fee_ppm:
            raise ValidationConfigError(
                f"min_fee_ppm: {self.min_fee_ppm} above max_fee_ppm {self.max_fee_ppm}"
            )
        if self.min_base_fee_msat > self.max_base_fee_msat:
            raise ValidationConfigError(
                f"min_base_fee_msat: {self.min_base_fee_msat} above max_base_fee_msat "
                f"{self.max_base_fee_msat}"
            )

    @classmethod
    def from_dict(cls, data: Any) -> Bounds:
        """Bounds from plain data; fields left out keep their defaults."""
        data = _mapping(data, "bounds")
        _reject_unknown(data, _BOUNDS_LIMITS, "bounds")
        values = {
            name: _number(
                name, value, want_int=name not in _FLOAT_FIELDS, lo=_lo(name), hi=_hi(name)
            )
            for name, value in data.items()
        }
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_OVERRIDE_BOUNDS = ("min_fee_ppm", "max_fee_ppm", "min_base_fee_msat", "max_base_fee_msat")


@dataclass(frozen=True, slots=True)
class ChannelOverride:
    """Per-channel settings. Bounds left at None fall back to the global ones."""

    channel_id: str
    min_fee_ppm: int | None = None
    max_fee_ppm: int | None = None
    min_base_fee_msat: int | None = None
    max_base_fee_msat: int | None = None
    pinned: bool = False  # the admin fixed this channel's policy: never touched
    excluded: bool = False  # Daznode ignores the channel entirely

    def __post_init__(self) -> None:
        if _channel_id("channel_id", self.channel_id) != self.channel_id:
            raise ValidationConfigError(
                f"channel_id: not in canonical form BLOCKxTXxOUT: {self.channel_id!r}"
            )
        for name in _OVERRIDE_BOUNDS:
            value = getattr(self, name)
            if value is not None:
                _number(name, value, want_int=True, lo=_lo(name), hi=_hi(name))
        for lo_name, hi_name in (
            ("min_fee_ppm", "max_fee_ppm"),
            ("min_base_fee_msat", "max_base_fee_msat"),
        ):
            lo, hi = getattr(self, lo_name), getattr(self, hi_name)
            if lo is not None and hi is not None and lo > hi:
                raise ValidationConfigError(f"{lo_name}: {lo} above {hi_name} {hi}")
        for name in ("pinned", "excluded"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationConfigError(
                    f"{name}: expected true or false, got {getattr(self, name)!r}"
                )

    @classmethod
    def from_dict(cls, data: Any) -> ChannelOverride:
        """An override from plain data; channel_id may also be LND's decimal chan_id."""
        data = _mapping(data, "override")
        _reject_unknown(data, [f.name for f in fields(cls)], "override")
        if "channel_id" not in data:
            raise ValidationConfigError("channel_id: required")
        values: dict[str, Any] = {"channel_id": _channel_id("channel_id", data["channel_id"])}
        for name in _OVERRIDE_BOUNDS:
            value = data.get(name)
            if value is not None:
                value = _number(name, value, want_int=True, lo=_lo(name), hi=_hi(name))
            values[name] = value
        for name in ("pinned", "excluded"):
            value = data.get(name, False)
            if not isinstance(value, bool):
                raise ValidationConfigError(f"{name}: expected true or false, got {value!r}")
            values[name] = value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class UpdateLog:
    """Recently applied policy updates as (channel_id, epoch seconds), in any order."""

    updates: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.updates, tuple):
            raise ValidationConfigError("updates: expected a tuple of (channel_id, at)")
        for i, entry in enumerate(self.updates):
            if not isinstance(entry, tuple) or len(entry) != 2:
                raise ValidationConfigError(f"updates[{i}]: expected (channel_id, at)")
            if not isinstance(entry[0], str):
                raise ValidationConfigError(f"updates[{i}].channel_id: expected text")
            _number(f"updates[{i}].at", entry[1], want_int=True, lo=0, hi=2**63 - 1)

    @classmethod
    def from_dict(cls, data: Any) -> UpdateLog:
        """{"updates": [{"channel_id": "812x3x0", "at": 1700000000}, ...]}; an entry may also
        be a [channel_id, at] pair."""
        data = _mapping(data, "update log")
        _reject_unknown(data, ["updates"], "update log")
        raw = data.get("updates", [])
        if not isinstance(raw, list | tuple):
            raise ValidationConfigError("updates: expected a list")
        entries: list[tuple[str, int]] = []
        for i, item in enumerate(raw):
            if isinstance(item, Mapping):
                _reject_unknown(item, ["channel_id", "at"], f"updates[{i}]")
                if "channel_id" not in item or "at" not in item:
                    raise ValidationConfigError(f"updates[{i}]: needs channel_id and at")
                cid, at = item["channel_id"], item["at"]
            elif isinstance(item, list | tuple) and len(item) == 2:
                cid, at = item
            else:
                raise ValidationConfigError(f"updates[{i}]: expected {{channel_id, at}}")
            entries.append(
                (
                    _channel_id(f"updates[{i}].channel_id", cid),
                    _number(f"updates[{i}].at", at, want_int=True, lo=0, hi=2**63 - 1),
                )
            )
        return cls(tuple(entries))

    def to_dict(self) -> dict[str, Any]:
        return {"updates": [{"channel_id": cid, "at": at} for cid, at in self.updates]}

    def with_update(self, channel_id: str, at: int) -> UpdateLog:
        return UpdateLog((*self.updates, (channel_id, at)))

    def last_update(self, channel_id: str) -> int | None:
        times = [at for cid, at in self.updates if cid == channel_id]
        return max(times) if times else None

    def count_within(self, now: int, seconds: int, channel_id: str | None = None) -> int:
        """Updates with now - at < seconds (future entries count too), of one channel or all."""
        return sum(
            1
            for cid, at in self.updates
            if now - at < seconds and (channel_id is None or cid == channel_id)
        )

    def pruned(self, now: int, keep_seconds: int = DAY_SECONDS) -> UpdateLog:
        """Only the entries any check can still see (cooldowns longer than `keep_seconds`
        need a longer `keep_seconds`)."""
        return UpdateLog(tuple(e for e in self.updates if now - e[1] < keep_seconds))


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()  # every rejection reason
    checks: tuple[str, ...] = ()  # what was checked and passed
    later: tuple[str, ...] = ()  # the reasons that time lifts (cooldown, gossip budget)

    def __post_init__(self) -> None:
        if not isinstance(self.ok, bool):
            raise ValidationConfigError(f"ok: expected true or false, got {self.ok!r}")
        for name in ("reasons", "checks", "later"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(s, str) for s in value):
                raise ValidationConfigError(f"{name}: expected a list of texts")
        if self.ok == bool(self.reasons):
            raise ValidationConfigError("ok: must be true exactly when there are no reasons")
        if not set(self.later) <= set(self.reasons):
            raise ValidationConfigError("later: every entry must be one of the reasons")

    @classmethod
    def from_dict(cls, data: Any) -> Verdict:
        data = _mapping(data, "verdict")
        _reject_unknown(data, ["ok", "reasons", "checks", "later"], "verdict")
        if "ok" not in data:
            raise ValidationConfigError("ok: required")
        values: dict[str, Any] = {"ok": data["ok"]}
        for name in ("reasons", "checks", "later"):
            value = data.get(name, [])
            if not isinstance(value, list | tuple):
                raise ValidationConfigError(f"{name}: expected a list of texts")
            values[name] = tuple(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reasons": list(self.reasons),
            "checks": list(self.checks),
            "later": list(self.later),
        }


# -- effective limits -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Range:
    lo: int
    hi: int
    lo_label: str  # "the minimum" or "the channel minimum"
    hi_label: str

    def clamp(self, value: int) -> int:
        return min(self.hi, max(self.lo, value))


def _range(g_lo: int, g_hi: int, o_lo: int | None, o_hi: int | None) -> Range:
    lo = g_lo if o_lo is None else o_lo
    hi = g_hi if o_hi is None else o_hi
    if lo > hi:  # one override side crosses the other global side: the override wins
        if o_lo is not None:
            hi = lo
        else:
            lo = hi
    return Range(
        lo,
        hi,
        "the minimum" if o_lo is None and lo == g_lo else "the channel minimum",
        "the maximum" if o_hi is None and hi == g_hi else "the channel maximum",
    )


@dataclass(frozen=True, slots=True)
class EffectiveBounds:
    fee_rate: Range  # ppm
    base_fee: Range  # msat


def effective_bounds(bounds: Bounds, override: ChannelOverride | None) -> EffectiveBounds:
    o = override
    return EffectiveBounds(
        fee_rate=_range(
            bounds.min_fee_ppm,
            bounds.max_fee_ppm,
            o.min_fee_ppm if o else None,
            o.max_fee_ppm if o else None,
        ),
        base_fee=_range(
            bounds.min_base_fee_msat,
            bounds.max_base_fee_msat,
            o.min_base_fee_msat if o else None,
            o.max_base_fee_msat if o else None,
        ),
    )


def max_step(reference: int, relative: float, minimum: int) -> int:
    """The largest allowed move from `reference` in one update."""
    return max(minimum, math.floor(abs(reference) * relative + _EPS))


def _changed_fields(before: RoutingPolicy, after: RoutingPolicy) -> list[str]:
    def norm(name: str, value: int | None) -> int | None:
        return (value or 0) if name.startswith("inbound_") else value

    return [
        name
        for name in POLICY_FIELDS
        if norm(name, getattr(after, name)) != norm(name, getattr(before, name))
    ]


def _duration(seconds: int) -> str:
    if seconds < 0:
        return f"-{_duration(-seconds)}"
    if seconds < 60:
        return f"{seconds} s"
    d, rest = divmod(seconds, DAY_SECONDS)
    h, rest = divmod(rest, HOUR_SECONDS)
    m, s = divmod(rest, 60)
    parts = [f"{d} d" if d else "", f"{h} h" if h else "", f"{m} min" if m else ""]
    parts.append(f"{s} s" if s and not d else "")
    return " ".join(p for p in parts if p)


def _pct(x: float) -> str:
    return f"{x * 100:g}%"


# -- policy changes -------------------------------------------------------------------------


def validate_policy_change(
    change: PolicyChange,
    bounds: Bounds,
    override: ChannelOverride | None,
    log: UpdateLog,
    now: int,
    *,
    pending: tuple[PolicyChange, ...] = (),
    step_limit: bool = True,
) -> Verdict:
    """Check one proposed change. `pending`: changes already accepted in the same batch, which
    count as applied at `now`. `step_limit` off: the fee may take any step within its range
    (a price level trial moves every channel by the level's ratio in one update)."""
    cid = change.channel_id
    if override is not None and override.channel_id != cid:
        raise ValueError(f"override for {override.channel_id} given for channel {cid}")
    reasons: list[str] = []
    checks: list[str] = []
    before, after = change.before, change.after
    eff = effective_bounds(bounds, override)

    # The admin's word first.
    if override is not None and override.excluded:
        reasons.append(f"{cid}: channel is excluded; Daznode leaves it alone")
    if override is not None and override.pinned:
        reasons.append(f"{cid}: channel is pinned; its policy is fixed by the admin")
    if override is None or not (override.excluded or override.pinned):
        checks.append(f"{cid}: channel is neither pinned nor excluded")

    changed = _changed_fields(before, after)
    if changed:
        checks.append(f"{cid}: changes {', '.join(changed)}")
    else:
        reasons.append(f"{cid}: nothing to change (the proposed policy equals the current one)")

    # Outbound fee rate and base fee: range, then step.
    for label, unit, name, rng, min_step in (
        ("fee rate", "ppm", "fee_rate_ppm", eff.fee_rate, bounds.min_fee_step_ppm),
        ("base fee", "msat", "base_fee_msat", eff.base_fee, bounds.min_base_fee_step_msat),
    ):
        old, new = getattr(before, name), getattr(after, name)
        if new < rng.lo:
            reasons.append(f"{cid}: {label} {new} {unit} below {rng.lo_label} {rng.lo} {unit}")
        elif new > rng.hi:
            reasons.append(f"{cid}: {label} {new} {unit} above {rng.hi_label} {rng.hi} {unit}")
        else:
            checks.append(f"{cid}: {label} {new} {unit} within {rng.lo}..{rng.hi} {unit}")
        if not rng.lo <= new <= rng.hi:
            continue  # out of range already rejected; a step from the range would confuse
        if not step_limit:
            if new != old:
                checks.append(f"{cid}: {label} change {old} -> {new} {unit} (a price level step)")
            continue
        ref = rng.clamp(old)
        step = max_step(ref, bounds.max_relative_change, min_step)
        rule = f"{_pct(bounds.max_relative_change)} of {ref} {unit}, at least {min_step} {unit}"
        move = f"{new - old:+d} {unit}"
        if ref != old:  # coming back into range: the step counts from the nearest bound
            move = f"{new - ref:+d} {unit} from {ref} {unit}, the allowed value nearest the current"
        if abs(new - ref) > step:
            reasons.append(
                f"{cid}: {label} change {old} -> {new} {unit} ({move}) exceeds "
                f"the maximum step {step} {unit} ({rule})"
            )
        elif new != old:
            checks.append(
                f"{cid}: {label} change {old} -> {new} {unit} ({move}) within the maximum "
                f"step {step} {unit} ({rule})"
            )

    # Inbound fees: discounts only, and never more than the outbound fee.
    for label, unit, in_name, out_name in (
        ("inbound fee rate", "ppm", "inbound_fee_rate_ppm", "fee_rate_ppm"),
        ("inbound base fee", "msat", "inbound_base_fee_msat", "base_fee_msat"),
    ):
        inbound = getattr(after, in_name)
        if inbound is None:
            continue
        outbound = getattr(after, out_name)
        if inbound > 0:
            reasons.append(
                f"{cid}: {label} {inbound} {unit} above the maximum 0 {unit} "
                "(inbound fees may only be discounts)"
            )
        total = outbound + inbound
        if total < 0:
            reasons.append(
                f"{cid}: {label} {inbound} {unit} with outbound {outbound} {unit} gives a total "
                f"of {total} {unit}, below the minimum 0 {unit}"
            )
        if inbound <= 0 <= total:
            checks.append(f"{cid}: {label} {inbound} {unit} <= 0, total {total} {unit} >= 0")

    # Other fields: sanity only, and only when the change touches them.
    if "cltv_delta" in changed:
        if not MIN_CLTV_DELTA <= after.cltv_delta <= MAX_CLTV_DELTA:
            reasons.append(
                f"{cid}: cltv_delta {after.cltv_delta} outside "
                f"{MIN_CLTV_DELTA}..{MAX_CLTV_DELTA} blocks"
            )
        else:
            checks.append(
                f"{cid}: cltv_delta {after.cltv_delta} within "
                f"{MIN_CLTV_DELTA}..{MAX_CLTV_DELTA} blocks"
            )
    if "htlc_min_msat" in changed or "htlc_max_msat" in changed:
        lo, hi = after.htlc_min_msat, after.htlc_max_msat
        if lo < 0:
            reasons.append(f"{cid}: htlc_min {lo} msat below the minimum 0 msat")
        if hi < lo:
            reasons.append(f"{cid}: htlc_max {hi} msat below htlc_min {lo} msat")
        if 0 <= lo <= hi:
            checks.append(f"{cid}: 0 <= htlc_min {lo} <= htlc_max {hi} msat")

    # Cooldown, against the log and the batch. Time lifts these: they go to `later` too.
    later: list[str] = []
    if any(p.channel_id == cid for p in pending):
        reasons.append(f"{cid}: already changed in this batch (one update per channel)")
    last = log.last_update(cid)
    cooldown = bounds.cooldown_seconds
    if last is None:
        checks.append(f"{cid}: no earlier update recorded (cooldown {_duration(cooldown)})")
    elif now - last < cooldown:
        later.append(
            f"{cid}: last updated {_duration(now - last)} ago, within the cooldown of "
            f"{_duration(cooldown)} ({_duration(cooldown - (now - last))} left)"
        )
    else:
        checks.append(
            f"{cid}: last updated {_duration(now - last)} ago, cooldown {_duration(cooldown)}"
        )

    # Gossip budget: per channel over 24 h, node-wide over one hour.
    day_limit = bounds.max_updates_per_channel_per_day
    day = log.count_within(now, DAY_SECONDS, cid) + sum(p.channel_id == cid for p in pending)
    if day >= day_limit:
        later.append(
            f"{cid}: {day} updates in the last 24 h, the channel budget is {day_limit} per day"
        )
    else:
        checks.append(f"{cid}: update {day + 1} of {day_limit} allowed in 24 h")
    hour_limit = bounds.max_updates_per_node_per_hour
    hour = log.count_within(now, HOUR_SECONDS) + len(pending)
    if hour >= hour_limit:
        later.append(
            f"{cid}: node made {hour} updates in the last hour, the node budget is "
            f"{hour_limit} per hour"
        )
    else:
        checks.append(f"{cid}: node update {hour + 1} of {hour_limit} allowed in 1 h")

    reasons += later
    return Verdict(not reasons, tuple(reasons), tuple(checks), tuple(later))


def validate_batch(
    changes: Iterable[PolicyChange],
    bounds: Bounds,
    overrides: Mapping[str, ChannelOverride],
    log: UpdateLog,
    now: int,
    *,
    step_limit: bool = True,
) -> list[Verdict]:
    """One verdict per change, in order; each accepted change counts against the budgets and
    the one-update-per-channel rule of the ones after it."""
    accepted: list[PolicyChange] = []
    verdicts: list[Verdict] = []
    for change in changes:
        verdict = validate_policy_change(
            change,
            bounds,
            overrides.get(change.channel_id),
            log,
            now,
            pending=tuple(accepted),
            step_limit=step_limit,
        )
        if verdict.ok:
            accepted.append(change)
        verdicts.append(verdict)
    return verdicts


def _clip_value(new: int, old: int, rng: Range, relative: float, minimum: int) -> int:
    ref = rng.clamp(old)
    step = max_step(ref, relative, minimum)
    return min(rng.hi, ref + step, max(rng.lo, ref - step, new))


def clip_to_bounds(
    change: PolicyChange, bounds: Bounds, override: ChannelOverride | None = None
) -> PolicyChange:
    """Move the proposed `after` into what the validator accepts: fee rate and base fee into
    the effective range and within one step of `before`, inbound fees into [-outbound, 0],
    a touched cltv_delta into 18..2016, touched htlc limits into 0 <= min <= max. Pinning,
    exclusion, cooldown and budgets are not the clip's business; the result may also equal
    `before` (nothing left to change), which the validator rejects."""
    eff = effective_bounds(bounds, override)
    before, after = change.before, change.after
    fee = _clip_value(
        after.fee_rate_ppm,
        before.fee_rate_ppm,
        eff.fee_rate,
        bounds.max_relative_change,
        bounds.min_fee_step_ppm,
    )
    base = _clip_value(
        after.base_fee_msat,
        before.base_fee_msat,
        eff.base_fee,
        bounds.max_relative_change,
        bounds.min_base_fee_step_msat,
    )
    in_rate = after.inbound_fee_rate_ppm
    if in_rate is not None:
        in_rate = min(0, max(-fee, in_rate))
    in_base = after.inbound_base_fee_msat
    if in_base is not None:
        in_base = min(0, max(-base, in_base))
    cltv = after.cltv_delta
    if cltv != before.cltv_delta:
        cltv = min(MAX_CLTV_DELTA, max(MIN_CLTV_DELTA, cltv))
    htlc_min, htlc_max = after.htlc_min_msat, after.htlc_max_msat
    if (htlc_min, htlc_max) != (before.htlc_min_msat, before.htlc_max_msat):
        htlc_max = max(0, htlc_max)
        htlc_min = min(max(0, htlc_min), htlc_max)
    clipped = replace(
        after,
        fee_rate_ppm=fee,
        base_fee_msat=base,
        inbound_fee_rate_ppm=in_rate,
        inbound_base_fee_msat=in_base,
        cltv_delta=cltv,
        htlc_min_msat=htlc_min,
        htlc_max_msat=htlc_max,
    )
    return change if clipped == after else replace(change, after=clipped)


def proposals(
    recs: Iterable[Recommendation],
    policies: Mapping[str, RoutingPolicy],
    min_confidence: float,
    bounds: Bounds,
    overrides: Mapping[str, ChannelOverride],
    new_id: Callable[[], str],
) -> list[tuple[PolicyChange, Recommendation, int]]:
    """The fee changes the engine's recommendations ask for, as approve and auto mode (and the
    simulator) take them: sure enough, on a channel whose policy we know, as whole policies
    (`proposed_policy`), clipped to the bounds and one step; those left with nothing to
    change are dropped. Each comes with its recommendation and the fee the engine wanted
    before clipping. `policies`: our current policy per channel."""
    out = []
    for rec in recs:
        before = policies.get(rec.channel_id)
        if rec.confidence < min_confidence or before is None:
            continue
        after = proposed_policy(rec, before)
        if after is None:
            continue
        change = PolicyChange(new_id(), rec.channel_id, before, after, rec.reasons[-1])
        change = clip_to_bounds(change, bounds, overrides.get(rec.channel_id))
        if change.after != change.before:
            out.append((change, rec, after.fee_rate_ppm))
    return out


# -- rebalancing ----------------------------------------------------------------------------


def _sat(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.6f}".rstrip("0").rstrip(".")


def _hands_off(
    channel_ids: Sequence[str], overrides: Mapping[str, ChannelOverride]
) -> tuple[list[str], list[str]]:
    """Pinned and excluded channels are never touched: no rebalance through them, no close."""
    reasons: list[str] = []
    for cid in channel_ids:
        override = overrides.get(cid)
        if override is not None and override.excluded:
            reasons.append(f"{cid}: channel is excluded; Daznode leaves it alone")
        elif override is not None and override.pinned:
            reasons.append(f"{cid}: channel is pinned; the admin fixed it")
    checks = [] if reasons else [f"{', '.join(channel_ids)}: neither pinned nor excluded"]
    return reasons, checks


def validate_close(
    channel_id: str, active: bool, overrides: Mapping[str, ChannelOverride]
) -> Verdict:
    """A cooperative close needs the peer online (an inactive channel could only be forced
    closed, which Daznode never does) and a channel the admin has not pinned or excluded."""
    reasons, checks = _hands_off([channel_id], overrides)
    if active:
        checks.append(f"{channel_id}: peer online, a cooperative close is possible")
    else:
        reasons.append(
            f"{channel_id}: channel inactive (peer offline); only a force close would work, "
            "and Daznode never forces one"
        )
    return Verdict(not reasons, tuple(reasons), tuple(checks))


def validate_rebalance(
    amount_sat: int,
    max_fee_ppm: int,
    capacity_sat: int,
    expected_earnings_sat: float,
    bounds: Bounds,
    channels: Sequence[str] = (),
    overrides: Mapping[str, ChannelOverride] | None = None,
) -> Verdict:
    """A rebalance into a channel: a positive amount of at most `rebalance_max_amount_ratio` of
    its capacity, a fee limit within `rebalance_max_fee_ppm`, a worst-case cost
    (amount x max_fee_ppm / 1e6) below what the refilled liquidity is expected to earn, and
    no pinned or excluded channel among `channels` (both ends)."""
    reasons, checks = _hands_off(channels, overrides or {}) if channels else ([], [])
    ratio = bounds.rebalance_max_amount_ratio
    cap = ratio * capacity_sat
    if amount_sat <= 0:
        reasons.append(f"rebalance: amount {amount_sat} sat must be above 0 sat")
    if amount_sat > cap:
        reasons.append(
            f"rebalance: amount {amount_sat} sat above the maximum {_sat(cap)} sat "
            f"({_pct(ratio)} of the capacity {capacity_sat} sat)"
        )
    if 0 < amount_sat <= cap:
        checks.append(
            f"rebalance: amount {amount_sat} sat within 1..{_sat(cap)} sat "
            f"({_pct(ratio)} of the capacity {capacity_sat} sat)"
        )
    fee_limit = bounds.rebalance_max_fee_ppm
    if max_fee_ppm < 0:
        reasons.append(f"rebalance: fee limit {max_fee_ppm} ppm below the minimum 0 ppm")
    elif max_fee_ppm > fee_limit:
        reasons.append(f"rebalance: fee limit {max_fee_ppm} ppm above the maximum {fee_limit} ppm")
    else:
        checks.append(f"rebalance: fee limit {max_fee_ppm} ppm within 0..{fee_limit} ppm")
    cost = max(0, amount_sat) * max(0, max_fee_ppm) / 1_000_000
    if not cost < expected_earnings_sat:
        reasons.append(
            f"rebalance: maximum cost {_sat(cost)} sat ({amount_sat} sat at {max_fee_ppm} ppm) "
            f"not below the expected earnings {_sat(expected_earnings_sat)} sat"
        )
    else:
        checks.append(
            f"rebalance: maximum cost {_sat(cost)} sat below the expected earnings "
            f"{_sat(expected_earnings_sat)} sat"
        )
    return Verdict(not reasons, tuple(reasons), tuple(checks))
