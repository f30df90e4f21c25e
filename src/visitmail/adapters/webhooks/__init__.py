"""Webhook delivery over HTTPS: signed POSTs through the outbox (see ``docs/webhooks.md``)."""
