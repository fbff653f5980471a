"""A sequence autoencoder for stroke drawings (kind "sketch").

A bidirectional GRU/LSTM reads a stroke-5 sequence and its last states become one code (50-d by
default); a decoder RNN, its state initialised from the code and the code fed at every step, writes
the sequence back. The loss is an offsets term (mean squared error, or Sketch-RNN's mixture of
bivariate Gaussians) plus the pen states' cross-entropy. Training uses teacher forcing on padded,
masked batches; drawing from a code runs the decoder free.

Why its codes follow the eyes and mouth, not the face's size (the seed's complaint): with
`fit_box` (the default) every sketch is first scaled so its bounding box's longer side is 1, so a
code cannot hold the size; and with `readout="pool"` the code is read from the mean and maximum of
the encoder's outputs over all steps as well as its final states, so parts drawn mid-sequence (the
eyes, between outline and mouth) reach the code directly instead of fading from the final states.
`benchmarks/sketches.py` measures both.

Example:
    >>> from facespace.data.sketch_synth import make_face_sketches
    >>> sk = make_face_sketches(8)
    >>> model = SketchAE(SketchAEConfig(enc_hidden=16, dec_hidden=16)).fit_scale(sk.strokes)
    >>> model.encode(sk.strokes).shape
    (8, 50)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facespace.models.registry import config_from_dict, register_model
from facespace.data.strokes import START_TOKEN, check_stroke3, collate_strokes, fit_unit_box, offset_scale
from facespace.errors import FacespaceError


@dataclass(frozen=True)
class SketchAEConfig:
    code_size: int = 50  # d, the length of a code
    cell: str = "gru"  # recurrent cell of encoder and decoder: gru | lstm
    enc_hidden: int = 64  # encoder units per direction (small for CPUs; Sketch-RNN used 256)
    bidirectional: bool = True  # read the sketch both ways
    readout: str = "pool"  # code from: last (final states, the seed's) | pool (+ mean and max over all steps)
    dec_hidden: int = 128  # decoder units (Sketch-RNN used 512)
    output: str = "mse"  # offsets loss: mse (the seed's) | mdn (Sketch-RNN's mixture of Gaussians)
    n_mixtures: int = 10  # Gaussians per step when output == "mdn"
    pen_weight: float = 1.0  # weight of the pen-state cross-entropy against the offsets loss
    fit_box: bool = True  # scale each sketch to a unit box first, so size cannot rule the code
    max_len: int = 250  # longest sequence the decoder draws

    def __post_init__(self):
        if self.cell not in ("lstm", "gru"):
            raise FacespaceError(f"unknown cell {self.cell!r}; expected one of: lstm, gru")
        if self.readout not in ("last", "pool"):
            raise FacespaceError(f"unknown readout {self.readout!r}; expected one of: last, pool")
        if self.output not in ("mse", "mdn"):
            raise FacespaceError(f"unknown output {self.output!r}; expected one of: mse, mdn")
        if min(self.code_size, self.enc_hidden, self.dec_hidden, self.n_mixtures, self.max_len) < 1:
            raise FacespaceError("code_size, enc_hidden, dec_hidden, n_mixtures and max_len must be at least 1")


def _mdn_split(out: torch.Tensor, m: int):
    """`(..., 6M)` -> log mixture weights, means, log sigmas and correlations, each `(..., M)`."""
    logit_pi, mx, my, lsx, lsy, r = out.split(m, dim=-1)
    return F.log_softmax(logit_pi, -1), mx, my, lsx.clamp(-6, 4), lsy.clamp(-6, 4), torch.tanh(r) * 0.95


def _mdn_nll(out: torch.Tensor, target: torch.Tensor, m: int) -> torch.Tensor:
    """Negative log-likelihood of `(..., 2)` offsets under the mixture in `out`. Returns `(...)`."""
    log_pi, mx, my, lsx, lsy, rho = _mdn_split(out, m)
    dx = (target[..., :1] - mx) / lsx.exp()
    dy = (target[..., 1:2] - my) / lsy.exp()
    one_r = 1 - rho**2
    z = dx**2 + dy**2 - 2 * rho * dx * dy
    log_n = -math.log(2 * math.pi) - lsx - lsy - 0.5 * torch.log(one_r) - z / (2 * one_r)
    return -torch.logsumexp(log_pi + log_n, dim=-1)


@register_model
class SketchAE(nn.Module):
    """Sequence autoencoder for stroke-3 sketches; honours `loss(batch)` for `facespace.training.loop.fit`.

    Sketches cross the numpy API as lists of `(n, 3)` stroke-3 arrays in any units; the model
    scales them itself (`fit_box`, then the training set's offset std, kept in the checkpoint).
    """

    kind: ClassVar[str] = "sketch"
    Config: ClassVar[type] = SketchAEConfig

    def __init__(self, config: SketchAEConfig | None = None):
        super().__init__()
        self.config = config = config or SketchAEConfig()
        self.checkpoint_info: dict[str, Any] = {}
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        n_dir = 2 if config.bidirectional else 1
        self.encoder = rnn(5, config.enc_hidden, batch_first=True, bidirectional=config.bidirectional)
        n_read = (2 if config.cell == "lstm" else 1) + (2 if config.readout == "pool" else 0)
        self.to_code = nn.Linear(n_dir * config.enc_hidden * n_read, config.code_size)
        n_state = 2 if config.cell == "lstm" else 1
        self.to_state = nn.Linear(config.code_size, n_state * config.dec_hidden)
        self.decoder = rnn(5 + config.code_size, config.dec_hidden, batch_first=True)
        n_out = 2 if config.output == "mse" else 6 * config.n_mixtures
        self.head = nn.Linear(config.dec_hidden, n_out + 3)
        self.register_buffer("scale", torch.ones(()))  # offsets are divided by this (fit_scale)

    @property
    def code_size(self) -> int:
        return self.config.code_size

    @property
    def device(self) -> torch.device:
        return self.scale.device

    # ---- tensors -------------------------------------------------------------------------
    def encode_tensor(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`(B, T, 5)` stroke-5 and `(B,)` lengths -> `(B, d)` codes."""
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        out, state = self.encoder(packed)
        # LSTM: use both the hidden and the cell state of each direction; (n_dir, B, H) each
        states = state if isinstance(state, tuple) else (state,)
        parts = [s.transpose(0, 1).reshape(x.shape[0], -1) for s in states]
        if self.config.readout == "pool":
            # every step reaches the code directly: parts drawn mid-sequence (the eyes) are not
            # washed out by what comes after them, as they are in the final states alone
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"))
            real = torch.isfinite(out[..., :1])  # (B, T', 1)
            parts.append(out.amax(dim=1))
            parts.append(torch.where(real, out, 0.0).sum(1) / real.sum(1).clamp(min=1))
        return self.to_code(torch.cat(parts, dim=1))

    def _initial_state(self, z: torch.Tensor):
        h = torch.tanh(self.to_state(z)).unsqueeze(0)  # (1, B, n_state * H)
        if self.config.cell == "lstm":
            hh, cc = h.chunk(2, dim=-1)
            return hh.contiguous(), cc.contiguous()
        return h.contiguous()

    def decode_steps(self, inputs: torch.Tensor, z: torch.Tensor, state=None):
        """Teacher-forced decoder: `(B, T, 5)` previous points and `(B, d)` codes -> `(B, T, n_out + 3)`."""
        zz = z.unsqueeze(1).expand(-1, inputs.shape[1], -1)
        out, state = self.decoder(torch.cat([inputs, zz], dim=-1), self._initial_state(z) if state is None else state)
        return self.head(out), state

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Batch `(x, lengths)` from `collate_strokes` -> `(loss, {"offsets", "pen"})`.

        Offsets count on real points only; the pen states also on the first end row, so the
        decoder learns where to stop.
        """
        x, lengths = batch
        x, lengths = x.to(self.device), lengths.to(self.device)
        B, T, _ = x.shape
        z = self.encode_tensor(x, lengths)
        start = torch.as_tensor(START_TOKEN, device=x.device).expand(B, 1, 5)
        out, _ = self.decode_steps(torch.cat([start, x[:, :-1]], dim=1), z)
        steps = torch.arange(T, device=x.device)[None]
        points, pen_mask = (steps < lengths[:, None]).float(), (steps <= lengths[:, None]).float()
        if self.config.output == "mse":
            offsets = ((out[..., :2] - x[..., :2]) ** 2).sum(-1)
        else:
            offsets = _mdn_nll(out[..., :-3], x[..., :2], self.config.n_mixtures)
        offsets = (offsets * points).sum() / points.sum().clamp(min=1)
        pen = F.cross_entropy(out[..., -3:].reshape(-1, 3), x[..., 2:].argmax(-1).reshape(-1), reduction="none")
        pen = (pen * pen_mask.reshape(-1)).sum() / pen_mask.sum()
        total = offsets + self.config.pen_weight * pen
        return total, {"offsets": float(offsets.detach()), "pen": float(pen.detach())}

    @torch.no_grad()
    def draw_tensor(self, z: torch.Tensor, max_len: int, temperature: float = 0.0, generator=None) -> torch.Tensor:
        """Free-running decode: `(B, d)` codes -> `(B, max_len, 5)` stroke-5 (greedy when temperature is 0)."""
        B = z.shape[0]
        prev = torch.as_tensor(START_TOKEN, device=z.device).expand(B, 1, 5).clone()
        state, rows = None, []
        done = torch.zeros(B, dtype=torch.bool, device=z.device)
        for _ in range(max_len):
            out, state = self.decode_steps(prev, z, state)
            out = out[:, 0]
            pen_logits = out[:, -3:]
            if self.config.output == "mse":
                xy = out[:, :2]
            else:
                log_pi, mx, my, lsx, lsy, rho = _mdn_split(out[:, :-3], self.config.n_mixtures)
                if temperature > 0:
                    k = torch.multinomial(torch.softmax(log_pi / temperature, -1), 1, generator=generator)
                else:
                    k = log_pi.argmax(-1, keepdim=True)
                xy = torch.cat([mx.gather(1, k), my.gather(1, k)], 1)
                if temperature > 0:
                    sx, sy, r = (lsx.gather(1, k).exp(), lsy.gather(1, k).exp(), rho.gather(1, k))
                    e1, e2 = torch.randn(B, 1, generator=generator), torch.randn(B, 1, generator=generator)
                    t = math.sqrt(temperature)
                    xy = xy + torch.cat([sx * e1, sy * (r * e1 + torch.sqrt(1 - r**2) * e2)], 1) * t
            if temperature > 0:
                pen = torch.multinomial(torch.softmax(pen_logits / temperature, -1), 1, generator=generator)[:, 0]
            else:
                pen = pen_logits.argmax(-1)
            row = torch.cat([xy, F.one_hot(pen, 3).float()], 1)
            row[done] = torch.tensor([0, 0, 0, 0, 1.0], device=z.device)
            rows.append(row)
            done |= pen == 2
            if bool(done.all()):
                break
            prev = row[:, None]
        out = torch.stack(rows, 1)
        if out.shape[1] < max_len:
            pad = torch.zeros(B, max_len - out.shape[1], 5, device=z.device)
            pad[..., 4] = 1
            out = torch.cat([out, pad], 1)
        return out

    # ---- numpy ---------------------------------------------------------------------------
    def prepare(self, sketches: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Stroke-3 sketches in any units -> the model's units (unit box if `fit_box`, / scale)."""
        strokes = getattr(sketches, "strokes", sketches)
        scale = float(self.scale)
        out = []
        for i, s in enumerate(strokes):
            s = check_stroke3(s, what=f"sketch {i}")
            s = fit_unit_box(s) if self.config.fit_box else s.copy()
            s[:, :2] /= scale
            out.append(s)
        return out

    def fit_scale(self, sketches: Sequence[np.ndarray]) -> "SketchAE":
        """Set the offsets' normalising factor from training sketches. Returns self."""
        strokes = getattr(sketches, "strokes", sketches)
        boxed = [fit_unit_box(check_stroke3(s, what=f"sketch {i}")) if self.config.fit_box else s for i, s in enumerate(strokes)]
        self.scale.fill_(offset_scale(boxed))
        return self

    def _batches(self, prepared: list[np.ndarray], batch_size: int):
        order = np.argsort([len(s) for s in prepared], kind="stable")  # similar lengths pad less
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            yield idx, collate_strokes([prepared[j] for j in idx])

    @torch.no_grad()
    def encode(self, sketches: Sequence[np.ndarray], *, batch_size: int = 256) -> np.ndarray:
        """Stroke-3 sketches (list of `(n_i, 3)` arrays, or `Sketches`) -> `(n, d)` float32 codes."""
        prepared = self.prepare(sketches)
        codes = np.zeros((len(prepared), self.code_size), np.float32)
        was_training = self.training
        self.eval()
        try:
            for idx, (x, lengths) in self._batches(prepared, batch_size):
                codes[idx] = self.encode_tensor(x.to(self.device), lengths).cpu().numpy()
        finally:
            self.train(was_training)
        return codes

    @torch.no_grad()
    def decode(
        self, codes: np.ndarray, *, max_len: int | None = None, temperature: float = 0.0, seed: int = 0, batch_size: int = 256
    ) -> list[np.ndarray]:
        """`(n, d)` codes -> list of `(n_i, 3)` float32 stroke-3 sketches, drawn free-running.

        The sketches come out in the unit box when `fit_box` (else in the training units).
        """
        from facespace.data.strokes import stroke5_to_stroke3
        from facespace.protocol import check_codes

        z = check_codes(codes, self.code_size)
        gen = torch.Generator().manual_seed(seed)
        max_len = max_len or self.config.max_len
        out: list[np.ndarray] = []
        was_training = self.training
        self.eval()
        try:
            for i in range(0, len(z), batch_size):
                s5 = self.draw_tensor(torch.from_numpy(z[i : i + batch_size]).to(self.device), max_len, temperature, gen)
                for row in s5.cpu().numpy():
                    s3 = stroke5_to_stroke3(row)
                    s3[:, :2] *= float(self.scale)
                    out.append(s3)
        finally:
            self.train(was_training)
        return out

    def reconstruct(self, sketches: Sequence[np.ndarray], **options) -> list[np.ndarray]:
        """Encode then draw: stroke-3 sketches -> their reconstructions (stroke-3)."""
        return self.decode(self.encode(sketches), **options)

    @torch.no_grad()
    def evaluate(self, sketches: Sequence[np.ndarray], *, batch_size: int = 256) -> dict[str, float]:
        """Mean teacher-forced loss over sketches: `{"loss", "offsets", "pen"}` (weighted by batch)."""
        prepared = self.prepare(sketches)
        totals, n = {"loss": 0.0, "offsets": 0.0, "pen": 0.0}, 0
        was_training = self.training
        self.eval()
        try:
            for idx, batch in self._batches(prepared, batch_size):
                loss, metrics = self.loss(batch)
                totals["loss"] += float(loss) * len(idx)
                for k in ("offsets", "pen"):
                    totals[k] += metrics[k] * len(idx)
                n += len(idx)
        finally:
            self.train(was_training)
        return {k: v / max(n, 1) for k, v in totals.items()}

    # ---- checkpoint ----------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        return self.state_dict()

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> "SketchAE":
        model = cls(config_from_dict(cls.Config, config))
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as e:
            raise FacespaceError(f"checkpoint weights do not fit a 'sketch' model with this config: {e}") from None
        return model
