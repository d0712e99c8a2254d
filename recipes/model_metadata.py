"""Rewrite the metadata of a shipped ``.safetensors`` model, its tensors byte for byte unchanged.

A model file says what the model is (its ``waveglow_config`` and ``data_config``, no machine path)
and, under ``trained``, facts of its training taken from its model card -- never the training
defaults. Used once for the bundled demo model, whose first metadata held the training machine's
``training_files`` path and the default ``train_config``::

    python recipes/model_metadata.py src/waveglow/models/demo.safetensors
"""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path
from typing import Any

from waveglow.audio import atomic_path
from waveglow.checkpoint import model_config_dict
from waveglow.config import Config

DEMO_TRAINING = {
    "steps": 6200,
    "checkpoint": "step 6200, the best validation NLL (-5.060 on 17 held-out prompts)",
    "data": "recipes/build_corpus.py: 816 clips (~39 min): Asterisk prompts, festival SLT, espeak-ng",
    "precision": "fp32",
    "optimizer": "Adam",
    "sigma": 1.0,
    "batch": "4 x 16000-sample segments",
    "learning_rate": "4e-4 to step 1865, 2e-4 to 2633, 1e-4 to 4018, 5e-5 to 4876, "
    "2.5e-5 to 5809, 1.25e-5 after",
    "cost": "about 11.3 CPU-hours on 2 cores",
    "model_card": "src/waveglow/models/MODEL_CARD.md",
}


def read_header(path: Path) -> tuple[dict[str, Any], bytes]:
    """The safetensors JSON header and the raw tensor bytes that follow it."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def rewrite_metadata(path: Path, trained: dict[str, Any]) -> dict[str, Any]:
    """Replace the WaveGlow metadata of ``path`` (atomically); returns the new header."""
    header, tensors = read_header(path)
    ours = json.loads(header["__metadata__"]["waveglow"])
    ours["config"] = model_config_dict(Config.from_dict(ours["config"]))
    ours["trained"] = trained
    header["__metadata__"]["waveglow"] = json.dumps(ours)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # keep the data 8-byte aligned
    with atomic_path(path) as temporary:
        temporary.write_bytes(struct.pack("<Q", len(encoded)) + encoded + tensors)
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the .safetensors model to rewrite")
    args = parser.parse_args()
    print(json.dumps(rewrite_metadata(args.model, DEMO_TRAINING), indent=2))


if __name__ == "__main__":
    main()
