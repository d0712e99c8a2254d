"""Rewrite the metadata of a shipped ``.safetensors`` model, its tensors byte for byte unchanged.

A model file says what the model is (its ``waveglow_config`` and ``data_config``, no machine path)
and, under ``trained``, facts of its training for the model card -- never the training defaults.
``recipes/long_run.py ship`` writes them when it ships a checkpoint; this script corrects them
afterwards from a JSON file::

    python recipes/model_metadata.py src/waveglow/models/demo.safetensors trained.json
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
    parser.add_argument("trained", type=Path, help="a JSON object: the facts of its training")
    args = parser.parse_args()
    trained = json.loads(args.trained.read_text())
    print(json.dumps(rewrite_metadata(args.model, trained), indent=2))


if __name__ == "__main__":
    main()
