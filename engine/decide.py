"""The decision engine: one pure pass over the node, a recommendation per channel.

For each channel: admin rules first (first match wins); otherwise the heuristics are scored,
a fee target is derived from demand (competitor fee into the peer x balance x flow
modifiers, CLBOSS-style multipliers), bounded below by the cost of refilling the channel,
and reached in small steps with a deadband so fees do not oscillate; a draining channel may
jump. Rebalancing is proposed only when the refilled liquidity is expected to earn more than
it costs, a close only when the capital would earn more elsewhere over the horizon than the
close and reopen cost. Channels to the same peer share one fee target (senders see the
peer, not the channel). Formulas: docs/ENGINE.md.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from enum import Enum

from .heuristics import HEURISTICS, HeuristicResult
from .metrics import ChannelMetrics, FlowWindow, NetworkContext
from .profiles import Profile
from .rules import Rule, RuleOutcome, apply_rule, first_match

RAISE_MIN_FORWARDS = 7  # a week's outbound forwards below which no raise is tried
IDLE_DAYS = 7  # days without an outbound forward at the current fee before an idle cut
CLOSE_VBYTES = 170  # cooperative close, one P2WSH input, two outputs
OPEN_VBYTES = 154  # funding transaction, one input, P2WSH output and change


class Decision(str, Enum):
    NO_ACTION = "NO_ACTION"
    INCREASE_FEES = "INCREASE_FEES"
    DECREASE_FEES = "DECREASE_FEES"
    REBALANCE = "REBALANCE"
    CLOSE_CHANNEL = "CLOSE_CHANNEL"


@dataclass(frozen=True, slots=True)
class RebalancePlan:
    direction: str  # "in": move liquidity into this channel (raise its local balance)
    amount_sat: int
    max_fee_ppm: int
    max_cost_sat: int
    estimated_cost_ppm: int
    expected_earnings_sat: int
    source_channel_id: str | None


@dataclass(frozen=True, slots=True)
class ClosePlan:
    reason: str
    close_and_reopen_cost_sat: int
    freed_local_sat: int
    expected_gain_sat: int  # what the capital earns elsewhere minus what the channel earns


@dataclass(frozen=True, slots=True)
class Suggestion:
    fee_ppm: int | None = None
    base_fee_msat: int | None = None
    inbound_fee_ppm: int | None = None
    inbound_base_fee_msat: int | None = None
    htlc_max_msat: int | None = None
    target_fee_ppm: int | None = None
    rebalance: RebalancePlan | None = None
    close: ClosePlan | None = None


@dataclass(frozen=True, slots=True)
class Recommendation:
    channel_id: str
    peer_id: str
    peer_alias: str
    decision: Decision
    confidence: float
    composite: float
    scores: dict[str, float]
    heuristics: list[HeuristicResult]
    reasons: list[str]
    suggested: Suggestion
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class FeeTarget:
    """The fee a peer group should converge to, and why."""

    target_ppm: int
    floor_ppm: int
    reference_ppm: int
    balance_mod: float
    flow_mod: float
    days_to_empty: float | None
    reasons: list[str] = field(default_factory=list)


# -- helpers ------------------------------------------------------------------------------


def composite_score(results: list[HeuristicResult], weights: dict[str, float]) -> float:
    total = sum(weights.get(r.name, 0.0) for r in results)
    if total <= 0:
        return 0.0
    return round(sum(r.score * weights.get(r.name, 0.0) for r in results) / total, 1)


def refill_cost_ppm(ch: ChannelMetrics, net: NetworkContext) -> int:
    """What a circular payment refilling this channel costs: the peer's fee towards us on the
    last hop plus one typical hop to reach the peer."""
    peer_fee = ch.remote_policy.fee_rate_ppm if ch.remote_policy else net.median_fee_ppm
    return peer_fee + net.median_fee_ppm


def _merged_window(channels: list[ChannelMetrics], days: int) -> FlowWindow:
    ws = [c.window(days) for c in channels]
    return FlowWindow(
        days,
        forwards_out=sum(w.forwards_out for w in ws),
        forwards_in=sum(w.forwards_in for w in ws),
        volume_out_msat=sum(w.volume_out_msat for w in ws),
        volume_in_msat=sum(w.volume_in_msat for w in ws),
        fees_msat=sum(w.fees_msat for w in ws),
        failed_out=sum(w.failed_out for w in ws),
        refill_cost_msat=sum(w.refill_cost_msat for w in ws),
    )


def days_to_empty(local_msat: int, week: FlowWindow, trend_msat_per_day: float) -> float | None:
    """At the recent net outflow, how long until the local balance is gone (None: not
    draining). Uses the larger of forwarded net outflow and the observed balance drift."""
    net_out_per_day = (week.volume_out_msat - week.volume_in_msat) / 7
    drain = max(net_out_per_day, -trend_msat_per_day)
    if drain <= 0:
        return None
    return local_msat / drain


def fee_target(group: list[ChannelMetrics], net: NetworkContext, p: Profile) -> FeeTarget:
    """One target for all our channels to a peer, from their pooled liquidity and flow."""
    local = sum(c.local_msat for c in group)
    total = sum(c.local_msat + c.remote_msat for c in group) or 1
    capacity = sum(c.capacity_msat for c in group) or 1
    ratio = local / total
    week = _merged_window(group, 7)
    peer = net.peer(group[0].peer_id)
    reasons: list[str] = []
    if peer and peer.competitor_fee_ppm is not None:
        # What senders would pay to reach this peer another way. (Floored at the network
        # median, it priced channels into cheaply served peers out of a demand that follows
        # price: the simulator's senders, once they could route around us, paid it rarely.)
        reference = peer.competitor_fee_ppm
        reasons.append(f"other channels into this peer charge {reference} ppm (median)")
    else:
        reference = net.median_fee_ppm
        reasons.append(f"competitors unknown: reference is the network median {reference} ppm")
    # Balance: scarce outbound liquidity is worth more. x sensitivity when empty, / when full.
    span = max(p.target_ratio, 1 - p.target_ratio)
    balance_mod = math.exp(math.log(p.balance_sensitivity) * (p.target_ratio - ratio) / span)
    # Flow: net outflow over the week as a share of capacity moves the price with demand.
    net_flow = (week.volume_out_msat - week.volume_in_msat) / capacity
    flow_mod = 1 + 0.5 * max(-1.0, min(1.0, net_flow))
    target = reference * balance_mod * flow_mod
    # Demand anchor: a price that sells the liquidity we want to sell is not cut below itself.
    current = [c.fee_ppm for c in group if c.fee_ppm is not None]
    earning = week.forwards_out >= 5 and ratio <= p.high_ratio
    if current and earning and target < min(current):
        target = float(min(current))
        reasons.append(f"{week.forwards_out} forwards out this week at the current fee: kept")
    if week.forwards_out == 0 and ratio > p.low_ratio and current:
        # Never a raise when nothing sells, and a cut that grows with the idle share: none at
        # the low ratio (a fixed step at a threshold flipped a raise into a cut when one msat
        # crossed it), a full step from the saturation threshold up (a model target above
        # the fee must not keep unsold liquidity at a price nobody pays). The cut waits for
        # a whole idle week at the current fee: the same empty week cut a channel that sells
        # a forward a week seven times in 31 hours, from 89 to 29 ppm.
        idle = min(1.0, (ratio - p.low_ratio) / max(1e-9, p.high_ratio - p.low_ratio))
        since = _fee_unchanged_days(group)
        step = p.max_step_down * idle if since >= IDLE_DAYS else 0.0
        ceiling = max(current) * (1 - step)
        if since < IDLE_DAYS:
            reasons.append(
                f"no outbound forwards this week, but our fee changed {since:.1f} days ago: "
                f"{IDLE_DAYS} idle days at this fee before a cut"
            )
        if target >= ceiling:
            target = ceiling
            reasons.append(
                "no outbound forwards this week while liquidity is idle: "
                + ("cheaper" if ceiling < max(current) else "not raised")
            )
        else:
            reasons.append("no outbound forwards this week while liquidity is idle: cheaper")
    # Only liquidity that does not flow back on its own has to be bought back: scale the
    # refill cost by the share of the week's outflow that inflow did not return.
    full = max(refill_cost_ppm(c, net) for c in group) * p.refill_margin
    # Without outflow, the balance says what needs refilling: all of it when depleted, none
    # from the target ratio up, linear in between (a step at the target ratio turned a raise
    # into a cut when one msat crossed it).
    prior = max(0.0, min(1.0, (p.target_ratio - ratio) / (p.target_ratio - p.low_ratio)))
    share = prior
    if week.volume_out_msat:
        share = (week.volume_out_msat - week.volume_in_msat) / week.volume_out_msat
        share = max(0.0, min(1.0, share))
    # A few sats of outflow say little about that share (1 sat out and 1 sat in made it 0,
    # 1 sat out alone 1): below `full` sat of outflow it is blended with the prior, so one
    # sat more or less forwarded moves the floor by at most 1 ppm.
    weight = min(1.0, week.volume_out_msat / (full * 1000)) if full > 0 else 1.0
    unreturned = weight * share + (1 - weight) * prior
    floor = max(p.min_fee_ppm, round(full * unreturned))
    if floor > target:
        reasons.append(f"not below the refill-cost floor {floor} ppm (model: {round(target)} ppm)")
    target_ppm = round(min(p.max_fee_ppm, max(floor, target)))
    drain = days_to_empty(local, week, sum(c.balance_trend_msat_per_day for c in group))
    return FeeTarget(
        target_ppm, floor, reference, round(balance_mod, 3), round(flow_mod, 3), drain, reasons
    )


# -- per channel --------------------------------------------------------------------------


def demand_falling(ch: ChannelMetrics) -> str:
    """Why a raise should wait: the last day's outbound forwards fell below half the week's
    daily average, or the week's below half the month's (the last raise may have priced us
    out; raising on would compound it). Empty when demand holds or is too thin to tell."""
    day, week, month = ch.window(1), ch.window(7), ch.window(30)
    if week.forwards_out >= 7 and day.forwards_out < week.forwards_out / 7 / 2:
        return (
            f"{day.forwards_out} forwards out in the last day against "
            f"{week.forwards_out / 7:.1f} a day this week: no raise while demand falls"
        )
    if month.forwards_out >= 30 and week.forwards_out < month.forwards_out * 7 / 30 / 2:
        return (
            f"{week.forwards_out} forwards out this week against "
            f"{month.forwards_out * 7 / 30:.1f} a week this month: no raise while demand falls"
        )
    return ""


def _depleted_failing(ch: ChannelMetrics, p: Profile) -> bool:
    """Depleted, and forwards failed here for lack of balance this week."""
    return ch.local_ratio < p.low_ratio and ch.window(7).failed_out > 0


def _step_up(current: int, p: Profile) -> int:
    """One ordinary raise: x (1 + max_step_up) within the admin's maximum, and at least the
    smallest change worth an update (which may pass the maximum: then the step does not fit)."""
    new = min(p.max_fee_ppm, math.ceil(current * (1 + p.max_step_up)))
    return max(new, current + max(1, p.min_fee_delta_ppm))


def _raise_held(ch: ChannelMetrics) -> str:
    """One experiment at a time: no raise while the last change is being measured, while
    demand falls, or while too little sells to tell what a raise did."""
    if ch.measuring:
        return "our last fee change here is still being measured: one step at a time"
    sold = ch.window(7).forwards_out
    if sold < RAISE_MIN_FORWARDS:
        return (
            f"{sold} forwards out this week: too few to raise on (a raise is an experiment "
            "on demand, and this much demand cannot measure it)"
        )
    return demand_falling(ch)


def _measured_step(
    ch: ChannelMetrics, t: FeeTarget, p: Profile
) -> tuple[Decision, int, list[str]] | None:
    """Hill-climb on measured earnings: after a change that earned less than the untouched
    channels predicted, step back to the fee before; after one that earned at least that
    much, one more step the same way (never into a price measured to earn less, never a
    raise while demand falls or a cut of a depleted channel). None: the model decides."""
    m, current = ch.last_measured, ch.fee_ppm
    if m is None or current is None or current != m.fee_after_ppm or ch.measuring:
        return None
    if m.fee_after_ppm == m.fee_before_ppm:
        return None
    raised = m.fee_after_ppm > m.fee_before_ppm
    change = f"{m.fee_before_ppm} -> {m.fee_after_ppm} ppm"
    if m.adjusted_change < 0:
        back = min(p.max_fee_ppm, max(p.min_fee_ppm, m.fee_before_ppm))
        if raised and back < current:
            why = f"measured: the raise {change} earned {-m.adjusted_change:.0%} less: back"
            return Decision.DECREASE_FEES, back, [why]
        if not raised and back > current and ch.local_ratio >= p.low_ratio:
            why = f"measured: the cut {change} earned {-m.adjusted_change:.0%} less: back"
            return Decision.INCREASE_FEES, back, [why]
        return None
    gain = f"earned {m.adjusted_change:+.0%} against the untouched channels"
    if raised:
        if (_raise_held(ch) and not _depleted_failing(ch, p)) or _unsold(ch, p):
            return None
        new = _step_up(current, p)
        if ch.raise_ceiling_ppm is not None:
            new = min(new, ch.raise_ceiling_ppm - 1)
        if new - current < max(1, p.min_fee_delta_ppm) or new > p.max_fee_ppm:
            return None
        return Decision.INCREASE_FEES, new, [f"measured: the raise {change} {gain}: one more step"]
    if ch.local_ratio < p.low_ratio:
        return None
    new = max(p.min_fee_ppm, t.floor_ppm, math.floor(current * (1 - p.max_step_down)))
    if ch.cut_floor_ppm is not None:
        new = max(new, ch.cut_floor_ppm + 1)
    if current - new < max(1, p.min_fee_delta_ppm):
        return None
    return Decision.DECREASE_FEES, new, [f"measured: the cut {change} {gain}: one more step"]


def _fee_step(
    ch: ChannelMetrics, t: FeeTarget, p: Profile
) -> tuple[Decision, int | None, list[str]]:
    current = ch.fee_ppm
    if current is None:
        return Decision.NO_ACTION, None, ["our policy is unknown (private channel?)"]
    if current > p.max_fee_ppm or current < p.min_fee_ppm:  # outside the admin's bounds
        bounded = min(p.max_fee_ppm, max(p.min_fee_ppm, current))
        decision = Decision.DECREASE_FEES if bounded < current else Decision.INCREASE_FEES
        return (
            decision,
            bounded,
            [f"fee {current} ppm is outside the profile's {p.min_fee_ppm}-{p.max_fee_ppm} ppm"],
        )
    gap = t.target_ppm - current
    relative = gap / max(1, current)
    failed = ch.window(7).failed_out
    depleted_failing = _depleted_failing(ch, p)
    if failed and gap <= 0 and ch.local_ratio < p.target_ratio:
        # Forwards fail here for lack of balance at this price: demand exceeds what the
        # channel holds, whatever the model's target says (a reference of 1 ppm from cheap
        # competitors kept a depleted channel failing 200 forwards a week at 100 ppm). A
        # depleted one is raised a step, one per measurement; below the target ratio, or
        # when the step does not fit, the fee holds: never a cut while forwards fail.
        new = _step_up(current, p)
        fits = new <= p.max_fee_ppm and (ch.raise_ceiling_ppm is None or new < ch.raise_ceiling_ppm)
        if depleted_failing and fits and not ch.measuring:
            why = f"{failed} forwards failed for lack of balance this week"
            return (
                Decision.INCREASE_FEES,
                new,
                [f"raise {current} -> {new} ppm: depleted, and {why}"],
            )
        return (
            Decision.NO_ACTION,
            current,
            [f"{failed} forwards failed here for lack of balance this week: no cut"],
        )
    unsold = _idle_at_this_fee(ch, p)
    # The deadband ignores noise in the model's target; the cut of liquidity that sells
    # nothing is the idle rule's own deliberate step, smaller than the deadband until two
    # thirds of the way to saturation: held by it, such a channel never got cheaper.
    idle_cut = unsold and gap < 0
    if (abs(relative) < p.deadband and not idle_cut) or abs(gap) < p.min_fee_delta_ppm:
        return (
            Decision.NO_ACTION,
            current,
            [f"fee {current} ppm is within {p.deadband:.0%} of the target {t.target_ppm} ppm"],
        )
    if gap > 0:
        draining = t.days_to_empty is not None and t.days_to_empty < p.fast_raise_days
        urgent = draining or depleted_failing
        held = _raise_held(ch) if not urgent else ""
        if held:
            return Decision.NO_ACTION, current, [held]
        step = p.fast_raise_step if urgent else p.max_step_up
        # At least the smallest change worth a gossip update (x (1 + step) leaves 0 ppm at 0).
        least = max(current + max(1, p.min_fee_delta_ppm), p.min_fee_ppm)
        new = min(t.target_ppm, max(least, math.ceil(current * (1 + step))))
        ceiling = ch.raise_ceiling_ppm
        if ceiling is not None and not urgent and new >= ceiling:
            new = ceiling - 1  # below the price that was measured to earn less
            if new - current < max(1, p.min_fee_delta_ppm):
                return (
                    Decision.NO_ACTION,
                    current,
                    [f"a raise to {ceiling} ppm was measured to earn less: kept"],
                )
        why = [f"raise {current} -> {new} ppm towards {t.target_ppm} ppm"]
        if draining:
            why.append(f"draining: empty in {t.days_to_empty:.1f} days at this pace, fast raise")
        elif depleted_failing:
            why.append("depleted and failing forwards for lack of balance: fast raise")
        return Decision.INCREASE_FEES, new, why
    if ch.measuring and not unsold:
        return (
            Decision.NO_ACTION,
            current,
            ["our last fee change here is still being measured: one step at a time"],
        )
    new = max(t.target_ppm, t.floor_ppm, math.floor(current * (1 - p.max_step_down)))
    floor = ch.cut_floor_ppm
    if floor is not None and not unsold and new <= floor:
        new = floor + 1  # above the price that was measured to earn less
        if current - new < max(1, p.min_fee_delta_ppm):
            return (
                Decision.NO_ACTION,
                current,
                [f"a cut to {floor} ppm was measured to earn less: kept"],
            )
    new = min(new, p.max_fee_ppm)  # the admin's maximum wins over a refill cost above it
    if new >= current:
        return Decision.NO_ACTION, current, [f"already at the refill-cost floor {t.floor_ppm} ppm"]
    return Decision.DECREASE_FEES, new, [f"lower {current} -> {new} ppm towards {t.target_ppm} ppm"]


def _inbound(ch: ChannelMetrics, fee_ppm: int | None, p: Profile) -> int | None:
    """A discount on payments arriving through a depleted channel (LND inbound fees): they
    refill it for free. Neutral otherwise. None when our policy is unknown."""
    if ch.local_policy is None or ch.local_policy.inbound_fee_rate_ppm is None:
        return None
    if ch.local_ratio < p.low_ratio and fee_ppm:
        return -int(fee_ppm * p.inbound_discount)
    return 0


def _htlc_max(ch: ChannelMetrics, p: Profile) -> int | None:
    """Announce a maximum the channel can actually carry when depleted, so senders do not
    try amounts that would fail; the full capacity otherwise. The depleted value is the
    largest capacity / 2^k below 80 % of the local balance: it changes only when the balance
    crosses a power of two, not with every forward (each change is a gossip update)."""
    if ch.local_policy is None:
        return None
    full = ch.capacity_msat * 99 // 100
    if ch.local_ratio >= p.low_ratio:
        return full
    usable = ch.local_msat * 8 // 10
    step = ch.capacity_msat
    while step > usable and step > ch.local_policy.htlc_min_msat:
        step //= 2
    return max(ch.local_policy.htlc_min_msat, step // 1000 * 1000)


def _rebalance_plan(
    ch: ChannelMetrics, fee_ppm: int, net: NetworkContext, p: Profile, source: str | None
) -> tuple[RebalancePlan | None, str]:
    week = ch.window(7)
    if ch.local_ratio >= p.low_ratio:
        return None, ""
    if week.forwards_out < 3 and week.failed_out == 0:
        return None, "depleted, but too little demand to pay for a rebalance"
    month = ch.window(30)
    if month.refill_cost_msat > month.fees_msat:
        # Measured: refilling it did not pay. No more until its earnings catch up.
        return None, (
            f"refills into it cost {month.refill_cost_msat // 1000:,} sat in 30 days, more than "
            f"the {month.fees_msat // 1000:,} sat it earned: no more refills until it earns them"
        )
    # The refilled liquidity earns at most what the channel forwards over the horizon.
    # Forwards that failed here for lack of balance are demand too, valued at the average
    # settled amount (50k sat when nothing settled), at most as much again as what settled
    # (one payment retried is several failed HTLCs).
    average = week.volume_out_msat / week.forwards_out if week.forwards_out else 50_000_000
    settled = week.volume_out_msat / 7
    failed = week.failed_out * average / 7
    per_day = settled + (min(failed, settled) if week.forwards_out else failed)
    # A few forwards say little about the rate: count on its lower 1-sigma bound (Poisson),
    # half of it at 4 forwards, 90 % at 100 (a refill costs for sure, its earnings do not).
    per_day *= 1 - 1 / math.sqrt(max(1, month.forwards_out + week.failed_out))
    # Buy only what is expected to sell within the horizon.
    wanted_msat = int((p.target_ratio - ch.local_ratio) * ch.capacity_msat)
    amount_msat = int(min(wanted_msat, per_day * p.rebalance_horizon_days))
    if amount_msat < ch.capacity_msat // 100:
        return None, "depleted, but too little demand to pay for a rebalance"
    earnings_msat = amount_msat * fee_ppm / 1e6
    # Those earnings pay for every refill within the horizon, not for each one again: what
    # refills cost lately comes off (the simulator showed hourly refills of one channel,
    # each justified by the same earnings, costing more than the channel ever earned).
    # And they are a forecast: never spend more than the channel has actually earned in the
    # last 30 days (a week of four large forwards justified a refill whose liquidity then
    # sold nothing for three weeks, at a tenth of the price).
    spent_msat = month.refill_cost_msat * min(1.0, p.rebalance_horizon_days / 30)
    earned_msat = month.fees_msat
    allowance_msat = min(earnings_msat, earned_msat) * p.rebalance_safety - spent_msat
    budget_ppm = int(min(fee_ppm * p.rebalance_safety, allowance_msat / amount_msat * 1e6))
    cost_ppm = refill_cost_ppm(ch, net)
    if budget_ppm <= 0:
        return None, (
            f"its earnings of the last 30 days, {month.fees_msat // 1000:,} sat, less the "
            f"{month.refill_cost_msat // 1000:,} sat refills already cost, leave nothing for "
            "another refill"
        )
    if cost_ppm >= budget_ppm:
        return None, (
            f"a rebalance would cost ~{cost_ppm} ppm, more than the {budget_ppm} ppm "
            "its expected earnings allow"
        )
    plan = RebalancePlan(
        direction="in",
        amount_sat=amount_msat // 1000,
        max_fee_ppm=budget_ppm,
        max_cost_sat=amount_msat * budget_ppm // 1_000_000 // 1000,
        estimated_cost_ppm=cost_ppm,
        expected_earnings_sat=int(earnings_msat // 1000),
        source_channel_id=source,
    )
    return plan, (
        f"refill {plan.amount_sat:,} sat: expected to earn {plan.expected_earnings_sat:,} sat in "
        f"{p.rebalance_horizon_days} days, worth up to {budget_ppm} ppm; "
        f"estimated cost {cost_ppm} ppm"
    )


def _close_plan(ch: ChannelMetrics, net: NetworkContext, p: Profile) -> ClosePlan | None:
    if ch.age_days < p.close_min_age_days:
        return None
    month = ch.window(30)
    local_sat = ch.local_msat // 1000
    # What the channel earns includes fees on other channels for traffic it brought in.
    earned_30d = month.fees_msat + month.assisted_fees_msat
    earned_horizon = earned_30d / 1000 * p.close_horizon_days / 30
    elsewhere = local_sat * p.capital_return_pct / 100 * p.close_horizon_days / 365
    cost = (CLOSE_VBYTES + OPEN_VBYTES) * net.onchain_feerate_sat_vb
    gain = elsewhere - earned_horizon
    if gain <= cost or month.forwards_out + month.forwards_in > 10:
        return None
    return ClosePlan(
        reason=(
            f"earned {earned_30d // 1000:,} sat in 30 days (own and assisted); its "
            f"{local_sat:,} sat of "
            f"local balance would earn ~{int(elsewhere):,} sat at {p.capital_return_pct:g} %/year "
            f"over {p.close_horizon_days} days"
        ),
        close_and_reopen_cost_sat=cost,
        freed_local_sat=local_sat,
        expected_gain_sat=int(gain - cost),
    )


def _close_price(t: FeeTarget, p: Profile) -> int:
    """The fee an idle channel is cut to before it is worth closing: half what the other
    channels into the peer charge, or the refill-cost floor when that is higher."""
    return max(p.min_fee_ppm, t.floor_ppm, t.reference_ppm // 2)


def _cut_before_closing(ch: ChannelMetrics, t: FeeTarget, p: Profile) -> bool:
    """Closing costs on-chain fees and cannot be undone; a cut costs a gossip update. An
    idle channel priced above the close price is cut first (the simulator's idle channels
    sat at 100 ppm behind a close recommendation while a baseline sold their liquidity at
    55 ppm)."""
    return _unsold(ch, p) and ch.fee_ppm is not None and ch.fee_ppm > _close_price(t, p)


def _unsold(ch: ChannelMetrics, p: Profile) -> bool:
    """Idle liquidity that did not sell a single forward this week."""
    return ch.window(7).forwards_out == 0 and ch.local_ratio > p.low_ratio


def _fee_unchanged_days(group: list[ChannelMetrics]) -> float:
    """Days since our fee last changed on any of these channels (unknown: long ago)."""
    known = [c.fee_unchanged_days for c in group if c.fee_unchanged_days is not None]
    return min(known) if known else math.inf


def _idle_at_this_fee(ch: ChannelMetrics, p: Profile) -> bool:
    """Unsold for a whole week at the current fee: the evidence the idle cut acts on."""
    return _unsold(ch, p) and _fee_unchanged_days([ch]) >= IDLE_DAYS


def _confidence(ch: ChannelMetrics, net: NetworkContext, signal: float) -> float:
    """How much to trust the decision: enough history, a graph, and a clear signal."""
    history = min(1.0, ch.age_days / 30) * min(1.0, (ch.window(30).forwards_out + 5) / 25)
    data = 0.3 + 0.6 * history + (0.1 if net.graph_available else 0.0)
    return round(max(0.0, min(1.0, data * signal)), 2)


def evaluate_channel(
    ch: ChannelMetrics,
    net: NetworkContext,
    p: Profile,
    target: FeeTarget | None = None,
    rebalance_source: str | None = None,
) -> Recommendation:
    """One channel. `target` is its peer group's fee target (computed alone if omitted)."""
    target = target or fee_target([ch], net, p)
    results = [h(ch, net, p) for h in HEURISTICS.values()]
    scores = {r.name: r.score for r in results}
    composite = composite_score(results, p.weights)
    reasons = list(target.reasons)
    close = _close_plan(ch, net, p)
    if close and _cut_before_closing(ch, target, p):
        reasons.append(
            f"earns too little to keep ({close.reason}), but a cheaper fee is tried before "
            f"closing: down to {_close_price(target, p)} ppm"
        )
        close = None
    if close:
        signal = min(1.0, close.expected_gain_sat / max(1, close.close_and_reopen_cost_sat))
        return Recommendation(
            ch.channel_id,
            ch.peer_id,
            ch.peer_alias,
            Decision.CLOSE_CHANNEL,
            _confidence(ch, net, 0.5 + 0.5 * signal),
            composite,
            scores,
            results,
            [
                close.reason,
                f"closing and reopening costs ~{close.close_and_reopen_cost_sat:,} sat",
                *(
                    []
                    if ch.active
                    else ["peer offline: a force close locks the funds for the CSV delay"]
                ),
            ],
            Suggestion(close=close, target_fee_ppm=target.target_ppm),
        )
    measured = _measured_step(ch, target, p)
    decision, fee, fee_reasons = measured or _fee_step(ch, target, p)
    reasons += fee_reasons
    # Refilled, the channel loses its scarcity premium: value the liquidity at the fee it
    # would ask at the target ratio, not at today's depleted price (the simulator showed
    # refills bought at half a scarcity price whose liquidity then sold for a tenth of it).
    refilled_fee = min(fee or target.target_ppm, round(target.reference_ppm * target.flow_mod))
    plan, why = _rebalance_plan(ch, max(p.min_fee_ppm, refilled_fee), net, p, rebalance_source)
    if why:
        reasons.append(why)
    if plan and decision is not Decision.INCREASE_FEES:
        decision = Decision.REBALANCE
        signal = min(1.0, plan.max_fee_ppm / max(1, plan.estimated_cost_ppm) - 1)
    elif decision is Decision.NO_ACTION or ch.fee_ppm is None:
        signal = 1.0 if ch.fee_ppm is not None else 0.2
    elif measured is not None:
        signal = 1.0  # what the node's own earnings said, not a model's guess
    elif decision is Decision.DECREASE_FEES and _idle_at_this_fee(ch, p):
        signal = 1.0  # nothing sold in a week: the target is capped at one step, the case is not
    else:
        gap = abs(target.target_ppm - ch.fee_ppm) / max(1, ch.fee_ppm)
        signal = min(1.0, gap / (3 * p.deadband) if p.deadband else 1.0)
    base = ch.local_policy.base_fee_msat if ch.local_policy else None
    suggestion = Suggestion(
        fee_ppm=fee,
        base_fee_msat=base,
        inbound_fee_ppm=_inbound(ch, fee, p),
        inbound_base_fee_msat=0
        if ch.local_policy and ch.local_policy.inbound_base_fee_msat is not None
        else None,
        htlc_max_msat=_htlc_max(ch, p),
        target_fee_ppm=target.target_ppm,
        rebalance=plan,
    )
    return Recommendation(
        ch.channel_id,
        ch.peer_id,
        ch.peer_alias,
        decision,
        _confidence(ch, net, signal),
        composite,
        scores,
        results,
        reasons,
        suggestion,
    )


# -- the whole node ---------------------------------------------------------------------


def _rebalance_sources(channels: list[ChannelMetrics], p: Profile) -> list[ChannelMetrics]:
    """Channels with idle excess liquidity, the best to move from first."""
    full = [c for c in channels if c.local_ratio > p.high_ratio and c.active]
    return sorted(full, key=lambda c: (c.window(7).forwards_out, -c.local_msat))


def evaluate_node(
    channels: list[ChannelMetrics],
    net: NetworkContext,
    p: Profile,
    rules: list[Rule] | None = None,
) -> list[Recommendation]:
    """Every channel in one pass. Channels to the same peer share a fee target; depleted
    channels are paired with saturated ones (other peers) as rebalance sources."""
    groups: dict[str, list[ChannelMetrics]] = defaultdict(list)
    for ch in channels:
        groups[ch.peer_id].append(ch)
    targets = {peer: fee_target(group, net, p) for peer, group in groups.items()}
    sources = _rebalance_sources(channels, p)
    spare = {s.channel_id: s.local_msat - int(p.target_ratio * s.capacity_msat) for s in sources}
    out: list[Recommendation] = []
    for ch in channels:
        rule = first_match(rules, ch, net) if rules else None
        if rule is not None:
            out.append(_from_rule(ch, net, p, apply_rule(rule, ch, net)))
            continue
        rec = evaluate_channel(ch, net, p, targets[ch.peer_id])
        plan = rec.suggested.rebalance
        if plan is not None:
            rec = _with_source(rec, plan, ch, sources, spare)
        if len(groups[ch.peer_id]) > 1:
            rec.reasons.append(
                f"shares its fee target with {len(groups[ch.peer_id]) - 1} other channel(s) "
                "to this peer: senders compare peers, not channels"
            )
        out.append(rec)
    return out


def _with_source(
    rec: Recommendation,
    plan: RebalancePlan,
    ch: ChannelMetrics,
    sources: list[ChannelMetrics],
    spare: dict[str, int],
) -> Recommendation:
    """Give the plan the saturated channel (another peer's) with spare liquidity left after
    the plans already served, so two plans never count on the same sats."""
    need = plan.amount_sat * 1000
    source = next(
        (s for s in sources if s.peer_id != ch.peer_id and spare[s.channel_id] >= need), None
    )
    if source is None:
        rec.reasons.append("no channel has enough spare liquidity to serve as the source")
        return rec
    spare[source.channel_id] -= need
    rec.reasons.append(f"source: {source.channel_id} ({source.peer_alias or source.peer_id[:12]})")
    suggested = replace(rec.suggested, rebalance=replace(plan, source_channel_id=source.channel_id))
    return replace(rec, suggested=suggested)


def _from_rule(
    ch: ChannelMetrics, net: NetworkContext, p: Profile, outcome: RuleOutcome
) -> Recommendation:
    results = [h(ch, net, p) for h in HEURISTICS.values()]
    scores = {r.name: r.score for r in results}
    composite = composite_score(results, p.weights)
    if outcome.leave_alone or outcome.fee_ppm is None or ch.fee_ppm is None:
        decision = Decision.NO_ACTION
    elif outcome.fee_ppm > ch.fee_ppm:
        decision = Decision.INCREASE_FEES
    elif outcome.fee_ppm < ch.fee_ppm:
        decision = Decision.DECREASE_FEES
    else:
        decision = Decision.NO_ACTION
    suggestion = Suggestion(
        fee_ppm=outcome.fee_ppm,
        base_fee_msat=outcome.base_fee_msat,
        inbound_fee_ppm=outcome.inbound_fee_ppm,
        inbound_base_fee_msat=outcome.inbound_base_fee_msat,
        htlc_max_msat=outcome.max_htlc_msat,
    )
    return Recommendation(
        ch.channel_id,
        ch.peer_id,
        ch.peer_alias,
        decision,
        1.0,
        composite,
        scores,
        results,
        [outcome.reason],
        suggestion,
        rule=outcome.rule,
    )
