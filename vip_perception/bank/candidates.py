"""Base candidates: seeded samples from the recipe's search space (CNNs varying in depth,
widths and kernel sizes). Deduplicated by spec, capped by MACs so that a brief training budget
is not wasted on models it cannot train."""
from __future__ import annotations

import random

from ..models import ModelSpec, build_model
from .recipe import SearchSpace


def spec_macs(spec: ModelSpec) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (via the ViP core's counter)."""
    from ..vip import count_macs

    return int(count_macs(build_model(spec).eval(), (1, spec.in_channels, *spec.input_size)).total)


def sample_specs(space: SearchSpace, seed: int, in_channels: int, input_size: tuple[int, int],
                 num_classes: int, macs_of=spec_macs) -> list[ModelSpec]:
    """``space.count`` distinct specs (plus ``space.extra``), cheapest first, deterministic in ``seed``."""
    rng = random.Random(seed)
    fams, weights = zip(*sorted(space.families.items()))
    seen, out, tries = set(), [], 0
    common = {"in_channels": in_channels, "input_size": tuple(input_size), "num_classes": num_classes}
    for extra in space.extra:
        spec = ModelSpec.from_dict({**common, **extra})
        seen.add(spec.short_name())
        out.append(spec)
    target = len(out) + space.count
    while len(out) < target:
        tries += 1
        if tries > 200 * max(1, space.count):
            raise ValueError(f"search space too small for {space.count} distinct specs under max_macs={space.max_macs}")
        family = rng.choices(fams, weights=weights)[0]
        n_stages = rng.choice(space.stages)
        base = rng.choice(space.base_widths)
        layers = [rng.choice(space.layers) for _ in range(n_stages)]
        stages = [[base * 2 ** s] * n for s, n in enumerate(layers)]
        head = rng.choice(space.heads)
        spec = ModelSpec(
            family=family, stages=stages, kernel_size=rng.choice(space.kernel_sizes),
            batch_norm=True if family == "resnet" else rng.choice(space.batch_norm),
            pool=rng.choice(space.pools), head=head,
            hidden=rng.choice(space.hidden) if head == "flatten" else 0, **common,
        )
        if family == "resnet":  # pooling choice is unused there: keep names canonical
            spec.pool = "max"
        key = spec.short_name()
        if key in seen:
            continue
        seen.add(key)
        if macs_of(spec) > space.max_macs:
            continue
        out.append(spec)
    return out
