"""Backticked words in domain texts become <code> on pages; everything else stays escaped."""

from __future__ import annotations

from visitmail.web.ui.code_spans import code_spans


def test_backticks_become_code_and_nothing_else_is_markup() -> None:
    shown = code_spans("Choose `starttls` or <b>`tls`</b> & go")
    assert str(shown) == (
        "Choose <code>starttls</code> or &lt;b&gt;<code>tls</code>&lt;/b&gt; &amp; go"
    )


def test_a_lone_backtick_is_dropped_and_none_is_empty() -> None:
    assert str(code_spans("it`s")) == "its"
    assert str(code_spans(None)) == ""
    assert str(code_spans("`<script>`")) == "<code>&lt;script&gt;</code>"
