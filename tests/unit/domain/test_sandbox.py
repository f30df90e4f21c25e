"""The template sandbox: escapes refused or harmless, bounded work, undefined behaviour."""

from __future__ import annotations

from typing import Any

import pytest

from visitmail.domain import sandbox
from visitmail.domain.errors import InvalidInput
from visitmail.domain.sandbox import (
    MAX_LOOP_STEPS,
    MAX_RANGE,
    RenderFailed,
    SandboxError,
    TemplateInvalid,
    check_expression,
    check_template,
    evaluate,
    is_template,
    render,
)

CONTEXT: dict[str, Any] = {
    "lead": {"zip": "10115", "company": "Acme <b>GmbH</b>", "country": "DE", "notes": ""},
    "answers": {"budget": "high", "products": ["Sensors", "Valves"]},
    "notes": "n" * 60_000,
    "captured_at": "2026-11-25T08:30:00+00:00",
}


def text(template: str, context: dict[str, Any] | None = None) -> str:
    return render(template, CONTEXT if context is None else context, autoescape=False)


def refused(template: str) -> SandboxError:
    with pytest.raises(SandboxError) as caught:
        text(template)
    return caught.value


# --- the escapes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ lead['__class__'] }}",
        "{{ lead.get.__self__ }}",
        "{{ self }}",
        "{{ self._TemplateReference__context }}",
        "{{ super() }}",
        "{{ _private }}",
        "{% include 'x.html' %}",
        "{% extends 'base.html' %}",
        "{% import 'x' as y %}",
        "{% from 'x' import y %}",
        "{% macro m() %}{% endmacro %}",
        "{% block b %}{% endblock %}",
        "{% autoescape false %}{{ x }}{% endautoescape %}",
        "{% for x in [1] recursive %}{{ loop(x) }}{% endfor %}",
        "{{ lead|attr('__class__') }}",
        "{{ lead|pprint }}",
        "{{ 'x'|format() }}",
    ],
)
def test_internals_are_refused_before_running(template: str) -> None:
    error = refused(template)
    assert isinstance(error, TemplateInvalid)
    assert error.line == 1
    assert "Traceback" not in error.message


@pytest.mark.parametrize(
    "template",
    [
        "{{ lipsum() }}",
        "{{ cycler(1, 2) }}",
        "{{ joiner() }}",
        "{{ namespace() }}",
        "{{ dict(a=1) }}",
        "{{ range(10**9)|length }}",
        "{{ range(" + str(MAX_RANGE + 1) + ")|length }}",
        "{{ (1).to_bytes(10**9, 'big') }}",
        "{{ (1).real }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{0.__class__}'.format(lead) }}",
        "{{ '%999999999s' % 'a' }}",
        "{{ 'a' * 10**9 }}",
        "{{ [1] * 10**9 }}",
        "{{ 2 ** (10**9) }}",
        "{{ lead.company.center(10**9) }}",
        "{{ lead.company.zfill(10**9) }}",
        "{{ lead.pop('zip') }}",
        "{{ answers.products.append(1) }}",
    ],
)
def test_dangerous_calls_fail_with_a_message(template: str) -> None:
    error = refused(template)
    assert isinstance(error, RenderFailed)
    assert error.message and "Traceback" not in error.message


def test_undefined_globals_are_not_available() -> None:
    assert "undefined" in refused("{{ lipsum() }}").message


def test_unsafe_attribute_error_names_it() -> None:
    error = refused("{{ (1).to_bytes(4, 'big') }}")
    assert "to_bytes" in error.message and "not allowed" in error.message


def test_nothing_leaks_object_addresses() -> None:
    error = refused("{{ lead.get }}")
    assert "0x" not in error.message
    assert "()" in error.message


# --- bounded work -------------------------------------------------------------------


def test_loops_are_bounded_all_together() -> None:
    error = refused("{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}")
    assert str(MAX_LOOP_STEPS) in error.message


def test_loops_within_the_budget_run() -> None:
    assert text("{% for i in range(3) %}{{ loop.index }}{% endfor %}") == "123"


def test_doubling_a_string_is_bounded() -> None:
    doubling = "{% set x = 'aaaaaaaaaa' %}" + "{% set x = x ~ x %}" * 40 + "{{ x|length }}"
    assert "longer than" in refused(doubling).message


def test_nesting_a_list_into_itself_is_bounded() -> None:
    nesting = "{% set l = [1] %}" + "{% set l = [l, l] %}" * 40 + "{{ l|length }}"
    assert "longer than" in refused(nesting).message


@pytest.mark.parametrize(
    "template",
    [
        "{{ notes ~ notes }}",
        "{{ notes + notes }}",
        "{{ [notes, notes]|length }}",
        "{{ range(1000)|join(notes) }}",
        "{{ notes|replace('n', 'nn') }}",
    ],
)
def test_growing_values_are_bounded(template: str) -> None:
    assert "longer than" in refused(template).message


def test_output_is_bounded() -> None:
    with pytest.raises(RenderFailed, match="longer than 100 characters"):
        render("{% for i in range(50) %}abcdef{% endfor %}", {}, autoescape=False, max_chars=100)


def test_default_output_bound_is_100_kb() -> None:
    big = "{% for i in range(1000) %}{{ notes[:200] }}{% endfor %}"
    with pytest.raises(RenderFailed, match="100000"):
        text(big)


def test_oversized_source_is_refused() -> None:
    with pytest.raises(TemplateInvalid, match="longer than"):
        check_template("x" * 200_000)


# --- rendering --------------------------------------------------------------------


def test_placeholders_slices_and_filters() -> None:
    assert text("{{ lead.zip[:1] }}") == "1"
    assert text("{{ lead.country|lower }}-{{ lead.country|title }}") == "de-De"
    assert text("{{ answers.products|join(', ') }}") == "Sensors, Valves"
    assert text("{{ answers.products|first }}/{{ answers.products|last }}") == "Sensors/Valves"
    assert text("{{ answers.products|length }}") == "2"
    assert text("{{ '  x '|trim }}|{{ 'abc'|replace('b', 'x') }}") == "x|axc"
    assert text("{{ 'hello world'|truncate(8, True, '…', 0) }}") == "hello w…"
    assert text("{{ answers.missing|default('n/a') }}") == "n/a"
    assert text("{{ lead.zip.startswith('1') }}") == "True"


def test_lists_render_as_comma_separated_text() -> None:
    assert text("{{ answers.products }}") == "Sensors, Valves"


def test_format_date() -> None:
    assert text("{{ captured_at|format_date('%d.%m.%Y %H:%M') }}") == "25.11.2026 08:30"
    assert text("{{ captured_at|format_date }}") == "2026-11-25"
    assert text("{{ answers.missing|format_date }}") == ""
    assert "not an ISO 8601 date" in refused("{{ 'soon'|format_date }}").message
    assert "only" in refused("{{ captured_at|format_date('%A %c') }}").message


def test_autoescape_for_html() -> None:
    html = render("<p>{{ lead.company }}</p>", CONTEXT, autoescape=True)
    assert html == "<p>Acme &lt;b&gt;GmbH&lt;/b&gt;</p>"
    assert text("{{ lead.company }}") == "Acme <b>GmbH</b>"
    joined = render("{{ answers.products|join('<br>'|e) }}", CONTEXT, autoescape=True)
    assert joined == "Sensors&lt;br&gt;Valves"  # escaped once, not twice


def test_trim_blocks_keep_mail_bodies_tidy() -> None:
    body = "Hello\n{% if lead.zip %}\nzip {{ lead.zip }}\n{% endif %}\nBye"
    assert text(body) == "Hello\nzip 10115\nBye"


# --- undefined ----------------------------------------------------------------------


def test_undefined_values_render_empty_in_templates() -> None:
    assert text("[{{ answers.missing }}|{{ answers.missing.deeper }}|{{ nobody }}]") == "[||]"


def test_undefined_in_arithmetic_is_an_error() -> None:
    assert "undefined" in refused("{{ nobody + 1 }}").message


def test_strict_mode_reports_undefined_values() -> None:
    with pytest.raises(RenderFailed, match="no attribute 'missing'"):
        render("{{ answers.missing }}", CONTEXT, autoescape=False, strict=True)


def test_undefined_is_falsy_in_expressions() -> None:
    assert evaluate("answers.nope == 'x'", CONTEXT) is False
    assert evaluate("answers.nope", CONTEXT) is None
    assert not evaluate("nobody.at.all", CONTEXT)


def test_expressions() -> None:
    assert evaluate("answers.budget == 'high' and lead.country == 'DE'", CONTEXT) is True
    assert evaluate("lead.zip[:1] in ['1', '2']", CONTEXT) is True
    assert evaluate("answers.products|length", CONTEXT) == 2


# --- errors -------------------------------------------------------------------------


def test_syntax_errors_carry_the_line() -> None:
    with pytest.raises(TemplateInvalid) as caught:
        check_template("line one\nline two\n{% if lead.zip %}never closed")
    assert caught.value.line == 3
    assert caught.value.message.startswith("line 3: syntax error")
    assert isinstance(caught.value, InvalidInput)


def test_runtime_errors_carry_the_line() -> None:
    with pytest.raises(RenderFailed) as caught:
        text("one\ntwo {{ 1 / 0 }}")
    assert caught.value.line == 2
    assert caught.value.reason == "division by zero"


def test_expression_syntax_errors() -> None:
    with pytest.raises(TemplateInvalid, match="syntax error"):
        check_expression("lead.zip ==")
    with pytest.raises(TemplateInvalid, match="after the expression"):
        check_expression("lead.zip lead.city")


def test_unknown_names_fields_and_filters_are_reported() -> None:
    names = {"lead", "answers"}
    fields = {"lead": ("zip", "city")}
    with pytest.raises(TemplateInvalid, match="unknown name 'leed'"):
        check_template("{{ leed.zip }}", known_names=names, known_fields=fields)
    with pytest.raises(TemplateInvalid, match="lead has no field 'fax'"):
        check_template("x\n{{ lead['fax'] }}", known_names=names, known_fields=fields)
    with pytest.raises(TemplateInvalid, match="unknown filter 'shout'"):
        check_template("{{ lead.zip|shout }}", known_names=names)
    check_template(
        "{% for p in answers.products %}{{ loop.index }} {{ p }}{% endfor %}{{ range(2)|join }}",
        known_names=names,
        known_fields=fields,
    )


def test_is_template() -> None:
    assert is_template("{{ reporter.email }}")
    assert is_template("{% if x %}a{% endif %}")
    assert not is_template("team@acme.example")


# --- issue 10, item 8: integer growth, call results and the time budget -------------------


def test_squaring_a_number_over_and_over_is_bounded() -> None:
    """19 squarings took 8.4 s before: each step doubles the number's size."""
    source = "{% set a = 3 %}" + "{% set a = a * a %}" * 19 + "{{ a }}"
    with pytest.raises(RenderFailed) as caught:
        render(source, {}, autoescape=False)
    assert "too large" in caught.value.message


def test_ordinary_arithmetic_still_works() -> None:
    assert render("{{ 12 * 12 }} {{ 2 ** 10 }}", {}, autoescape=False) == "144 1024"


def test_the_result_of_a_call_is_counted() -> None:
    source = "{% set s = 'a,' * 50000 %}{{ s.split(',') | length }}"
    with pytest.raises(RenderFailed) as caught:
        render(source, {}, autoescape=False)
    assert "longer than" in caught.value.message
    assert render("{{ 'a,b,c'.split(',') | length }}", {}, autoescape=False) == "3"


def test_a_render_that_runs_out_of_time_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test owns the clock: every look at it costs 0.4 s of render time."""
    ticks = iter(i * 0.4 for i in range(1000))
    monkeypatch.setattr(sandbox, "clock", lambda: next(ticks))
    with pytest.raises(RenderFailed) as caught:
        render("{% for i in range(10) %}{{ i }}{% endfor %}", {}, autoescape=False)
    assert "took longer than 1 s" in caught.value.message


def test_an_expression_that_runs_out_of_time_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter(i * 0.6 for i in range(1000))
    monkeypatch.setattr(sandbox, "clock", lambda: next(ticks))
    with pytest.raises(RenderFailed):
        evaluate("answers.a * 2 + answers.a * 3 == 5", {"answers": {"a": 1}})
