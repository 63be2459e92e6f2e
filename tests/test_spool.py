"""`TextSpool` and `SpooledRecords`: a snapshot listing's texts on disk, read back exactly."""

from __future__ import annotations

import threading

from connectors.spool import SpooledRecords, TextSpool


def test_texts_come_back_exactly_whatever_they_hold() -> None:
    spool = TextSpool()
    texts = [
        '{"factuur":{"id":1,"naam":"Café ☕ \\u00e9"}}',
        "",
        "\ud800 a lone surrogate, as a decoder may leave one",
        "x" * 100_000,
    ]
    spans = [spool.write(text) for text in texts]

    assert [spool.read(span) for span in spans] == texts
    assert spool.read(spans[0]) == texts[0], "read twice, after the writes are flushed"


def test_records_by_id_keep_pop_and_replace() -> None:
    records = SpooledRecords(TextSpool())
    for n in range(1000):
        records.add(str(n), f"record {n}")
    records.add("7", "record 7, listed twice: the later text")

    assert len(records) == 1000 and records["7"] == "record 7, listed twice: the later text"
    kept = records.keep({str(n) for n in range(0, 1000, 2)} | {"absent"})
    assert kept is records and len(records) == 500 and "1" not in records
    assert records.pop("0") == "record 0" and "0" not in records
    assert dict(records) == {str(n): f"record {n}" for n in range(2, 1000, 2)}


def test_writes_and_reads_from_threads_keep_each_text_whole() -> None:
    spool = TextSpool()
    spans: dict[str, tuple[int, int]] = {}

    def write(prefix: str) -> None:
        for n in range(500):
            spans[f"{prefix}{n}"] = spool.write(f"{prefix}-{n}-" + "y" * (n % 97))

    threads = [threading.Thread(target=write, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(
        spool.read(span) == f"{key[0]}-{key[1:]}-" + "y" * (int(key[1:]) % 97)
        for key, span in spans.items()
    )
    assert len(spans) == 2000
