"""Plain-language explanations of the engine's output, for a node operator.

Daznode's built-in explainer turns a channel's recommendation, or a node's score card and
its peer suggestions, into a few short paragraphs: what to do and why, the scores that drove
it with their facts, the suggested values and what they would cost or earn, how sure the
engine is and why, and what would change the decision. Every sentence is built from the
numbers at hand, so the same input always gives the same text.

`chat_messages` is the prompt for a language model that writes the same kind of text from
the same facts (the shell sends it, and falls back on the built-in text when it cannot).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from enum import Enum
from typing import Any

from .decide import Decision, Recommendation
from .heuristics import HeuristicResult
from .node_score import WEIGHTS as NODE_WEIGHTS
from .node_score import NodeScore
from .peer_suggest import HOPS, PeerSuggestion
from .profiles import Profile

BUILT_IN = "built-in"
NO_MODEL = "no language model configured"

# The scores that drive each kind of decision, in the order they are told.
DRIVERS: dict[Decision, tuple[str, ...]] = {
    Decision.NO_ACTION: ("competitiveness", "liquidity", "activity"),
    Decision.INCREASE_FEES: ("liquidity", "activity", "competitiveness"),
    Decision.DECREASE_FEES: ("activity", "liquidity", "competitiveness"),
    Decision.REBALANCE: ("liquidity", "activity"),
    Decision.CLOSE_CHANNEL: ("activity", "liquidity", "stability"),
}
WEAK_SCORE = 40.0
# Heuristics' intermediate parts: left out of a model's facts (tokens, and easy to misquote).
PARTS = frozenset(
    (
        "score_1d",
        "score_7d",
        "score_30d",
        "balance_part",
        "size_part",
        "vs_competitor",
        "vs_network",
    )
)  # a score below this outside the drivers is worth a mention

SYSTEM_PROMPT = (
    "You explain Daznode's advice about a Lightning routing node to its operator, in plain "
    "English. Use only the JSON facts given; never invent or estimate numbers, quote the "
    "ones you use with their units (ppm, sat, msat, %). Say what to do and why, what it "
    "would cost or earn, how sure Daznode is, and what would change the advice. "
    "2-4 short paragraphs, no headings, no lists, no greetings."
)


@dataclass(frozen=True, slots=True)
class Explanation:
    title: str
    paragraphs: list[str]
    source: str = BUILT_IN  # "built-in" or "model <name>"
    note: str = ""  # e.g. why the built-in explainer answered instead of a model

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


# -- formatting -----------------------------------------------------------------------------


def _sat(value: float) -> str:
    return f"{int(value):,} sat"


def _ppm(value: float) -> str:
    return f"{int(value):,} ppm"


def _share(ratio: float) -> str:
    """A 0-1 share as a percentage, one decimal below 10 %."""
    pct = 100 * ratio
    return f"{pct:.1f} %" if 0 < pct < 10 else f"{pct:.0f} %"


def _score(value: float) -> str:
    return f"{value:g}/100"


def _join(parts: Sequence[str]) -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _paragraph(*sentences: str) -> str:
    return " ".join(s for s in (_sentence(x) for x in sentences) if s)


def _level(confidence: float) -> str:
    return "high" if confidence >= 0.8 else "moderate" if confidence >= 0.5 else "low"


# -- heuristic facts in words ---------------------------------------------------------------


def _facts(rec: Recommendation, name: str) -> Mapping[str, Any]:
    return next((h.facts for h in rec.heuristics if h.name == name), {})


def _num(facts: Mapping[str, Any], key: str) -> float | None:
    value = facts.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def describe_heuristic(h: HeuristicResult) -> str:
    """One heuristic's score with the facts it used, e.g. "liquidity 25/100 (5 % of the
    balance on our side, target 50 %)"."""
    f = h.facts
    detail: list[str] = []
    if h.name == "liquidity" and _num(f, "local_ratio") is not None:
        detail.append(f"{_share(f['local_ratio'])} of the balance on our side")
        if _num(f, "target_ratio") is not None:
            detail.append(f"target {_share(f['target_ratio'])}")
    elif h.name == "activity" and "forwards_7d" in f:
        detail.append(
            f"{f['forwards_7d']:,} forwards in 7 days, {f.get('forwards_30d', 0):,} in 30 days"
        )
        detail.append(f"{_sat(f.get('volume_out_7d_sat', 0))} sent out this week")
        if _num(f, "success_ratio_7d") is not None:
            detail.append(f"{_share(f['success_ratio_7d'])} of outgoing attempts succeeded")
    elif h.name == "competitiveness" and _num(f, "fee_ppm") is not None:
        detail.append(f"our fee {_ppm(f['fee_ppm'])}")
        if _num(f, "competitor_fee_ppm") is not None:
            detail.append(f"other channels into this peer charge {_ppm(f['competitor_fee_ppm'])}")
        if _num(f, "network_median_ppm") is not None:
            detail.append(f"network median {_ppm(f['network_median_ppm'])}")
    elif h.name == "centrality" and _num(f, "peer_betweenness") is not None:
        detail.append(f"peer betweenness {f['peer_betweenness']:.4g}")
        if _num(f, "our_betweenness") is not None:
            detail.append(f"ours {f['our_betweenness']:.4g}")
    elif h.name == "centrality" and _num(f, "peer_channels") is not None:
        detail.append(f"peer has {f['peer_channels']:,} channels; betweenness not computed yet")
    elif h.name == "reliability" and _num(f, "uptime_7d") is not None:
        detail.append(f"up {_share(f['uptime_7d'])} of the last 7 days")
        detail.append(f"{f.get('disconnects_7d', 0)} disconnects")
    elif h.name == "stability" and _num(f, "age_days") is not None:
        detail.append(f"{f['age_days']:g} days old")
        detail.append(f"{f.get('policy_changes_30d', 0)} fee changes in 30 days")
    elif h.name == "peer_quality" and _num(f, "peer_channels") is not None:
        detail.append(f"peer has {f['peer_channels']:,} channels")
        if _num(f, "peer_capacity_sat") is not None:
            detail.append(_sat(f["peer_capacity_sat"]))
    elif h.name == "network_position" and _num(f, "relative_degree") is not None:
        detail.append(
            f"peer has {f['relative_degree']:g}x the median node's channels "
            f"({f.get('position', '')})"
        )
    if f.get("note"):
        detail.append(str(f["note"]))
    if h.name == "reliability" and "active" in f and _num(f, "uptime_7d") is None:
        detail.append("active now" if f["active"] else "inactive now")
    name = h.name.replace("_", " ")
    return f"{name} {_score(h.score)}" + (f" ({'; '.join(detail)})" if detail else "")


# -- a channel's recommendation -------------------------------------------------------------


def _label(rec: Recommendation) -> str:
    return f"channel {rec.channel_id} ({rec.peer_alias or rec.peer_id[:12]})"


def _title(rec: Recommendation) -> str:
    s = rec.suggested
    who = _label(rec)
    if rec.decision is Decision.INCREASE_FEES:
        what = f"raise the fee to {_ppm(s.fee_ppm or 0)}"
    elif rec.decision is Decision.DECREASE_FEES:
        what = f"lower the fee to {_ppm(s.fee_ppm or 0)}"
    elif rec.decision is Decision.REBALANCE and s.rebalance:
        what = f"refill {_sat(s.rebalance.amount_sat)}"
    elif rec.decision is Decision.CLOSE_CHANNEL:
        what = "close"
    else:
        what = "leave as is"
    return f"{what[0].upper()}{what[1:]}: {who}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _situation(rec: Recommendation) -> list[str]:
    """What the channel looks like, from the liquidity, activity and price facts."""
    liq, act, comp = (_facts(rec, n) for n in ("liquidity", "activity", "competitiveness"))
    out: list[str] = []
    ratio, target = _num(liq, "local_ratio"), _num(liq, "target_ratio")
    if ratio is not None:
        where = f"{_share(ratio)} of its balance is on our side"
        out.append(where + (f" (the aim is {_share(target)})" if target is not None else ""))
    if "forwards_7d" in act:
        volume = act.get("volume_out_7d_sat", 0)
        if not act["forwards_7d"]:
            out.append("no payment passed through it this week")
        else:
            moved = f"{_count(act['forwards_7d'], 'forward')} passed through it this week"
            out.append(
                moved
                + (
                    f", {_sat(volume)} leaving through it"
                    if volume
                    else ", none of them leaving through it"
                )
            )
        success = _num(act, "success_ratio_7d")
        if success is not None and success < 1:
            out.append(f"only {_share(success)} of the payments sent out through it succeeded")
    fee, rival = _num(comp, "fee_ppm"), _num(comp, "competitor_fee_ppm")
    if fee is not None and rival is not None:
        side = "above" if fee > rival else "below" if fee < rival else "the same as"
        out.append(
            f"our fee of {_ppm(fee)} is {side} the {_ppm(rival)} other channels into this "
            "peer charge"
        )
    elif fee is not None and _num(comp, "network_median_ppm") is not None:
        out.append(
            f"our fee is {_ppm(fee)}; what competitors into this peer charge is unknown, "
            f"the network median is {_ppm(comp['network_median_ppm'])}"
        )
    return out


def _what(rec: Recommendation, current: int | None) -> str:
    s = rec.suggested
    label = _label(rec)
    if rec.rule:
        head = f"Your rule '{rec.rule}' decides {label}"
        if rec.decision in (Decision.INCREASE_FEES, Decision.DECREASE_FEES):
            head += f": fee from {_ppm(current or 0)} to {_ppm(s.fee_ppm or 0)}"
        elif s.fee_ppm is not None:
            head += f": fee {_ppm(s.fee_ppm)}"
        else:
            head += ": leave it alone"
        return _paragraph(head, *rec.reasons)
    if rec.decision is Decision.INCREASE_FEES:
        head = f"Raise the fee of {label} from {_ppm(current or 0)} to {_ppm(s.fee_ppm or 0)}"
    elif rec.decision is Decision.DECREASE_FEES:
        head = f"Lower the fee of {label} from {_ppm(current or 0)} to {_ppm(s.fee_ppm or 0)}"
    elif rec.decision is Decision.REBALANCE and s.rebalance:
        head = f"Refill {label} with {_sat(s.rebalance.amount_sat)} of outbound liquidity"
    elif rec.decision is Decision.CLOSE_CHANNEL and s.close:
        head = f"Close {label} cooperatively and put its {_sat(s.close.freed_local_sat)} to work"
    else:
        head = f"Leave {label} as it is"
        if current is not None:
            head += f" at {_ppm(current)}"
    engine = "; ".join(_untold(rec))
    return _paragraph(head, *_situation(rec), f"Daznode's reasoning: {engine}" if engine else "")


# Engine reasons that restate what the other paragraphs tell with their numbers.
TOLD = ("raise ", "lower ", "refill ", "closing and reopening costs", "other channels into")


def _untold(rec: Recommendation) -> list[str]:
    return [r for r in rec.reasons if not r.startswith(TOLD)]


def _scores(rec: Recommendation) -> str:
    by_name = {h.name: h for h in rec.heuristics}
    drivers = [by_name[n] for n in DRIVERS.get(rec.decision, ()) if n in by_name]
    weak = sorted(
        (h for h in rec.heuristics if h not in drivers and h.score < WEAK_SCORE),
        key=lambda h: (h.score, h.name),
    )
    rest = [h for h in rec.heuristics if h not in drivers and h not in weak]
    out = [f"The channel scores {_score(rec.composite)} overall"]
    if drivers:
        out.append("The scores behind this advice: " + "; ".join(map(describe_heuristic, drivers)))
    if weak:
        out.append("Weak spots: " + "; ".join(map(describe_heuristic, weak)))
    if rest:
        out.append(
            "The others: "
            + ", ".join(f"{h.name.replace('_', ' ')} {_score(h.score)}" for h in rest)
        )
    return _paragraph(*out)


def _weekly(volume_sat: float, fee_ppm: float) -> int:
    return int(volume_sat * fee_ppm / 1_000_000)


def _values(rec: Recommendation, current: int | None, p: Profile | None) -> str:
    s = rec.suggested
    out: list[str] = []
    if rec.decision is Decision.CLOSE_CHANNEL and s.close:
        c = s.close
        out.append(
            f"Closing and reopening elsewhere costs about {_sat(c.close_and_reopen_cost_sat)} "
            f"on chain and frees {_sat(c.freed_local_sat)} of local balance"
        )
        out.append(
            f"After that cost the capital is expected to earn {_sat(c.expected_gain_sat)} more "
            "elsewhere than this channel would"
            + (f" over {p.close_horizon_days} days" if p else "")
        )
        return _paragraph(*out)
    values: list[str] = []
    if s.fee_ppm is not None:
        kept = "fee stays at" if s.fee_ppm == current else "fee"
        target = s.target_fee_ppm
        values.append(
            f"{kept} {_ppm(s.fee_ppm)}"
            + (f" (target {_ppm(target)})" if target is not None else "")
        )
    if s.base_fee_msat is not None:
        values.append(f"base fee {s.base_fee_msat:,} msat")
    if s.inbound_fee_ppm:
        values.append(
            f"inbound fee {s.inbound_fee_ppm:+,} ppm (a discount for payments arriving through "
            "this channel, since they refill it)"
        )
    elif s.inbound_fee_ppm == 0:
        values.append("no inbound fee")
    if s.htlc_max_msat is not None:
        values.append(f"largest payment announced {_sat(s.htlc_max_msat // 1000)}")
    if values:
        out.append("Suggested values: " + ", ".join(values))
    volume = _facts(rec, "activity").get("volume_out_7d_sat")
    if isinstance(volume, int) and s.fee_ppm is not None and current is not None:
        if volume and s.fee_ppm != current:
            out.append(
                f"At this week's outbound volume of {_sat(volume)} the fee would earn "
                f"{_sat(_weekly(volume, s.fee_ppm))} a week instead of "
                f"{_sat(_weekly(volume, current))}, if the volume held (base fees aside)"
            )
        elif volume:
            out.append(
                f"At this week's outbound volume of {_sat(volume)} the current fee earns "
                f"{_sat(_weekly(volume, current))} a week (base fees aside)"
            )
        elif s.fee_ppm != current:
            out.append(
                "Nothing left through this channel this week, so today the change costs nothing"
            )
    plan = s.rebalance
    if plan:
        cost = plan.amount_sat * plan.estimated_cost_ppm // 1_000_000
        source = (
            f"from channel {plan.source_channel_id}"
            if plan.source_channel_id
            else "(no channel of ours has enough spare liquidity to be the source yet)"
        )
        verb = "Refill" if rec.decision is Decision.REBALANCE else "A refill would also pay"
        out.append(
            f"{verb}: {_sat(plan.amount_sat)} {source}, paying at most "
            f"{_ppm(plan.max_fee_ppm)} ({_sat(plan.max_cost_sat)})"
        )
        horizon = f" over {p.rebalance_horizon_days} days" if p else ""
        out.append(
            f"Routing it back is estimated at {_ppm(plan.estimated_cost_ppm)}, about "
            f"{_sat(cost)}, while the refilled liquidity should earn "
            f"{_sat(plan.expected_earnings_sat)}{horizon}"
        )
    return _paragraph(*out)


def _confidence(rec: Recommendation, current: int | None) -> str:
    c = rec.confidence
    head = f"Confidence: {_share(c)} ({_level(c)})"
    if rec.rule:
        return _paragraph(head, "A rule you wrote decided this, so it is applied as written")
    stab, act, comp = (_facts(rec, n) for n in ("stability", "activity", "competitiveness"))
    basis: list[str] = []
    if _num(stab, "age_days") is not None:
        basis.append(f"{stab['age_days']:g} days of history (fully trusted from 30)")
    if "forwards_30d" in act:
        basis.append(f"{_count(act['forwards_30d'], 'forward')} in 30 days")
    if comp and _num(comp, "competitor_fee_ppm") is None:
        basis.append("no survey of competitors' fees into this peer")
    out = [head]
    if basis:
        out.append("It rests on " + _join(basis))
    s = rec.suggested
    if rec.decision is Decision.CLOSE_CHANNEL and s.close:
        ratio = s.close.expected_gain_sat / max(1, s.close.close_and_reopen_cost_sat)
        out.append(f"The expected gain is {ratio:.1f} times the cost of closing")
    elif rec.decision is Decision.REBALANCE and s.rebalance:
        ratio = s.rebalance.max_fee_ppm / max(1, s.rebalance.estimated_cost_ppm)
        out.append(f"What the refill may cost is {ratio:.1f} times its estimated cost")
    elif current and s.target_fee_ppm is not None:
        gap = abs(s.target_fee_ppm - current) / current
        if s.target_fee_ppm > 2 * current:
            out.append(
                f"The target of {_ppm(s.target_fee_ppm)} is "
                f"{s.target_fee_ppm / current:.1f} times the current fee"
            )
        else:
            out.append(f"The fee is {_share(gap)} away from its target of {_ppm(s.target_fee_ppm)}")
    elif current is None:
        out.append("Our own policy on this channel is unknown, which lowers it")
    return _paragraph(*out)


def _change(rec: Recommendation, current: int | None, p: Profile | None) -> str:
    s = rec.suggested
    if rec.rule:
        return _paragraph(f"Edit or disable the rule '{rec.rule}' to hand this channel back")
    comp = _facts(rec, "competitiveness")
    rival = _num(comp, "competitor_fee_ppm")
    rivals = f" (now {_ppm(rival)})" if rival is not None else ""
    target = s.target_fee_ppm
    if rec.decision is Decision.CLOSE_CHANNEL and s.close:
        # closed while (earned elsewhere - earned here) > cost, and gain = that - cost
        limit = s.close.expected_gain_sat + s.close.close_and_reopen_cost_sat
        return _paragraph(
            "Keeping it would win if it started forwarding again (more than 10 forwards in "
            "30 days), if it earned about as much as its capital could elsewhere, or if "
            f"on-chain fees rose until closing and reopening cost more than about "
            f"{_sat(limit)} (now {_sat(s.close.close_and_reopen_cost_sat)})"
        )
    if rec.decision is Decision.REBALANCE and s.rebalance:
        plan = s.rebalance
        depleted = f" above {_share(p.low_ratio)} of the capacity" if p else ""
        return _paragraph(
            f"The refill stops being worth it if routing back costs {_ppm(plan.max_fee_ppm)} "
            f"or more (estimated {_ppm(plan.estimated_cost_ppm)} now), if fewer than 3 "
            "payments a week leave through the channel and none fail, or once its balance "
            f"is back{depleted}"
        )
    if target is None or current is None:
        return _paragraph("Once our policy on this channel is known, the fee can be judged")
    if rec.decision is Decision.INCREASE_FEES:
        return _paragraph(
            f"The raises stop at the target of {_ppm(target)}; the target falls if the "
            "balance on our side recovers, if outflow slows, or if the other channels into "
            f"this peer get cheaper{rivals}"
        )
    if rec.decision is Decision.DECREASE_FEES:
        return _paragraph(
            f"The cuts stop at the target of {_ppm(target)} and never go below what "
            "refilling the channel would cost; more payments leaving at the current fee, or "
            "the balance on our side shrinking, would hold the fee where it is"
        )
    band = f" by more than {_share(p.deadband)}" if p else " by more than the profile's deadband"
    return _paragraph(
        f"The fee moves when its target ({_ppm(target)} now) drifts away from "
        f"{_ppm(current)}{band}: when the balance or this week's flow shifts, or when the "
        f"other channels into this peer reprice{rivals}"
    )


def explain_recommendation(rec: Recommendation, profile: Profile | None = None) -> Explanation:
    """Daznode's own explanation of one channel's recommendation. `profile` (optional) adds
    its deadband and horizons to the text."""
    current = _num(_facts(rec, "competitiveness"), "fee_ppm")
    current = int(current) if current is not None else None
    paragraphs = [
        _what(rec, current),
        _scores(rec),
        _values(rec, current, profile),
        _confidence(rec, current),
        _change(rec, current, profile),
    ]
    return Explanation(_title(rec), [p for p in paragraphs if p])


# -- a node's score card and peer suggestions -----------------------------------------------

# Position components are the mean of the node's percentile and its share of the best node's
# value (engine/node_score.py), so they are told as what they measure, not as a percentile;
# the plain percentiles come with the node's reasons.
NODE_COMPONENT_WORDS = {
    "centrality": "shortest paths through it, against every node",
    "closeness": "how close it sits to the rest of the network, against every node",
    "connectivity": "its channel count, against every node",
    "capacity": "the capacity it commits, against every node",
}


def _component(name: str, value: float, score: NodeScore) -> str:
    if name in NODE_COMPONENT_WORDS:
        words = NODE_COMPONENT_WORDS[name]
    elif name == "fees":
        words = (
            "its fees are unknown (no enabled outbound policy)"
            if score.median_fee_ppm is None
            else f"median outbound fee {_ppm(score.median_fee_ppm)}; 100 is the network median, "
            "0 is 20 times away from it"
        )
    else:
        words = "share of its outbound channels enabled, halved when its gossip is stale"
    return f"{name} {_score(value)} ({words})"


def explain_node(
    score: NodeScore,
    suggestions: list[PeerSuggestion],
    *,
    rank: int | None = None,
    nodes: int | None = None,
) -> Explanation:
    """Daznode's own explanation of a node's score card and its peer suggestions. `rank`
    (1 = best) and `nodes` (how many were ranked) are told when given."""
    name = score.alias or score.pubkey[:16]
    standing = f"{name} scores {_score(score.composite)}"
    if rank is not None:
        standing += f" and ranks #{rank:,}" + (f" of {nodes:,} nodes" if nodes else "")
    # node_score's reasons: its channels and capacity and the shortest paths through it
    # against every node (plain percentiles), its fee against the network's, and how many
    # of its outbound directions are enabled
    first = _paragraph(standing, *score.reasons)
    ordered = sorted(score.components.items(), key=lambda kv: (-kv[1], kv[0]))
    comps = _paragraph(
        "Its components, strongest first: "
        + "; ".join(_component(k, v, score) for k, v in ordered),
        "Each position component is half the node's percentile and half its share of the "
        "best node's value (log share for paths, channels and capacity), so the top of the "
        "network stays apart",
        f"Betweenness {score.betweenness:.4g}, closeness {score.closeness:.4g}, "
        f"eigenvector {score.eigenvector:.4g}",
    )
    headroom = sorted(
        ((NODE_WEIGHTS.get(k, 0.0) * (100 - v), k, v) for k, v in score.components.items()),
        key=lambda t: (-t[0], t[1]),
    )
    change = ""
    if headroom and headroom[0][0] > 0:
        gain, comp, value = headroom[0]
        change = _paragraph(
            f"The most room to grow is in {comp}: it weighs "
            f"{_share(NODE_WEIGHTS.get(comp, 0.0))} of the score and stands at {value:g}, so "
            f"reaching 100 would add {gain:.1f} points",
            "Scores compare the node with every node of the current graph, so they also move "
            "when the network around the node changes",
        )
    return Explanation(
        f"Node {name}: {_score(score.composite)}",
        [p for p in (first, comps, _suggestions(suggestions), change) if p],
    )


def _suggestions(suggestions: list[PeerSuggestion]) -> str:
    if not suggestions:
        return _paragraph(
            "No peer to suggest: every well-ranked node with at least 2 channels is already a "
            "peer, or the graph is too small"
        )
    best = suggestions[0]
    out = [
        f"The best channel to open goes to {best.alias or best.pubkey[:16]}: score "
        f"{_score(best.score)}, confidence {_share(best.confidence)} ({_level(best.confidence)})"
        f"; it {'; '.join(best.reasons)}"
    ]
    if best.reach_gain == 0:
        out.append(f"it brings no new node within {HOPS} hops, only a better-placed neighbour")
    others = [
        f"{s.alias or s.pubkey[:16]} ({_score(s.score)}, {s.reach_gain:,} new nodes)"
        for s in suggestions[1:3]
    ]
    if others:
        out.append("Next: " + _join(others))
    return _paragraph(*out)


# -- the prompt for a language model --------------------------------------------------------


def _compact(value: Any) -> Any:
    """JSON-ready facts without empty fields, floats to 4 significant digits."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Enum):
        return _compact(value.value)
    if isinstance(value, Mapping):
        out = {str(k): _compact(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list | tuple | set):
        return [_compact(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, int | str | bool) or value is None:
        return value
    return str(value)


def chat_messages(subject: str, facts: Mapping[str, Any]) -> list[dict[str, str]]:
    """OpenAI chat messages: the constraints, then the subject and its facts as compact JSON."""
    data = json.dumps(_compact(facts), separators=(",", ":"), sort_keys=True)
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Explain: {subject}\nFacts: {data}"},
    ]


def recommendation_facts(rec: Recommendation) -> dict[str, Any]:
    """A recommendation's facts for `chat_messages`: the decision, its values and reasons,
    every heuristic's score with the facts it used."""
    return {
        "channel_id": rec.channel_id,
        "peer": rec.peer_alias or rec.peer_id,
        "decision": rec.decision.value,
        "confidence": rec.confidence,
        "composite_score": rec.composite,
        "rule": rec.rule,
        "reasons": list(rec.reasons),
        "suggested": asdict(rec.suggested),
        "scores": {
            h.name: {"score": h.score, **{k: v for k, v in h.facts.items() if k not in PARTS}}
            for h in rec.heuristics
        },
    }


def node_explain_facts(
    score: NodeScore,
    suggestions: list[PeerSuggestion],
    *,
    rank: int | None = None,
    nodes: int | None = None,
    limit: int = 5,
) -> dict[str, Any]:
    """A node's facts for `chat_messages`: its score card and its best peer suggestions."""
    return {
        "node": {**asdict(score), "rank": rank, "ranked_nodes": nodes},
        "component_weights": dict(NODE_WEIGHTS),
        "peer_suggestions": [asdict(s) for s in suggestions[:limit]],
    }


__all__ = [
    "BUILT_IN",
    "NO_MODEL",
    "Explanation",
    "chat_messages",
    "describe_heuristic",
    "explain_node",
    "explain_recommendation",
    "node_explain_facts",
    "recommendation_facts",
]
