"""The plan's list of ids to fetch: the same pairs in the same order whether they stayed in
memory or went to its file (pure logic)."""

from __future__ import annotations

from workers.fetch_list import FetchList


def _filled(count: int, chunk: int) -> FetchList:
    planned = FetchList(chunk=chunk)
    for i in range(count):
        planned.append(f"id-{i}\nwith a newline", None if i % 3 == 0 else str(i))
    return planned


def test_pairs_come_back_in_order_across_the_file_and_the_tail() -> None:
    planned = _filled(1_005, chunk=100)
    expected = [(f"id-{i}\nwith a newline", None if i % 3 == 0 else str(i)) for i in range(1_005)]

    assert len(planned) == 1_005
    assert list(planned) == expected
    assert list(planned) == expected, "read again, the same"
    batches = list(planned.batches(64))
    assert [len(b) for b in batches] == [64] * 15 + [45] and planned.batch_count(64) == 16
    assert [pair for batch in batches for pair in batch] == expected
    assert list(planned.ids())[:2] == ["id-0\nwith a newline", "id-1\nwith a newline"]


def test_two_readers_at_once_do_not_disturb_each_other() -> None:
    planned = _filled(300, chunk=50)
    first, second = planned.batches(100), planned.batches(100)
    assert [next(first)[0], next(second)[0], next(first)[0]] == [
        ("id-0\nwith a newline", None),
        ("id-0\nwith a newline", None),
        ("id-100\nwith a newline", "100"),
    ]


def test_an_empty_list_has_no_batches_and_closing_empties_it() -> None:
    assert list(FetchList().batches(100)) == [] and FetchList().batch_count(100) == 0
    planned = _filled(250, chunk=100)
    planned.close()
    assert len(planned) == 0 and list(planned) == []
