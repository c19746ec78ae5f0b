"""A synthetic step-tree environment for step-level search: no model, known right paths, a PRM of tunable noise.

Each problem is solved in `depth` steps. A proposed step is right with probability `p_step`; one
wrong step makes every continuation wrong (errors do not heal). The process reward model sees the
truth of a partial solution (1 if every step so far is right, else 0) through Gaussian noise of
standard deviation `noise`, clipped to [0, 1] as a real PRM's probabilities are. With
`early_accuracy` set, it is overconfident on the first half of the steps: it says a flat 0 or 1
there and is right only with that probability, the premature confidence that entropic particle
filtering is meant to survive. Proposals and scores are seeded, so a run is reproducible.
"""

from __future__ import annotations

import random

from infereco.strategies.search import Partial


class StepTree:
    def __init__(self, *, depth: int = 4, p_step: float = 0.6, noise: float = 0.0,
                 early_accuracy: float | None = None, seed: int = 0) -> None:  # fmt: skip
        self.depth = depth
        self.p_step = p_step
        self.noise = noise
        self.early_accuracy = early_accuracy
        self.seed = seed
        self._rng = random.Random(f"propose:{seed}")
        self.expansions = 0  # steps generated: the rollout budget
        self.scored = 0  # PRM calls

    async def expand(self, partial: Partial, m: int) -> list[Partial]:
        out = []
        for _ in range(m):
            step = "R" if self._rng.random() < self.p_step else f"W{self._rng.randrange(3)}"
            steps = partial.steps + (step,)
            out.append(Partial(steps, done=len(steps) >= self.depth))
        self.expansions += m
        return out

    @staticmethod
    def truth(partial: Partial) -> float:
        return 1.0 if all(s == "R" for s in partial.steps) else 0.0

    async def score(self, partial: Partial) -> float:
        self.scored += 1
        rng = random.Random(f"prm:{self.seed}:{partial.steps}")
        truth = self.truth(partial)
        if self.early_accuracy is not None and len(partial.steps) <= self.depth // 2:
            return truth if rng.random() < self.early_accuracy else 1.0 - truth
        return min(1.0, max(0.0, truth + rng.gauss(0.0, self.noise)))

    def answer(self, partial: Partial) -> tuple[str | None, bool | None]:
        right = self.truth(partial) == 1.0
        return ("42" if right else f"wrong-{partial.steps[-1]}"), right
