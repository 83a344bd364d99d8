"""Opaque, type-prefixed, time-sortable ids such as `job_01JD7Z...`."""

import os
import threading
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ALPHABET = frozenset(_CROCKFORD)
_RANDOM_BITS = 80
_lock = threading.Lock()
_last = (0, 0)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, index = divmod(value, 32)
        chars.append(_CROCKFORD[index])
    return "".join(reversed(chars))


def _next_parts() -> tuple[int, int]:
    # Within one millisecond the random part counts up, so ids made by one process sort in order.
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_random = _last
        if millis <= last_millis:
            millis, random_part = last_millis, last_random + 1
        else:
            random_part = int.from_bytes(os.urandom(10)) >> 1
        _last = (millis, random_part)
        return millis, random_part


def new_id(prefix: str) -> str:
    """A new id: the prefix, then 26 Crockford base32 characters (48-bit time, 80-bit random)."""
    millis, random_part = _next_parts()
    return f"{prefix}_{_encode((millis << _RANDOM_BITS) | random_part, 26)}"


def first_id_at(prefix: str, unix_seconds: float) -> str:
    """The smallest id this prefix can have at that time: ids made since sort at or after it."""
    return f"{prefix}_{_encode(int(unix_seconds * 1000) << _RANDOM_BITS, 26)}"


def id_pattern(prefix: str) -> str:
    """The regular expression of the ids with this prefix, for the OpenAPI document."""
    return f"^{prefix}_[{_CROCKFORD}]{{26}}$"


def is_id(value: str, prefix: str) -> bool:
    """Whether `value` has the shape of an id with this prefix (it may still not exist)."""
    body = value.removeprefix(f"{prefix}_")
    return len(value) == len(prefix) + 27 and len(body) == 26 and set(body) <= _ALPHABET
