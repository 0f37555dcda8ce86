"""Import a charge-lnd config file as Daznode rule documents (see engine/rules.py).

charge-lnd (github.com/accumulator/charge-lnd, 0.3.x) reads an INI file: each section is a
policy of criteria (`chan.*`, `node.*`, `onchain.*` keys) and properties; policies are tried
top to bottom and the first matching policy *with a strategy* wins. A matching policy
without a strategy is "non-final": its properties become defaults for the policies after
it and matching continues. `[default]` is tried last, and its criteria are ignored.

The import mirrors that: sections become rules whose priorities descend in file order, the
`[default]` section becomes the last rule (condition "always"), and the properties of
non-final sections are folded into the later rules, one variant per combination of
conditional non-final sections that matter (the most specific variant first). What rules
cannot express is listed in `unsupported` by section and key:

- an unsupported property (min_fee_ppm_delta, time_lock_delta, ...) is left out;
- an unsupported criterion would widen the match if left out, so the rule is imported
  *disabled* for the admin to review;
- an unsupported strategy (match_peer, onchain_fee, disable, use_config) or a section
  that cannot be applied (e.g. static without fee_ppm) is skipped.

Channel ages are blocks in charge-lnd and days here (144 blocks a day).
"""

from __future__ import annotations

import configparser
import itertools
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .metrics import WINDOWS
from .node_source import BLOCKS_PER_DAY, normalize_channel_id
from .rules import (
    BASE_FEE_MSAT_MAX,
    COST_FACTOR_MAX,
    FEE_PPM_MAX,
    MAX_HTLC_MSAT_MAX,
    NAME_MAX,
    RuleError,
    parse_rules,
)

MAX_CONDITIONAL_DEFAULTS = 4  # conditional non-final sections one rule may combine (2^n)
_NO_DEFAULT_SECTION = "\x00daznode: [DEFAULT] is handled by the importer"


@dataclass(frozen=True, slots=True)
class ChargeLndImport:
    rules: list[dict[str, Any]] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# criterion -> (metric, operator, value type); charge-lnd's bounds are inclusive
_RANGES: dict[str, tuple[str, str, type]] = {
    "chan.min_ratio": ("ratio", ">=", float),
    "chan.max_ratio": ("ratio", "<=", float),
    "chan.min_capacity": ("capacity", ">=", int),
    "chan.max_capacity": ("capacity", "<=", int),
    "chan.min_local_balance": ("local", ">=", int),
    "chan.max_local_balance": ("local", "<=", int),
    "chan.min_remote_balance": ("remote", ">=", int),
    "chan.max_remote_balance": ("remote", "<=", int),
    "chan.min_base_fee_msat": ("peer_base_fee_msat", ">=", int),  # the peer's policy
    "chan.max_base_fee_msat": ("peer_base_fee_msat", "<=", int),
    "chan.min_fee_ppm": ("peer_fee_ppm", ">=", int),
    "chan.max_fee_ppm": ("peer_fee_ppm", "<=", int),
    "node.min_channels": ("peer_channels", ">=", int),
    "node.max_channels": ("peer_channels", "<=", int),
    "node.min_capacity": ("peer_capacity", ">=", int),
    "node.max_capacity": ("peer_capacity", "<=", int),
    "onchain.min_fee_rate": ("onchain_feerate", ">=", float),
    "onchain.max_fee_rate": ("onchain_feerate", "<=", float),
}
# forward counts over chan.activity_period -> (metric prefix, operator)
_ACTIVITY: dict[str, tuple[str, str]] = {
    "chan.min_htlcs_in": ("forwards_in", ">="),
    "chan.max_htlcs_in": ("forwards_in", "<="),
    "chan.min_htlcs_out": ("forwards", ">="),
    "chan.max_htlcs_out": ("forwards", "<="),
    "chan.min_sats_in": ("sats_in", ">="),
    "chan.max_sats_in": ("sats_in", "<="),
    "chan.min_sats_out": ("sats_out", ">="),
    "chan.max_sats_out": ("sats_out", "<="),
}
_ACTIVITY_RATIOS = ("chan.min_htlcs_ratio", "chan.max_htlcs_ratio")
_ACTIVITY_RATIOS += ("chan.min_sats_ratio", "chan.max_sats_ratio")
_SHARED = "Daznode rules see one channel, not totals over all channels with the peer"
_UNSUPPORTED_CRITERIA: dict[str, str] = {
    "chan.initiator": "Daznode's metrics do not record who opened a channel",
    "chan.private": "Daznode's metrics do not record whether a channel is private",
    "chan.min_count_pending_htlcs": "pending HTLCs are not among the rule metrics",
    "chan.max_count_pending_htlcs": "pending HTLCs are not among the rule metrics",
    "chan.min_next_pending_htlc_expiry": "pending HTLCs are not among the rule metrics",
    "chan.max_next_pending_htlc_expiry": "pending HTLCs are not among the rule metrics",
    "onchain.synced_to_chain": "chain sync state is not among the rule metrics",
    **{
        f"node.{bound}_shared_{what}": _SHARED
        for bound in ("min", "max")
        for what in (
            "channels_active",
            "channels_inactive",
            "capacity_active",
            "capacity_inactive",
            "ratio",
            "ratio_active",
            "ratio_inactive",
        )
    },
    **{
        key: "in/out ratios over the activity period are not rule metrics"
        for key in _ACTIVITY_RATIOS
    },
}
_OTHER_CRITERIA = frozenset(
    {
        "chan.id",
        "node.id",
        "chan.min_age",
        "chan.max_age",
        "chan.disabled",
        "chan.activity_period",
        "chan.activity_period_ignore_channel_age",
        "onchain.conf_target",
    }
)
_KNOWN_CRITERIA = frozenset(_RANGES) | _ACTIVITY.keys() | _UNSUPPORTED_CRITERIA.keys()
_KNOWN_CRITERIA |= _OTHER_CRITERIA

_INT_PROPS: dict[str, tuple[int, int]] = {
    "base_fee_msat": (0, BASE_FEE_MSAT_MAX),
    "fee_ppm": (0, FEE_PPM_MAX),
    "min_fee_ppm": (0, FEE_PPM_MAX),
    "max_fee_ppm": (0, FEE_PPM_MAX),
    "inbound_fee_ppm": (-FEE_PPM_MAX, 0),
    "inbound_base_fee_msat": (-BASE_FEE_MSAT_MAX, 0),
    "max_htlc_msat": (1, MAX_HTLC_MSAT_MAX),
    "inbound_level_ppm": (-(10**9), 10**9),  # static: inbound = min(0, level - fee_ppm)
}
_STEP = "Daznode's validator applies its own minimum step and deadband"
_SCOPE = "rules set fee rates, base fees, inbound fees and max_htlc only"
_CB = "circuitbreaker limits are outside Daznode"
_DROPPED_PROPS: dict[str, str] = {
    "min_fee_ppm_delta": _STEP,
    "min_inbound_fee_ppm_delta": _STEP,
    "time_lock_delta": _SCOPE,
    "min_htlc_msat": _SCOPE,
    "max_htlc_msat_ratio": "rules take max_htlc_msat as a fixed amount",
    "cb_max_hourly_rate": _CB,
    "cb_max_pending": _CB,
    "cb_mode": _CB,
    "cb_clear_limit": _CB,
    "sum_peer_chans": "the proportional action uses this channel's own balance",
    "onchain_fee_btc": "it belongs to the onchain_fee strategy",
    "onchain_fee_numblocks": "it belongs to the onchain_fee strategy",
    "config_file": "it belongs to the use_config strategy",
}
_FEES = ("base_fee_msat", "inbound_fee_ppm", "inbound_base_fee_msat", "max_htlc_msat")
# strategy -> the properties it reads (what non-final sections can contribute)
_STRATEGY_KEYS: dict[str, frozenset[str]] = {
    "static": frozenset({"fee_ppm", "inbound_level_ppm", *_FEES}),
    "proportional": frozenset({"min_fee_ppm", "max_fee_ppm", "inbound_level_ppm", *_FEES}),
    "cost": frozenset({"cost_factor", "inbound_level_ppm", *_FEES}),
    "ignore": frozenset(),
    "ignore_fees": frozenset({"max_htlc_msat"}),
}
_UNSUPPORTED_STRATEGIES: dict[str, str] = {
    "match_peer": "copying the peer's fees is not a rule action",
    "onchain_fee": "fees from an on-chain payment equivalent are not a rule action",
    "disable": "Daznode does not disable channels",
    "use_config": "rules cannot include another charge-lnd file",
}


@dataclass
class _Section:
    name: str
    conds: list[str] = field(default_factory=list)
    props: dict[str, int | float] = field(default_factory=dict)
    strategy: str | None = None
    disabled: bool = False  # an unsupported criterion: imported, but disabled
    skip: bool = False


def _num(value: float) -> str:
    """A literal the rule parser reads back exactly (no exponent notation)."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def _read_ini(text: str) -> configparser.ConfigParser:
    # charge-lnd's parser settings, minus interpolation; [DEFAULT] handled by the importer
    parser = configparser.ConfigParser(interpolation=None, default_section=_NO_DEFAULT_SECTION)
    try:
        parser.read_string(text, source="charge-lnd config")
    except configparser.MissingSectionHeaderError as e:
        raise RuleError(
            f"charge-lnd config line {e.lineno}: {e.line.strip()!r} comes before any "
            "[section] header"
        ) from None
    except configparser.DuplicateSectionError as e:
        raise RuleError(
            f"charge-lnd config line {e.lineno}: section [{e.section}] appears twice"
        ) from None
    except configparser.DuplicateOptionError as e:
        raise RuleError(
            f"charge-lnd config line {e.lineno}: [{e.section}] sets {e.option!r} twice"
        ) from None
    except configparser.ParsingError as e:
        lineno, line = e.errors[0] if e.errors else (0, "")
        raise RuleError(
            f"charge-lnd config line {lineno}: cannot parse {line}; expected "
            "'key = value', a [section] header or a comment"
        ) from None
    except configparser.Error as e:
        raise RuleError(f"charge-lnd config: {e}") from None
    return parser


class _Importer:
    def __init__(self) -> None:
        self.unsupported: list[str] = []
        self.notes: list[str] = []

    def drop(self, message: str) -> None:
        if message not in self.unsupported:
            self.unsupported.append(message)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    # -- values -------------------------------------------------------------------------

    @staticmethod
    def _value(where: str, raw: str, kind: type) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            hint = " (charge-lnd allows no comment after a value)" if "#" in raw else ""
            raise RuleError(f"{where} = {raw!r}: expected {expected}{hint}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise RuleError(f"{where} = {raw!r}: expected a finite number")
        return value

    @staticmethod
    def _bool(where: str, raw: str) -> bool:
        states = configparser.ConfigParser.BOOLEAN_STATES
        if raw.strip().lower() not in states:
            raise RuleError(f"{where} = {raw!r}: expected true or false")
        return states[raw.strip().lower()]

    # -- one section --------------------------------------------------------------------

    def section(self, name: str, items: dict[str, tuple[str, str]]) -> _Section:
        """`items`: key -> (value, section the key was written in)."""
        sec = _Section(name)
        strategy = items.get("strategy", ("", ""))[0].strip()
        if strategy:
            if strategy in _UNSUPPORTED_STRATEGIES:
                reason = _UNSUPPORTED_STRATEGIES[strategy]
                self.drop(
                    f"[{name}] strategy = {strategy}: not supported ({reason}); section skipped"
                )
                sec.skip = True
                return sec
            if strategy not in _STRATEGY_KEYS:
                self.drop(
                    f"[{name}] strategy = {strategy}: unknown to charge-lnd (which leaves such "
                    "channels unchanged); section skipped"
                )
                sec.skip = True
                return sec
            sec.strategy = strategy
        for key, (raw, origin) in items.items():
            where = f"[{origin}] {key}"
            if key == "strategy":
                continue
            if "." in key and name == "default":
                self.drop(f"{where}: charge-lnd ignores criteria in [default]; not imported")
            elif "$" in raw:
                self._unsupported(sec, key, f"{where}: ${{...}} interpolation is not supported")
            elif "." not in key:
                self._property(sec, key, raw, where)
            else:
                self._criterion(sec, key, raw, where)
        if name != "default":
            self._activity(sec, items)
        return sec

    def _unsupported(self, sec: _Section, key: str, message: str) -> None:
        if "." in key:
            sec.disabled = True
            self.drop(f"{message}; rule imported disabled (it would match more channels)")
        else:
            self.drop(f"{message}; section imported without it")

    def _property(self, sec: _Section, key: str, raw: str, where: str) -> None:
        if key in _DROPPED_PROPS:
            self.drop(
                f"{where}: not supported ({_DROPPED_PROPS[key]}); section imported without it"
            )
        elif key == "cost_factor":
            value = self._value(where, raw, float)
            clamped = min(max(value, 1e-6), COST_FACTOR_MAX)
            if clamped != value:
                self.drop(
                    f"{where} = {raw.strip()}: outside Daznode's range; imported as {clamped}"
                )
            sec.props[key] = clamped
        elif key in _INT_PROPS:
            value = self._value(where, raw, int)
            lo, hi = _INT_PROPS[key]
            clamped = min(max(value, lo), hi)
            if clamped != value:
                self.drop(
                    f"{where} = {value}: outside Daznode's range {lo}..{hi}; imported as {clamped}"
                )
            sec.props[key] = clamped
        else:
            self.drop(f"{where}: unknown to charge-lnd, which ignores it; not imported")

    def _criterion(self, sec: _Section, key: str, raw: str, where: str) -> None:
        namespace = key.split(".", 1)[0]
        if namespace not in ("chan", "node", "onchain"):
            self.drop(
                f"{where}: unknown namespace '{namespace}' (charge-lnd never matches such a "
                "section); section skipped"
            )
            sec.skip = True
        elif key not in _KNOWN_CRITERIA:
            self.drop(
                f"{where}: unknown to charge-lnd (it gives up on channels reaching this "
                "section); section skipped"
            )
            sec.skip = True
        elif key in _RANGES:
            metric, op, kind = _RANGES[key]
            sec.conds.append(f"{metric} {op} {_num(self._value(where, raw, kind))}")
        elif key in ("chan.min_age", "chan.max_age"):
            blocks = self._value(where, raw, int)
            days = blocks / BLOCKS_PER_DAY
            sec.conds.append(f"age_days {'>=' if key == 'chan.min_age' else '<='} {_num(days)}")
            self.note(
                "charge-lnd counts channel age in blocks; converted to days at "
                f"{BLOCKS_PER_DAY} blocks a day (chan.min_age/max_age -> age_days)"
            )
        elif key == "chan.disabled":
            flag = "true" if self._bool(where, raw) else "false"
            sec.conds.append(f"peer_disabled == {flag}")
        elif key in ("node.id", "chan.id"):
            self._ids(sec, key, raw, where)
        elif key == "onchain.conf_target":
            self.drop(
                f"{where}: not supported (Daznode uses its own fee-rate estimate); "
                "section imported without it"
            )
        elif key in _UNSUPPORTED_CRITERIA and key not in _ACTIVITY_RATIOS:
            self._unsupported(sec, key, f"{where}: not supported ({_UNSUPPORTED_CRITERIA[key]})")
        # activity keys are read together in _activity

    def _ids(self, sec: _Section, key: str, raw: str, where: str) -> None:
        ids: list[str] = []
        for item in (i for i in re.split(r"[,\s]+", raw) if i):
            if item.startswith("file://"):
                self._unsupported(sec, key, f"{where}: file reference {item} is not supported")
                continue
            try:
                if key == "node.id":
                    if not re.fullmatch(r"[0-9a-fA-F]{66}", item):
                        raise ValueError(item)
                    ids.append(item.lower())
                else:
                    ids.append(normalize_channel_id(item.replace(":", "x")))
            except ValueError:
                what = "a node id (66 hex digits)" if key == "node.id" else "a channel id"
                self.drop(f"{where}: {item!r} is not {what}; left out (it can never match)")
        if ids:
            metric = "peer" if key == "node.id" else "channel"
            quoted = ", ".join('"' + i + '"' for i in ids)
            sec.conds.append(f"{metric} in [{quoted}]")
        elif not sec.disabled:
            self._unsupported(sec, key, f"{where}: no usable id")

    def _activity(self, sec: _Section, items: dict[str, tuple[str, str]]) -> None:
        counts = [
            k for k in items if (k in _ACTIVITY or k in _ACTIVITY_RATIOS) and "$" not in items[k][0]
        ]
        if "chan.activity_period" not in items or "$" in items["chan.activity_period"][0]:
            extra = [*counts, *(k for k in items if k == "chan.activity_period_ignore_channel_age")]
            if extra:
                self.note(
                    f"[{sec.name}] {', '.join(extra)}: charge-lnd ignores these without "
                    "chan.activity_period; not imported"
                )
            return
        raw, origin = items["chan.activity_period"]
        where = f"[{origin}] chan.activity_period"
        seconds = _period_seconds(where, raw)
        days = seconds / 86_400
        flag = items.get("chan.activity_period_ignore_channel_age")
        # charge-lnd skips channels younger than the period unless this key is present
        # and false (its code; the README describes the key the other way round)
        if flag is None or self._bool(
            f"[{flag[1]}] chan.activity_period_ignore_channel_age", flag[0]
        ):
            sec.conds.append(f"age_days >= {_num(days)}")
        for key in counts:
            kraw, korigin = items[key]
            kwhere = f"[{korigin}] {key}"
            if key in _ACTIVITY_RATIOS:
                self._unsupported(
                    sec, key, f"{kwhere}: not supported ({_UNSUPPORTED_CRITERIA[key]})"
                )
            elif days not in WINDOWS:
                self._unsupported(
                    sec,
                    key,
                    f"{kwhere}: not supported over chan.activity_period = {raw.strip()} "
                    "(Daznode counts forwards over 1, 7 or 30 days)",
                )
            else:
                prefix, op = _ACTIVITY[key]
                value = self._value(kwhere, kraw, int)
                sec.conds.append(f"{prefix}_{int(days)}d {op} {value}")

    # -- rules --------------------------------------------------------------------------

    def action(self, sec: _Section, props: dict[str, int | float]) -> dict[str, Any] | None:
        strategy = sec.strategy or "ignore"
        if strategy in ("ignore", "ignore_fees"):
            if strategy == "ignore_fees" and "max_htlc_msat" in props:
                self.drop(
                    f"[{sec.name}] max_htlc_msat: strategy ignore_fees is imported as "
                    "leave_alone, which sets nothing; not imported"
                )
            return {"type": "leave_alone"}
        action: dict[str, Any] = {"type": strategy}
        if strategy == "static":
            if "fee_ppm" not in props:
                self.drop(
                    f"[{sec.name}] strategy = static without fee_ppm (charge-lnd then keeps "
                    "the current rate): rules need a fee rate; section skipped"
                )
                return None
            action["fee_ppm"] = props["fee_ppm"]
        elif strategy == "proportional":
            missing = [k for k in ("min_fee_ppm", "max_fee_ppm") if k not in props]
            if missing:
                self.drop(
                    f"[{sec.name}] strategy = proportional without {' and '.join(missing)} "
                    "(charge-lnd skips such channels); section skipped"
                )
                return None
            if props["min_fee_ppm"] > props["max_fee_ppm"]:
                self.drop(
                    f"[{sec.name}] min_fee_ppm {props['min_fee_ppm']} > max_fee_ppm "
                    f"{props['max_fee_ppm']}: rules need min <= max; section skipped"
                )
                return None
            action["min_fee_ppm"] = props["min_fee_ppm"]
            action["max_fee_ppm"] = props["max_fee_ppm"]
        elif "cost_factor" in props:
            action["cost_factor"] = props["cost_factor"]
        for key in _FEES:
            if key in props:
                action[key] = props[key]
        if "inbound_level_ppm" in props:
            if strategy == "static":
                inbound = min(0, int(props["inbound_level_ppm"]) - action["fee_ppm"])
                action["inbound_fee_ppm"] = max(inbound, -FEE_PPM_MAX)
                self.note(
                    f"[{sec.name}] inbound_level_ppm: inbound_fee_ppm = min(0, level - fee_ppm) "
                    f"= {action['inbound_fee_ppm']}, computed at import"
                )
            else:
                self.drop(
                    f"[{sec.name}] inbound_level_ppm: not supported with strategy {strategy} "
                    "(the fee rate is only known per channel); section imported without it"
                )
        if strategy == "cost":
            self.note(
                "strategy cost: charge-lnd reads the funding transaction's fee; Daznode cannot "
                "see it and estimates it as the on-chain fee rate x 154 vB"
            )
        return action

    def rules_for(self, sec: _Section, defaults: list[_Section]) -> list[dict[str, Any]]:
        """One rule per combination of the conditional non-final sections before `sec`
        that set something its strategy reads, most specific first (superset before
        subset, so plain first-match picks the right one); redundant variants pruned."""
        wanted = _STRATEGY_KEYS[sec.strategy or "ignore"] - sec.props.keys()
        deps = [d for d in defaults if wanted & d.props.keys()]
        optional = [d for d in deps if d.conds]
        if len(optional) > MAX_CONDITIONAL_DEFAULTS:
            self.drop(
                f"[{sec.name}]: inherits from {len(optional)} conditional sections without "
                f"strategy (at most {MAX_CONDITIONAL_DEFAULTS} are combined); section skipped"
            )
            return []
        if deps:
            names = ", ".join(f"[{d.name}]" for d in deps)
            self.note(
                f"[{sec.name}] takes defaults from {names} (sections without strategy), as "
                "charge-lnd does"
            )
        variants: list[tuple[frozenset[str], list[_Section], dict[str, Any]]] = []
        for size in range(len(optional), -1, -1):
            for combo in itertools.combinations(optional, size):
                applied = [d for d in deps if not d.conds or d in combo]
                props: dict[str, int | float] = {}
                for d in applied:
                    props.update({k: v for k, v in d.props.items() if k in wanted})
                props.update(sec.props)
                action = self.action(sec, props)
                if action is not None:
                    variants.append((frozenset(d.name for d in combo), list(combo), action))
        if len(variants) != 2 ** len(optional):
            return []  # a variant cannot be applied; the reason is in `unsupported`
        keep = [True] * len(variants)
        for i in range(len(variants) - 1, -1, -1):
            fallback = next(
                (
                    j
                    for j in range(i + 1, len(variants))
                    if keep[j] and variants[j][0] <= variants[i][0]
                ),
                None,
            )
            if fallback is not None and variants[fallback][2] == variants[i][2]:
                keep[i] = False
        rules = []
        for (_, combo, action), kept in zip(variants, keep, strict=True):
            if not kept:
                continue
            conds = [*sec.conds, *(c for d in combo for c in d.conds)]
            name = " + ".join([sec.name, *(d.name for d in combo)])
            rules.append(
                {
                    "name": name,
                    "when": " and ".join(conds) or "always",
                    "action": action,
                    "enabled": not sec.disabled,
                }
            )
        return rules


def _period_seconds(where: str, raw: str) -> int:
    text = raw.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    try:
        if text and text[-1] in units:
            return int(text[:-1]) * units[text[-1]]
        return int(text)
    except ValueError:
        raise RuleError(
            f"{where} = {raw!r}: expected seconds or a number with s, m, h or d (e.g. 7d)"
        ) from None


def _unique(name: str, used: set[str]) -> str:
    base = name.strip() or "unnamed"
    candidate, n = base[:NAME_MAX], 1
    while candidate in used:
        n += 1
        suffix = f" #{n}"
        candidate = base[: NAME_MAX - len(suffix)] + suffix
    used.add(candidate)
    return candidate


def import_chargelnd(text: str) -> ChargeLndImport:
    """charge-lnd INI text -> rule documents ready for parse_rules, plus what was left out.
    Malformed INI raises RuleError naming the line."""
    parser = _read_ini(text)
    imp = _Importer()
    shared = dict(parser.items("DEFAULT")) if parser.has_section("DEFAULT") else {}
    if shared:
        imp.note("[DEFAULT] is merged into every section, as configparser does for charge-lnd")
    names = [s for s in parser.sections() if s != "DEFAULT"]
    if not names:
        imp.note("the file defines no policies; nothing imported")
        return ChargeLndImport([], imp.unsupported, imp.notes)

    def items(section: str) -> dict[str, tuple[str, str]]:
        merged = {k: (v, "DEFAULT") for k, v in shared.items()}
        merged.update({k: (v, section) for k, v in parser.items(section)})
        return merged

    order = [s for s in names if s != "default"] + (["default"] if "default" in names else [])
    defaults: list[_Section] = []  # matching non-final sections pass their properties on
    docs: list[dict[str, Any]] = []
    default_rules = 0
    for name in order:
        sec = imp.section(name, items(name))
        if sec.skip:
            continue
        if sec.strategy is None:
            if name == "default":
                imp.note("[default] has no strategy, so it sets nothing")
            elif sec.disabled:
                imp.drop(
                    f"[{name}] (no strategy): its defaults cannot be applied without the "
                    "unsupported criterion; section skipped"
                )
            elif sec.props:
                defaults.append(sec)
            continue
        new = imp.rules_for(sec, defaults)
        docs.extend(new)
        default_rules += len(new) if name == "default" else 0
    if not default_rules:
        imp.note(
            "channels that match no section are left to Daznode's engine (charge-lnd would "
            "leave their fees unchanged; add a leave_alone rule to keep that)"
        )
    else:
        imp.note("[default] is the last rule: charge-lnd applies it when no other section matches")
    used: set[str] = set()
    for i, doc in enumerate(docs):
        doc["name"] = _unique(doc["name"], used)
        doc["priority"] = 10 * (len(docs) - i)
    imp.note(
        f"{len(docs)} rule(s) from {len(names)} section(s); first match wins, so priorities "
        "descend in file order"
    )
    parse_rules(docs)  # what the importer emits always validates
    return ChargeLndImport(docs, imp.unsupported, imp.notes)
