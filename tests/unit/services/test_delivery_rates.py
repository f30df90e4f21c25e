"""The 30-day rates shown on the Bounces page: complaints against Gmail's 0.1 %."""

from __future__ import annotations

from visitmail.services.delivery_events import DeliveryRates


def test_rates_of_messages_sent() -> None:
    rates = DeliveryRates(messages_sent=2000, hard_bounces=30, soft_bounces=10, complaints=1)
    assert rates.bounce_rate == 0.02
    assert rates.spam_rate == 0.0005
    assert not rates.spam_rate_too_high


def test_one_complaint_in_a_thousand_is_too_many() -> None:
    assert DeliveryRates(1000, 0, 0, 1).spam_rate_too_high
    assert not DeliveryRates(1001, 0, 0, 1).spam_rate_too_high


def test_no_rate_before_the_first_follow_up() -> None:
    rates = DeliveryRates(0, 0, 0, 3)
    assert rates.spam_rate is None and rates.bounce_rate is None
    assert not rates.spam_rate_too_high
