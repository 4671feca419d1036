"""Time-ordered ids (UUIDv7): layout, ordering by time, and the bound helper."""

import uuid

import pytest

from hermod_ref.ids import uuid7, uuid_bound

T = 1_750_000_000.1235  # mid-millisecond: float steps of 0.001 stay inside their ms


def test_version_and_variant_bits():
    for _ in range(200):
        u = uuid7()
        assert u.version == 7 and u.variant == uuid.RFC_4122
        assert (u.int >> 76) & 0xF == 7 and (u.int >> 62) & 0b11 == 0b10


def test_the_first_48_bits_are_the_unix_time_in_ms():
    u = uuid7(T)
    assert u.int >> 80 == 1_750_000_000_123
    assert u.hex.startswith("%012x" % 1_750_000_000_123)


def test_ids_are_random_within_one_millisecond():
    assert len({uuid7(T) for _ in range(1000)}) == 1000


def test_ids_sort_by_time_as_bytes_do():
    times = [T + i * 0.001 for i in range(0, 5000, 7)]
    ids = [uuid7(t) for t in times]
    assert sorted(ids) == ids
    assert sorted(ids, key=lambda u: u.bytes) == ids  # PostgreSQL's uuid order
    assert uuid7(T) < uuid7(T + 0.001) < uuid7(T + 86400)


def test_bound_is_the_smallest_id_of_its_millisecond():
    bound = uuid_bound(T)
    assert bound.version == 7 and bound.variant == uuid.RFC_4122
    assert str(bound) == "%08x-%04x-7000-8000-000000000000" % (1_750_000_000_123 >> 16,
                                                                 1_750_000_000_123 & 0xFFFF)
    for _ in range(500):
        assert uuid7(T - 0.001) < bound <= uuid7(T) < uuid_bound(T + 0.001)


def test_times_outside_48_bits_are_refused():
    with pytest.raises(ValueError):
        uuid_bound(-1)
    with pytest.raises(ValueError):
        uuid7(2 ** 48 / 1000 + 1)
