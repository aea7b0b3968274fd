"""Rate limits that hold under concurrency: a limit is checked and a hit counted in one step,
under a lock on the key's Throttle row (SELECT ... FOR UPDATE on PostgreSQL; on SQLite every
transaction takes the write lock at BEGIN, see DATABASES in settings). Used for submissions
(per client network) and admin sign-ins."""

from __future__ import annotations

import ipaddress
import math
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Throttle

# Rows nobody has hit for this long are deleted by the watchdog (longer than any window).
EXPIRE_AFTER = timedelta(days=1)


def client_ip(request) -> str:
    """The client's address; behind N trusted proxies (settings.TRUSTED_PROXIES), the Nth
    address from the right of X-Forwarded-For, which a client cannot forge."""
    hops = settings.TRUSTED_PROXIES
    if hops:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")


def client_network(ip: str) -> str:
    """What a limit counts against: an IPv4 address, or an IPv6 client's /64 (one subscriber
    usually holds a whole /64, so counting single IPv6 addresses limits nobody)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:100]
    if address.version == 6 and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def take(key: str, limit: int, window_s: int) -> int:
    """Count a hit on key unless it already has `limit` hits in the last window_s seconds.
    Returns 0 when the hit was counted, else the seconds until one leaves the window."""
    with transaction.atomic():
        row, _ = Throttle.objects.select_for_update().get_or_create(key=key[:200])
        now = time.time()  # read under the lock: hits counted while waiting for it are older
        hits = sorted(t for t in row.hits if t > now - window_s)
        if len(hits) >= limit:
            oldest = hits[-limit] if limit > 0 else now
            return max(1, math.ceil(oldest + window_s - now))
        row.hits = [*hits, now]
        row.save(update_fields=["hits", "updated"])
    return 0


def forget(key: str) -> None:
    Throttle.objects.filter(key=key[:200]).delete()


def expire() -> int:
    """Delete rows no one has hit for EXPIRE_AFTER (the watchdog calls it)."""
    deleted, _ = Throttle.objects.filter(updated__lt=timezone.now() - EXPIRE_AFTER).delete()
    return deleted


def wait_label(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
