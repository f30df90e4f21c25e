"""Expressions and templates, run in a Jinja2 sandbox (pure: no I/O).

Admins write mapping conditions (``answers.budget == 'high'``) and mail templates
(``New lead: {{ lead.company }}``); the values come from leads typed in by anyone. Both are
untrusted, so everything runs in an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`
tightened further:

* **No internals.** Names, attributes and keys starting with ``_`` are refused when the
  template is compiled; ``self``, ``super``, ``{% extends/include/import %}``, macros, call
  blocks, ``{% block %}``, recursive loops and ``{% autoescape %}`` are refused too. At run
  time only a short allow-list of attributes exists: harmless ``str`` methods
  (``upper``, ``startswith``, ``split``, …), ``dict.get/keys/values/items``, the ``loop``
  variable. Anything else (``''.__class__``, ``(1).to_bytes``, ``'{:>9999999}'.format``)
  raises :class:`RenderFailed`.
* **No globals but a bounded** ``range`` (at most :data:`MAX_RANGE` items): no ``lipsum``,
  ``cycler``, ``joiner``, ``namespace``, ``dict``.
* **Bounded work and memory.** Every loop iteration is counted against
  :data:`MAX_LOOP_STEPS` per render; ``~``, ``+``, ``*`` and the ``join``/``replace``
  filters refuse results over :data:`MAX_VALUE_CHARS`; so does the result of every call
  (``split``, ``splitlines``, …); integers are bounded at :data:`MAX_POWER_BITS` bits
  whatever builds them (``**``, and ``*`` — squaring a number 19 times doubles its size
  each step); ``%`` string formatting is refused; the rendered output is cut off with an
  error at ``max_chars`` (default :data:`MAX_OUTPUT_CHARS`). Each render or evaluation
  also has a time budget of :data:`MAX_RENDER_SECONDS`, checked at every loop step,
  operator and call: whatever slipped through the bounds above stops there.
* **A small set of filters** for mail: ``upper lower title capitalize trim default (d)
  join truncate replace first last length (count) escape (e) format_date``.

Undefined values (decided here, once):

* In **templates** a missing value renders as the empty string, and chained access on it
  (``answers.missing.deeper``) stays empty: a question left unanswered must not stop a
  notification. Using it in arithmetic or calling it is an error. Typos in top-level
  names are caught when the template is *checked* (``known_names``), not at send time.
  ``render(..., strict=True)`` makes any undefined value an error instead (for previews).
* In **expressions** an undefined value is falsy and compares unequal to everything, so
  ``answers.budget == 'high'`` is simply false when the question was not answered;
  :func:`evaluate` returns ``None`` for an undefined result.

Errors: :class:`TemplateInvalid` (syntax or a refused construct, found before running,
with the ``line``) and :class:`RenderFailed` (at run time, with the ``line`` when known).
Both are :class:`~visitmail.domain.errors.InvalidInput` and carry a message, never a stack
trace. Compiled templates are cached per process.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from types import TracebackType
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, Undefined, nodes
from jinja2.environment import Template, TemplateExpression
from jinja2.exceptions import (
    SecurityError,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.filters import (
    do_capitalize,
    do_default,
    do_first,
    do_last,
    do_lower,
    do_title,
    do_trim,
    do_truncate,
    do_upper,
)
from jinja2.meta import find_undeclared_variables
from jinja2.parser import Parser
from jinja2.runtime import Context, LoopContext, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_context, pass_eval_context
from jinja2.visitor import NodeTransformer
from markupsafe import escape

from visitmail.domain.errors import InvalidInput

MAX_TEMPLATE_CHARS = 100_000  # source size accepted by the sandbox at all
MAX_OUTPUT_CHARS = 100_000  # default bound of a rendered template
MAX_VALUE_CHARS = 100_000  # bound of any string or list built while rendering
MAX_LOOP_STEPS = 10_000  # loop iterations per render, all loops together
MAX_RANGE = 1_000  # items of one range()
MAX_POWER_BITS = 4_096  # size of any integer built by ``**`` or ``*``
MAX_RENDER_SECONDS = 1.0  # time budget of one render or evaluation
_MAX_MESSAGE = 300

__all__ = [
    "FILTERS",
    "MAX_LOOP_STEPS",
    "MAX_OUTPUT_CHARS",
    "MAX_RANGE",
    "MAX_TEMPLATE_CHARS",
    "MAX_VALUE_CHARS",
    "RenderFailed",
    "SandboxError",
    "TemplateInvalid",
    "check_expression",
    "check_template",
    "evaluate",
    "field_references",
    "is_template",
    "render",
]


class SandboxError(InvalidInput):
    """A template or expression that cannot be used. ``reason`` is the message without
    the line; ``line`` is the 1-based source line when known."""

    code = "template_error"

    def __init__(self, reason: str, *, line: int | None = None, field: str | None = None):
        message = f"line {line}: {reason}" if line is not None else reason
        super().__init__(message, field=field)
        self.reason = reason
        self.line = line


class TemplateInvalid(SandboxError):
    """The source does not compile: a syntax error, a refused construct (``self``,
    ``_private`` names, ``{% include %}``, …), an unknown filter or an unknown name."""

    code = "template_invalid"


class RenderFailed(SandboxError):
    """Running the template or expression failed: a refused attribute, an undefined value
    used in strict mode or in arithmetic, a limit exceeded, a type error in the template."""

    code = "render_failed"


def is_template(text: str) -> bool:
    """True when ``text`` holds Jinja syntax (``{{``, ``{%`` or ``{#``); mapping fields
    such as recipients are static values otherwise."""
    return "{{" in text or "{%" in text or "{#" in text


# --- per-render budget ---------------------------------------------------------------


#: The clock of the time budget (a module attribute, so tests can stall it at will).
clock: Callable[[], float] = time.perf_counter


@dataclass(slots=True)
class _Budget:
    deadline: float
    loop_steps: int = MAX_LOOP_STEPS


def _new_budget() -> _Budget:
    return _Budget(deadline=clock() + MAX_RENDER_SECONDS)


_BUDGET: ContextVar[_Budget | None] = ContextVar("visitmail_sandbox_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # only reachable if someone runs a compiled template by hand
        raise SecurityError("templates run only through visitmail.domain.sandbox")
    if clock() > budget.deadline:
        raise SecurityError(f"took longer than {MAX_RENDER_SECONDS:g} s")
    return budget


def _spend_loop_step() -> None:
    budget = _budget()
    budget.loop_steps -= 1
    if budget.loop_steps < 0:
        raise SecurityError(f"more than {MAX_LOOP_STEPS} loop iterations")


def _weight(value: Any, limit: int = MAX_VALUE_CHARS) -> int:
    """Roughly the characters ``value`` takes when shown: string lengths plus one per item,
    through nested lists and dicts. Stops counting past ``limit`` (so the cost of the check
    is bounded too, even for a list that holds the same list twice at every level)."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list | tuple | dict):
            total += 1 + len(item)
            if total <= limit:
                stack.extend(item.items() if isinstance(item, dict) else item)
        else:
            total += 1
    return total


def _check_weight(weight: int, what: str) -> None:
    if weight > MAX_VALUE_CHARS:
        raise SecurityError(f"{what} would be longer than {MAX_VALUE_CHARS} characters")


# --- filters and globals --------------------------------------------------------------


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE} items")
    return rng


@pass_context
def _guard_iter(context: Context, value: Any) -> Iterator[Any]:
    """Wraps every ``{% for %}`` iterable (inserted at compile time) to count iterations."""
    del context  # pass_context only keeps the compiler from evaluating this early
    for item in value:
        _spend_loop_step()
        yield item


@pass_context
def _guard_concat(context: Context, parts: list[Any]) -> str:
    """Replaces ``a ~ b`` (inserted at compile time) to bound the result's size."""
    _check_weight(sum(_weight(part) for part in parts), "a joined string")
    joined: str = (markup_join if context.eval_ctx.autoescape else str_join)(parts)
    return joined


@pass_context
def _guard_container(context: Context, value: Any) -> Any:
    """Wraps every list, tuple and dict literal (inserted at compile time): nesting a
    value into itself (``[l, l]`` again and again) cannot grow past the bound."""
    del context  # pass_context only keeps the compiler from evaluating this early
    _check_weight(_weight(value), "a list")
    return value


@pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "") -> str:
    items = list(value)
    _check_weight(_weight(items) + len(str(d)) * len(items), "join: the result")
    texts = ["" if item is None else str(item) for item in items]
    _check_weight(sum(map(len, texts)) + len(str(d)) * max(len(texts) - 1, 0), "join: the result")
    if eval_ctx.autoescape and (
        hasattr(d, "__html__") or any(hasattr(item, "__html__") for item in items)
    ):
        # mixing marked-up and plain items: escape the plain ones, as Jinja's join does
        return escape(d).join(escape(item) for item in items)
    return str(d).join(texts)


def _replace(value: Any, old: str, new: str, count: int | None = None) -> str:
    # the output is escaped on the way out; Markup.replace escapes its arguments
    text = "" if value is None or isinstance(value, Undefined) else value
    if not isinstance(text, str):
        text = str(text)
    old, new = str(old), str(new)
    hits = text.count(old) if count is None else min(text.count(old), max(count, 0))
    if len(text) + hits * (len(new) - len(old)) > MAX_VALUE_CHARS:
        raise SecurityError(
            f"replace: the result would be longer than {MAX_VALUE_CHARS} characters"
        )
    return text.replace(old, new, -1 if count is None else count)


def _length(value: Any) -> int:
    return len(value) if hasattr(value, "__len__") else len(list(value))


_DATE_FORMAT = re.compile(r"^(?:[^%]|%[dmYyHMS%])*$")


def format_date(value: Any, fmt: str = "%Y-%m-%d") -> str:
    """``captured_at|format_date('%d.%m.%Y')``: an ISO 8601 string, date or datetime
    formatted with only ``%d %m %Y %y %H %M %S %%`` (no locale-dependent names, no surprises
    from the C library). Empty or undefined renders empty; anything else that is not a date
    raises."""
    if value is None or isinstance(value, Undefined) or value == "":
        return ""
    if not isinstance(fmt, str) or len(fmt) > 64 or not _DATE_FORMAT.match(fmt):
        raise ValueError("format_date: only %d %m %Y %y %H %M %S %% may be used (64 chars max)")
    if isinstance(value, datetime | date):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"format_date: {value[:40]!r} is not an ISO 8601 date") from None
    else:
        raise ValueError(f"format_date: a {type(value).__name__} is not a date")
    return moment.strftime(fmt)


FILTERS: dict[str, Callable[..., Any]] = {
    "upper": do_upper,
    "lower": do_lower,
    "title": do_title,
    "capitalize": do_capitalize,
    "trim": do_trim,
    "default": do_default,
    "d": do_default,
    "join": _join,
    "truncate": do_truncate,
    "replace": _replace,
    "first": do_first,
    "last": do_last,
    "length": _length,
    "count": _length,
    "escape": escape,
    "e": escape,
    "format_date": format_date,
}
"""The filters templates may use (the internal ``_guard_*`` ones are added by the
compiler, not callable by name)."""

_INTERNAL_FILTERS: dict[str, Callable[..., Any]] = {
    "_guard_iter": _guard_iter,
    "_guard_concat": _guard_concat,
    "_guard_container": _guard_container,
}

# --- attributes -----------------------------------------------------------------------

_STR_METHODS = frozenset(
    {
        "upper", "lower", "title", "capitalize", "casefold", "swapcase",
        "strip", "lstrip", "rstrip", "removeprefix", "removesuffix",
        "startswith", "endswith", "count", "find", "rfind",
        "split", "rsplit", "splitlines", "partition", "rpartition",
        "isdigit", "isdecimal", "isnumeric", "isalpha", "isalnum", "isspace",
        "isupper", "islower", "istitle",
    }
)  # fmt: skip
_DICT_METHODS = frozenset({"get", "keys", "values", "items"})
_SEQUENCE_METHODS = frozenset({"count", "index"})


class _MailSandbox(ImmutableSandboxedEnvironment):
    """The one sandbox. Attribute access is an allow-list, not the default deny-list."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_") or not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, Undefined | LoopContext):
            return True
        if isinstance(obj, str):
            return attr in _STR_METHODS
        if isinstance(obj, dict):
            return attr in _DICT_METHODS
        if isinstance(obj, list | tuple):
            return attr in _SEQUENCE_METHODS
        return False

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # str.format would bypass is_safe_attribute (and allows '{:>999999999}'); it is
        # simply not on the allow-list.
        return None

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _budget()
        if operator == "%" and isinstance(left, str):
            raise SecurityError("'%' string formatting is not available; use {{ … }}")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    _check_weight(_weight(seq) * max(times, 0), "the result")
        if operator == "+" and isinstance(left, str | list | tuple):
            _check_weight(_weight(left) + _weight(right), "the result")
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and abs(left) > 1
            and right * abs(left).bit_length() > MAX_POWER_BITS
        ):
            raise SecurityError("the power is too large")
        if (
            operator == "*"
            and isinstance(left, int)
            and isinstance(right, int)
            and abs(left).bit_length() + abs(right).bit_length() > MAX_POWER_BITS
        ):
            raise SecurityError("the number is too large")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's own signature
        _budget()
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | list | tuple | dict):
            _check_weight(_weight(result), "the result")
        return result

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(
            f"access to {attribute!r} on a value of type {type(obj).__name__} is not allowed"
        )


def _finalize(value: Any) -> Any:
    """How a ``{{ value }}`` shows: ``None`` as empty, a list as ``a, b, c`` (what a mail
    wants, not Python's ``['a', 'b']``); a function is a mistake (a missing ``()``)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        _check_weight(_weight(value) * 2, "the list")
        return ", ".join("" if item is None else str(item) for item in value)
    if callable(value) and not isinstance(value, Undefined):
        raise TypeError("a function cannot be shown; did you forget the '()'?")
    return value


@lru_cache(maxsize=4)
def _environment(*, autoescape: bool, strict: bool) -> _MailSandbox:
    env = _MailSandbox(
        autoescape=autoescape,
        undefined=StrictUndefined if strict else ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
        cache_size=0,
        auto_reload=False,
    )
    env.globals.clear()
    env.globals["range"] = _bounded_range
    env.filters.clear()
    env.filters.update(FILTERS)
    env.filters.update(_INTERNAL_FILTERS)
    return env


# --- checking and compiling -----------------------------------------------------------

_REFUSED_STATEMENTS: dict[type[nodes.Node], str] = {
    nodes.Extends: "{% extends %} is not available",
    nodes.Include: "{% include %} is not available",
    nodes.Import: "{% import %} is not available",
    nodes.FromImport: "{% from … import %} is not available",
    nodes.Macro: "macros are not available",
    nodes.CallBlock: "{% call %} blocks are not available",
    nodes.Block: "{% block %} is not available",
    nodes.EvalContextModifier: "{% autoescape %} is not available",
}
_REFUSED_NAMES = frozenset({"self", "super", "caller", "varargs", "kwargs"})


def _refusal(node: nodes.Node, env: _MailSandbox) -> str | None:
    for kind, reason in _REFUSED_STATEMENTS.items():
        if isinstance(node, kind):
            return reason
    if isinstance(node, nodes.For) and node.recursive:
        return "recursive loops are not available"
    if isinstance(node, nodes.Name) and (node.name.startswith("_") or node.name in _REFUSED_NAMES):
        return f"the name {node.name!r} is not available"
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        return f"attributes starting with '_' are not available ({node.attr!r})"
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
        and node.arg.value.startswith("_")
    ):
        return f"keys starting with '_' are not available ({node.arg.value!r})"
    if isinstance(node, nodes.Filter) and node.name not in FILTERS:
        return f"unknown filter {node.name!r} (available: {', '.join(sorted(FILTERS))})"
    if isinstance(node, nodes.Test) and node.name not in env.tests:
        return f"unknown test {node.name!r}"
    return None


class _Guard(NodeTransformer):
    """Routes loops, ``~`` and list/dict literals through the bounded internal filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 (Jinja's naming)
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_guard_iter", [], [], None, None, lineno=node.lineno)
        return node

    def visit_List(self, node: nodes.List) -> nodes.Node:  # noqa: N802 (Jinja's naming)
        return self._container(node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:  # noqa: N802 (Jinja's naming)
        return self._container(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:  # noqa: N802 (Jinja's naming)
        return self._container(node) if node.ctx == "load" else node

    def _container(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, "_guard_container", [], [], None, None, lineno=node.lineno)

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802 (Jinja's naming)
        self.generic_visit(node)
        parts = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(parts, "_guard_concat", [], [], None, None, lineno=node.lineno)


def _inspect(
    tree: nodes.Template,
    env: _MailSandbox,
    known_names: Collection[str] | None,
    known_fields: Mapping[str, Collection[str]] | None,
) -> None:
    for node in tree.find_all(nodes.Node):
        reason = _refusal(node, env)
        if reason is not None:
            raise TemplateInvalid(reason, line=node.lineno)
    if known_names is not None:
        unknown = sorted(find_undeclared_variables(tree) - set(known_names) - set(env.globals))
        if unknown:
            first = next(tree.find_all(nodes.Name), None)
            line = next(
                (n.lineno for n in tree.find_all(nodes.Name) if n.name == unknown[0]),
                first.lineno if first is not None else None,
            )
            raise TemplateInvalid(
                f"unknown name {unknown[0]!r} (available: {', '.join(sorted(known_names))})",
                line=line,
            )
    for name, fields in (known_fields or {}).items():
        for key, line in _field_accesses(tree, name):
            if key not in fields:
                raise TemplateInvalid(
                    f"{name} has no field {key!r} (available: {', '.join(sorted(fields))})",
                    line=line,
                )


def _field_accesses(tree: nodes.Template, name: str) -> list[tuple[str, int]]:
    """``name.key`` and ``name['key']`` in ``tree``, as (key, line)."""
    found: list[tuple[str, int]] = []
    for attr in tree.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name == name:
            found.append((attr.attr, attr.lineno))
    for item in tree.find_all(nodes.Getitem):
        if (
            isinstance(item.node, nodes.Name)
            and item.node.name == name
            and isinstance(item.arg, nodes.Const)
            and isinstance(item.arg.value, str)
        ):
            found.append((item.arg.value, item.lineno))
    return sorted(found, key=lambda pair: pair[1])


def _syntax_error(exc: TemplateSyntaxError) -> TemplateInvalid:
    return TemplateInvalid(f"syntax error: {exc.message or 'invalid syntax'}", line=exc.lineno)


def _compile(source: str, env: _MailSandbox, *, expression: bool) -> nodes.Template:
    if not isinstance(source, str):
        raise TemplateInvalid("must be a string")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateInvalid(f"is longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        if expression:
            parser = Parser(env, source, state="variable")
            expr = parser.parse_expression()
            if not parser.stream.eos:
                raise TemplateSyntaxError(
                    f"unexpected {parser.stream.current.value!r} after the expression",
                    parser.stream.current.lineno,
                )
            tree = nodes.Template(
                [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)], lineno=1
            )
        else:
            tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc) from None
    except (RecursionError, MemoryError):
        raise TemplateInvalid("too deeply nested") from None
    tree.set_environment(env)
    return tree


@lru_cache(maxsize=1024)
def _compiled(source: str, *, autoescape: bool, strict: bool, expression: bool) -> Template:
    env = _environment(autoescape=autoescape, strict=strict)
    tree = _compile(source, env, expression=expression)
    _inspect(tree, env, None, None)
    guarded = _Guard().visit(tree)
    guarded.set_environment(env)
    try:
        return env.from_string(guarded)
    except TemplateSyntaxError as exc:  # compile-time assertions (e.g. assigning to loop)
        raise _syntax_error(exc) from None
    except (RecursionError, MemoryError):
        raise TemplateInvalid("too deeply nested") from None


def check_template(
    source: str,
    *,
    known_names: Collection[str] | None = None,
    known_fields: Mapping[str, Collection[str]] | None = None,
) -> None:
    """Compile ``source`` as a template without running it.

    ``known_names`` (when given) are the top-level names the template will be rendered
    with; any other name is reported. ``known_fields`` maps a name to its fields, e.g.
    ``{"lead": LEAD_FIELDS}`` so that ``{{ lead.fax }}`` is reported.

    Raises :class:`TemplateInvalid` (with ``line``) for a syntax error, a refused construct,
    an unknown filter, an unknown name or field, or a source over the size limit.
    """
    _compiled(source, autoescape=False, strict=False, expression=False)
    env = _environment(autoescape=False, strict=False)
    _inspect(_compile(source, env, expression=False), env, known_names, known_fields)


def check_expression(
    source: str,
    *,
    known_names: Collection[str] | None = None,
    known_fields: Mapping[str, Collection[str]] | None = None,
) -> None:
    """Like :func:`check_template`, for an expression (``lead.country == 'DE'``)."""
    _compiled(source, autoescape=False, strict=False, expression=True)
    env = _environment(autoescape=False, strict=False)
    _inspect(_compile(source, env, expression=True), env, known_names, known_fields)


def field_references(source: str, name: str, *, expression: bool = False) -> list[tuple[str, int]]:
    """The keys read from the top-level ``name`` in ``source``, as ``(key, line)`` sorted by
    line: ``name.key``, ``name['key']`` and ``name.get('key', …)``. Calling a dict method
    (``name.items()``) reads no key. Read from the parsed Jinja tree, never by pattern
    matching on the text, so strings and comments that merely look like ``name.key`` do not
    count. Raises :class:`TemplateInvalid` if ``source`` does not compile."""
    env = _environment(autoescape=False, strict=False)
    tree = _compile(source, env, expression=expression)
    called = {id(call.node) for call in tree.find_all(nodes.Call)}
    found: list[tuple[str, int]] = []
    for node in tree.find_all(nodes.Getattr):
        if not (isinstance(node.node, nodes.Name) and node.node.name == name):
            continue
        if id(node) in called and node.attr in _DICT_METHODS:
            continue  # name.get('key') is counted below; name.items() reads no key
        found.append((node.attr, node.lineno))
    for item in tree.find_all(nodes.Getitem):
        if (
            isinstance(item.node, nodes.Name)
            and item.node.name == name
            and isinstance(item.arg, nodes.Const)
            and isinstance(item.arg.value, str)
        ):
            found.append((item.arg.value, item.lineno))
    for call in tree.find_all(nodes.Call):
        target = call.node
        if (
            isinstance(target, nodes.Getattr)
            and target.attr == "get"
            and isinstance(target.node, nodes.Name)
            and target.node.name == name
            and call.args
            and isinstance(call.args[0], nodes.Const)
            and isinstance(call.args[0].value, str)
        ):
            found.append((call.args[0].value, call.lineno))
    return sorted(found, key=lambda pair: pair[1])


# --- running --------------------------------------------------------------------------


def _template_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _failure(exc: Exception) -> RenderFailed:
    line = _template_line(exc.__traceback__)
    if isinstance(exc, SecurityError):
        reason = f"not allowed: {exc}"
    elif isinstance(exc, UndefinedError | TemplateError):
        reason = str(exc.message or "template error")
    elif isinstance(exc, ZeroDivisionError):
        reason = "division by zero"
    elif isinstance(exc, RecursionError):
        reason = "too deeply nested"
    elif isinstance(exc, MemoryError):
        reason = "too large"
    else:
        reason = str(exc) or type(exc).__name__
    return RenderFailed(_short(reason), line=line)


def render(
    template: str,
    context: Mapping[str, Any],
    *,
    autoescape: bool,
    strict: bool = False,
    max_chars: int = MAX_OUTPUT_CHARS,
) -> str:
    """Render ``template`` with ``context`` (plain dicts, lists, strings, numbers).

    ``autoescape=True`` for HTML bodies (values are HTML-escaped), ``False`` for text bodies
    and header values. Undefined values render empty unless ``strict``.

    Raises :class:`TemplateInvalid` if the source does not compile, :class:`RenderFailed` if
    running it fails or the output exceeds ``max_chars`` characters.
    """
    compiled = _compiled(template, autoescape=autoescape, strict=strict, expression=False)
    token = _BUDGET.set(_new_budget())
    try:
        out: list[str] = []
        size = 0
        for chunk in compiled.generate(dict(context)):
            size += len(chunk)
            if size > max_chars:
                raise RenderFailed(f"the output is longer than {max_chars} characters")
            out.append(chunk)
        return "".join(out)
    except RenderFailed:
        raise
    except Exception as exc:  # every failure inside the sandbox becomes a domain error
        raise _failure(exc) from None
    finally:
        _BUDGET.reset(token)


def evaluate(expression: str, context: Mapping[str, Any]) -> object:
    """The value of ``expression`` over ``context``; ``None`` if it is undefined.

    Undefined names and keys are falsy (see the module docstring). Raises
    :class:`TemplateInvalid` if the expression does not compile, :class:`RenderFailed` if
    evaluating it fails.
    """
    compiled = _compiled(expression, autoescape=False, strict=False, expression=True)
    token = _BUDGET.set(_new_budget())
    try:
        result: object = TemplateExpression(compiled, undefined_to_none=True)(dict(context))
        return result
    except Exception as exc:  # every failure inside the sandbox becomes a domain error
        raise _failure(exc) from None
    finally:
        _BUDGET.reset(token)
