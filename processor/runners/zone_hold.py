"""``timezone = "auto"`` in the Kafka service: each host's UTC offset, learned as ``replay`` learns it.

NGINX error and PHP-FPM logs write local time without an offset; the access log's ``$time_local`` carries one.
``replay`` reads the first lines of a host's access log before anything else (``learn_host_timezones``). A Kafka
consumer cannot: a host's error and PHP-FPM records may arrive before its first access line. So ``ZoneHold``
holds them until the host's offset is known, and only then are they parsed:

- a stream (partition) that meets a record of a host whose offset is unknown is *blocked*: that record and every
  later record of the stream wait in arrival order (the pipeline sees each stream in its own order, only later);
- a host's offset is learned from its first access line with an offset (the first ``LEARN_TRIES`` lines, as
  replay's head of the file; none has one: the fallback);
- a host falls back (``fallback``, UTC unless configured; the driver warns, naming it) when its access lines are
  read to their end and ``hold_ms`` of processing time passed, or when more is held than ``room`` allows;
- an offset, learned or fallen back, is the host's for the life of the process (no record is ever read in two).

Pure: streams, offsets, hosts and processing time in; which records to feed, per stream in order, out. The
driver never commits a stream at or past ``held_offsets()``, so a killed process reads the held records again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Hashable
from datetime import tzinfo
from typing import Final, Generic, TypeVar

S = TypeVar("S", bound=Hashable)  # a stream (the driver's partition)
T = TypeVar("T")  # a record, as the driver keeps it

LEARN_TRIES: Final = 20  # as replay: the first 20 lines of a host's access log

Release = tuple[S, list[T]]  # one stream's records to feed now, in its order


class ZoneHold(Generic[S, T]):
    """Hosts' UTC offsets (``zones``: what the parser reads) and the records waiting for them."""

    def __init__(
        self, fallback: tzinfo, hold_ms: int, tries: int = LEARN_TRIES, zones: dict[str, tzinfo] | None = None
    ) -> None:
        self.fallback = fallback
        self.hold_ms = hold_ms
        self.tries = tries
        # learned (or fallen back): never changes once set; ``zones``: a mapping the parser already reads
        self.zones: dict[str, tzinfo] = zones if zones is not None else {}
        self.fallen_back = 0  # hosts that got the fallback
        # blocked streams, first blocked first: (offset, host whose zone it needs or None, record)
        self._fifo: dict[S, deque[tuple[int, str | None, T]]] = {}
        self._tries: dict[str, int] = {}
        self._since_ms: dict[str, int] = {}  # a waiting host: processing time its first record was held
        self.size = 0  # records held

    def blocked(self, stream: S) -> bool:
        return stream in self._fifo

    def waiting(self) -> list[str]:
        """Hosts some held record needs, longest waiting first."""
        return sorted(self._since_ms, key=lambda h: (self._since_ms[h], h))

    def admit(self, stream: S, offset: int, host: str, needs_zone: bool, record: T, now_ms: int) -> bool:
        """True: feed ``record`` now. False: it is held (its host's offset is unknown, or its stream is blocked
        by an earlier record). ``needs_zone``: the record's time has no offset (not an access line)."""
        wanted = host if needs_zone and host not in self.zones else None
        fifo = self._fifo.get(stream)
        if fifo is None:
            if wanted is None:
                return True
            fifo = self._fifo[stream] = deque()
        if wanted is not None:
            self._since_ms.setdefault(wanted, now_ms)
        fifo.append((offset, wanted, record))
        self.size += 1
        return False

    def observe(self, host: str, offset: tzinfo | None) -> list[Release[S, T]]:
        """An access line of ``host`` and the offset its time carries (None: it taught nothing; one of the
        host's ``tries`` used). What it released."""
        if host in self.zones:
            return []
        if offset is None:
            tried = self._tries[host] = self._tries.get(host, 0) + 1
            if tried < self.tries:
                return []
            self.fallen_back += 1
            offset = self.fallback
        self._tries.pop(host, None)
        self.zones[host] = offset
        return self._release()

    def expire(self, now_ms: int, settled: Container[S], room: int) -> tuple[list[str], list[Release[S, T]]]:
        """The hosts that fall back now, and what that released. ``settled``: the blocked streams whose hosts'
        access lines are read to their end (nothing there to learn from yet); ``room``: how many records may
        be held (what ``max_state`` leaves)."""
        fallen = [
            h
            for s, fifo in self._fifo.items()
            if s in settled and (h := fifo[0][1]) is not None and now_ms - self._since_ms[h] >= self.hold_ms
        ]
        fallen = list(dict.fromkeys(fallen))
        for host in fallen:
            self.zones[host] = self.fallback
        released = self._release()
        while self.size > max(room, 0) and self._since_ms:
            host = self.waiting()[0]
            fallen.append(host)
            self.zones[host] = self.fallback
            released += self._release()
        self.fallen_back += len(fallen)
        return fallen, released

    def release_all(self) -> tuple[list[str], list[Release[S, T]]]:
        """End of input (a flushing stop): every waiting host falls back, everything held is released."""
        fallen = self.waiting()
        for host in fallen:
            self.zones[host] = self.fallback
        self.fallen_back += len(fallen)
        return fallen, self._release()

    def drop(self) -> int:
        """Forget every held record (the driver reads them again from the committed offsets); how many."""
        dropped = self.size
        self._fifo.clear()
        self._since_ms.clear()
        self.size = 0
        return dropped

    def held_offsets(self) -> dict[S, int]:
        """Per blocked stream, the offset of its first held record: nothing from there on is processed."""
        return {stream: fifo[0][0] for stream, fifo in self._fifo.items()}

    def _release(self) -> list[Release[S, T]]:
        out: list[Release[S, T]] = []
        zones = self.zones
        for stream in list(self._fifo):
            fifo = self._fifo[stream]
            records: list[T] = []
            while fifo and (fifo[0][1] is None or fifo[0][1] in zones):
                records.append(fifo.popleft()[2])
            if records:
                out.append((stream, records))
                self.size -= len(records)
            if not fifo:
                del self._fifo[stream]
        # a host is waiting while one of its records is held; its first one is at the head of a blocked stream
        for host in [h for h in self._since_ms if h in zones]:
            del self._since_ms[host]
        return out
