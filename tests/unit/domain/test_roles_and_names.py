from __future__ import annotations

import itertools

import pytest

from visitmail.domain.addresses import normalize_email, refuse_line_breaks
from visitmail.domain.errors import InvalidInput
from visitmail.domain.identity import clean_name
from visitmail.domain.roles import Role


def test_roles_are_ordered_lowest_to_highest() -> None:
    order = [Role.REPORTER, Role.USER, Role.EVENT_CURATOR, Role.EVENT_MANAGER, Role.ADMIN]
    for low, high in itertools.pairwise(order):
        assert high.at_least(low)
        assert not low.at_least(high)
    assert Role.ADMIN.at_least(Role.ADMIN)


@pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "a\x00b"])
def test_line_breaks_and_nul_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        refuse_line_breaks(value, field="sender_name")
    assert info.value.field == "sender_name"


def test_email_is_normalized() -> None:
    assert normalize_email("  Anna@Example.COM ", field="email") == "anna@example.com"
    with pytest.raises(InvalidInput, match="not a valid email address"):
        normalize_email("anna@", field="email")


@pytest.mark.parametrize(
    ("value", "message"), [("  ", "empty"), ("x" * 201, "at most"), ("a\tb", "control")]
)
def test_names_are_checked(value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        clean_name(value, field="name")
