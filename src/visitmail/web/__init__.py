"""The FastAPI shell: JSON API under /api/v1, server-rendered UI, health."""
