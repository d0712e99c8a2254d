"""The mel conversions of ``POST /v1/synthesize`` (query or form/JSON fields, as the options of
``waveglow synthesize``; see :mod:`waveglow.meldoctor`): ``transpose``, ``mel_scale``
(ln, log10, db), ``mel_mean`` / ``mel_std`` (numbers), ``db_norm`` (symmetric, positive),
``max_norm``, ``min_level_db``, ``ref_level_db``."""

from __future__ import annotations

import io

import numpy as np
import torch

from ..audio import AudioError
from ..meldoctor import Conversion, load_converted_mel
from .inputs import NPY_MAGIC, UPLOAD, InputError, _flag, _upload_file

CONVERSION_FIELDS = (
    "transpose", "mel_scale", "mel_mean", "mel_std", "db_norm", "max_norm", "min_level_db",
    "ref_level_db",
)  # fmt: skip
NUMBERS = ("mel_mean", "mel_std", "max_norm", "min_level_db", "ref_level_db")


def conversion_from_fields(fields: dict[str, object]) -> Conversion | None:
    """The conversion the fields ask for; None for none (400 for a bad value)."""
    given = {name: fields[name] for name in CONVERSION_FIELDS if fields.get(name) not in (None, "")}
    try:
        values: dict[str, object] = {name: float(given[name]) for name in NUMBERS if name in given}
        conversion = Conversion(
            transpose=_flag(given.get("transpose", False)),
            scale=str(given.get("mel_scale", "ln")),
            mean=values.get("mel_mean"),
            std=values.get("mel_std"),
            db_norm=None if "db_norm" not in given else str(given["db_norm"]),
            **{name: values[name] for name in NUMBERS[2:] if name in values},
        )
    except (TypeError, ValueError) as error:
        raise InputError(f"mel conversion: {error}") from None
    return None if conversion.identity else conversion


def converted_mel(data: object, n_mel_channels: int, conversion: Conversion) -> torch.Tensor:
    """The mel (M, F) of ``.npy``/``.pt`` bytes or a JSON ``{"mel": ...}`` body, converted."""
    if isinstance(data, dict) and "mel" in data:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(data["mel"], dtype=np.float32), allow_pickle=False)
        data = buffer.getvalue()
    if not isinstance(data, bytes) or not data:
        raise InputError('the request has no mel: send .npy or .pt bytes, or JSON {"mel": ...}')
    with _upload_file(data, ".npy" if data.startswith(NPY_MAGIC) else ".pt") as path:
        try:
            return load_converted_mel(path, conversion, n_mel_channels)
        except AudioError as error:
            raise InputError(str(error).replace(str(path), UPLOAD)) from None
