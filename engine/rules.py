"""Admin-defined fee rules that run before Daznode's engine: first matching rule wins.

A rule document is plain data (what the API stores as JSON), a list of objects:

    {"name": "drained", "priority": 10, "when": "ratio < 0.2 and capacity >= 1_000_000",
     "action": {"type": "proportional", "min_fee_ppm": 100, "max_fee_ppm": 1000},
     "enabled": true}

Condition grammar (parsed by a tokenizer and a recursive-descent parser, never eval):

    condition  := "" | or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | "always" | comparison
    comparison := METRIC op value
                | METRIC ["not"] "in" "[" value ("," value)* [","] "]"
                | BOOLEAN_METRIC                       (short for METRIC == true)
    op         := "<" | "<=" | ">" | ">=" | "==" | "!="
    value      := NUMBER | STRING | "true" | "false"

Numbers: 42, -3, 0.25, 1_000_000. Strings: double quotes, with \\" and \\\\ as escapes.
Types are checked at parse time: numbers compare with numeric metrics only, strings and
booleans only with == != in / not in. A metric that is unknown for a channel (null, e.g.
competitor_fee_ppm without graph data) makes every comparison on it false, `in` and
`not in` included; `not (...)` of such a comparison is true.

Actions: pin / static (fixed fee_ppm), proportional (charge-lnd's balance formula), cost
(charge-lnd's funding-cost formula, with an estimated funding fee) and leave_alone.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .metrics import WINDOWS, ChannelMetrics, NetworkContext

FEE_PPM_MAX = 100_000
BASE_FEE_MSAT_MAX = 10_000_000
MAX_HTLC_MSAT_MAX = 21_000_000 * 100_000_000 * 1000  # all bitcoin, in msat
PRIORITY_LIMIT = 1_000_000
NAME_MAX = 64
WHEN_MAX = 20_000  # long enough for a list of a few hundred node ids
MAX_NESTING = 50
COST_FACTOR_MAX = 100.0
# Daznode cannot see a channel's funding transaction (charge-lnd reads its fee from lnd's
# wallet), so the `cost` action estimates it: current on-chain fee rate x the size of a
# typical funding transaction (one P2WPKH input, the P2WSH funding output and change).
OPEN_TX_VBYTES = 154


class RuleError(ValueError):
    """A rule document is invalid. `errors` holds one message per faulty rule."""

    def __init__(self, *errors: str):
        super().__init__("\n".join(errors))
        self.errors: tuple[str, ...] = errors


class _Problem(Exception):
    """Internal: what is wrong, without saying which rule; parse_rules adds that."""


# -- metrics ----------------------------------------------------------------------------

NUMBER, STRING, BOOLEAN = "number", "string", "boolean"
Value = bool | int | float | str
_Getter = Callable[[ChannelMetrics, NetworkContext], "Value | None"]


def _policy(side: str, attr: str) -> _Getter:
    def get(ch: ChannelMetrics, ctx: NetworkContext) -> Value | None:
        policy = getattr(ch, side)
        return None if policy is None else getattr(policy, attr)

    return get


def _peer(attr: str) -> _Getter:
    def get(ch: ChannelMetrics, ctx: NetworkContext) -> Value | None:
        info = ctx.peer(ch.peer_id)
        return None if info is None else getattr(info, attr)

    return get


def _window(days: int, attr: str, divisor: int = 1) -> _Getter:
    def get(ch: ChannelMetrics, ctx: NetworkContext) -> Value | None:
        value: int = getattr(ch.window(days), attr)
        return value if divisor == 1 else value / divisor

    return get


def _window_sat(days: int, attr: str) -> _Getter:
    def get(ch: ChannelMetrics, ctx: NetworkContext) -> Value | None:
        return int(getattr(ch.window(days), attr)) // 1000

    return get


# name -> (type, getter, description)
METRICS: dict[str, tuple[str, _Getter, str]] = {
    "ratio": (NUMBER, lambda ch, ctx: ch.local_ratio, "local share of the balance, 0-1"),
    "capacity": (NUMBER, lambda ch, ctx: ch.capacity_sat, "channel capacity, sat"),
    "local": (NUMBER, lambda ch, ctx: ch.local_msat // 1000, "local balance, sat"),
    "remote": (NUMBER, lambda ch, ctx: ch.remote_msat // 1000, "remote balance, sat"),
    "age_days": (NUMBER, lambda ch, ctx: ch.age_days, "channel age, days"),
    "active": (BOOLEAN, lambda ch, ctx: ch.active, "channel usable now"),
    "fee_ppm": (NUMBER, _policy("local_policy", "fee_rate_ppm"), "our fee rate, ppm"),
    "base_fee_msat": (NUMBER, _policy("local_policy", "base_fee_msat"), "our base fee"),
    "peer_fee_ppm": (NUMBER, _policy("remote_policy", "fee_rate_ppm"), "peer's fee rate"),
    "peer_base_fee_msat": (NUMBER, _policy("remote_policy", "base_fee_msat"), "peer's base"),
    "peer_disabled": (BOOLEAN, _policy("remote_policy", "disabled"), "peer disabled its side"),
    "competitor_fee_ppm": (NUMBER, _peer("competitor_fee_ppm"), "others' fee into the peer"),
    "peer_channels": (NUMBER, _peer("channels"), "peer's channel count in the graph"),
    "peer_capacity": (NUMBER, _peer("capacity_sat"), "peer's total capacity, sat"),
    "onchain_feerate": (
        NUMBER,
        lambda ch, ctx: ctx.onchain_feerate_sat_vb,
        "on-chain fee rate, sat/vB",
    ),
    "peer": (STRING, lambda ch, ctx: ch.peer_id, "peer node id (pubkey)"),
    "alias": (STRING, lambda ch, ctx: ch.peer_alias, "peer alias"),
    "channel": (STRING, lambda ch, ctx: ch.channel_id, "short channel id BLOCKxTXxOUT"),
}
for _d in WINDOWS:
    METRICS[f"forwards_{_d}d"] = (NUMBER, _window(_d, "forwards_out"), "forwards out")
    METRICS[f"forwards_in_{_d}d"] = (NUMBER, _window(_d, "forwards_in"), "forwards in")
    METRICS[f"sats_out_{_d}d"] = (NUMBER, _window_sat(_d, "volume_out_msat"), "sat out")
    METRICS[f"sats_in_{_d}d"] = (NUMBER, _window_sat(_d, "volume_in_msat"), "sat in")
    METRICS[f"fees_{_d}d"] = (NUMBER, _window(_d, "fees_msat", 1000), "fees earned, sat")
    METRICS[f"failed_{_d}d"] = (NUMBER, _window(_d, "failed_out"), "failed forwards out")
del _d


# -- condition AST ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Always:
    pass


@dataclass(frozen=True, slots=True)
class Compare:
    metric: str
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class InList:
    metric: str
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    operand: Condition


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Condition, ...]


Condition = Always | Compare | InList | Not | And | Or

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "always"})


# -- tokenizer --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number string op name ( ) [ ] , end
    text: str
    col: int  # 1-based


_TOKEN_RE = re.compile(
    r"""(?P<space>\s+)
      |(?P<number>-?[0-9][0-9A-Za-z_.]*)
      |(?P<string>"(?:[^"\\]|\\.)*")
      |(?P<op><=|>=|==|!=|<|>)
      |(?P<punct>[()\[\],])
      |(?P<name>[A-Za-z_][A-Za-z0-9_]*)""",
    re.VERBOSE | re.DOTALL,
)
_NUMBER_RE = re.compile(r"-?[0-9]+(?:_[0-9]+)*(?:\.[0-9]+(?:_[0-9]+)*)?")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        col = pos + 1
        if m is None:
            ch = text[pos]
            if ch == '"':
                raise _Problem(f"unterminated string starting at column {col}")
            if ch in "=!":
                raise _Problem(
                    f"unexpected character {ch!r} at column {col}; "
                    "comparisons are written <, <=, >, >=, == or !="
                )
            raise _Problem(f"unexpected character {ch!r} at column {col}")
        kind = m.lastgroup or ""
        word = m.group()
        pos = m.end()
        if kind == "space":
            continue
        if kind == "number" and not _NUMBER_RE.fullmatch(word):
            raise _Problem(
                f"malformed number {word!r} at column {col}; "
                "numbers look like 42, -3, 0.25 or 1_000_000"
            )
        tokens.append(_Token(word if kind == "punct" else kind, word, col))
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return "the end of the condition"
    if tok.kind in ("number", "string"):
        return f"{tok.kind} {tok.text}"
    return f"'{tok.text}'"


def _unescape(literal: str) -> str:
    body = literal[1:-1]

    def repl(m: re.Match[str]) -> str:
        if m.group(1) not in ('"', "\\"):
            raise _Problem(f"unknown escape '\\{m.group(1)}' in string {literal}; use \\\" or \\\\")
        return m.group(1)

    return re.sub(r"\\(.)", repl, body, flags=re.DOTALL)


# -- parser -----------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        tok = self.peek()
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return tok

    @staticmethod
    def is_word(tok: _Token, word: str) -> bool:
        return tok.kind == "name" and tok.text == word

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _Problem(f"nested more than {MAX_NESTING} levels deep at column {tok.col}")

    def parse(self) -> Condition:
        if self.peek().kind == "end":
            return Always()
        cond = self.or_expr()
        tok = self.peek()
        if tok.kind == ")":
            raise _Problem(f"unmatched ')' at column {tok.col}")
        if tok.kind != "end":
            raise _Problem(
                f"unexpected {_describe(tok)} at column {tok.col}; "
                "expected 'and', 'or' or the end of the condition"
            )
        return cond

    def or_expr(self) -> Condition:
        parts = [self.and_expr()]
        while self.is_word(self.peek(), "or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_expr(self) -> Condition:
        parts = [self.not_expr()]
        while self.is_word(self.peek(), "and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def not_expr(self) -> Condition:
        tok = self.peek()
        if self.is_word(tok, "not"):
            self.take()
            self.enter(tok)
            inner = self.not_expr()
            self.depth -= 1
            return Not(inner)
        return self.primary()

    def primary(self) -> Condition:
        tok = self.take()
        if tok.kind == "(":
            self.enter(tok)
            inner = self.or_expr()
            close = self.take()
            if close.kind != ")":
                raise _Problem(
                    f"expected ')' to close the '(' at column {tok.col}, "
                    f"got {_describe(close)} at column {close.col}"
                )
            self.depth -= 1
            return inner
        if self.is_word(tok, "always"):
            return Always()
        if tok.kind != "name" or tok.text in _KEYWORDS:
            raise _Problem(
                f"expected a metric, 'not' or '(' at column {tok.col}, got {_describe(tok)}"
            )
        return self.comparison(tok)

    def comparison(self, name: _Token) -> Condition:
        metric = name.text
        if metric not in METRICS:
            close = difflib.get_close_matches(metric.lower(), METRICS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise _Problem(
                f"unknown metric '{metric}' at column {name.col}{hint}; "
                f"known metrics: {', '.join(sorted(METRICS))}"
            )
        kind = METRICS[metric][0]
        tok = self.peek()
        if tok.kind == "op":
            self.take()
            if kind != NUMBER and tok.text not in ("==", "!="):
                raise _Problem(
                    f"operator '{tok.text}' at column {tok.col} does not apply to {kind} "
                    f"metric '{metric}'; use ==, !=, in or not in"
                )
            return Compare(metric, tok.text, self.value(metric, kind, f"after '{tok.text}'"))
        negated = self.is_word(tok, "not") and self.is_word(self.peek(1), "in")
        if negated or self.is_word(tok, "in"):
            self.take()
            if negated:
                self.take()
            return InList(metric, self.value_list(metric, kind), negated)
        if kind == BOOLEAN:
            return Compare(metric, "==", True)
        raise _Problem(
            f"expected a comparison operator (<, <=, >, >=, ==, !=), 'in' or 'not in' "
            f"after '{metric}' at column {tok.col}, got {_describe(tok)}"
        )

    def value(self, metric: str, kind: str, where: str) -> Value:
        tok = self.take()
        value: Value
        if tok.kind == "number":
            digits = tok.text.replace("_", "")
            value = float(digits) if "." in digits else int(digits)
            got = NUMBER
        elif tok.kind == "string":
            value, got = _unescape(tok.text), STRING
        elif self.is_word(tok, "true") or self.is_word(tok, "false"):
            value, got = tok.text == "true", BOOLEAN
        else:
            raise _Problem(
                f'expected a value (a number, a "string", true or false) {where} '
                f"at column {tok.col}, got {_describe(tok)}"
            )
        if got != kind:
            raise _Problem(
                f"cannot compare {kind} metric '{metric}' with {got} {tok.text} at column {tok.col}"
            )
        return value

    def value_list(self, metric: str, kind: str) -> tuple[Value, ...]:
        tok = self.take()
        if tok.kind != "[":
            raise _Problem(
                f"expected '[' to start the list after 'in' at column {tok.col}, "
                f"got {_describe(tok)}"
            )
        if self.peek().kind == "]":
            raise _Problem(f"empty list at column {tok.col}; 'in' needs at least one value")
        values: list[Value] = []
        while True:
            values.append(self.value(metric, kind, "in the list"))
            sep = self.take()
            if sep.kind == "]":
                return tuple(values)
            if sep.kind != ",":
                raise _Problem(
                    f"expected ',' or ']' in the list started at column {tok.col}, "
                    f"got {_describe(sep)} at column {sep.col}"
                )
            if self.peek().kind == "]":
                self.take()
                return tuple(values)


def _parse_condition(text: str) -> Condition:
    if len(text) > WHEN_MAX:
        raise _Problem(f"condition is {len(text)} characters long; the limit is {WHEN_MAX}")
    return _Parser(text).parse()


# -- evaluation -------------------------------------------------------------------------


def evaluate(cond: Condition, ch: ChannelMetrics, ctx: NetworkContext) -> bool:
    """Whether `cond` holds for the channel. Comparisons with a null metric are false."""
    cache: dict[str, Value | None] = {}

    def metric(name: str) -> Value | None:
        if name not in cache:
            cache[name] = METRICS[name][1](ch, ctx)
        return cache[name]

    def ev(c: Condition) -> bool:
        if isinstance(c, Always):
            return True
        if isinstance(c, Compare):
            v = metric(c.metric)
            return v is not None and _OPS[c.op](v, c.value)
        if isinstance(c, InList):
            v = metric(c.metric)
            return v is not None and ((v in c.values) != c.negated)
        if isinstance(c, Not):
            return not ev(c.operand)
        if isinstance(c, And):
            return all(ev(o) for o in c.operands)
        return any(ev(o) for o in c.operands)

    return ev(cond)


# -- actions ----------------------------------------------------------------------------

_INT_RANGES: dict[str, tuple[int, int]] = {
    "fee_ppm": (0, FEE_PPM_MAX),
    "min_fee_ppm": (0, FEE_PPM_MAX),
    "max_fee_ppm": (0, FEE_PPM_MAX),
    "base_fee_msat": (0, BASE_FEE_MSAT_MAX),
    "inbound_fee_ppm": (-FEE_PPM_MAX, 0),
    "inbound_base_fee_msat": (-BASE_FEE_MSAT_MAX, 0),
    "max_htlc_msat": (1, MAX_HTLC_MSAT_MAX),
}
_EXTRAS = ("base_fee_msat", "inbound_fee_ppm", "inbound_base_fee_msat", "max_htlc_msat")
# type -> (required fields, optional fields)
ACTION_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pin": (("fee_ppm",), _EXTRAS),
    "static": (("fee_ppm",), _EXTRAS),
    "proportional": (("min_fee_ppm", "max_fee_ppm"), _EXTRAS),
    "cost": ((), ("cost_factor", *_EXTRAS)),
    "leave_alone": ((), ()),
}


@dataclass(frozen=True, slots=True)
class Action:
    type: str
    fee_ppm: int | None = None
    base_fee_msat: int | None = None
    min_fee_ppm: int | None = None
    max_fee_ppm: int | None = None
    cost_factor: float | None = None  # cost only; 1.0 when the document leaves it out
    inbound_fee_ppm: int | None = None
    inbound_base_fee_msat: int | None = None
    max_htlc_msat: int | None = None

    def to_doc(self) -> dict[str, Any]:
        required, optional = ACTION_FIELDS[self.type]
        doc: dict[str, Any] = {"type": self.type}
        for name in (*required, *optional):
            value = getattr(self, name)
            if value is not None:
                doc[name] = value
        return doc


def _parse_action(raw: object) -> Action:
    if not isinstance(raw, dict):
        raise _Problem(f"must be an object with a 'type', got {_json_type(raw)}")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in ACTION_FIELDS:
        what = "missing 'type'" if "type" not in raw else f"unknown action type {kind!r}"
        raise _Problem(f"{what}; expected one of: {', '.join(ACTION_FIELDS)}")
    required, optional = ACTION_FIELDS[kind]
    allowed = ("type", *required, *optional)
    for key in raw:
        if key not in allowed:
            raise _Problem(
                f"unknown field {key!r} for action '{kind}'; allowed: {', '.join(allowed)}"
            )
    for key in required:
        if key not in raw:
            raise _Problem(f"action '{kind}' needs field '{key}'")
    fields: dict[str, Any] = {}
    for key in (*required, *optional):
        if key not in raw:
            continue
        value = raw[key]
        if key == "cost_factor":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or not 0 < value <= COST_FACTOR_MAX:
                raise _Problem(
                    f"field 'cost_factor' must be a number above 0 and at most "
                    f"{COST_FACTOR_MAX:g}, got {value!r}"
                )
            fields[key] = float(value)
            continue
        lo, hi = _INT_RANGES[key]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise _Problem(f"field '{key}' must be an integer from {lo} to {hi}, got {value!r}")
        fields[key] = value
    if kind == "proportional" and fields["min_fee_ppm"] > fields["max_fee_ppm"]:
        raise _Problem(
            f"min_fee_ppm ({fields['min_fee_ppm']}) is greater than "
            f"max_fee_ppm ({fields['max_fee_ppm']})"
        )
    if kind == "cost":
        fields.setdefault("cost_factor", 1.0)
    return Action(kind, **fields)


# -- rules ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: str  # the condition as written ("" matches every channel)
    condition: Condition
    action: Action
    priority: int = 0
    enabled: bool = True

    def to_doc(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "priority": self.priority,
            "when": self.when,
            "action": self.action.to_doc(),
            "enabled": self.enabled,
        }


_RULE_FIELDS = ("name", "priority", "when", "action", "enabled")


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and 0 < len(name) <= NAME_MAX and not name.isspace()


def _label(item: object, index: int) -> str:
    if isinstance(item, dict) and _valid_name(item.get("name")):
        return f"rule {item['name']!r}"
    return f"rule at index {index}"


def _parse_rule(item: object, index: int, seen: dict[str, int]) -> Rule:
    """Raises _Problem with a "(part): ..." prefix naming the faulty part."""
    if not isinstance(item, dict):
        raise _Problem(f": must be an object, got {_json_type(item)}")
    for key in item:
        if key not in _RULE_FIELDS:
            raise _Problem(f": unknown field {key!r}; allowed fields: {', '.join(_RULE_FIELDS)}")
    if "name" not in item:
        raise _Problem(" (name): missing; every rule needs a name of 1-64 characters")
    name = item["name"]
    if not _valid_name(name):
        raise _Problem(f" (name): must be a string of 1-{NAME_MAX} characters, got {name!r}")
    if name in seen:
        raise _Problem(f" (name): duplicate name, already used by the rule at index {seen[name]}")
    priority = item.get("priority", 0)
    if (
        not isinstance(priority, int)
        or isinstance(priority, bool)
        or not -PRIORITY_LIMIT <= priority <= PRIORITY_LIMIT
    ):
        raise _Problem(
            f" (priority): must be an integer from {-PRIORITY_LIMIT} to {PRIORITY_LIMIT}, "
            f"got {priority!r}"
        )
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _Problem(f" (enabled): must be true or false, got {enabled!r}")
    when = item.get("when", "")
    if not isinstance(when, str):
        raise _Problem(f" (when): must be a string, got {_json_type(when)}")
    try:
        condition = _parse_condition(when)
    except _Problem as e:
        raise _Problem(f" (when): {e}") from None
    if "action" not in item:
        raise _Problem(" (action): missing; every rule needs an action")
    try:
        action = _parse_action(item["action"])
    except _Problem as e:
        raise _Problem(f" (action): {e}") from None
    return Rule(name, when, condition, action, priority, enabled)


def _sort_key(item: object) -> int:
    priority = item.get("priority", 0) if isinstance(item, dict) else 0
    ok = isinstance(priority, int) and not isinstance(priority, bool)
    return -priority if ok else 0


def parse_rules(doc: object) -> list[Rule]:
    """Validate a rule document; the rules come back in evaluation order (priority
    descending, ties in list order). Raises one RuleError listing every faulty rule."""
    if not isinstance(doc, list):
        raise RuleError(f"rules: expected a list of rule objects, got {_json_type(doc)}")
    rules: list[Rule] = []
    errors: list[tuple[int, int, str]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(doc):
        try:
            rules.append(_parse_rule(item, index, seen))
        except _Problem as e:
            errors.append((_sort_key(item), index, f"{_label(item, index)}{e}"))
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            seen.setdefault(item["name"], index)
    if errors:
        raise RuleError(*(message for _, _, message in sorted(errors)))
    return sorted(rules, key=lambda r: -r.priority)


def rules_to_doc(rules: list[Rule]) -> list[dict[str, Any]]:
    return [rule.to_doc() for rule in rules]


def first_match(rules: list[Rule], ch: ChannelMetrics, ctx: NetworkContext) -> Rule | None:
    """The first enabled rule (priority descending, ties in list order) whose condition
    holds for the channel."""
    for rule in sorted(rules, key=lambda r: -r.priority):
        if rule.enabled and evaluate(rule.condition, ch, ctx):
            return rule
    return None


# -- outcome ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    rule: str  # the rule's name
    leave_alone: bool
    fee_ppm: int | None
    base_fee_msat: int | None  # None: keep the current value (same for the fields below)
    inbound_fee_ppm: int | None
    inbound_base_fee_msat: int | None
    max_htlc_msat: int | None
    reason: str


def _fmt(x: float, places: int = 3) -> str:
    text = f"{x:.{places}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _round(x: float) -> int:
    return math.floor(x + 0.5)


def apply_rule(rule: Rule, ch: ChannelMetrics, ctx: NetworkContext) -> RuleOutcome:
    """What the rule sets on this channel, with a sentence saying why."""
    a = rule.action
    when = rule.when.strip() or "always"
    if len(when) > 80:
        when = when[:77] + "..."
    head = f"rule {rule.name!r} ({when}): "
    if a.type == "leave_alone":
        reason = head + "leave alone; Daznode does not touch this channel"
        return RuleOutcome(rule.name, True, None, None, None, None, None, reason)
    if a.type in ("pin", "static"):
        ppm = a.fee_ppm if a.fee_ppm is not None else 0
        detail = f"{a.type} {ppm} ppm"
    elif a.type == "proportional":
        lo, hi = a.min_fee_ppm or 0, a.max_fee_ppm or 0
        ratio = ch.local_ratio
        ppm = _round(lo + (1.0 - ratio) * (hi - lo))
        detail = f"proportional {lo}-{hi} ppm at ratio {_fmt(ratio, 2)} -> {ppm} ppm"
    else:  # cost
        factor = a.cost_factor if a.cost_factor is not None else 1.0
        open_fee = ctx.onchain_feerate_sat_vb * OPEN_TX_VBYTES
        raw = factor * 1e6 * open_fee / ch.capacity_sat if ch.capacity_sat > 0 else math.inf
        ppm = min(FEE_PPM_MAX, _round(raw)) if math.isfinite(raw) else FEE_PPM_MAX
        capped = f" (capped at {FEE_PPM_MAX} ppm)" if ppm == FEE_PPM_MAX else ""
        detail = (
            f"cost factor {_fmt(factor)} x estimated funding fee {open_fee} sat "
            f"({ctx.onchain_feerate_sat_vb} sat/vB x {OPEN_TX_VBYTES} vB) / "
            f"{ch.capacity_sat} sat capacity -> {ppm} ppm{capped}"
        )
    extras = [
        f"{label} {value} {unit}"
        for label, value, unit in (
            ("base", a.base_fee_msat, "msat"),
            ("inbound", a.inbound_fee_ppm, "ppm"),
            ("inbound base", a.inbound_base_fee_msat, "msat"),
            ("max_htlc", a.max_htlc_msat, "msat"),
        )
        if value is not None
    ]
    reason = head + ", ".join([detail, *extras])
    return RuleOutcome(
        rule.name,
        False,
        ppm,
        a.base_fee_msat,
        a.inbound_fee_ppm,
        a.inbound_base_fee_msat,
        a.max_htlc_msat,
        reason,
    )
