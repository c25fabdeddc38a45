"""Delivery: batching, ordering, size limits, retries and the spool, between mapping and a sink."""

from convotel.delivery.engine import Delivery
from convotel.delivery.stats import DROP_REASONS, DeliveryStats

__all__ = ["DROP_REASONS", "Delivery", "DeliveryStats"]
