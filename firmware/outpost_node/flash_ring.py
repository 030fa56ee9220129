"""Urgent events kept on flash until sent, so a reset or brown-out loses no panic press.

One file of ``slots`` fixed-size records, rewritten in place: a record is the event as a JSON list
padded with spaces, and a free slot is all spaces. Writing goes round the slots (spreading the
wear); when every slot holds an unsent event, the oldest is overwritten and counted.
"""

import json

from outpost_node.events import Event

_FREE = b" "


class FlashRing:
    def __init__(self, path: str, slots: int, slot_bytes: int = 64) -> None:
        self.path = path
        self.slots = slots
        self.slot_bytes = slot_bytes
        self.overwritten = 0
        self._owner: list[tuple[int, int] | None] = [None] * slots  # (boot, seq) of each slot's event
        self._next = 0
        self._prepare()

    def _prepare(self) -> None:
        size = self.slots * self.slot_bytes
        try:
            with open(self.path, "rb") as f:
                ok = len(f.read()) == size
        except OSError:
            ok = False
        if not ok:
            with open(self.path, "wb") as f:
                blank = _FREE * (self.slot_bytes - 1) + b"\n"
                for _ in range(self.slots):
                    f.write(blank)

    def pending(self) -> list[Event]:
        """The events left unsent by earlier boots, oldest first; marks their slots used."""
        found = []
        with open(self.path, "rb") as f:
            for slot in range(self.slots):
                record = f.read(self.slot_bytes).strip()
                if not record:
                    continue
                try:
                    boot, seq, kind, held_ms, count = json.loads(record)
                    found.append(Event(int(boot), int(seq), str(kind), 0, int(held_ms), int(count), slot))
                    self._owner[slot] = (int(boot), int(seq))
                except (ValueError, TypeError):
                    self._write(slot, b"")  # a record torn by a power cut: unreadable, freed
        found.sort(key=lambda event: (event.boot, event.seq))
        if found:
            self._next = (found[-1].slot + 1) % self.slots
        return found

    def keep(self, event: Event) -> int:
        """Write ``event`` to a free slot (the oldest one if none is free) and return the slot."""
        slot = self._next
        for step in range(self.slots):
            candidate = (self._next + step) % self.slots
            if self._owner[candidate] is None:
                slot = candidate
                break
        else:
            self.overwritten += 1
        record = json.dumps([event.boot, event.seq, event.kind, event.held_ms, event.count]).encode()
        if len(record) >= self.slot_bytes:
            raise ValueError("event record longer than a flash slot")
        self._write(slot, record)
        self._owner[slot] = (event.boot, event.seq)
        self._next = (slot + 1) % self.slots
        return slot

    def release(self, event: Event) -> None:
        """``event`` was delivered: free its slot, unless a newer event has overwritten it."""
        slot = event.slot
        if 0 <= slot < self.slots and self._owner[slot] == (event.boot, event.seq):
            self._write(slot, b"")
            self._owner[slot] = None

    def _write(self, slot: int, record: bytes) -> None:
        with open(self.path, "r+b") as f:
            f.seek(slot * self.slot_bytes)
            f.write(record + _FREE * (self.slot_bytes - 1 - len(record)) + b"\n")
