"""The delivery loop: :class:`DeliveryWorker` and :class:`WorkerOptions`, whose roles live
in :mod:`visitmail.delivery` (claim and schedule, channels, settle, leases, probe)."""

from visitmail.delivery.options import WorkerOptions
from visitmail.delivery.worker import DeliveryWorker, utcnow, worker_name

__all__ = ["DeliveryWorker", "WorkerOptions", "utcnow", "worker_name"]
