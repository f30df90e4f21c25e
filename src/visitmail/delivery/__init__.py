"""The delivery engine, split by role (see :mod:`visitmail.delivery.worker`)."""

from visitmail.delivery.options import WorkerOptions
from visitmail.delivery.worker import DeliveryWorker

__all__ = ["DeliveryWorker", "WorkerOptions"]
