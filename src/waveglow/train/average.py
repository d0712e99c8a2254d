"""The exponential moving average of the weights (``train_config.ema_decay``).

After every step that changed the weights, ``average = decay * average + (1 - decay) * weights``
for each floating-point entry of the model's state dict (with weight norm: its g and v, as the
optimizer sees them), kept in fp32 beside the model. A training checkpoint stores it under
:data:`AVERAGE_KEY` (a state dict like the model's), so a resume continues it exactly;
``waveglow convert --averaged`` (:func:`waveglow.checkpoint.convert`) turns it into a model file.
A run that turns the average on, or resumes from a checkpoint without one, starts it from the
weights it has at that step.
"""

from __future__ import annotations

import torch

from ..checkpoint import AVERAGE_KEY, CheckpointError
from ..model import WaveGlow

__all__ = ["AVERAGE_KEY", "continue_average", "start_average", "update_average"]


def start_average(model: WaveGlow) -> dict[str, torch.Tensor]:
    """An average that starts at ``model``'s weights (fp32 copies)."""
    return {
        name: tensor.detach().float().clone()
        for name, tensor in model.state_dict().items()
        if tensor.is_floating_point()
    }


@torch.no_grad()
def update_average(average: dict[str, torch.Tensor], model: WaveGlow, decay: float) -> None:
    """Move ``average`` towards ``model``'s weights: ``average += (1 - decay) * (w - average)``."""
    state = model.state_dict()
    for name, averaged in average.items():
        averaged.lerp_(state[name].float(), 1.0 - decay)


def continue_average(
    model: WaveGlow, decay: float, saved: object, source: str = ""
) -> dict[str, torch.Tensor] | None:
    """The average a run goes on with: none when ``decay`` is 0, else ``saved`` (a checkpoint's
    :data:`AVERAGE_KEY` entry, checked against the model) or, without one, a new one started at
    ``model``'s weights."""
    if decay == 0:
        return None
    wanted = start_average(model)
    if saved is None:
        return wanted
    if not isinstance(saved, dict) or set(saved) != set(wanted):
        raise CheckpointError(f"{source}: its {AVERAGE_KEY} does not match the model's weights")
    for name, tensor in wanted.items():
        value = saved[name]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            raise CheckpointError(
                f"{source}: {AVERAGE_KEY}[{name!r}] is not a tensor of shape {tuple(tensor.shape)}"
            )
        tensor.copy_(value)
    return wanted
