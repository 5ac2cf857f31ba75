"""The training input pipeline: which examples make each batch, and the batches
themselves, built in worker processes when --workers > 0.

A batch is a function of (seed, epoch, step) alone: the order of the examples comes from
a generator seeded by (seed, epoch), every augmentation choice from one seeded by
(seed, epoch, step). So any number of workers, and a run resumed mid-epoch, see the same
inputs. Workers stay up across epochs (`persistent_workers`) and, for a GPU, hand over
pinned memory so copies to the device overlap with compute.
"""
from __future__ import annotations

import torch

from .transforms import Augment, Preprocess


def batch_seed(seed: int, epoch: int, step: int) -> int:
    return (seed * 1_000_003 + epoch) * 1_000_033 + step


def order(size: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed * 7919 + epoch))


class TrainBatches(torch.utils.data.Dataset):
    """Items are (epoch, step, indices); each gives one augmented (inputs, labels) batch."""

    def __init__(self, split, plan: Augment, preprocess: Preprocess | None, seed: int):
        self.split, self.plan, self.preprocess, self.seed = split, plan, preprocess, seed

    def __getitem__(self, item):
        epoch, step, indices = item
        generator = torch.Generator().manual_seed(batch_seed(self.seed, epoch, step))
        return self.split.augmented(indices, self.plan, generator, self.preprocess)

    def __len__(self) -> int:  # batches are asked for by (epoch, step, indices), not by number
        return len(self.split)


class _Plan(torch.utils.data.Sampler):
    """The epoch's batches, set before each epoch; a persistent loader iterates it anew."""

    def __init__(self):
        self.items: list = []

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class Loader:
    """Batches for one rank: `epoch(epoch, first_step)` yields (step, (inputs, labels))."""

    def __init__(self, split, plan: Augment, preprocess, *, seed: int, batch_size: int,
                 rank: int, world: int, workers: int, pin_memory: bool):
        self.dataset = TrainBatches(split, plan, preprocess, seed)
        self.seed, self.batch_size, self.rank, self.world = seed, batch_size, rank, world
        self.steps = max(1, len(split) // batch_size)
        self.plan = _Plan()
        self.loader = None
        if workers:
            # A generator of its own: the workers' seeds must not draw from the global RNG,
            # which a run resumed mid-epoch would be at another point of.
            self.loader = torch.utils.data.DataLoader(
                self.dataset, batch_size=None, sampler=self.plan, num_workers=workers,
                pin_memory=pin_memory, persistent_workers=True, prefetch_factor=4,
                generator=torch.Generator().manual_seed(seed))

    def items(self, epoch: int, first_step: int) -> list:
        examples = order(len(self.dataset.split), self.seed, epoch)
        share = self.batch_size // self.world
        items = []
        for step in range(first_step, self.steps):
            chunk = examples[step * self.batch_size:(step + 1) * self.batch_size]
            items.append((epoch, step, chunk[self.rank * share:(self.rank + 1) * share].tolist()))
        return items

    def epoch(self, epoch: int, first_step: int):
        items = self.items(epoch, first_step)
        steps = [step for _, step, _ in items]
        if self.loader is None:
            return ((step, self.dataset[item]) for step, item in zip(steps, items))
        self.plan.items = items
        return zip(steps, self.loader)
