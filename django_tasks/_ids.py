"""Result ids: time-ordered UUIDs (version 7), so new rows append to the primary key's index.

A random UUID lands anywhere in the primary key's B-tree, and every insert touches a
different page; ids that start with the time in milliseconds keep the inserts of one
moment together. Ids made together (a bulk enqueue) are in increasing order.
"""

from __future__ import annotations

import os
import time

_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_ids(count: int) -> list[str]:
    """Return `count` new, unique UUIDv7 strings, in increasing order.

    48 bits of Unix time in milliseconds, the version, then 74 random bits (RFC 9562),
    from one read of `os.urandom` for the lot.
    """
    millis = f"{time.time_ns() // 1_000_000:012x}"
    stamp = f"{millis[:8]}-{millis[8:12]}-7"
    digits = os.urandom(10 * count).hex()
    ids = [
        f"{stamp}{h[:3]}-{_VARIANT[h[3]]}{h[4:7]}-{h[7:19]}"
        for h in (digits[start : start + 20] for start in range(0, 20 * count, 20))
    ]
    ids.sort()
    return ids


def new_id() -> str:
    """Return one new UUIDv7 string."""
    return new_ids(1)[0]
