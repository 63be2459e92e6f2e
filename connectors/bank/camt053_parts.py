"""A camt.053 file cut between two entries into parts that each parse as a document of their own,
so that several processes each parse a part instead of all of them parsing the whole file.

A part is the file's bytes [start, end) with what makes them a document: before them the file's
start up to its first statement, and the start of the statement the cut falls in up to that
statement's first entry (its account and balances); after them the end tags of what is still
open. Cuts are found by scanning bytes, only between an entry's end tag and the next entry's
start tag. A file with a comment, CDATA section or processing instruction before the last cut,
or in an encoding other than UTF-8, is not cut; the parts are checked against each other once
parsed, and anything else a scan could get wrong makes a part fail to parse or not fit the next
one, and the file is then read whole instead.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: the first bytes scanned for the root's tags
_HEAD = 1 << 16
_QNAME = rb"(?:[A-Za-z_][\w.\-]*:)?"
_DOCUMENT = re.compile(rb"<(" + _QNAME + rb"Document)[\s>]")
_HOLDER = re.compile(rb"<(" + _QNAME + rb"BkToCstmrStmt)[\s>]")
_STMT = re.compile(rb"<(" + _QNAME + rb")Stmt[\s>]")
_TAG_END = (b" ", b">", b"\t", b"\r", b"\n", b"/")
#: text in which a `<` need not start a tag
_OPAQUE = (b"<!--", b"<![CDATA[", b"<?")
_DECLARATION = re.compile(rb"(?:\xef\xbb\xbf)?<\?xml[^>]*\?>")
_ENCODING = re.compile(rb"""\A(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']""")


@dataclass(frozen=True, slots=True)
class Part:
    """Bytes [start, end) of the file, with `head` before and `tail` after them."""

    head: bytes
    start: int
    end: int
    tail: bytes
    #: the index in the whole file of the first statement this part reads
    statement: int


def cut(path: Path, parts: int) -> list[Part] | None:
    """The file in up to `parts` parts of about equal size, or None when it cannot be cut (one
    statement entry, an encoding other than UTF-8, no statement found). Reads the file once, a
    block at a time (a memory map would count the whole file in this process's memory)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
        encoding = _ENCODING.match(head)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (
            encoding is not None and encoding.group(1).lower() not in (b"utf-8", b"utf8")
        ):
            return None
        document, holder, first = _DOCUMENT.search(head), _HOLDER.search(head), _STMT.search(head)
        if document is None or holder is None or first is None:
            return None
        prefix = first.group(1)
        targets = [size * k // parts for k in range(1, parts)]
        statements, cuts = _marks(handle, prefix, targets)
        if not cuts:
            return None
        opening = _read(handle, 0, statements[0])
        entry = re.compile(rb"<" + re.escape(prefix) + rb"Ntry[\s>]")
        tail = b"</%sStmt></%s></%s>" % (first.group(1), holder.group(1), document.group(1))
        ends = [where for where, _ in cuts[1:]] + [size]
        result = [Part(b"", 0, cuts[0][0], tail, 0)]
        for number, ((start, index), end) in enumerate(zip(cuts, ends, strict=True)):
            header = _read(handle, statements[index], start)
            own = entry.search(header)
            if own is None:
                return None
            result.append(
                Part(
                    opening + header[: own.start()],
                    start,
                    end,
                    tail if number < len(cuts) - 1 else b"",
                    index,
                )
            )
        return result


def _marks(
    handle: BinaryIO, prefix: bytes, targets: list[int]
) -> tuple[list[int], list[tuple[int, int]]]:
    """Where the statements start, and for each target the first entry at or after it that
    starts right after another entry's end, with the statement it falls in. Found with
    `bytes.find` a block at a time (a regex over the whole file took a second per 50 MB);
    blocks overlap so that no mark is split, and each is taken from the block it starts in.

    Up to the last cut the file must hold no comment, CDATA section or processing instruction
    (none are cut): then every `<` starts a tag, and what the scan finds are tags."""
    block, overlap = 1 << 20, 256
    statement, entry_end = b"<" + prefix + b"Stmt", b"</" + prefix + b"Ntry>"
    next_entry = re.compile(rb"\s{0,200}(<" + re.escape(prefix) + rb"Ntry[\s>])")
    statements: list[int] = []
    cuts: list[tuple[int, int]] = []
    offset = 0
    handle.seek(0)
    while len(cuts) < len(targets) and (data := handle.read(block + overlap)):
        limit = min(block, len(data))
        declaration = _DECLARATION.match(data) if offset == 0 else None
        if any(data.find(mark, declaration.end() if declaration else 0) >= 0 for mark in _OPAQUE):
            return statements, []
        at = data.find(statement)
        while 0 <= at < limit:
            if data[at + len(statement) : at + len(statement) + 1] in _TAG_END:
                statements.append(offset + at)
            at = data.find(statement, at + 1)
        while len(cuts) < len(targets) and targets[len(cuts)] < offset + limit:
            at = data.find(entry_end, max(targets[len(cuts)] - offset, 0))
            found = None
            while 0 <= at < limit and found is None:
                following = next_entry.match(data, at + len(entry_end))
                if following is not None:
                    found = offset + following.start(1)
                at = data.find(entry_end, at + 1)
            if found is None:
                break  # the next block goes on looking
            cuts.append((found, bisect.bisect_right(statements, found) - 1))
            if cuts[-1][1] < 0:
                return statements, []
        offset += block
        handle.seek(offset)
    return statements, cuts


def _read(handle: BinaryIO, start: int, end: int) -> bytes:
    handle.seek(start)
    return handle.read(end - start)


class PartReader:
    """A part as the file object `iterparse` reads: head, the file's bytes, tail."""

    def __init__(self, path: Path, part: Part) -> None:
        self._file = path.open("rb")
        self._file.seek(part.start)
        self._left = part.end - part.start
        self._pending = [part.head]
        self._tail = part.tail

    def read(self, size: int = -1) -> bytes:
        if self._pending and self._pending[0]:
            return self._pending.pop(0)
        if self._left > 0:
            chunk = self._file.read(min(self._left, size if size > 0 else 1 << 20))
            if chunk:
                self._left -= len(chunk)
                return chunk
            self._left = 0
        tail, self._tail = self._tail, b""
        if not tail:
            self._file.close()  # read to the end; a reader dropped earlier is closed by close()
        return tail

    def close(self) -> None:
        self._file.close()
