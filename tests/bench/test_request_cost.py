"""bench.request_cost names statements by verb and table; bench.key_locality counts pages."""

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


def test_key_locality_counts_pages_that_random_ids_dirty_and_time_ordered_ids_do_not() -> None:
    from bench.key_locality import _ordered, _random, sqlite_pages

    random_young, random_old = sqlite_pages(_random, 0), sqlite_pages(_random, 20_000)
    ordered_young, ordered_old = sqlite_pages(_ordered, 0), sqlite_pages(_ordered, 20_000)
    assert random_old > 3 * random_young  # grows with the history
    assert ordered_old < 1.25 * ordered_young  # hardly
