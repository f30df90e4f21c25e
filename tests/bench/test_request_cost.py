"""bench.request_cost names statements by verb and table, so its per-statement table reads."""

from __future__ import annotations

from bench.request_cost import statement_key


def test_statements_are_named_by_their_verb_and_first_table() -> None:
    assert statement_key("SELECT outbox_messages.id, x FROM outbox_messages WHERE a = ?") == (
        "SELECT outbox_messages"
    )
    assert statement_key("INSERT INTO follow_up_sends (id) VALUES (?)") == "INSERT follow_up_sends"
    assert statement_key("UPDATE rate_buckets SET tokens = ?") == "UPDATE rate_buckets"
    assert statement_key("SAVEPOINT sa_savepoint_1") == "SAVEPOINT sa_savepoint_1"
    assert statement_key("BEGIN IMMEDIATE") == "BEGIN IMMEDIATE"
    assert statement_key("") == "? "
