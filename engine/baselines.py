"""The established fee tools as simulated policies: what Daznode is compared against.

Each class follows its tool's own source (read, not copied) with the tool's defaults; the
class docstrings name the upstream file of every default and each place the simulator
lacks an input (and what stands in for it). Sources, as stored at the time of writing:

- charge-lnd: github.com/accumulator/charge-lnd @ 17039cd (2026-02), `charge_lnd/strategy.py`,
  `charge_lnd/charge_lnd.py`, `examples/all-channels-proportional.config`, `INSTALL.md`.
- LNDg: github.com/cryptosharks131/lndg @ bd75f83 (2025-06), `af.py`, `jobs.py`.
- CLBOSS: github.com/ZmnSCPxj/clboss @ 90eaf44 (2025-10), `Boss/Mod/ChannelFeeManager.cpp`,
  `PeerCompetitorFeeMonitor/`, `FeeModderByBalance.cpp`, `FeeModderBySize.cpp`,
  `FeeModderByPriceTheory.cpp`, `EarningsRebalancer.cpp`, `EarningsTracker.cpp`.

The simulator's clock moves by the hour, so no policy is called more often than hourly.
Randomness (CLBOSS's bins, card shuffles and rebalancing dice) comes from a seeded
`random.Random` on the instance: a run is reproducible and every run sees the same draws.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from .metrics import ChannelMetrics, NetworkContext, PeerInfo
from .sim_policy import FeeSetting, FlowLookup, PolicyActions, PolicyFactory, RebalanceOrder

HOUR = 3600
DAY = 86400


def _round_half_up(x: float) -> int:
    """C's round() for the non-negative values CLBOSS rounds (halves go up)."""
    return math.floor(x + 0.5)


def _by_peer(channels: Iterable[ChannelMetrics]) -> dict[str, list[ChannelMetrics]]:
    """Channels grouped by peer, peers and channels in the order given."""
    groups: dict[str, list[ChannelMetrics]] = {}
    for ch in channels:
        groups.setdefault(ch.peer_id, []).append(ch)
    return groups


# -- static -----------------------------------------------------------------------------------


class StaticMedianFees:
    """Every channel at the network median fee rate, set once and never changed.

    The first call sets `net.median_fee_ppm` where a channel's rate differs (base fee left
    as it is); later calls do nothing. No rebalancing.
    """

    name = "Static (network median)"
    interval_seconds = HOUR  # only the first call acts: hourly makes it the run's first hour

    def __init__(self) -> None:
        self._done = False

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions:
        actions = PolicyActions()
        if self._done:
            return actions
        self._done = True
        for ch in channels:
            if ch.fee_ppm != net.median_fee_ppm:
                actions.fees[ch.channel_id] = FeeSetting(net.median_fee_ppm)
        return actions


# -- charge-lnd -------------------------------------------------------------------------------


class ChargeLndProportional:
    """charge-lnd's `proportional` strategy applied to every channel ([default] policy).

    ppm = int(min + (1 - local / (local + remote)) x (max - min)), at least 0: truncated,
    as `strategy_proportional` does (`charge_lnd/strategy.py`).

    Defaults and their sources:
    - min_fee_ppm 100, max_fee_ppm 300, base_fee_msat 1000: the strategy has no defaults
      for these (it raises without min/max, and leaves the base fee alone when unset); these
      are the values of charge-lnd's own example for it,
      `examples/all-channels-proportional.config`.
    - min_fee_ppm_delta 10: the strategy's own default when unset (`strategy.py`), also in
      the example. A new rate is skipped when |new - current| < delta (`charge_lnd.py`).
    - The update carries the computed rate whenever something else in it changes: when the
      base fee differs from `base_fee_msat` the new rate goes along even under the delta, as
      `charge_lnd.py` sends `chp.fee_ppm` with any policy update.
    - Cadence: charge-lnd runs once and exits; its INSTALL.md sets up cron "once per hour"
      and advises against running more often, so hourly.

    Approximations: charge-lnd's balances include pending HTLCs and the commitment fee of
    the opener (`lnd.py`); the simulator has neither, so local_msat / (local + remote) is
    used. A channel with no balance at all is skipped (charge-lnd's ratio fails there and the
    strategy falls back to `ignore`). Inbound fees (inbound_level_ppm) are not simulated.
    """

    name = "charge-lnd (proportional)"
    interval_seconds = HOUR

    def __init__(
        self,
        min_fee_ppm: int = 100,
        max_fee_ppm: int = 300,
        base_fee_msat: int | None = 1000,
        min_fee_ppm_delta: int = 10,
    ) -> None:
        self.min_fee_ppm = min_fee_ppm
        self.max_fee_ppm = max_fee_ppm
        self.base_fee_msat = base_fee_msat
        self.min_fee_ppm_delta = min_fee_ppm_delta

    def target_ppm(self, local_msat: int, remote_msat: int) -> int:
        ratio = local_msat / (local_msat + remote_msat)
        spread = self.max_fee_ppm - self.min_fee_ppm
        return max(0, int(self.min_fee_ppm + (1.0 - ratio) * spread))

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions:
        actions = PolicyActions()
        for ch in channels:
            if ch.local_msat + ch.remote_msat <= 0:
                continue
            ppm = self.target_ppm(ch.local_msat, ch.remote_msat)
            pol = ch.local_policy
            if pol is None:  # nothing to compare with: apply
                actions.fees[ch.channel_id] = FeeSetting(ppm, self.base_fee_msat)
                continue
            rate_changed = (
                ppm != pol.fee_rate_ppm and abs(ppm - pol.fee_rate_ppm) >= self.min_fee_ppm_delta
            )
            base_changed = (
                self.base_fee_msat is not None and self.base_fee_msat != pol.base_fee_msat
            )
            if rate_changed or base_changed:
                actions.fees[ch.channel_id] = FeeSetting(ppm, self.base_fee_msat)
        return actions


# -- LNDg -------------------------------------------------------------------------------------


class LndgAutoFees:
    """LNDg's AutoFees (outbound rates), as `af.py` computes them and `jobs.py` applies them.

    Per peer (all its active channels summed, whole sats per channel): outbound share =
    local / capacity x 100, net flow = (sat out - sat in over 7 days) / capacity. The
    peer's adjustment, m = multiplier:
    - share <= low-liquidity limit: +5m if more than `failed_htlcs` forwards failed for lack
      of balance over the last `update_hours` AND nothing came in over 1 day, else 0;
    - share < excess limit: -3m if nothing flowed either way in 7 days; else +2m(1 + net) if
      net > 1; else 0;
    - share >= excess limit: -5m if nothing flowed in 7 days; else -5m if net < 0 and the
      fees its inbound forwards earned elsewhere ("assisted") exceed 10x its own; else 0.
    Each channel's new rate = round((rate + adjustment) / increment) x increment (pandas'
    round: halves to even), clipped to [min_rate, max_rate]. A channel is updated when the
    new rate differs from its rate, which also snaps an off-grid rate to the increment with
    a zero adjustment, and only when its last update is more than `update_hours` ago.

    Defaults, all from `af.py` (written to LNDg's settings on first run): AF-Increment 5,
    AF-Multiplier 5, AF-FailedHTLCs 25, AF-UpdateHours 24, AF-LowLiqLimit 15 (`af.py` saves
    15 but uses 5 on the very first run; every later run reads 15), AF-ExcessLimit 95,
    AF-MaxRate 2500, AF-MinRate 0. The base fee is kept (`jobs.py` resends it unchanged).
    AutoFees is off by default (AF-Enabled 0); here it is on for every channel.

    Cadence: `jobs.py` runs the data job, AutoFees included, in a loop with 20 s sleeps; the
    simulator's clock steps by the hour, so hourly (a change is at most an hour late; the
    24 h cooldown dominates anyway).

    Approximations: LNDg ignores forwards under 1,000 sat (`amt_out_msat >= 1000000`) and
    counts the inbound volume at the amount forwarded out; the windows hold every forward
    and the inbound volume as received, so those are used. Failed HTLCs: LNDg counts
    failures for lack of balance over the last `update_hours`; the 1-day window's
    `failed_out` is used (the same span at the default 24 h). A channel's cooldown starts at
    the policy's own updates: LNDg also restarts it on an external fee change and at channel
    creation, but in the simulator only the policy changes fees, and channels are taken as
    long known (eligible at the first call). Inbound fees (AF-InboundFees, off by default)
    are not simulated. Fees only: LNDg's rebalancer is a separate module, not compared here.
    """

    name = "LNDg AutoFees"
    interval_seconds = HOUR

    def __init__(
        self,
        increment: int = 5,
        multiplier: int = 5,
        failed_htlcs: int = 25,
        update_hours: int = 24,
        low_liq_limit: int = 15,
        excess_limit: int = 95,
        max_rate: int = 2500,
        min_rate: int = 0,
    ) -> None:
        if low_liq_limit >= excess_limit:  # af.py falls back to its defaults here
            low_liq_limit, excess_limit = 5, 95
        self.increment = increment
        self.multiplier = multiplier
        self.failed_htlcs = failed_htlcs
        self.update_hours = update_hours
        self.low_liq_limit = low_liq_limit
        self.excess_limit = excess_limit
        self.max_rate = max_rate
        self.min_rate = min_rate
        self.fees_updated: dict[str, int] = {}  # channel -> time of our last change

    def peer_adjustment(self, group: list[ChannelMetrics]) -> float:
        """The adjustment in ppm for all channels with one peer (`af.py`'s outbound rule)."""
        m = self.multiplier
        capacity_sat = sum(c.capacity_sat for c in group)
        if capacity_sat <= 0:
            return 0
        out_percent = sum(c.local_msat for c in group) / (capacity_sat * 1000) * 100
        failed_1d = sum(c.window(1).failed_out for c in group)
        # LNDg sums whole sats per channel
        in_1d = sum(c.window(1).volume_in_msat // 1000 for c in group)
        in_7d = sum(c.window(7).volume_in_msat // 1000 for c in group)
        out_7d = sum(c.window(7).volume_out_msat // 1000 for c in group)
        revenue_7d = sum(c.window(7).fees_msat for c in group)
        assisted_7d = sum(c.window(7).assisted_fees_msat for c in group)
        net_flow = (out_7d - in_7d) / capacity_sat
        no_flow = in_7d + out_7d == 0
        if out_percent <= self.low_liq_limit:
            drained = failed_1d > self.failed_htlcs and in_1d == 0
            return 5 * m if drained else 0
        if out_percent < self.excess_limit:
            if no_flow:
                return -3 * m
            return 2 * m * (1 + net_flow) if net_flow > 1 else 0
        if no_flow or (net_flow < 0 and assisted_7d > revenue_7d * 10):
            return -5 * m
        return 0

    def new_rate(self, rate: int, adjustment: float) -> int:
        stepped = round((rate + adjustment) / self.increment) * self.increment
        return min(self.max_rate, max(self.min_rate, stepped))

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions:
        actions = PolicyActions()
        usable = [c for c in channels if c.active and c.local_policy is not None]
        cooldown = self.update_hours * HOUR
        for group in _by_peer(usable).values():
            adjustment = self.peer_adjustment(group)
            for ch in group:
                last = self.fees_updated.get(ch.channel_id)
                if last is not None and now - last <= cooldown:
                    continue
                rate = ch.fee_ppm or 0
                new = self.new_rate(rate, adjustment)
                if new != rate:
                    actions.fees[ch.channel_id] = FeeSetting(new)
                    self.fees_updated[ch.channel_id] = now
        return actions


# -- CLBOSS -----------------------------------------------------------------------------------

# FeeModderByBalance.cpp
BIN_SIZE_MSAT = 200_000_000  # 0.002 BTC per bin
MIN_BINS, MAX_BINS = 4, 50
# FeeModderByPriceTheory.cpp
CARD_LIFETIME_TICKS = 288  # 10-minute events a card stays in play: 48 h
TICK_SECONDS = 600
MAX_PRICE_STEP = 2  # cards: centre, centre +-1, centre +-2
# EarningsRebalancer.cpp
MAX_SPENDABLE_PERCENT = 25.0  # below: a destination
SOURCE_GAP_PERCENT = 2.5  # sources keep at least 25 + 2.5 %
DESTINATION_TARGET_PERCENT = 75.0
MAX_REBALANCE_FEE_PPM = 1000  # clboss-max-rebalance-fee-ppm default
TOP_REBALANCING_PERCENTILE = 20.0
EARNINGS_DAYS = 30  # the longest window the simulator keeps (CLBOSS: all time)


def balance_ratio(our_share: float) -> float:
    """FeeModderByBalance's multiplier: exp(ln 50 x (0.5 - share)), 7.07 empty .. 0.14 full."""
    return math.exp(math.log(50.0) * (0.5 - our_share))


def num_balance_bins(capacity_msat: int) -> int:
    return min(MAX_BINS, max(MIN_BINS, _round_half_up(capacity_msat / BIN_SIZE_MSAT)))


def bin_ratio(bin_index: int, num_bins: int) -> float:
    """The multiplier at the centre of a bin."""
    return balance_ratio((1 + 2 * bin_index) / (2 * num_bins))


def size_multiplier(worse: int, better: int, total: int) -> float:
    """FeeModderBySize: 0.5..1 when most competitors are bigger than us, 1..max(2, 16 - ln
    total) when most are smaller (`calculate_multiplier`)."""
    if total == 0 or worse + better == 0:
        return 1.0
    pos = worse / (worse + better)
    if worse < better:
        pos *= 2
        x = math.sqrt(0.5) * (1 - pos) + pos
    else:
        limit = max(2.0, 16.0 + math.log(1.0 / total))
        pos = pos * 2 - 1
        x = (1 - pos) + pos * math.sqrt(limit)
    return x * x


def price_multiplier(price: int) -> float:
    return 0.8 ** (-price) if price < 0 else 1.2**price


@dataclass
class BalanceBin:
    """FeeModderByBalance's memory of one peer: the bin its fee is in."""

    bin: int
    num_bins: int
    to_us_msat: int
    total_msat: int


@dataclass
class Card:
    price: int
    lifetime: int = CARD_LIFETIME_TICKS
    earnings_msat: int = 0
    started: int = 0


@dataclass
class PriceGame:
    """FeeModderByPriceTheory's cards for one peer."""

    centre: int = 0
    deck: list[int] = field(default_factory=list)  # drawn from the end
    in_play: Card | None = None
    discarded: list[Card] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Spend:
    """A rebalance fee budget, counted as spent (see ClbossStyle)."""

    at: int
    source_peer: str
    target_peer: str
    fee_msat: int


class ClbossStyle:
    """CLBOSS's fee setting and its earnings-based rebalancer.

    Fees, per peer and hourly (`PeerCompetitorFeeMonitor` runs on TimerRandomHourly and
    `ChannelFeeManager` sets the fee each time): ppm = round(median x BySize x ByBalance x
    ByPriceTheory), 0 raised to 1; the base fee = round(median base x the same product)
    (`clboss-zerobasefee` default "allow": 0 is kept). Every channel with the peer gets it.
    - Median: the capacity-weighted median fee others charge into the peer
      (`PeerInfo.competitor_fee_ppm`, our channels excluded as CLBOSS's survey does). With no
      competitor CLBOSS sets no fee for the peer at all; here the network median stands in.
    - ByBalance (`FeeModderByBalance.cpp`): bins of 0.002 BTC (4 to 50 per channel); the
      multiplier is exp(ln 50 x (0.5 - share)) at the bin's centre. A new balance moves the
      bin only when it falls in another bin, and then randomly: moving down it lands in its
      bin with probability 1 - (fraction into the bin), else one bin higher; moving up with
      probability (fraction into the bin), else one bin lower. The peer's first channel is
      read, as CLBOSS reads its first CHANNELD_NORMAL one.
    - BySize (`FeeModderBySize.cpp`): with `worse`/`better` the competitors smaller/bigger
      than us, pos = worse / (worse + better); below 0.5 the multiplier goes 0.5 -> 1, above
      it 1 -> max(2, 16 - ln N) (N competitors), both along squares of linear maps.
    - ByPriceTheory (`FeeModderByPriceTheory.cpp`): a shuffled deck of cards centre - 2 ..
      centre + 2; the card in play sets 1.2^p (p > 0) or 0.8^-p (p < 0) for 288 ten-minute
      events while the peer is connected (48 h), collecting the fees earned on forwards out
      to the peer. When the deck is empty the best earner of the discarded cards becomes the
      new centre (unchanged when the best earned nothing; ties, which CLBOSS leaves to
      SQLite's sort: the first played) and a new deck is shuffled. Every peer starts at 0.

    Rebalancing (`EarningsRebalancer.cpp`), on each hourly timer with probability 1/2: peers
    under 25 % spendable are destinations, from 27.5 % sources. The top 20 % (at least one)
    of min(#destinations, #sources) pairs are formed, destinations ranked by net earnings
    out (fees earned out minus rebalance fees spent to fill them), sources by net earnings
    in (fees their inbound forwards earned minus rebalance fees spent draining them); the
    i-th source feeds the i-th destination. A destination that has not earned (net <= 0)
    stops the loop. Amount: up to 75 % of the destination, at most what keeps the source at
    27.5 %; fee budget = amount x 1000 ppm (`clboss-max-rebalance-fee-ppm`), and when that
    exceeds the destination's net earnings the budget is cut to them and the amount to
    budget / 1000 ppm. The order goes from the source peer's channel with the most local
    balance to the destination peer's channel with the least.

    Approximations:
    - BySize compares node capacities (ours with each of the peer's other peers'). PeerInfo
      has no per-competitor sizes: the competitors' average channel into the peer, (peer
      capacity - ours to it) / (peer channels - ours to it), is compared with our capacity
      to the peer, taking the competitors' sizes as exponentially spread around that average
      (the least-assuming spread knowing only a mean), so the share smaller than us is
      1 - exp(-ours / average); worse = that share of the N competitors, rounded. Channels
      stand in for distinct peers of the peer.
    - The median base fee is not in PeerInfo: the channel's base fee when the policy first
      saw it stands in for it (CLN's 1000 msat when unknown).
    - Card earnings are the peer's outbound fees between the card's draw and its discard,
      from the simulator's flow lookup (`attach_flows`); without one, the 1-day window's
      fees prorated over each interval.
    - CLBOSS's earnings and expenditures are all-time; the 30-day window is the longest the
      simulator keeps, and the policy does not learn what its rebalances actually cost, so
      each order counts its whole fee budget as spent (for 30 days): an upper bound, which
      keeps CLBOSS's promise of never spending more on a peer than it earned.
    - Rebalances are orders the simulator pays or fails; CLBOSS's FundsMover splits failed
      attempts by the golden ratio, the simulator retries at half the amount. CLBOSS's other
      rebalancers (JitRebalancer during forwards, InitialRebalancer for new channels) and its
      channel opening and closing are not simulated.
    """

    name = "CLBOSS-style"
    interval_seconds = HOUR

    def __init__(
        self,
        seed: int = 0,
        rng: random.Random | None = None,
        max_rebalance_fee_ppm: int = MAX_REBALANCE_FEE_PPM,
    ) -> None:
        self.rng = rng or random.Random(seed)
        self.max_rebalance_fee_ppm = max_rebalance_fee_ppm
        self.bins: dict[str, BalanceBin] = {}
        self.games: dict[str, PriceGame] = {}
        self.base_reference: dict[str, int] = {}  # channel -> stand-in median base fee
        self.spends: list[Spend] = []
        self.flows: FlowLookup | None = None
        self.last_call: int | None = None

    def attach_flows(self, lookup: FlowLookup) -> None:
        self.flows = lookup

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions:
        last = now if self.last_call is None else self.last_call
        elapsed, ticks = now - last, now // TICK_SECONDS - last // TICK_SECONDS
        self.last_call = now
        actions = PolicyActions()
        for peer_id, group in _by_peer(channels).items():
            self._play(peer_id, group, now, elapsed, ticks)
            peer = net.peer(peer_id)
            mult = (
                self.size_multiplier(group, peer)
                * self.balance_multiplier(peer_id, group[0])
                * price_multiplier(self._card(peer_id, now).price)
            )
            median = peer.competitor_fee_ppm if peer else None
            ppm = _round_half_up((net.median_fee_ppm if median is None else median) * mult)
            ppm = max(1, ppm)  # ChannelFeeManager: a 0 rate becomes 1
            for ch in group:
                pol = ch.local_policy
                base_ref = self.base_reference.setdefault(
                    ch.channel_id, pol.base_fee_msat if pol else 1000
                )
                base = _round_half_up(base_ref * mult)
                if pol is None or (pol.fee_rate_ppm, pol.base_fee_msat) != (ppm, base):
                    actions.fees[ch.channel_id] = FeeSetting(ppm, base)
        if self.rng.random() < 0.5:  # EarningsRebalancer's dice: 1 of {1, 2}
            actions.rebalances = self.rebalance(channels, now)
        return actions

    # -- BySize --

    def size_multiplier(self, group: list[ChannelMetrics], peer: PeerInfo | None) -> float:
        if peer is None:
            return 1.0
        ours_sat = sum(c.capacity_sat for c in group)
        competitors = peer.channels - len(group)
        their_capacity_sat = peer.capacity_sat - ours_sat
        if competitors <= 0 or their_capacity_sat <= 0 or ours_sat <= 0:
            return 1.0
        average_sat = their_capacity_sat / competitors
        smaller_share = 1.0 - math.exp(-ours_sat / average_sat)
        worse = _round_half_up(competitors * smaller_share)
        return size_multiplier(worse, competitors - worse, competitors)

    # -- ByBalance --

    def balance_multiplier(self, peer_id: str, channel: ChannelMetrics) -> float:
        """The multiplier of the peer's bin, moved (or not) by the channel's balance."""
        to_us, total = channel.local_msat, channel.capacity_msat
        info = self.bins.get(peer_id)
        if total <= 0:
            return 1.0
        if info is None or info.total_msat != total:
            num_bins = num_balance_bins(total)
            start = min(num_bins - 1, math.floor(to_us / total * num_bins))
            info = self.bins[peer_id] = BalanceBin(start, num_bins, to_us, total)
            return bin_ratio(info.bin, info.num_bins)
        if to_us == info.to_us_msat:
            return bin_ratio(info.bin, info.num_bins)
        actual = to_us / total * info.num_bins
        target = math.floor(actual)
        if target == info.bin:
            return bin_ratio(info.bin, info.num_bins)
        info.to_us_msat = to_us
        fraction = actual - target
        if target < info.bin:
            info.bin = target if self.rng.random() < 1.0 - fraction else target + 1
        else:
            info.bin = target if self.rng.random() < fraction else target - 1
            info.bin = min(info.bin, info.num_bins - 1)
        return bin_ratio(info.bin, info.num_bins)

    # -- ByPriceTheory --

    def _play(
        self, peer_id: str, group: list[ChannelMetrics], now: int, elapsed: int, ticks: int
    ) -> None:
        """Credit the card in play with the fees since the last call; age it while the peer
        is connected and discard it once its lifetime is over."""
        game = self.games.get(peer_id)
        if game is None or game.in_play is None:
            return
        card = game.in_play
        if self.flows is not None:
            card.earnings_msat = sum(
                self.flows(c.channel_id, card.started, now).fees_msat for c in group
            )
        elif elapsed > 0:
            day_fees = sum(c.window(1).fees_msat for c in group)
            card.earnings_msat += day_fees * min(elapsed, DAY) // DAY
        if any(c.active for c in group):
            card.lifetime -= ticks
        if card.lifetime <= 0:
            game.discarded.append(card)
            game.in_play = None

    def _card(self, peer_id: str, now: int) -> Card:
        """The card in play for the peer, drawing one (and starting a new round) if needed."""
        game = self.games.setdefault(peer_id, PriceGame())
        if game.in_play is None:
            if not game.deck:
                self._new_round(game)
            game.in_play = Card(game.deck.pop(), started=now)
        return game.in_play

    def _new_round(self, game: PriceGame) -> None:
        if game.discarded:
            best = max(game.discarded, key=lambda c: c.earnings_msat)  # first of ties
            if best.earnings_msat > 0:
                game.centre = best.price
        game.discarded = []
        steps = range(1, MAX_PRICE_STEP + 1)
        game.deck = [game.centre, *(game.centre + s * d for s in steps for d in (1, -1))]
        self.rng.shuffle(game.deck)

    # -- EarningsRebalancer --

    def rebalance(self, channels: list[ChannelMetrics], now: int) -> list[RebalanceOrder]:
        self.spends = [s for s in self.spends if now - s.at < EARNINGS_DAYS * DAY]
        normal = _by_peer(channels)  # CHANNELD_NORMAL: every open channel, connected or not
        spendable = {p: sum(c.local_msat for c in g) for p, g in normal.items()}
        total = {p: sum(c.capacity_msat for c in g) for p, g in normal.items()}
        window = EARNINGS_DAYS
        net_in = {p: sum(c.window(window).assisted_fees_msat for c in g) for p, g in normal.items()}
        net_out = {p: sum(c.window(window).fees_msat for c in g) for p, g in normal.items()}
        for s in self.spends:
            if s.source_peer in net_in:
                net_in[s.source_peer] -= s.fee_msat
            if s.target_peer in net_out:
                net_out[s.target_peer] -= s.fee_msat
        destinations, sources = [], []
        for p in normal:
            if total[p] <= 0:
                continue
            percent = spendable[p] / total[p] * 100.0
            if percent < MAX_SPENDABLE_PERCENT:
                destinations.append(p)
            elif percent >= MAX_SPENDABLE_PERCENT + SOURCE_GAP_PERCENT:
                sources.append(p)
        if not destinations or not sources:
            return []
        pairs = min(len(destinations), len(sources))
        count = max(1, int(pairs * TOP_REBALANCING_PERCENTILE / 100.0))
        destinations.sort(key=lambda p: net_out[p], reverse=True)
        sources.sort(key=lambda p: net_in[p], reverse=True)
        orders = []
        for src, dst in zip(sources[:count], destinations[:count], strict=True):
            earned = net_out[dst]
            if earned <= 0:  # sorted: the rest earned no more
                break
            needed = int(total[dst] * DESTINATION_TARGET_PERCENT / 100.0) - spendable[dst]
            src_floor = int(total[src] * (MAX_SPENDABLE_PERCENT + SOURCE_GAP_PERCENT) / 100.0)
            amount = min(needed, spendable[src] - src_floor)
            budget = int(amount * self.max_rebalance_fee_ppm / 1_000_000)
            if budget > earned:
                budget = earned
                amount = int(budget * 1_000_000 / self.max_rebalance_fee_ppm)
            if amount <= 0:
                continue
            orders.append(
                RebalanceOrder(
                    target_channel_id=min(normal[dst], key=lambda c: c.local_msat).channel_id,
                    source_channel_id=max(normal[src], key=lambda c: c.local_msat).channel_id,
                    amount_msat=amount,
                    max_fee_ppm=self.max_rebalance_fee_ppm,
                )
            )
            self.spends.append(Spend(now, src, dst, budget))
        return orders


BASELINES: dict[str, PolicyFactory] = {
    "static": StaticMedianFees,
    "chargelnd": ChargeLndProportional,
    "lndg": LndgAutoFees,
    "clboss": ClbossStyle,
}
