"""``$filter``: the OData subset of API.md, compiled to a SQLAlchemy boolean expression.

Why a hand-written parser and not a wrapper around ``odata-query`` 0.10: the contract asks for
three things that library does not give and that a wrapper would have to bolt on from outside:

* the *position* of every error (its sly-based lexer/parser reports tokens, and type errors are
  raised later by the SQLAlchemy visitor without any position at all);
* hard limits checked while parsing (length, nesting depth, number of terms, ``in`` list size)
  rather than after a deep recursion has already happened (a 500-term ``or`` overflows it);
* type checking against *our* field map (``totalAmount eq 'abc'`` is a 400, not a database
  error), case-sensitive string functions that behave the same on SQLite and PostgreSQL, exact
  decimal arithmetic on both (SQLite has only floats), and a lambda restricted to the one
  collection we expose.

The language is small (one precedence ladder, six comparison operators, five arithmetic ones, a
few dozen functions, one lambda), so a recursive-descent parser compiling straight to SQLAlchemy
with every value as a bound parameter is the smaller and safer thing to own.

Grammar. Keywords, operators and function names are case-insensitive, as OData 4.01 requires
(``EQ``, ``And``, ``ToLower``); field names and lambda variables are not::

    filter         := or
    or             := and ("or" and)*
    and            := not ("and" not)*
    not            := "not" not | comparison        # looser than eq: not a eq 1 == not (a eq 1)
    comparison     := additive [(eq|ne|gt|ge|lt|le) additive | "in" "(" literal ("," literal)* ")"]
    additive       := multiplicative (("add"|"sub") multiplicative)*
    multiplicative := unary (("mul"|"div"|"divby"|"mod") unary)*
    unary          := "-" unary | primary
    primary        := "(" or ")" | function "(" args ")" | "items/any(" [var ":" or] ")"
                    | "items/all(" var ":" or ")" | var "/" itemField | field | literal
    literal        := 'string' (quote doubled inside) | number | date | datetime
                    | true | false | null

Semantics worth knowing:

* Numbers: integers, decimals of any precision, exponents (``1.5e3``). They compare exactly with
  fields (``totalAmount gt 1.234`` means more than 1.234, ``itemCount eq 1.5`` matches nothing).
  Arithmetic is exact decimal arithmetic on both databases; ``div`` of two integers truncates
  toward zero (``divby`` always divides exactly), ``mod`` takes the sign of its left side, and a
  division by a field that is zero has no value (the row does not match); by a literal zero it is
  a 400.
* A datetime literal stands for the span of its last written digit, because the API writes
  timestamps to the second while it stores microseconds: ``createdAt eq 2026-06-02T10:30:00Z``
  matches every order created during that second (so the value the API returned finds its
  order), ``gt`` means after that second, ``le`` up to its end; ``…10:30:00.123Z`` narrows the
  span to the millisecond. A date literal compared with a timestamp is midnight UTC of that day
  (``date(createdAt) eq 2026-06-02`` matches the whole day); ``year``/``month``/``day``/``hour``/
  ``minute``/``second``/``date`` read the UTC calendar; ``now()`` is the time of the request.
* Strings: ``contains``/``startswith``/``endswith``/``indexof`` are case-sensitive (wrap the field
  in ``tolower`` for a case-insensitive match); ``length``, ``indexof`` and ``substring`` count
  characters from 0; ``trim`` removes leading and trailing spaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from decimal import localcontext as decimal_context
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from models.types import Money, UTCDateTime, utcnow
from services.kernel.errors import InvalidQuery
from services.orders.query.fields import COLLECTIONS, FIELDS, FieldSpec
from services.orders.query.sqlfuncs import EXACT_ARITHMETIC, EXACT_COMPARISONS, UTC_PARTS, ExactNumber, strpos, utc_date

MAX_LENGTH = 2000
MAX_DEPTH = 16
MAX_TERMS = 100
MAX_IN_VALUES = 100
# Arithmetic operators per filter.
MAX_OPERATORS = 50
# Functions and arithmetic nest SQL calls inside each other, and SQLite's parser refuses a
# statement nested about 20 calls deep ("parser stack overflow"): the limit is checked here, the
# same on every database, with room for the conditions around it.
MAX_NESTING = 12
# A literal's decimal exponent: far beyond any amount, count or factor, and cheap to compute with.
MAX_EXPONENT = 100
# Beyond every value our numeric columns can hold (money is Numeric(12, 2), counts are int4):
# a literal past it is compared as this bound, which gives the same answer and binds safely.
COLUMN_BOUND = Decimal(10) ** 12

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
ADDITIVE = ("add", "sub")
MULTIPLICATIVE = ("mul", "div", "divby", "mod")
KEYWORDS = frozenset({*COMPARISONS, *ADDITIVE, *MULTIPLICATIVE, "and", "or", "not", "in", "has"})
LITERAL_WORDS = frozenset({"null", "true", "false"})
STRING_PREDICATES = ("contains", "startswith", "endswith")
STRING_FUNCTIONS = ("tolower", "toupper", "trim", "length", "indexof", "substring", "concat")
NUMBER_FUNCTIONS = ("round", "floor", "ceiling")
FUNCTIONS = frozenset({*STRING_PREDICATES, *STRING_FUNCTIONS, *NUMBER_FUNCTIONS, *UTC_PARTS, "date", "now"})

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<datetime>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}
                 (?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)
  | (?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),/:-])
  | (?P<quote>')
    """,
    re.VERBOSE | re.ASCII,
)
_FRACTION = re.compile(r"T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.([0-9]+))?)?", re.ASCII)


@dataclass(frozen=True)
class Token:
    kind: str  # string number date datetime ident punct eof error
    text: str
    pos: int
    value: Any = None
    span: timedelta | None = None  # datetime literals: the span their precision denotes

    def word(self) -> str | None:
        """The lower-cased identifier (keywords and function names are case-insensitive)."""
        return self.text.lower() if self.kind == "ident" else None


@dataclass(frozen=True)
class Operand:
    """A compiled operand: its SQL (or Python value for literals), its kind and where it started.

    ``kind`` is one of string money integer number decimal datetime date bool null: ``number`` is
    a numeric literal, ``decimal`` a computed non-integer value. ``computed`` marks a value that
    the exact arithmetic constructs produce (compared through them, never natively); ``span`` is
    the precision of a datetime literal.
    """

    kind: str
    pos: int
    sql: Any = None
    value: Any = None
    is_literal: bool = False
    computed: bool = False
    span: timedelta | None = None
    nesting: int = 0  # SQL calls nested in ``sql`` (functions, arithmetic)

    @property
    def integral(self) -> bool:
        """Whether the value is a whole number by type (OData: integer arithmetic stays integer)."""
        return self.kind == "integer" or (self.kind == "number" and isinstance(self.value, int))


def _describe(token: Token) -> str:
    if token.kind == "eof":
        return "the end of the expression"
    text = token.text if len(token.text) <= 30 else token.text[:27] + "..."
    return repr(text)


class _Errors:
    def __init__(self, parameter: str, text: str) -> None:
        self.parameter = parameter
        self.text = text

    def __call__(self, pos: int, message: str) -> InvalidQuery:
        return InvalidQuery.at(self.parameter, pos, message)


def _read_string(text: str, start: int, error: _Errors) -> tuple[str, int]:
    """The string literal opening at ``start`` (a quote); returns (value, index after it)."""
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            if i + 1 < len(text) and text[i + 1] == "'":
                chars.append("'")
                i += 2
                continue
            return "".join(chars), i + 1
        code = ord(ch)
        if code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            raise error(i, f"control or invalid character U+{code:04X} in a string literal")
        chars.append(ch)
        i += 1
    raise error(start, "unterminated string literal (a quote inside a string is written '')")


def _parse_number(text: str, pos: int, error: _Errors) -> Decimal | int:
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
        raise error(pos, f"invalid number {text!r}") from None
    if value and abs(value.adjusted()) > MAX_EXPONENT:
        raise error(pos, f"number {text!r} is out of range (at most 1e{MAX_EXPONENT} in size)")
    if "." in text or "e" in text.lower():
        return value
    return int(value)


def _parse_datetime(text: str, pos: int, error: _Errors) -> tuple[datetime, timedelta]:
    """The instant a datetime literal starts at and the span its last written digit denotes."""
    if not (text.endswith("Z") or re.search(r"[+-][0-9]{2}:[0-9]{2}$", text)):
        raise error(pos, "a datetime literal needs 'Z' or an offset, e.g. 2026-06-01T00:00:00Z")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise error(pos, f"invalid datetime {text!r}") from None
    match = _FRACTION.search(text)
    assert match is not None  # the token pattern guarantees the time part
    if ":" not in match.group()[4:]:
        span = timedelta(minutes=1)
    elif match.group(1):
        span = timedelta(seconds=1) / 10 ** len(match.group(1))
    else:
        span = timedelta(seconds=1)
    return value, span


def _parse_date(text: str, pos: int, error: _Errors) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise error(pos, f"invalid date {text!r}") from None


def tokenize(text: str, error: _Errors) -> list[Token]:
    """The tokens of ``text``; a lexical error becomes a final ``error`` token.

    The parser raises that error only when it reaches it, so that of a lexical and a syntax
    problem, the one reported is always the first in the text.
    """
    tokens: list[Token] = []
    try:
        _lex(text, error, tokens)
    except InvalidQuery as problem:
        tokens.append(Token("error", "", problem.details[0]["position"], problem))
        return tokens
    tokens.append(Token("eof", "", len(text)))
    return tokens


def _lex(text: str, error: _Errors, tokens: list[Token]) -> None:
    i = 0
    while i < len(text):
        if text[i] == "'":
            value, end = _read_string(text, i, error)
            tokens.append(Token("string", text[i:end], i, value))
            i = end
            continue
        match = _TOKEN.match(text, i)
        if match is None:
            ch = text[i]
            shown = ch if ch.isprintable() else f"U+{ord(ch):04X}"
            raise error(i, f"unexpected character {shown!r}")
        kind = match.lastgroup or ""
        token_text = match.group()
        end = match.end()
        if kind in ("number", "date", "datetime") and end < len(text) and (text[end].isalnum() or text[end] in "_.:"):
            raise error(i, f"malformed literal starting {text[i : end + 1]!r}")
        if kind == "number":
            tokens.append(Token(kind, token_text, i, _parse_number(token_text, i, error)))
        elif kind == "date":
            tokens.append(Token(kind, token_text, i, _parse_date(token_text, i, error)))
        elif kind == "datetime":
            moment, span = _parse_datetime(token_text, i, error)
            tokens.append(Token(kind, token_text, i, moment, span))
        elif kind in ("ident", "punct"):
            tokens.append(Token(kind, token_text, i))
        i = end


_NUMERIC = ("money", "integer", "number", "decimal")
# Exact arithmetic on literals (constant folding): more digits than any comparison needs.
_FOLDING = Context(prec=34, Emax=999_999, Emin=-999_999, traps=[InvalidOperation, Overflow, DivisionByZero])
_GRID = {"money": Decimal("0.01"), "integer": Decimal(1)}
_NATIVE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
# ``literal op field`` is ``field mirrored-op literal``.
_MIRRORED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_OPERATOR_NAMES = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "divby": "div", "mod": "mod"}


def _fold(op: str, a: Decimal | int, b: Decimal | int, integral: bool) -> Decimal | int:
    """``a op b`` for two literals, with the semantics the SQL constructs have."""
    with decimal_context(_FOLDING):
        x, y = Decimal(a), Decimal(b)
        if op == "add":
            result = x + y
        elif op == "sub":
            result = x - y
        elif op == "mul":
            result = x * y
        elif op == "mod":
            result = x % y  # Decimal's % keeps the dividend's sign, like the SQL constructs
        elif integral:  # div of two integers truncates toward zero
            result = (x / y).to_integral_value(rounding="ROUND_DOWN")
        else:
            result = x / y
    return int(result) if integral else result


class _Parser:
    def __init__(self, text: str, parameter: str) -> None:
        self.error = _Errors(parameter, text)
        self.tokens = tokenize(text, self.error)
        self.index = 0
        self.depth = 0
        self.terms = 0
        self.operators = 0
        self.lambda_var: str | None = None
        self.lambda_fields: dict[str, FieldSpec] = {}

    # -- token helpers -------------------------------------------------------------------------
    def peek(self, offset: int = 0) -> Token:
        token = self.tokens[min(self.index + offset, len(self.tokens) - 1)]
        if token.kind == "error":
            raise token.value
        return token

    def advance(self) -> Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.peek().word() in words

    def at_punct(self, char: str) -> bool:
        token = self.peek()
        return token.kind == "punct" and token.text == char

    def expect_punct(self, char: str, what: str) -> Token:
        token = self.advance()
        if token.kind != "punct" or token.text != char:
            raise self.error(token.pos, f"expected {what}, found {_describe(token)}")
        return token

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(pos, f"expression nested too deeply (at most {MAX_DEPTH} levels)")

    def leave(self) -> None:
        self.depth -= 1

    def count_term(self, pos: int) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.error(pos, f"too many conditions (at most {MAX_TERMS})")

    def count_operator(self, pos: int) -> None:
        self.operators += 1
        if self.operators > MAX_OPERATORS:
            raise self.error(pos, f"too many arithmetic operators (at most {MAX_OPERATORS})")

    def nest(self, pos: int, *inner: Operand) -> int:
        """The nesting of a call wrapping ``inner``; refused past :data:`MAX_NESTING`."""
        nesting = 1 + max((operand.nesting for operand in inner), default=0)
        if nesting > MAX_NESTING:
            raise self.error(pos, f"functions and arithmetic nested too deeply (at most {MAX_NESTING} levels)")
        return nesting

    def require_bool(self, operand: Operand, where: str) -> ColumnElement[bool]:
        if operand.kind != "bool":
            raise self.error(operand.pos, f"{where} must be a condition (a comparison or a boolean function)")
        return operand.sql

    def refuse_has(self) -> None:
        token = self.peek()
        if token.word() == "has":
            raise self.error(
                token.pos,
                "the 'has' operator tests enumeration flags, and no field here is a flags enumeration; "
                "compare with eq or in instead",
            )

    # -- grammar -------------------------------------------------------------------------------
    def parse(self) -> ColumnElement[bool]:
        if not self.error.text.strip():
            raise self.error(0, "empty expression")
        result = self.parse_or()
        self.refuse_has()
        token = self.peek()
        if token.kind != "eof":
            raise self.error(token.pos, f"expected 'and', 'or' or the end, found {_describe(token)}")
        return self.require_bool(result, "the filter")

    def parse_or(self) -> Operand:
        first = self.parse_and()
        if not self.at_keyword("or"):
            return first
        parts = [self.require_bool(first, "the left side of 'or'")]
        while self.at_keyword("or"):
            self.advance()
            parts.append(self.require_bool(self.parse_and(), "the right side of 'or'"))
        return Operand("bool", first.pos, or_(*parts))

    def parse_and(self) -> Operand:
        first = self.parse_not()
        if not self.at_keyword("and"):
            return first
        parts = [self.require_bool(first, "the left side of 'and'")]
        while self.at_keyword("and"):
            self.advance()
            parts.append(self.require_bool(self.parse_not(), "the right side of 'and'"))
        return Operand("bool", first.pos, and_(*parts))

    def parse_not(self) -> Operand:
        if not self.at_keyword("not"):
            return self.parse_comparison()
        token = self.advance()
        self.enter(token.pos)
        inner = self.parse_not()
        self.leave()
        return Operand("bool", token.pos, not_(self.require_bool(inner, "the operand of 'not'")))

    def parse_comparison(self) -> Operand:
        left = self.parse_additive()
        self.refuse_has()
        token = self.peek()
        word = token.word()
        if word in COMPARISONS:
            self.advance()
            right = self.parse_additive()
            self.count_term(left.pos)
            return self.compare(left, word, token, right)
        if word == "in":
            self.advance()
            self.count_term(left.pos)
            return self.parse_in(left, token)
        return left

    def parse_in(self, left: Operand, op: Token) -> Operand:
        self.expect_punct("(", "'(' after 'in'")
        values: list[Operand] = []
        while True:
            token = self.peek()
            value = self.parse_additive()
            if not value.is_literal or value.kind in ("null", "bool"):
                raise self.error(token.pos, "'in' lists hold values (strings, numbers, dates), not fields or null")
            values.append(value)
            if len(values) > MAX_IN_VALUES:
                raise self.error(token.pos, f"too many values in 'in' (at most {MAX_IN_VALUES})")
            if self.at_punct(","):
                self.advance()
                continue
            self.expect_punct(")", "',' or ')' in the 'in' list")
            break
        if left.is_literal:
            raise self.error(left.pos, "the left side of 'in' must be a field or a function of a field")
        if left.kind == "bool":
            raise self.error(left.pos, "a condition cannot be the left side of 'in'")
        if left.kind == "string" or (left.kind == "date" and all(v.kind == "date" for v in values)):
            bound = [self.bind_simple(left, value, op) for value in values]
            return Operand("bool", left.pos, left.sql.in_(bound))
        return Operand("bool", left.pos, or_(*(self.compare_sql(left, "eq", op, value) for value in values)))

    def parse_additive(self) -> Operand:
        left = self.parse_multiplicative()
        while self.at_keyword(*ADDITIVE):
            op = self.advance()
            left = self.arithmetic(op, left, self.parse_multiplicative())
        return left

    def parse_multiplicative(self) -> Operand:
        left = self.parse_unary()
        while self.at_keyword(*MULTIPLICATIVE):
            op = self.advance()
            left = self.arithmetic(op, left, self.parse_unary())
        return left

    def parse_unary(self) -> Operand:
        if not self.at_punct("-"):
            return self.parse_operand()
        minus = self.advance()
        self.enter(minus.pos)
        inner = self.parse_unary()
        self.leave()
        return self.negate(minus, inner)

    def parse_operand(self) -> Operand:
        token = self.advance()
        if token.kind == "punct" and token.text == "(":
            self.enter(token.pos)
            inner = self.parse_or()
            self.expect_punct(")", "')'")
            self.leave()
            return replace(inner, pos=token.pos)
        if token.kind == "string":
            return Operand("string", token.pos, value=token.value, is_literal=True)
        if token.kind == "number":
            return Operand("number", token.pos, value=token.value, is_literal=True)
        if token.kind == "date":
            return Operand("date", token.pos, value=token.value, is_literal=True)
        if token.kind == "datetime":
            return Operand("datetime", token.pos, value=token.value, is_literal=True, span=token.span)
        if token.kind != "ident":
            raise self.error(token.pos, f"expected a field, a value or a function, found {_describe(token)}")
        name = token.text
        if self.at_punct("("):
            return self.parse_function(token)
        if self.at_punct("/"):
            return self.parse_path(token)
        word = token.word()
        if word == "null":
            return Operand("null", token.pos, is_literal=True)
        if word in ("true", "false"):
            value = word == "true"
            return Operand("bool", token.pos, true() if value else false(), value=value, is_literal=True)
        if word in KEYWORDS:
            raise self.error(token.pos, f"expected a field, a value or a function, found {_describe(token)}")
        if name == self.lambda_var:
            raise self.error(token.pos, f"use {name}/<field> to read a field of the lambda variable")
        spec = FIELDS.get(name)
        if spec is None:
            raise self.error(token.pos, f"unknown field {name!r}; fields are: {', '.join(FIELDS)}")
        return Operand(spec.kind, token.pos, spec.column)

    def parse_path(self, head: Token) -> Operand:
        self.advance()  # '/'
        member = self.advance()
        if member.kind != "ident":
            raise self.error(member.pos, f"expected a name after '/', found {_describe(member)}")
        if self.lambda_var is not None and head.text == self.lambda_var:
            spec = self.lambda_fields.get(member.text)
            if spec is None:
                allowed = ", ".join(self.lambda_fields)
                raise self.error(member.pos, f"unknown item field {member.text!r}; item fields are: {allowed}")
            return Operand(spec.kind, head.pos, spec.column)
        if head.text in COLLECTIONS:
            if member.word() not in ("any", "all"):
                raise self.error(member.pos, f"expected any(...) or all(...) after {head.text}/")
            return self.parse_lambda(head, member)
        raise self.error(head.pos, f"{head.text!r} is not a collection or a lambda variable")

    def parse_lambda(self, collection: Token, operator: Token) -> Operand:
        if self.lambda_var is not None:
            raise self.error(collection.pos, "nested lambdas are not supported")
        item_fields, correlation = COLLECTIONS[collection.text]
        kind = operator.word()
        self.expect_punct("(", f"'(' after {operator.text}")
        self.enter(operator.pos)
        self.count_term(collection.pos)
        closing = self.peek()
        if closing.kind == "punct" and closing.text == ")":
            if kind == "all":
                raise self.error(closing.pos, "all() needs a condition, e.g. items/all(i: i/status eq 'fulfilled')")
            self.advance()
            self.leave()
            return Operand("bool", collection.pos, exists().where(correlation))
        variable = self.advance()
        if (
            variable.kind != "ident"
            or variable.word() in KEYWORDS | LITERAL_WORDS
            or variable.text in FIELDS
            or self.at_punct("(")
        ):
            raise self.error(variable.pos, f"expected a lambda variable name (such as i), found {_describe(variable)}")
        self.expect_punct(":", "':' after the lambda variable")
        self.lambda_var, self.lambda_fields = variable.text, item_fields
        try:
            body = self.require_bool(self.parse_or(), "a lambda body")
        finally:
            self.lambda_var, self.lambda_fields = None, {}
        self.expect_punct(")", "')' closing the lambda")
        self.leave()
        if kind == "any":
            return Operand("bool", collection.pos, exists().where(correlation, body))
        return Operand("bool", collection.pos, not_(exists().where(correlation, not_(body))))

    # -- functions -----------------------------------------------------------------------------
    def parse_function(self, name: Token) -> Operand:
        fn = name.word() or ""
        if fn not in FUNCTIONS:
            raise self.error(name.pos, f"unknown function {name.text!r}; functions are: {', '.join(sorted(FUNCTIONS))}")
        self.advance()  # '('
        self.enter(name.pos)
        args: list[Operand] = []
        if not self.at_punct(")"):
            while True:
                args.append(self.parse_or())
                if self.at_punct(","):
                    self.advance()
                    continue
                break
        self.expect_punct(")", f"',' or ')' in {name.text}(...)")
        self.leave()
        if fn in STRING_PREDICATES:
            self.count_term(name.pos)
            return self.string_predicate(fn, name, args)
        if fn == "now":
            if args:
                raise self.error(name.pos, "now() takes no argument")
            return Operand("datetime", name.pos, literal(utcnow(), UTCDateTime()))
        if fn in ("indexof", "concat"):
            return self.two_strings(fn, name, args)
        if fn == "substring":
            return self.substring(name, args)
        if len(args) != 1:
            raise self.error(name.pos, f"{fn}() takes one argument")
        [arg] = args
        if arg.is_literal:
            raise self.error(arg.pos, f"{fn}() needs a field or a function of a field")
        if fn in ("tolower", "toupper", "trim", "length"):
            if arg.kind != "string":
                raise self.error(arg.pos, f"{fn}() needs a string")
            nesting = self.nest(name.pos, arg)
            if fn == "length":
                return Operand("integer", name.pos, func.length(arg.sql), nesting=nesting)
            sql = {"tolower": func.lower, "toupper": func.upper, "trim": func.trim}[fn](arg.sql)
            return Operand("string", name.pos, sql, nesting=nesting)
        if fn in NUMBER_FUNCTIONS:
            if arg.kind not in _NUMERIC:
                raise self.error(arg.pos, f"{fn}() needs a number")
            if arg.integral:
                return replace(arg, pos=name.pos)  # a whole number is its own rounding
            sql = EXACT_ARITHMETIC[fn](arg.sql)
            return Operand("decimal", name.pos, sql, computed=True, nesting=self.nest(name.pos, arg))
        if arg.kind != "datetime":
            raise self.error(arg.pos, f"{fn}() needs a timestamp field (createdAt, updatedAt)")
        nesting = self.nest(name.pos, arg)
        if fn == "date":
            return Operand("date", name.pos, utc_date(arg.sql), nesting=nesting)
        return Operand("integer", name.pos, UTC_PARTS[fn](arg.sql), nesting=nesting)

    def string_sql(self, arg: Operand) -> Any:
        return literal(arg.value, String()) if arg.is_literal else arg.sql

    def string_predicate(self, fn: str, name: Token, args: list[Operand]) -> Operand:
        if len(args) != 2:
            raise self.error(name.pos, f"{name.text}() takes two arguments: a string field and a string")
        haystack, needle = args
        if haystack.is_literal:
            raise self.error(haystack.pos, f"the first argument of {name.text}() must be a field")
        for arg in args:
            if arg.kind != "string":
                raise self.error(arg.pos, f"{name.text}() works on strings")
        self.nest(name.pos, *args)
        needle_sql = self.string_sql(needle)
        if fn == "contains":
            condition = strpos(haystack.sql, needle_sql) > 0
        elif fn == "startswith":
            condition = strpos(haystack.sql, needle_sql) == 1
        else:
            tail_start = func.length(haystack.sql) - func.length(needle_sql) + 1
            condition = and_(
                func.length(haystack.sql) >= func.length(needle_sql),
                func.substr(haystack.sql, tail_start) == needle_sql,
            )
        return Operand("bool", name.pos, condition)

    def two_strings(self, fn: str, name: Token, args: list[Operand]) -> Operand:
        if len(args) != 2:
            raise self.error(name.pos, f"{fn}() takes two strings")
        for arg in args:
            if arg.kind != "string":
                raise self.error(arg.pos, f"{fn}() works on strings")
        if all(arg.is_literal for arg in args):
            raise self.error(name.pos, f"{fn}() needs a field or a function of a field")
        first, second = (self.string_sql(arg) for arg in args)
        nesting = self.nest(name.pos, *args)
        if fn == "indexof":  # 0-based, -1 when absent
            return Operand("integer", name.pos, strpos(first, second) - 1, nesting=nesting)
        return Operand("string", name.pos, first.concat(second), nesting=nesting)

    def substring(self, name: Token, args: list[Operand]) -> Operand:
        if len(args) not in (2, 3):
            raise self.error(name.pos, "substring() takes a string, a 0-based start and optionally a length")
        text, *positions = args
        if text.kind != "string" or text.is_literal:
            raise self.error(text.pos, "the first argument of substring() must be a string field or function")
        # SQL counts from 1 and PostgreSQL's substr takes int4: a negative start or length counts
        # as 0 (clamped here for a literal, so any size binds; by CASE for a field).
        bounds = []
        for offset, arg in zip((1, 0), positions, strict=False):
            if not arg.integral or arg.computed:
                raise self.error(arg.pos, "substring() positions are whole numbers (literals or integer fields)")
            if arg.is_literal:
                bounds.append(literal(min(max(arg.value, 0), 10**9) + offset, Integer()))
            else:
                bounds.append(cast(case((arg.sql < 0, 0), else_=arg.sql) + offset, Integer()))
        nesting = self.nest(name.pos, *args)
        return Operand("string", name.pos, func.substr(text.sql, *bounds), nesting=nesting)

    # -- arithmetic ----------------------------------------------------------------------------
    def numeric_sql(self, operand: Operand) -> Any:
        return literal(operand.value, ExactNumber()) if operand.is_literal else operand.sql

    def arithmetic(self, op: Token, left: Operand, right: Operand) -> Operand:
        word = op.word() or ""
        for side in (left, right):
            if side.kind not in _NUMERIC:
                raise self.error(side.pos, f"'{word}' works on numbers, not on a {side.kind}")
        self.count_operator(op.pos)
        integral = left.integral and right.integral and word != "divby"
        if right.is_literal and word in ("div", "divby", "mod") and right.value == 0:
            raise self.error(right.pos, "division by zero")
        if left.is_literal and right.is_literal:
            try:
                value = _fold(word, left.value, right.value, integral)
            except ArithmeticError:
                raise self.error(op.pos, "the result is out of range") from None
            return Operand("number", left.pos, value=value, is_literal=True)
        sql_op = "idiv" if word == "div" and integral else _OPERATOR_NAMES[word]
        sql = EXACT_ARITHMETIC[sql_op](self.numeric_sql(left), self.numeric_sql(right))
        nesting = self.nest(op.pos, left, right)
        return Operand("integer" if integral else "decimal", left.pos, sql, computed=True, nesting=nesting)

    def negate(self, minus: Token, inner: Operand) -> Operand:
        if inner.kind not in _NUMERIC:
            raise self.error(inner.pos, f"'-' works on numbers, not on a {inner.kind}")
        if inner.is_literal:
            return Operand("number", minus.pos, value=-inner.value, is_literal=True)
        self.count_operator(minus.pos)
        kind = "integer" if inner.integral else "decimal"
        nesting = self.nest(minus.pos, inner)
        return Operand(kind, minus.pos, EXACT_ARITHMETIC["neg"](inner.sql), computed=True, nesting=nesting)

    # -- typing and binding --------------------------------------------------------------------
    def bind_simple(self, target: Operand, value: Operand, op: Token) -> Any:
        """A bound string or date literal compared with non-literal ``target``."""
        if target.kind == "string":
            if value.kind != "string":
                raise self.error(value.pos, "expected a string literal such as 'abc' (strings are quoted)")
            return literal(value.value, String())
        if value.kind != "date":
            raise self.error(value.pos, "expected a date such as 2026-06-01 (date() gives a UTC calendar date)")
        return literal(value.value, Date())

    def compare(self, left: Operand, op: str, token: Token, right: Operand) -> Operand:
        if left.is_literal and right.is_literal:
            raise self.error(left.pos, "one side of a comparison must be a field or a function of a field")
        if left.kind == "null" or right.kind == "null":
            other = right if left.kind == "null" else left
            if other.kind == "bool":
                raise self.error(other.pos, "a condition is never null")
            if op == "eq":
                return Operand("bool", left.pos, other.sql.is_(None))
            if op == "ne":
                return Operand("bool", left.pos, other.sql.is_not(None))
            raise self.error(token.pos, "null can only be compared with eq or ne")
        if left.is_literal:
            return Operand("bool", left.pos, self.compare_sql(right, _MIRRORED[op], token, left))
        return Operand("bool", left.pos, self.compare_sql(left, op, token, right))

    def compare_sql(self, left: Operand, op: str, token: Token, right: Operand) -> ColumnElement[bool]:
        """``left op right`` where ``left`` is not a literal (``right`` may be)."""
        if left.kind == "bool" or right.kind == "bool":
            return self.compare_conditions(left, op, token, right)
        compatible = left.kind == right.kind or (left.kind in _NUMERIC and right.kind in _NUMERIC)
        if right.is_literal and left.kind == "datetime" and right.kind == "date":
            compatible = True  # a date compared with a timestamp is midnight UTC of that day
        if not compatible:
            if right.is_literal:
                raise self.error(right.pos, self.literal_expected(left))
            raise self.error(right.pos, f"cannot compare a {left.kind} with a {right.kind}")
        if left.kind in _NUMERIC:
            return self.compare_numbers(left, op, token, right)
        if left.kind == "datetime" and right.is_literal:
            return self.compare_moment(left, op, right)
        rhs = self.bind_simple(left, right, token) if right.is_literal else right.sql
        return _NATIVE_OPERATORS[op](left.sql, rhs)

    @staticmethod
    def literal_expected(target: Operand) -> str:
        return {
            "string": "expected a string literal such as 'abc' (strings are quoted)",
            "datetime": "expected a date (2026-06-01) or datetime (2026-06-01T00:00:00Z)",
            "date": "expected a date such as 2026-06-01 (date() gives a UTC calendar date)",
        }.get(target.kind, "expected a number")

    def compare_conditions(self, left: Operand, op: str, token: Token, right: Operand) -> ColumnElement[bool]:
        """A condition compared with ``true`` or ``false`` (``contains(id, 'x') eq false``)."""
        if not (left.kind == "bool" and right.kind == "bool" and right.is_literal) or op not in ("eq", "ne"):
            bad = right if left.kind == "bool" else left
            raise self.error(bad.pos, "conditions cannot be compared; combine them with and/or/not")
        wanted = right.value if op == "eq" else not right.value
        return left.sql if wanted else not_(left.sql)

    def compare_numbers(self, left: Operand, op: str, token: Token, right: Operand) -> ColumnElement[bool]:
        if left.computed or right.computed:
            self.nest(token.pos, left, right)
            return EXACT_COMPARISONS[op](self.numeric_sql(left), self.numeric_sql(right))
        if not right.is_literal:
            return _NATIVE_OPERATORS[op](left.sql, right.sql)
        return self.compare_with_grid(left, op, Decimal(right.value))

    def compare_with_grid(self, left: Operand, op: str, value: Decimal) -> ColumnElement[bool]:
        """A money or integer column (or integer function) against any number, exactly.

        Such values lie on a grid (cents, units). A literal between grid points is replaced by the
        grid point below it, with the operator adjusted: ``totalAmount gt 1.234`` is ``> 1.23``,
        ``le 1.234`` is ``<= 1.23``, ``eq 1.234`` is never true. A literal beyond any storable
        value is replaced by the bound, so it binds safely and gives the same answer.
        """
        step = _GRID["money" if left.kind == "money" else "integer"]
        sql_type = Money() if left.kind == "money" else BigInteger()
        clamped = max(min(value, COLUMN_BOUND + step / 2), -COLUMN_BOUND - step / 2)
        floor = (clamped / step).to_integral_value(rounding="ROUND_FLOOR") * step
        if floor == clamped:
            bound = literal(int(floor) if left.kind != "money" else floor, sql_type)
            return _NATIVE_OPERATORS[op](left.sql, bound)
        below = literal(int(floor) if left.kind != "money" else floor, sql_type)
        if op == "eq":
            return false()
        if op == "ne":
            return left.sql.is_not(None)
        if op in ("gt", "ge"):
            return left.sql > below
        return left.sql <= below

    def compare_moment(self, left: Operand, op: str, right: Operand) -> ColumnElement[bool]:
        """A timestamp against a date (midnight UTC, an instant) or a datetime literal (a span)."""
        if right.kind == "date":
            start = datetime(right.value.year, right.value.month, right.value.day, tzinfo=UTC)
            return _NATIVE_OPERATORS[op](left.sql, literal(start, UTCDateTime()))
        column, start = left.sql, right.value
        begins = column >= literal(start, UTCDateTime())
        before_start = column < literal(start, UTCDateTime())
        try:
            end = literal(start + right.span, UTCDateTime())
        except OverflowError:  # the last span of year 9999: nothing lies after it
            ends, after_end = column.is_not(None), false()
        else:
            ends, after_end = column < end, column >= end
        return {
            "eq": and_(begins, ends),
            "ne": or_(before_start, after_end),
            "gt": after_end,
            "ge": begins,
            "lt": before_start,
            "le": ends,
        }[op]


def compile_filter(expression: str, *, parameter: str = "$filter") -> ColumnElement[bool]:
    """Compile an OData ``$filter`` expression to a boolean SQL expression over ``orders``.

    Use it as ``select(Order).where(compile_filter(text))``; the expression may contain a
    correlated ``EXISTS`` on ``order_items`` (for ``items/any``), which correlates to the
    enclosing ``orders`` table. Every value is a bound parameter. Raises
    :class:`services.errors.InvalidQuery` (with ``parameter`` and the 0-based position in its
    details) for anything outside the language or its limits; never any other exception for any
    input string.
    """
    if not isinstance(expression, str):
        raise InvalidQuery.at(parameter, 0, "the filter must be a string")
    if len(expression) > MAX_LENGTH:
        raise InvalidQuery.at(parameter, MAX_LENGTH, f"the filter is longer than {MAX_LENGTH} characters")
    try:
        return _Parser(expression, parameter).parse()
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps recursion far below the limit
        raise InvalidQuery.at(parameter, 0, "expression nested too deeply") from None
