"""The what-if simulator: payments flow through a real channel graph with our node in it,
and fee policies are compared on exactly the same demand.

A run has three steps:
1. `prepare(graph, scenario)` places our node with its channels in the graph, samples the
   senders (weighted by channel count, like the receivers), searches the routes senders see
   (engine/route_tables.py) and draws the payments of the whole horizon: Poisson arrivals,
   log-normal sizes, sender and receiver per payment. Payments our node can never carry are
   dropped here: they cannot change anything we measure.
2. A warm-up period runs at the channels' starting fees, so every policy starts from the
   same history.
3. `run_policy(world, factory)` replays the horizon for one policy: each payment tries its
   candidate routes cheapest first (routes around us and routes through a pair of our
   channels); a hop through us fails when our channel lacks the balance, a remote hop fails
   with the probability that a uniform balance does not cover the amount; the sender then
   tries the next route. Balances move with every forward, policies are called at their
   interval and their rebalances are paid as circular payments along the cheapest route.

Randomness comes from the seed only, and whether a remote hop succeeds is a hash of the
payment and the route, so two policies that send a payment the same way see the same
outcome (common random numbers: differences come from the policies, not from luck).
Assumptions: docs/SIMULATION.md.
"""

from __future__ import annotations

import bisect
import copy
import functools
import heapq
import itertools
import math
import random
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from statistics import NormalDist

from .graph_summary import summarize
from .impact import ChannelFlow
from .metrics import WINDOWS, ChannelMetrics, FlowWindow, NetworkContext
from .node_source import GraphEdge, NetworkGraph, RoutingPolicy
from .route_tables import (
    CLASS_AMOUNTS_MSAT,
    CLASS_UPPER_MSAT,
    UNREACHABLE,
    ClassGraph,
    RouteTree,
    alternatives,
    amount_class,
    build_class_graph,
    hop_penalty_msat,
    route_tree,
    success_probability,
)
from .sim_policy import PolicyActions, PolicyFactory, RebalanceOrder
from .worker_process import POOL_SHARED, pool_map

HOUR = 3600
DAY = 86400
START_EPOCH = 1_767_225_600  # 2026-01-01 UTC: simulated time, fixed for reproducibility
MAX_ATTEMPTS = 10  # routes a sender tries before giving up (LND's default timeout allows more)
ROUTES_PER_SIDE = 4  # cheapest ways into us and out of us combined into candidate routes
ALTERNATIVES = 3  # the cheapest routes around us the search keeps per sender and node
FEE_LIMIT_PPM = 5_000  # Core Lightning's pay: maxfeepercent 0.5 %
FEE_LIMIT_EXEMPT_MSAT = 5_000  # ... and exemptfee 5 sat
REBALANCE_TRIES = 3  # a failed circular payment is retried at half the amount
CALIBRATION_DAYS = 2
DEFAULT_SENDERS = 150
MIN_PAYMENTS_PER_DAY, MAX_PAYMENTS_PER_DAY = 1_000, 10_000_000  # the calibration stays within

Progress = Callable[[float, str], None]


def _quiet(_fraction: float, _phase: str) -> None:
    return None


# -- what is simulated -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimChannel:
    channel_id: str
    peer_id: str
    capacity_sat: int
    local_msat: int
    policy: RoutingPolicy  # ours, towards the peer
    peer_policy: RoutingPolicy | None  # the peer's towards us (None: it forwards nothing to us)
    age_days: float = 365.0
    peer_alias: str = ""


@dataclass(frozen=True, slots=True)
class Demand:
    """Payments across the network that could pass through us, per simulated day."""

    payments_per_day: int = 200_000  # River (2023): at least 6.6 M routed payments a month
    median_amount_sat: int = 20_000
    amount_spread: float = 1.5  # standard deviation of ln(amount)
    max_amount_sat: int = 2_000_000
    senders: int = DEFAULT_SENDERS  # distinct sending nodes sampled (each a route search)


@dataclass(frozen=True, slots=True)
class Scenario:
    our_pubkey: str
    channels: tuple[SimChannel, ...]
    demand: Demand = Demand()
    days: int = 30
    warmup_days: int = 7
    seed: int = 1
    calibrate_forwards_per_day: float | None = None  # from the node's history, when it has one

    @property
    def total_days(self) -> int:
        return self.warmup_days + self.days


class SimulationError(ValueError):
    """The scenario cannot be simulated (no channels, unknown peers, nothing routable)."""


# -- the prepared world (shared by every policy) ------------------------------------------

Payment = tuple[int, int, int, int, int, int, float]
Around = tuple[float, float, float, int]  # a route around us: cost, fee, probability, rank


@dataclass(slots=True)
class InRoute:
    """How a sender reaches us through one of our channels: to the peer, then its hop."""

    cost: float
    fee: float
    prob: float  # of the remote hops before the peer's hop to us
    channel: int


@dataclass(slots=True)
class World:
    scenario: Scenario
    net: NetworkContext
    channels: list[SimChannel]
    peer_node: list[int]  # per channel, the peer's node index
    classes: list[ClassGraph]
    sender_trees: list[list[RouteTree]]  # [sender][class]
    peer_trees: dict[int, list[RouteTree]]  # peer node -> [class]
    in_routes: list[list[list[InRoute]]]  # [sender][class], cheapest first
    min_out_cost: list[list[float]]  # [class][node]: cheapest onward route from any peer
    # [class][channel]: the peer's route costs, fees, probabilities, and our hop's penalty
    onward: list[list[tuple[array, array, array, float]]]
    # [class][node]: the receiver's only usable channel, which every route to it shares:
    # its success probability and the node on its other end (1.0 and -1: several channels)
    last_prob: list[array]
    last_from: list[array]
    # (second, sender, receiver, msat, class, index, u0): only those that can reach us. The
    # index keys the payment's random outcomes; u0 decides its cheapest route around us
    # (drawn with the payment: see _draw_day)
    payments: list[Payment]
    warmup_payments: int  # the first ones fall in the warm-up
    start: Ledger | None = None  # state after the warm-up, copied for every policy
    stats: dict[str, float] = field(default_factory=dict)


def _unit(*key: int) -> float:
    """A uniform number in [0, 1) from integers: the same key, the same number, in every
    process (hashes of ints are not randomised)."""
    h = hash(key) * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 29
    h = h * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 32
    return (h >> 11) / 2**53


def _weighted_sample(rng: random.Random, items: list[int], weights: list[int], k: int) -> list[int]:
    """k distinct items, each drawn with probability proportional to its weight."""
    keyed = sorted(items, key=lambda i: rng.random() ** (1.0 / weights[i]), reverse=True)
    return keyed[:k]


def _index_graph(
    graph: NetworkGraph, our: str
) -> tuple[dict[str, int], list[tuple[int, int, GraphEdge]]]:
    index: dict[str, int] = {our: 0}
    for node in graph.nodes:
        index.setdefault(node.pubkey, len(index))
    edges = []
    for e in graph.edges:
        a = index.setdefault(e.node1, len(index))
        b = index.setdefault(e.node2, len(index))
        edges.append((a, b, e))
    return index, edges


def _in_route(
    tree: RouteTree, sender: int, ch: SimChannel, peer: int, amount: int, i: int
) -> InRoute | None:
    """The sender's way to us over channel i: its route to the peer plus the peer's hop."""
    if ch.peer_policy is None or ch.peer_policy.disabled:
        return None
    capacity = ch.capacity_sat * 1000
    if (
        not (ch.peer_policy.htlc_min_msat <= amount <= ch.peer_policy.htlc_max_msat)
        or amount >= capacity
    ):
        return None
    if peer == sender:  # the sender's own channel to us: no fee, known balance
        return InRoute(hop_penalty_msat(amount, 1.0), 0.0, 1.0, i)
    cost, fee, prob = tree.reach(peer)
    if cost == UNREACHABLE:
        return None
    hop_fee = ch.peer_policy.fee_msat(amount)
    hop_cost = hop_fee + hop_penalty_msat(amount, success_probability(amount, capacity))
    return InRoute(cost + hop_cost, fee + hop_fee, prob, i)


@dataclass(frozen=True, slots=True)
class _ClassDraw:
    """Drawing the payments of one size class that get past the sender's cheapest route
    around us (see _draw_day)."""

    c: int
    quantiles: tuple[float, float]  # the class's range in the amount distribution
    rate: float  # such payments per payment in the network
    sender_cum: list[float]  # cumulative, per sender: the sender's share of them
    receiver_cum: list[array]  # per sender, cumulative over every node: the receivers'


def _class_bounds(demand: Demand) -> list[tuple[int, int]]:
    """Per size class, the least and the largest amount a payment of the class can have
    (least > largest: the demand has no payment of that size)."""
    low, cap = 1_000, demand.max_amount_sat * 1000
    uppers = [*CLASS_UPPER_MSAT, cap + 1]
    out, floor = [], low
    for upper in uppers:
        out.append((floor, min(cap, upper - 1)))
        floor = max(floor, upper)
    return out


def _amount_dist(demand: Demand) -> NormalDist:
    """The distribution of ln(amount in msat), before the floor and the cap."""
    return NormalDist(math.log(demand.median_amount_sat * 1000), max(demand.amount_spread, 1e-9))


def _amount_quantiles(demand: Demand) -> list[tuple[float, float]]:
    """Per size class, the range [from, to) of the amount distribution's quantiles whose
    amounts fall in the class: amount = int(min(cap, max(1000, lognormal)))."""
    dist = _amount_dist(demand)
    out = []
    for low, high in _class_bounds(demand):
        if low > high:
            out.append((0.0, 0.0))
            continue
        below = 0.0 if low <= 1_000 else dist.cdf(math.log(low))
        above = 1.0 if high >= demand.max_amount_sat * 1000 else dist.cdf(math.log(high + 1))
        out.append((below, above))
    return out


def shared_hop(world: World, k: int, c: int, target: int) -> float:
    """The success probability of the hop every route from sender k to the target shares:
    the target's only usable channel (1.0 when it has several, when it is a peer of ours,
    or when that channel is the sender's own, whose balance the sender knows). Its outcome
    is drawn once per payment: a payment that failed there fails there on every route."""
    if world.last_from[c][target] == world.sender_trees[k][c].origin:
        return 1.0
    return world.last_prob[c][target]


def _rest(prob: float, shared: float) -> float:
    """A route's success probability once its shared last hop has succeeded."""
    return min(1.0, prob / shared) if shared > 0 else 0.0


def cheapest_odds(world: World, k: int, c: int, r: int) -> tuple[float, float]:
    """For a payment of size class c from sender k to node r: (the probability that it can
    reach us at all: its shared last hop succeeds and the sender's cheapest route around us
    does not settle it first, the least u0 consistent with that). 0: no route through us
    can carry it. The cheapest route counts only when it is tried first for every amount of
    the class (the fee limit, see below); otherwise u0 is free."""
    ins = world.in_routes[k][c]
    outs = world.min_out_cost[c]
    tree = world.sender_trees[k][c]
    if not ins or outs[r] == UNREACHABLE or r == tree.origin:
        return 0.0, 0.0
    shared = shared_hop(world, k, c, r)
    if tree.cost[r] <= ins[0].cost + outs[r] and tree.fee[r] <= _fee_cap(world.scenario.demand, c):
        rest = _rest(tree.prob[r], shared)
        return shared * (1.0 - rest), rest
    return shared, 0.0


@functools.cache
def _fee_cap(demand: Demand, c: int) -> float:
    """A route fee (at the class's amount) under the sender's limit for every amount of the
    class: under 0.5 % by a margin that covers the limit's rounding, or under 5 sat at the
    class's largest amount."""
    amount, (_low, high) = CLASS_AMOUNTS_MSAT[c], _class_bounds(demand)[c]
    return max(amount * (FEE_LIMIT_PPM - 2) / 1e6, 0.999 * FEE_LIMIT_EXEMPT_MSAT * amount / high)


def past_cheapest(world: World, k: int, c: int, nodes: Iterable[int]) -> list[float]:
    """cheapest_odds' probability for each node."""
    return [cheapest_odds(world, k, c, r)[0] for r in nodes]


def _last_hops(classes: list[ClassGraph], peers: set[int]) -> tuple[list[array], list[array]]:
    """Per class and node, the node's only usable channel when it has one: its success
    probability and the node it comes from (see World). Our peers are left out: a route
    through us reaches them over our own channel."""
    probs, froms = [], []
    for g in classes:
        prob, came = array("d", [1.0]) * len(g.into), array("i", [-1]) * len(g.into)
        for v, hops in enumerate(g.into):
            if len(hops) == 1 and v not in peers:
                came[v], _cost, _fee, prob[v] = hops[0]
        probs.append(prob)
        froms.append(came)
    return probs, froms


def _sender_tables(k: int) -> list[tuple[float, array]]:
    """In a pool process: per size class, sender k's weight of payments past its cheapest
    route around us, and the cumulative weights of their receivers over every node."""
    world, receiver_weights = POOL_SHARED["world"], POOL_SHARED["receiver_weights"]
    n = len(receiver_weights)
    out = []
    for c in range(len(CLASS_AMOUNTS_MSAT)):
        odds = past_cheapest(world, k, c, range(n))
        cum = array(
            "d", itertools.accumulate(w * q for w, q in zip(receiver_weights, odds, strict=True))
        )
        out.append((cum[-1], cum))
    return out


def _draw_tables(
    world: World, senders: list[int], degree: list[int], processes: int
) -> list[_ClassDraw]:
    """The per-class tables _draw_day draws from: a payment in the network goes from a sender
    and to a receiver drawn in proportion to their channel counts; the tables weigh each pair
    by the probability that the payment gets past the sender's cheapest route around us."""
    base = world.classes[0]
    receiver_weights = [degree[v] if v and base.into[v] else 0 for v in range(len(degree))]
    sender_total, receiver_total = sum(degree[s] for s in senders), sum(receiver_weights)
    shared = {"world": world, "receiver_weights": receiver_weights}
    per_sender = list(pool_map(_sender_tables, list(range(len(senders))), processes, shared))
    classes = []
    for c, quantiles in enumerate(_amount_quantiles(world.scenario.demand)):
        share = quantiles[1] - quantiles[0]
        weights = [degree[s] * per_sender[k][c][0] for k, s in enumerate(senders)]
        if share <= 0 or sum(weights) <= 0:
            continue
        rate = share * sum(weights) / (sender_total * receiver_total)
        cums = [per_sender[k][c][1] for k in range(len(senders))]
        classes.append(_ClassDraw(c, quantiles, rate, _cumulative(weights), cums))
    return classes


def _draw_day(world: World, key: str, day: int, draw: list[_ClassDraw]) -> list[Payment]:
    """One day's payments that get past their sender's cheapest route around us, in time
    order. Drawing every payment and testing that route first would keep about 1 in 30: here
    only those are drawn, each pair of sender and receiver in proportion to the probability
    that the route fails while the hop shared by every route succeeds (a payment that fails
    there fails everywhere, never through us), and the uniform number that decides the
    route (u0) is drawn from the range where it fails. The payments kept are distributed
    as if every payment had been drawn (tests/unit/test_flow_sim.py compares both). Each
    day has its own generator (seeded by `key` and the day), so days can be drawn in any
    process; a payment's index, day x 2^24 + its rank in the day, keys its other random
    outcomes."""
    rng = random.Random(f"{key}:{day}")
    demand = world.scenario.demand
    dist = _amount_dist(demand)
    bounds = _class_bounds(demand)
    drawn = []
    for cd in draw:
        low, high = bounds[cd.c]
        (q_from, q_to), s_cum = cd.quantiles, cd.sender_cum
        for _ in range(_poisson(rng, demand.payments_per_day * cd.rate)):
            t = rng.randrange(DAY)
            k = bisect.bisect_right(s_cum, rng.random() * s_cum[-1])
            r_cum = cd.receiver_cum[k]
            r = bisect.bisect_right(r_cum, rng.random() * r_cum[-1])
            quantile = max(1e-300, q_from + (q_to - q_from) * rng.random())
            amount = min(high, max(low, int(math.exp(dist.inv_cdf(quantile)))))
            u_low = cheapest_odds(world, k, cd.c, r)[1]
            u0 = u_low + (1.0 - u_low) * rng.random()
            drawn.append((t, k, r, amount, cd.c, u0))  # the amount is within the class
    drawn.sort()
    return [
        (day * DAY + t, k, r, amount, c, day * 2**24 + n, u0)
        for n, (t, k, r, amount, c, u0) in enumerate(drawn)
    ]


def _cumulative(weights: list[int]) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:  # normal approximation: exact enough, and O(1)
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def routes_around_us(world: World, k: int, target: int, c: int) -> list[Around]:
    """Sender k's routes to the target that avoid us, cheapest first, as many as it would
    try: the ones the search kept (engine/route_tables.py), then, when it kept more than
    one, a ladder of further ones up to MAX_ATTEMPTS, each dearer than the last by the
    kept routes' average step and at least by one more hop's base penalty. A dense network
    has many more routes than the search keeps; without them a sender whose few kept
    routes failed would come to us at any fee (docs/SIMULATION.md)."""
    alts = alternatives(world.sender_trees[k][c], target)
    out = [(cost, fee, prob, rank) for rank, (cost, fee, prob) in enumerate(alts)]
    if len(alts) < 2:
        return out
    (first_cost, first_fee, _p), (last_cost, last_fee, last_prob) = alts[0], alts[-1]
    steps = len(alts) - 1
    step = max(hop_penalty_msat(CLASS_AMOUNTS_MSAT[c], 1.0), (last_cost - first_cost) / steps)
    fee_step = max(0.0, (last_fee - first_fee) / steps)
    for rank in range(len(alts), MAX_ATTEMPTS):
        m = rank - steps
        out.append((last_cost + m * step, last_fee + m * fee_step, last_prob, rank))
    return out


def fee_limit_msat(amount: int) -> int:
    return max(FEE_LIMIT_EXEMPT_MSAT, amount * FEE_LIMIT_PPM // 1_000_000)


def around_unit(seed: int, payment: Payment, rank: int) -> float:
    """The uniform number that decides whether the payment's rank-th route around us
    succeeds: drawn with the payment for the cheapest (see _draw_day), a hash for the others."""
    return payment[6] if rank == 0 else _unit(seed, payment[5], 10 + rank)


def first_tries(world: World, seed: int, payment: Payment) -> tuple[bool, int, list[Around]]:
    """The routes around us a sender tries before any route through us could come first,
    whatever our fees: those no dearer than the cheapest conceivable route through us (the
    sender's cheapest way to a peer of ours, then the cheapest way on from any peer, at no
    fee of ours). Returns (settled without us: it succeeded or ran out of attempts,
    attempts made, the routes around us left). Policies cannot change any of it."""
    _second, k, target, amount, c, _index, u0 = payment
    lower_bound = world.in_routes[k][c][0].cost + world.min_out_cost[c][target]
    scale = amount / CLASS_AMOUNTS_MSAT[c]
    limit = fee_limit_msat(amount)
    tree = world.sender_trees[k][c]
    shared = shared_hop(world, k, c, target)  # succeeded: the draw keeps no other payment
    if (  # the cheapest route around us, tried first, succeeds
        tree.cost[target] <= lower_bound
        and tree.fee[target] * scale <= limit
        and u0 < _rest(tree.prob[target], shared)
    ):
        return True, 1, []
    around = routes_around_us(world, k, target, c)
    attempts = 0
    for n, (cost, fee, prob, rank) in enumerate(around):
        if cost > lower_bound:
            return False, attempts, around[n:]
        if fee * scale > limit:
            continue
        attempts += 1
        if around_unit(seed, payment, rank) < _rest(prob, shared) or attempts >= MAX_ATTEMPTS:
            return True, attempts, []
    return False, attempts, []


def _reaching_us(world: World, drawn: Iterable[Payment]) -> list[Payment]:
    """The payments that the routes around us tried first did not settle: no policy can
    change what the others do."""
    seed = world.scenario.seed
    return [p for p in drawn if not first_tries(world, seed, p)[0]]


def _day_reaching_us(job: tuple[str, int]) -> tuple[int, list[Payment]]:
    """In a pool process: (payments drawn, those that reach us) for one day."""
    key, day = job
    world, draw = POOL_SHARED["world"], POOL_SHARED["draw"]
    drawn = _draw_day(world, key, day, draw)
    return len(drawn), _reaching_us(world, drawn)


def _payments_reaching_us(
    world: World, key: str, days: int, draw: list[_ClassDraw], processes: int, progress: Progress
) -> tuple[int, list[Payment]]:
    """Every day's payments that reach us, in time order, and how many were drawn."""
    drawn, kept = 0, []
    jobs = [(key, day) for day in range(days)]
    results = pool_map(_day_reaching_us, jobs, processes, {"world": world, "draw": draw})
    for done, (count, day_kept) in enumerate(results, 1):
        drawn += count
        kept += day_kept
        progress(done / days, "drawing payments")
    return drawn, kept


def _calibrate(world: World, draw: list[_ClassDraw], processes: int) -> None:
    """Scale the demand so that, at the channels' current fees, we forward as many payments
    per day as the node did (its own history). Measured on a separate sample of days."""
    scenario = world.scenario
    target = scenario.calibrate_forwards_per_day or 0.0
    key = f"calibration:{scenario.seed}"
    _drawn, world.payments = _payments_reaching_us(
        world, key, CALIBRATION_DAYS, draw, processes, _quiet
    )
    ledger = Ledger.opening(world)
    Replay(world, ledger, policy=None).run(0, len(world.payments), CALIBRATION_DAYS * DAY)
    measured = ledger.forwarded / CALIBRATION_DAYS
    wanted = scenario.demand.payments_per_day * target / max(measured, 0.5)
    per_day = int(min(MAX_PAYMENTS_PER_DAY, max(MIN_PAYMENTS_PER_DAY, wanted)))
    world.scenario = replace(scenario, demand=replace(scenario.demand, payments_per_day=per_day))
    world.stats.update(
        calibration_target_per_day=target,
        calibration_sample_payments_per_day=scenario.demand.payments_per_day,
        calibration_measured_per_day=measured,
        calibrated_payments_per_day=per_day,
        calibration_capped=per_day != int(wanted),
    )


def _tree_arrays(tree: RouteTree) -> tuple[array, array, array]:
    return tree.cost, tree.fee, tree.prob


def _our_hop_penalty(ch: SimChannel, amount: int) -> float:
    """What senders add for our hop over this channel (UNREACHABLE: the amount cannot fit)."""
    capacity = ch.capacity_sat * 1000
    if amount >= capacity:
        return UNREACHABLE
    return hop_penalty_msat(amount, success_probability(amount, capacity))


def _search(job: tuple[int, bool]) -> list[RouteTree]:
    """In a pool process: one origin's route trees, one per size class. A sender's keep its
    next cheapest routes too (the ones it falls back on)."""
    origin, is_sender = job
    ranks = ALTERNATIVES if is_sender else 1
    return [route_tree(g, origin, is_sender, ranks) for g in POOL_SHARED["classes"]]


def prepare(
    graph: NetworkGraph, scenario: Scenario, progress: Progress = _quiet, processes: int = 1
) -> World:
    """Everything the policies share: routes, payments, and the state after the warm-up.
    `processes` > 1 searches routes and draws payments in that many forked processes (the
    result is the same)."""
    if not scenario.channels:
        raise SimulationError("the node has no channels to simulate")
    rng = random.Random(scenario.seed)  # the senders; each day's payments have their own
    index, edges = _index_graph(graph, scenario.our_pubkey)
    n = len(index)
    peer_node = []
    for ch in scenario.channels:
        if ch.peer_id not in index:
            raise SimulationError(
                f"peer {ch.peer_id} of channel {ch.channel_id} is not in the graph"
            )
        peer_node.append(index[ch.peer_id])
    progress(0.02, "building the graph")
    classes = [build_class_graph(n, edges, amount, skip=0) for amount in CLASS_AMOUNTS_MSAT]
    base = classes[0]
    degree = [len(base.out[v]) + len(base.into[v]) for v in range(n)]
    candidates = [v for v in range(1, n) if base.out[v]]
    if not candidates:
        raise SimulationError("the graph has no enabled channels")
    senders = _weighted_sample(rng, candidates, degree, scenario.demand.senders)
    peers = sorted(set(peer_node))
    jobs = [(s, True) for s in senders] + [(p, False) for p in peers]
    trees_of: list[list[RouteTree]] = []
    searching = pool_map(_search, jobs, processes, {"classes": classes})
    for done, trees in enumerate(searching, 1):
        trees_of.append(trees)
        progress(0.05 + 0.6 * done / len(jobs), "searching routes")
    sender_trees = trees_of[: len(senders)]
    peer_trees = dict(zip(peers, trees_of[len(senders) :], strict=True))
    in_routes = []
    for k, s in enumerate(senders):
        per_class = []
        for c, amount in enumerate(CLASS_AMOUNTS_MSAT):
            routes = [
                r
                for i, ch in enumerate(scenario.channels)
                if (r := _in_route(sender_trees[k][c], s, ch, peer_node[i], amount, i)) is not None
            ]
            routes.sort(key=lambda r: r.cost)
            per_class.append(routes)
        in_routes.append(per_class)
    min_out = []
    for c in range(len(classes)):
        best = [UNREACHABLE] * n
        for p in peers:
            cost = peer_trees[p][c].cost
            best = [b if b <= x else x for b, x in zip(best, cost, strict=True)]
        min_out.append(best)
    onward = [
        [
            (*_tree_arrays(peer_trees[peer_node[j]][c]), _our_hop_penalty(ch, amount))
            for j, ch in enumerate(scenario.channels)
        ]
        for c, amount in enumerate(CLASS_AMOUNTS_MSAT)
    ]
    last_prob, last_from = _last_hops(classes, set(peers))
    world = World(
        scenario=scenario,
        net=replace(summarize(graph, scenario.our_pubkey), our_channels=len(scenario.channels)),
        channels=list(scenario.channels),
        peer_node=peer_node,
        classes=classes,
        sender_trees=sender_trees,
        peer_trees=peer_trees,
        in_routes=in_routes,
        min_out_cost=min_out,
        onward=onward,
        last_prob=last_prob,
        last_from=last_from,
        payments=[],
        warmup_payments=0,
        stats={"nodes": n, "senders": len(senders), "peers": len(peers)},
    )
    progress(0.65, "weighing senders and receivers")
    draw = _draw_tables(world, senders, degree, processes)
    if not draw:
        raise SimulationError("no payment of the demand can reach the node")
    if scenario.calibrate_forwards_per_day is not None:
        progress(0.66, "calibrating demand")
        _calibrate(world, draw, processes)
    drawn, world.payments = _payments_reaching_us(
        world,
        f"payments:{scenario.seed}",
        world.scenario.total_days,
        draw,
        processes,
        lambda f, _p: progress(0.7 + 0.15 * f, "drawing payments"),
    )
    warmup_end = scenario.warmup_days * DAY
    world.warmup_payments = bisect.bisect_left(world.payments, (warmup_end,))
    world.stats.update(
        # the network's payments over the horizon (expected), those drawn (they get past
        # their cheapest route around us), and those that reach us
        payments_drawn=world.scenario.demand.payments_per_day * scenario.total_days,
        payments_past_cheapest=drawn,
        payments_kept=len(world.payments),
    )
    progress(0.85, "warming up")
    ledger = Ledger.opening(world)
    Replay(world, ledger, policy=None).run(0, world.warmup_payments, warmup_end)
    world.start = ledger
    progress(0.9, "ready")
    return world


# -- the state of one run -----------------------------------------------------------------

COUNTERS = ("fwd_out", "fwd_in", "vol_out", "vol_in", "fees", "failed_out", "assisted", "refill")
C_FWD_OUT, C_FWD_IN, C_VOL_OUT, C_VOL_IN, C_FEES, C_FAILED, C_ASSISTED, C_REFILL = range(
    len(COUNTERS)
)


@dataclass(slots=True)
class Ledger:
    """Our channels as one policy sees them during a run."""

    local: list[int]
    remote: list[int]
    policy: list[RoutingPolicy]
    counters: list[list[int]]  # [counter][channel], cumulative since the start
    hourly: list[tuple[tuple[int, ...], ...]]  # counters at the start of each hour
    hourly_local: list[tuple[int, ...]]
    updates: list[list[int]]  # per channel, times of our fee changes
    offered: int = 0  # HTLCs that reached us
    forwarded: int = 0
    fallback: int = 0  # forwards the sender sent us after a route around us had failed
    fees_msat: int = 0
    volume_msat: int = 0
    rebalance_cost_msat: int = 0
    rebalances: int = 0
    policy_updates: int = 0
    daily: list[dict[str, int]] = field(default_factory=list)

    @classmethod
    def opening(cls, world: World) -> Ledger:
        k = len(world.channels)
        ledger = cls(
            local=[c.local_msat for c in world.channels],
            remote=[c.capacity_sat * 1000 - c.local_msat for c in world.channels],
            policy=[c.policy for c in world.channels],
            counters=[[0] * k for _ in COUNTERS],
            hourly=[],
            hourly_local=[],
            updates=[[] for _ in range(k)],
        )
        ledger.snapshot_hour()  # hour 0
        return ledger

    def snapshot_hour(self) -> None:
        self.hourly.append(tuple(tuple(c) for c in self.counters))
        self.hourly_local.append(tuple(self.local))

    def totals(self) -> dict[str, int]:
        return {
            "fees_msat": self.fees_msat,
            "rebalance_cost_msat": self.rebalance_cost_msat,
            "volume_msat": self.volume_msat,
            "forwarded": self.forwarded,
            "fallback": self.fallback,
            "offered": self.offered,
            "policy_updates": self.policy_updates,
            "rebalances": self.rebalances,
        }


class Replay:
    """Replays payments against a ledger, calling the policy at its interval."""

    def __init__(self, world: World, ledger: Ledger, policy) -> None:
        self.w = world
        self.led = ledger
        self.policy = policy
        self.seed = world.scenario.seed
        self.interval_hours = max(1, round(policy.interval_seconds / HOUR)) if policy else 0
        self.fee_at_class: list[list[int]] = []
        self._refresh_fees()
        self.position = {ch.channel_id: i for i, ch in enumerate(world.channels)}
        attach = getattr(policy, "attach_flows", None)
        if attach is not None:
            attach(self.flow_between)

    def flow_between(self, channel_id: str, start: int, end: int) -> ChannelFlow:
        """Outbound forwards of one channel between two epoch times, at hour resolution."""
        i = self.position[channel_id]
        last = len(self.led.hourly) - 1
        h0 = min(last, max(0, (start - START_EPOCH) // HOUR))
        h1 = min(last, max(h0, (end - START_EPOCH) // HOUR))
        a, b = self.led.hourly[h0], self.led.hourly[h1]
        return ChannelFlow(
            forwards_out=b[C_FWD_OUT][i] - a[C_FWD_OUT][i],
            volume_out_msat=b[C_VOL_OUT][i] - a[C_VOL_OUT][i],
            fees_msat=b[C_FEES][i] - a[C_FEES][i],
            seconds=(h1 - h0) * HOUR,
        )

    def _refresh_fees(self) -> None:
        """Our fee at each size class's amount, as senders rank routes (after every update)."""
        self.fee_at_class = [[p.fee_msat(a) for p in self.led.policy] for a in CLASS_AMOUNTS_MSAT]

    # -- the clock --

    def run(self, first: int, last: int, end_second: int, progress: Progress = _quiet) -> None:
        """Payments first..last-1, then the clock on to `end_second` (a day boundary)."""
        hour = start_hour = len(self.led.hourly) - 1
        total_hours = max(1, end_second // HOUR - start_hour)
        payments = self.w.payments
        for i in range(first, last):
            second = payments[i][0]
            while (hour + 1) * HOUR <= second:
                hour += 1
                self._new_hour(hour)
                progress((hour - start_hour) / total_hours, "")
            self._route(payments[i])
        while (hour + 1) * HOUR <= end_second:
            hour += 1
            self._new_hour(hour)

    def _new_hour(self, hour: int) -> None:
        led = self.led
        led.snapshot_hour()
        if hour % 24 == 0:
            led.daily.append({"day": hour // 24, **led.totals(), "local_msat": sum(led.local)})
        if self.policy is not None and hour % self.interval_hours == 0:
            now = START_EPOCH + hour * HOUR
            self._apply(self.policy.decide(self.metrics(hour), self._net(hour), now))

    def _net(self, hour: int) -> NetworkContext:
        return replace(self.w.net, now=START_EPOCH + hour * HOUR)

    # -- what the policy sees --

    def metrics(self, hour: int) -> list[ChannelMetrics]:
        led, w = self.led, self.w
        now = led.hourly[hour]
        out = []
        for i, ch in enumerate(w.channels):
            windows = {}
            for days in WINDOWS:
                past = led.hourly[max(0, hour - 24 * days)]
                d = [now[c][i] - past[c][i] for c in range(len(COUNTERS))]
                windows[days] = FlowWindow(
                    days,
                    forwards_out=d[C_FWD_OUT],
                    forwards_in=d[C_FWD_IN],
                    volume_out_msat=d[C_VOL_OUT],
                    volume_in_msat=d[C_VOL_IN],
                    fees_msat=d[C_FEES],
                    failed_out=d[C_FAILED],
                    assisted_fees_msat=d[C_ASSISTED],
                    refill_cost_msat=d[C_REFILL],
                )
            week_ago = led.hourly_local[max(0, hour - 24 * 7)][i]
            span_days = min(7.0, hour / 24) or 1.0
            out.append(
                ChannelMetrics(
                    channel_id=ch.channel_id,
                    peer_id=ch.peer_id,
                    peer_alias=ch.peer_alias,
                    capacity_sat=ch.capacity_sat,
                    local_msat=led.local[i],
                    remote_msat=led.remote[i],
                    active=True,
                    age_days=ch.age_days + hour / 24,
                    local_policy=led.policy[i],
                    remote_policy=ch.peer_policy,
                    windows=windows,
                    uptime_ratio=1.0,
                    disconnects_7d=0,
                    policy_changes_30d=sum(1 for t in led.updates[i] if t > (hour - 720) * HOUR),
                    fee_unchanged_days=(hour * HOUR - led.updates[i][-1]) / DAY
                    if led.updates[i]
                    else None,
                    balance_trend_msat_per_day=(led.local[i] - week_ago) / span_days,
                )
            )
        return out

    # -- what the policy does --

    def _apply(self, actions: PolicyActions) -> None:
        led = self.led
        hour = len(led.hourly) - 1
        for cid, setting in actions.fees.items():
            i = self.position.get(cid)
            if i is None:
                continue
            old = led.policy[i]
            new = replace(
                old,
                fee_rate_ppm=max(0, int(setting.fee_ppm)),
                base_fee_msat=old.base_fee_msat
                if setting.base_fee_msat is None
                else max(0, int(setting.base_fee_msat)),
                htlc_max_msat=old.htlc_max_msat
                if setting.htlc_max_msat is None
                else int(setting.htlc_max_msat),
            )
            if new != old:
                led.policy[i] = new
                led.policy_updates += 1
                if new.fee_rate_ppm != old.fee_rate_ppm:  # as the product's snapshots count
                    led.updates[i].append(hour * HOUR)
        self._refresh_fees()
        for order in actions.rebalances:
            self._rebalance(order, hour)

    def _rebalance(self, order: RebalanceOrder, hour: int) -> None:
        """A circular payment: out over the source channel, through the network from its peer
        to the target's peer, back in over the target channel."""
        led, w = self.led, self.w
        src = self.position.get(order.source_channel_id)
        dst = self.position.get(order.target_channel_id)
        if src is None or dst is None or src == dst or order.amount_msat <= 0:
            return
        ch_dst = w.channels[dst]
        amount = order.amount_msat
        for attempt in range(REBALANCE_TRIES):
            c = amount_class(amount)
            scale = amount / CLASS_AMOUNTS_MSAT[c]
            tree = w.peer_trees[w.peer_node[src]][c]
            cost, fee, prob = tree.reach(w.peer_node[dst])
            last = ch_dst.peer_policy
            if cost == UNREACHABLE or last is None or last.disabled or amount > last.htlc_max_msat:
                break
            if w.peer_node[src] == w.peer_node[dst]:
                break
            total_fee = int(fee * scale) + last.fee_msat(amount)
            if total_fee * 1_000_000 > order.max_fee_ppm * amount:
                break  # no route within the budget: nothing is paid
            if led.local[src] < amount + total_fee or led.remote[dst] < amount:
                amount //= 2
                continue
            if _unit(self.seed, 7, hour, src, dst, attempt) >= prob:
                amount //= 2
                continue
            led.local[src] -= amount + total_fee
            led.remote[src] += amount + total_fee
            led.local[dst] += amount
            led.remote[dst] -= amount
            led.rebalance_cost_msat += total_fee
            led.counters[C_REFILL][dst] += total_fee
            led.rebalances += 1
            return

    # -- one payment --

    def _route(self, payment: Payment) -> None:
        settled, attempts, rest = first_tries(self.w, self.seed, payment)
        if not settled:
            self._route_through_us(payment, attempts, rest)

    def _out_routes(
        self, target: int, amount: int, c: int
    ) -> list[tuple[float, float, float, int]]:
        """The cheapest ways on from us to the target, one per usable channel of ours."""
        led = self.led
        out = []
        fees = self.fee_at_class[c]
        for j, (cost, fee, prob, hop) in enumerate(self.w.onward[c]):
            rest = cost[target]
            if rest == UNREACHABLE or hop == UNREACHABLE:
                continue
            pol = led.policy[j]
            if pol.disabled or amount > pol.htlc_max_msat or amount < pol.htlc_min_msat:
                continue
            out.append((rest + fees[j] + hop, fee[target] + fees[j], prob[target], j))
        return heapq.nsmallest(ROUTES_PER_SIDE * 2, out)

    def _route_through_us(self, payment: Payment, attempts: int, around: list[Around]) -> None:
        """The sender's remaining attempts, cheapest first: routes through us (its 4
        cheapest ways to a peer of ours, our 8 cheapest ways on) and the routes around us
        it has not tried yet."""
        _second, k, target, amount, c, index, _u0 = payment
        w, led = self.w, self.led
        scale = amount / CLASS_AMOUNTS_MSAT[c]
        limit = fee_limit_msat(amount)
        ins = w.in_routes[k][c][:ROUTES_PER_SIDE]
        outs = self._out_routes(target, amount, c)
        shared = shared_hop(w, k, c, target)
        # (cost, fee, probability, in channel or -1 around us, out channel or rank around us)
        heap = [
            (r.cost + cost, r.fee + fee, prob, r.channel, j)
            for r in ins
            for cost, fee, prob, j in outs
            if w.peer_node[r.channel] != w.peer_node[j]
        ]
        heap += [(cost, fee, prob, -1, rank) for cost, fee, prob, rank in around]
        heapq.heapify(heap)
        failed_in: set[int] = set()
        failed_out: set[int] = set()
        fallback = attempts > 0
        while heap and attempts < MAX_ATTEMPTS:
            _cost, fee, prob, i, j = heapq.heappop(heap)
            if fee * scale > limit:
                continue
            if i < 0:  # around us
                attempts += 1
                if around_unit(self.seed, payment, j) < _rest(prob, shared):
                    return
                fallback = True
                continue
            if i in failed_in or j in failed_out:
                continue
            attempts += 1
            route_in = next(r for r in ins if r.channel == i)
            if _unit(self.seed, index, 1, i) >= route_in.prob:
                failed_in.add(i)
                continue
            our_fee = led.policy[j].fee_msat(amount)
            if led.remote[i] < amount + our_fee:
                failed_in.add(i)  # the peer cannot push it to us: never reaches us
                continue
            led.offered += 1
            if led.local[j] < amount:
                led.counters[C_FAILED][j] += 1
                failed_out.add(j)
                continue
            if _unit(self.seed, index, 2, j) >= _rest(prob, shared):
                failed_out.add(j)  # failed further on: the HTLC comes back through us
                continue
            self._settle(i, j, amount, our_fee)
            if fallback:
                led.fallback += 1
            return

    def _settle(self, i: int, j: int, amount: int, fee: int) -> None:
        led = self.led
        led.remote[i] -= amount + fee
        led.local[i] += amount + fee
        led.local[j] -= amount
        led.remote[j] += amount
        cnt = led.counters
        cnt[C_FWD_OUT][j] += 1
        cnt[C_FWD_IN][i] += 1
        cnt[C_VOL_OUT][j] += amount
        cnt[C_VOL_IN][i] += amount + fee
        cnt[C_FEES][j] += fee
        cnt[C_ASSISTED][i] += fee
        led.forwarded += 1
        led.fees_msat += fee
        led.volume_msat += amount


# -- running policies ------------------------------------------------------------------------


@dataclass(slots=True)
class PolicyResult:
    key: str
    name: str
    totals: dict[str, int]
    daily: list[dict[str, int]]
    channels: list[dict[str, object]]

    @property
    def net_profit_msat(self) -> int:
        return self.totals["fees_msat"] - self.totals["rebalance_cost_msat"]

    def to_dict(self) -> dict[str, object]:
        t = self.totals
        return {
            "key": self.key,
            "name": self.name,
            "fees_msat": t["fees_msat"],
            "rebalance_cost_msat": t["rebalance_cost_msat"],
            "net_profit_msat": self.net_profit_msat,
            "fees_sat": t["fees_msat"] // 1000,
            "rebalance_cost_sat": t["rebalance_cost_msat"] // 1000,
            "net_profit_sat": self.net_profit_msat // 1000,
            "volume_sat": t["volume_msat"] // 1000,
            "forwards": t["forwarded"],
            "fallback_forwards": t["fallback"],
            "offered": t["offered"],
            "success_rate": round(t["forwarded"] / t["offered"], 4) if t["offered"] else None,
            "policy_updates": t["policy_updates"],
            "rebalances": t["rebalances"],
            "daily": self.daily,
            "channels": self.channels,
        }


def run_policy(
    world: World, key: str, factory: PolicyFactory, progress: Progress = _quiet
) -> PolicyResult:
    """Replay the horizon after the warm-up for one policy; totals count the horizon only."""
    if world.start is None:
        raise SimulationError("prepare() the world first")
    ledger = copy.deepcopy(world.start)
    baseline = ledger.totals()
    ledger.daily = []
    policy = factory()
    s = world.scenario
    end = (s.warmup_days + s.days) * DAY
    Replay(world, ledger, policy).run(world.warmup_payments, len(world.payments), end, progress)
    totals = {k: v - baseline[k] for k, v in ledger.totals().items()}
    daily = _daily_deltas(ledger.daily, baseline, s.warmup_days)
    channels = [
        {
            "channel_id": ch.channel_id,
            "peer_alias": ch.peer_alias or ch.peer_id[:12],
            "capacity_sat": ch.capacity_sat,
            "fee_ppm": ledger.policy[i].fee_rate_ppm,
            "local_ratio": round(ledger.local[i] / (ch.capacity_sat * 1000), 3),
            "local_msat": ledger.local[i],
            "fees_sat": (ledger.counters[C_FEES][i] - world.start.counters[C_FEES][i]) // 1000,
            "forwards_out": ledger.counters[C_FWD_OUT][i] - world.start.counters[C_FWD_OUT][i],
            "failed_out": ledger.counters[C_FAILED][i] - world.start.counters[C_FAILED][i],
        }
        for i, ch in enumerate(world.channels)
    ]
    return PolicyResult(key, getattr(policy, "name", key), totals, daily, channels)


def _daily_deltas(
    daily: list[dict[str, int]], baseline: dict[str, int], warmup_days: int
) -> list[dict[str, int]]:
    out, previous = [], baseline
    for entry in daily:
        day = entry["day"] - warmup_days
        if day <= 0:
            continue
        row = {k: entry[k] - previous[k] for k in baseline}
        row["day"] = day
        row["local_msat"] = entry["local_msat"]
        out.append(row)
        previous = entry
    return out
