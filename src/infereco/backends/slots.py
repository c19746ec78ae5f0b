"""Home slots: every request of one step-level search goes to the same llama.cpp server slot.

Why: a step-level search (beam, particle filtering) sends the problem and the steps so far again at
every step, and llama.cpp can skip the part a slot already holds. But its server picks a slot by
similarity to what each idle slot holds (any slot sharing more than 10% of the prompt, here the
system prompt of another problem, qualifies), and its RAM prompt cache hands a cached prompt to
one slot and cuts it at the first differing token. With several problems in flight, each problem's
steps so far were taken over and cut by another problem's request, so nearly every step
re-evaluated the problem's text and all its steps (measured: docs/benchmarks.md, "Step-level
searches"). A request that names a slot (`id_slot`) goes to that slot and finds there what the
search's previous request left, whatever other problems did meanwhile.

The homes are the upper half of the slots: llama.cpp gives the extra samples of an `n > 1`
request (which it discards when they finish) the first free slots from the bottom, so they rarely
land on a home. A family keeps its home while it is in use; a new family takes a home nobody
holds, or else the one whose family was used longest ago (that search has most likely finished).
Two families that do share a home (more searches in flight than homes) queue for the slot, and
each cuts the other's steps away (the server keeps the shared system prompt): correct, just
without the reuse.

This needs the server to keep an idle slot's contents: newer llama.cpp servers instead save idle
slots to the RAM cache and clear them whenever a request starts (`--cache-idle-slots`, on by
default with a unified KV cache), and a request sent to an empty slot then reuses nothing.
`LlamaServer` turns that off for the embedded server (an older server that lacks the setting
keeps idle slots anyway), so homes are used only with it, never for a server infereco did not
start.
"""

from __future__ import annotations

from collections import OrderedDict


class SlotHomes:
    """Which slot each request family (a `GenerationRequest.affinity`) is sent to."""

    def __init__(self, slots: int) -> None:
        total = max(1, slots)
        self.homes: list[int] = list(range(total - 1, total - 1 - max(1, total // 2), -1))  # top half, highest first
        self._held: OrderedDict[str, int] = OrderedDict()  # family -> slot, least recently used first

    def slot_for(self, family: str) -> int:
        """The family's home slot (the same one while it keeps being used)."""
        slot = self._held.get(family)
        if slot is None:
            taken = set(self._held.values())
            free = [s for s in self.homes if s not in taken]
            if free:
                slot = free[0]
            else:
                _, slot = self._held.popitem(last=False)  # the family used longest ago gives up its home
            self._held[family] = slot
        self._held.move_to_end(family)
        return slot
