"""``train_config.torch_compile``: the training step's forward and synthesis compiled by inductor
train as the eager step does (same losses, same updated weights, within float tolerance)."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_DATA
from corpus import tiny_config
from waveglow import WaveGlowConfig, WNConfig
from waveglow.train import StopRequest, setup, setup_distributed, train_step

# smaller than the suite's tiny model: compilation time grows with the graphs (2 flows, 1 layer)
SMALLEST = WaveGlowConfig(
    n_mel_channels=8, n_flows=2, n_group=4, n_early_every=4, n_early_size=2,
    WN_config=WNConfig(n_layers=1, n_channels=8, kernel_size=3),
)  # fmt: skip

SPECTRAL = {
    "spectral_loss_weight": 1.0,
    "spectral_mel_weight": 1.0,
    "spectral_fft_sizes": (128, 256),
}


@pytest.mark.slow
def test_a_compiled_step_trains_as_the_eager_one(corpus, tmp_path):
    trainers = []
    for name, compiled in (("eager", False), ("compiled", True)):
        fields = {"precision": "fp32", "wn_implementation": "gemm", "torch_compile": compiled}
        config = tiny_config(SMALLEST, TINY_DATA, corpus, tmp_path / name, **SPECTRAL, **fields)
        trainers.append(setup(config, setup_distributed("cpu"), progress_bar=False))
    eager, compiled = trainers
    assert not eager.compiled and set(compiled.compiled) == {"forward", "decode"}
    calls = dict.fromkeys(compiled.compiled, 0)
    for key, function in compiled.compiled.items():  # the step goes through the compiled calls

        def counted(*args, key=key, function=function, **kwargs):
            calls[key] += 1
            return function(*args, **kwargs)

        compiled.compiled[key] = counted
    batches = [next(iter(eager.loader)) for _ in range(2)]
    tolerance = 1e-4
    with StopRequest() as stop:
        for batch in batches:  # the first compiles, the second reuses the graphs
            outcomes = [train_step(trainer, [batch], stop) for trainer in trainers]
            assert all(outcome.spectral is not None for outcome in outcomes)
            assert outcomes[1].loss == pytest.approx(outcomes[0].loss, rel=tolerance)
            assert outcomes[1].spectral == pytest.approx(outcomes[0].spectral, rel=tolerance)
    assert calls == {"forward": 2, "decode": 2}
    for name, tensor in eager.model.state_dict().items():
        torch.testing.assert_close(
            compiled.model.state_dict()[name], tensor, rtol=tolerance, atol=tolerance
        )
    for trainer in trainers:
        trainer.logger.close()
