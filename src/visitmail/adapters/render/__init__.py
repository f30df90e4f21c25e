"""Rendering: MIME messages from mail specs, and the visit report as a PDF."""
