"""``$filter``: the OData subset of API.md, compiled to a SQLAlchemy boolean expression.

Why a hand-written parser and not a wrapper around ``odata-query`` 0.10: the contract asks for
three things that library does not give and that a wrapper would have to bolt on from outside:

* the *position* of every error (its sly-based lexer/parser reports tokens, and type errors are
  raised later by the SQLAlchemy visitor without any position at all);
* hard limits checked while parsing (length, nesting depth, number of terms, ``in`` list size)
  rather than after a deep recursion has already happened (a 500-term ``or`` overflows it);
* type checking against *our* field map (``totalAmount eq 'abc'`` is a 400, not a database
  error), case-sensitive string functions that behave the same on SQLite and PostgreSQL, and a
  lambda restricted to the one collection we expose.

The language is small (one precedence ladder, six comparison operators, eight functions, one
lambda), so a recursive-descent parser of a few hundred lines, compiling straight to SQLAlchemy
with every value as a bound parameter, is the smaller and safer thing to own.

Grammar (keywords are lower case, as in OData)::

    filter     := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison          # not binds looser than eq: not a eq 1 == not (a eq 1)
    comparison := operand [(eq|ne|gt|ge|lt|le) operand | "in" "(" literal ("," literal)* ")"]
    operand    := "(" or ")" | function "(" args ")" | "items/any(" [var ":" or] ")"
                | "items/all(" var ":" or ")" | var "/" itemField | field | literal
    literal    := 'string' (quote doubled inside) | number | date | datetime | null

Semantics worth knowing: a date literal compared with a timestamp means midnight UTC of that
day; ``year``/``month``/``day`` read the UTC calendar; ``contains``/``startswith``/``endswith``
are case-sensitive (wrap the field in ``tolower`` for a case-insensitive match).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import BigInteger, String, and_, exists, func, literal, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from models.types import Money, UTCDateTime
from services.kernel.errors import InvalidQuery
from services.orders.query.fields import COLLECTIONS, FIELDS, FieldSpec
from services.orders.query.sqlfuncs import UTC_PARTS, strpos

MAX_LENGTH = 2000
MAX_DEPTH = 16
MAX_TERMS = 100
MAX_IN_VALUES = 100
MAX_NUMBER = Decimal(10) ** 15

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
KEYWORDS = frozenset({*COMPARISONS, "and", "or", "not", "in", "null"})
STRING_PREDICATES = ("contains", "startswith", "endswith")
FUNCTIONS = frozenset({*STRING_PREDICATES, "tolower", "toupper", *UTC_PARTS})

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<datetime>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}
                 (?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)
  | (?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),/:])
  | (?P<quote>')
    """,
    re.VERBOSE | re.ASCII,
)


@dataclass(frozen=True)
class Token:
    kind: str  # string number date datetime ident punct eof
    text: str
    pos: int
    value: Any = None


@dataclass(frozen=True)
class Operand:
    """A compiled operand: its SQL (or Python value for literals), its kind and where it started.

    ``kind`` is one of string money integer number datetime date bool null.
    """

    kind: str
    pos: int
    sql: Any = None
    value: Any = None
    is_literal: bool = False


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
    if abs(value) >= MAX_NUMBER:
        raise error(pos, f"number {text!r} is out of range (at most 15 integer digits)")
    return int(value) if "." not in text else value


def _parse_datetime(text: str, pos: int, error: _Errors) -> datetime:
    if not (text.endswith("Z") or re.search(r"[+-][0-9]{2}:[0-9]{2}$", text)):
        raise error(pos, "a datetime literal needs 'Z' or an offset, e.g. 2026-06-01T00:00:00Z")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise error(pos, f"invalid datetime {text!r}") from None


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
            tokens.append(Token(kind, token_text, i, _parse_datetime(token_text, i, error)))
        elif kind in ("ident", "punct"):
            tokens.append(Token(kind, token_text, i))
        i = end


_NUMERIC = ("money", "integer", "number")


class _Parser:
    def __init__(self, text: str, parameter: str) -> None:
        self.error = _Errors(parameter, text)
        self.tokens = tokenize(text, self.error)
        self.index = 0
        self.depth = 0
        self.terms = 0
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
        token = self.peek()
        return token.kind == "ident" and token.text in words

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

    def require_bool(self, operand: Operand, where: str) -> ColumnElement[bool]:
        if operand.kind != "bool":
            raise self.error(operand.pos, f"{where} must be a condition (a comparison or a boolean function)")
        return operand.sql

    # -- grammar -------------------------------------------------------------------------------
    def parse(self) -> ColumnElement[bool]:
        if not self.error.text.strip():
            raise self.error(0, "empty expression")
        result = self.parse_or()
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
        left = self.parse_operand()
        token = self.peek()
        if token.kind == "ident" and token.text in COMPARISONS:
            self.advance()
            right = self.parse_operand()
            self.count_term(left.pos)
            return self.compare(left, token, right)
        if token.kind == "ident" and token.text == "in":
            self.advance()
            self.count_term(left.pos)
            return self.parse_in(left, token)
        return left

    def parse_in(self, left: Operand, op: Token) -> Operand:
        self.expect_punct("(", "'(' after 'in'")
        values: list[Operand] = []
        while True:
            token = self.peek()
            value = self.parse_operand()
            if not value.is_literal or value.kind == "null":
                raise self.error(token.pos, "'in' lists hold values (strings, numbers, dates), not fields or null")
            values.append(value)
            if len(values) > MAX_IN_VALUES:
                raise self.error(token.pos, f"too many values in 'in' (at most {MAX_IN_VALUES})")
            if self.peek().kind == "punct" and self.peek().text == ",":
                self.advance()
                continue
            self.expect_punct(")", "',' or ')' in the 'in' list")
            break
        if left.is_literal:
            raise self.error(left.pos, "the left side of 'in' must be a field or a function of a field")
        bound = [self.bind(left, value, op) for value in values]
        return Operand("bool", left.pos, left.sql.in_(bound))

    def parse_operand(self) -> Operand:
        token = self.advance()
        if token.kind == "punct" and token.text == "(":
            self.enter(token.pos)
            inner = self.parse_or()
            self.expect_punct(")", "')'")
            self.leave()
            return Operand(inner.kind, token.pos, inner.sql, inner.value, inner.is_literal)
        if token.kind == "string":
            return Operand("string", token.pos, value=token.value, is_literal=True)
        if token.kind == "number":
            return Operand("number", token.pos, value=token.value, is_literal=True)
        if token.kind == "date":
            return Operand("date", token.pos, value=token.value, is_literal=True)
        if token.kind == "datetime":
            return Operand("datetime", token.pos, value=token.value, is_literal=True)
        if token.kind != "ident":
            raise self.error(token.pos, f"expected a field, a value or a function, found {_describe(token)}")
        name = token.text
        following = self.peek()
        if following.kind == "punct" and following.text == "(":
            return self.parse_function(token)
        if following.kind == "punct" and following.text == "/":
            return self.parse_path(token)
        if name == "null":
            return Operand("null", token.pos, is_literal=True)
        if name in KEYWORDS:
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
            if member.text not in ("any", "all"):
                raise self.error(member.pos, f"expected any(...) or all(...) after {head.text}/")
            return self.parse_lambda(head, member)
        raise self.error(head.pos, f"{head.text!r} is not a collection or a lambda variable")

    def parse_lambda(self, collection: Token, operator: Token) -> Operand:
        if self.lambda_var is not None:
            raise self.error(collection.pos, "nested lambdas are not supported")
        item_fields, correlation = COLLECTIONS[collection.text]
        self.expect_punct("(", f"'(' after {operator.text}")
        self.enter(operator.pos)
        self.count_term(collection.pos)
        closing = self.peek()
        if closing.kind == "punct" and closing.text == ")":
            if operator.text == "all":
                raise self.error(closing.pos, "all() needs a condition, e.g. items/all(i: i/status eq 'fulfilled')")
            self.advance()
            self.leave()
            return Operand("bool", collection.pos, exists().where(correlation))
        variable = self.advance()
        if variable.kind != "ident" or variable.text in KEYWORDS or variable.text in FIELDS:
            raise self.error(variable.pos, f"expected a lambda variable name (such as i), found {_describe(variable)}")
        self.expect_punct(":", "':' after the lambda variable")
        self.lambda_var, self.lambda_fields = variable.text, item_fields
        try:
            body = self.require_bool(self.parse_or(), "a lambda body")
        finally:
            self.lambda_var, self.lambda_fields = None, {}
        self.expect_punct(")", "')' closing the lambda")
        self.leave()
        if operator.text == "any":
            return Operand("bool", collection.pos, exists().where(correlation, body))
        return Operand("bool", collection.pos, not_(exists().where(correlation, not_(body))))

    def parse_function(self, name: Token) -> Operand:
        if name.text not in FUNCTIONS:
            raise self.error(name.pos, f"unknown function {name.text!r}; functions are: {', '.join(sorted(FUNCTIONS))}")
        self.advance()  # '('
        self.enter(name.pos)
        args: list[Operand] = []
        if not (self.peek().kind == "punct" and self.peek().text == ")"):
            while True:
                args.append(self.parse_or())
                if self.peek().kind == "punct" and self.peek().text == ",":
                    self.advance()
                    continue
                break
        self.expect_punct(")", f"',' or ')' in {name.text}(...)")
        self.leave()
        fn = name.text
        if fn in STRING_PREDICATES:
            self.count_term(name.pos)
            return self.string_predicate(name, args)
        if len(args) != 1:
            raise self.error(name.pos, f"{fn}() takes one argument")
        [arg] = args
        if arg.is_literal:
            raise self.error(arg.pos, f"{fn}() needs a field or a function of a field")
        if fn in ("tolower", "toupper"):
            if arg.kind != "string":
                raise self.error(arg.pos, f"{fn}() needs a string field")
            return Operand("string", name.pos, (func.lower if fn == "tolower" else func.upper)(arg.sql))
        if arg.kind != "datetime":
            raise self.error(arg.pos, f"{fn}() needs a timestamp field (createdAt, updatedAt)")
        return Operand("integer", name.pos, UTC_PARTS[fn](arg.sql))

    def string_predicate(self, name: Token, args: list[Operand]) -> Operand:
        if len(args) != 2:
            raise self.error(name.pos, f"{name.text}() takes two arguments: a string field and a string")
        haystack, needle = args
        if haystack.is_literal:
            raise self.error(haystack.pos, f"the first argument of {name.text}() must be a field")
        for arg in args:
            if arg.kind != "string":
                raise self.error(arg.pos, f"{name.text}() works on strings")
        needle_sql = literal(needle.value, String()) if needle.is_literal else needle.sql
        if name.text == "contains":
            condition = strpos(haystack.sql, needle_sql) > 0
        elif name.text == "startswith":
            condition = strpos(haystack.sql, needle_sql) == 1
        else:
            tail_start = func.length(haystack.sql) - func.length(needle_sql) + 1
            condition = and_(
                func.length(haystack.sql) >= func.length(needle_sql),
                func.substr(haystack.sql, tail_start) == needle_sql,
            )
        return Operand("bool", name.pos, condition)

    # -- typing and binding --------------------------------------------------------------------
    def bind(self, target: Operand, value: Operand, op: Token) -> Any:
        """A bound parameter for literal ``value`` compared with non-literal ``target``."""
        kind = target.kind
        if kind == "string":
            if value.kind != "string":
                raise self.error(value.pos, "expected a string literal such as 'abc' (strings are quoted)")
            return literal(value.value, String())
        if kind in ("money", "integer"):
            if value.kind != "number":
                raise self.error(value.pos, "expected a number")
            number = value.value
            if kind == "integer":
                if not isinstance(number, int):
                    raise self.error(value.pos, "expected a whole number")
                return literal(number, BigInteger())
            decimal = Decimal(number)
            if decimal != decimal.quantize(Decimal("0.01")):
                raise self.error(value.pos, "amounts have at most two decimals")
            return literal(decimal, Money())
        if kind == "datetime":
            if value.kind == "date":
                moment = datetime(value.value.year, value.value.month, value.value.day, tzinfo=UTC)
            elif value.kind == "datetime":
                moment = value.value
            else:
                raise self.error(value.pos, "expected a date (2026-06-01) or datetime (2026-06-01T00:00:00Z)")
            return literal(moment, UTCDateTime())
        raise self.error(target.pos, f"cannot compare a {kind} with {op.text!r}")

    def compare(self, left: Operand, op: Token, right: Operand) -> Operand:
        if left.kind == "bool" or right.kind == "bool":
            bad = left if left.kind == "bool" else right
            raise self.error(bad.pos, "conditions cannot be compared; combine them with and/or/not")
        if left.is_literal and right.is_literal:
            raise self.error(left.pos, "one side of a comparison must be a field or a function of a field")
        if left.kind == "null" or right.kind == "null":
            other = right if left.kind == "null" else left
            if op.text == "eq":
                return Operand("bool", left.pos, other.sql.is_(None))
            if op.text == "ne":
                return Operand("bool", left.pos, other.sql.is_not(None))
            raise self.error(op.pos, "null can only be compared with eq or ne")
        if left.is_literal:
            lhs, rhs = self.bind(right, left, op), right.sql
        elif right.is_literal:
            lhs, rhs = left.sql, self.bind(left, right, op)
        else:
            compatible = left.kind == right.kind or (left.kind in _NUMERIC and right.kind in _NUMERIC)
            if not compatible:
                raise self.error(right.pos, f"cannot compare a {left.kind} with a {right.kind}")
            lhs, rhs = left.sql, right.sql
        operators = {
            "eq": lambda a, b: a == b,
            "ne": lambda a, b: a != b,
            "gt": lambda a, b: a > b,
            "ge": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "le": lambda a, b: a <= b,
        }
        return Operand("bool", left.pos, operators[op.text](lhs, rhs))


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
