"""NeuroCLIP encoders: EEG and fNIRS into one embedding space, and the classifier heads.

Each encoder declares its input contract (modality, channels, samples, sampling rate) and
:meth:`Encoder.check_input` refuses anything else with a message naming what differs. The
forward pass itself has no Python-side checks so that it exports cleanly to ONNX.

EEG encoder: learned spatial filters, a depthwise temporal filterbank whose outputs also
give log band power (the ShallowConvNet / FBCSP insight), a separable convolution and one
self-attention block over time. fNIRS encoder: two temporal convolutions over HbO/HbR and one
self-attention block. Both end in a projection head into the shared, L2-normalised space.

This module needs torch (the ``train`` extra); the live path never imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

N_CONTEXT = 2
"""Cue regressors (drug, neutral) appended to the fNIRS encoder's input."""


@dataclass(frozen=True)
class InputSpec:
    """What an encoder accepts: one modality's window."""

    modality: str
    channels: tuple[str, ...]
    samples: int
    sfreq: float


class SelfAttention(nn.Module):
    """One pre-norm transformer block over ``(B, T, D)`` tokens, written out for ONNX."""

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, T, Dh)
        att = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
        mixed = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.drop(self.out(mixed))
        return x + self.drop(self.ff(self.norm2(x)))


class Encoder(nn.Module):
    """Base: an input contract, tokens for masked reconstruction, and a projection head."""

    spec: InputSpec
    token_dim: int

    def embed_tokens(self, tokens: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        """Embedding (not normalised) from tokens ``(B, T, D)`` and pooled features."""
        return self.head(torch.cat([tokens.mean(dim=1), extra], dim=1))

    def check_input(self, x: torch.Tensor) -> None:
        """Refuse a batch that does not match the declared contract."""
        extra = N_CONTEXT if self.spec.modality == "nirs" else 0
        expected = (len(self.spec.channels) + extra, self.spec.samples)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"{self.spec.modality} encoder expects (batch, {expected[0]} channels, "
                f"{expected[1]} samples at {self.spec.sfreq:g} Hz), got {tuple(x.shape)}."
            )


def _projection(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, 64), nn.ELU(), nn.Linear(64, out_dim))


class EegEncoder(Encoder):
    """Spatial filters, a temporal filterbank with log band power, self-attention -> embedding.

    Learned spatial filters come first (as in CSP / ShallowConvNet), then a depthwise
    temporal filterbank per spatial filter (as in EEGNet); the log of each filtered signal's
    power is a learned band-power feature. A separable convolution and pooling turn the
    filtered signals into tokens (one per 25 samples) for one self-attention block.
    """

    def __init__(
        self,
        spec: InputSpec,
        embed_dim: int = 32,
        n_spatial: int = 16,
        n_temporal: int = 2,
        dropout: float = 0.25,
    ):
        super().__init__()
        self.spec = spec
        n_ch = len(spec.channels)
        n_filt = n_spatial * n_temporal
        self.spatial = nn.Sequential(
            nn.Conv1d(n_ch, n_spatial, 1, bias=False), nn.BatchNorm1d(n_spatial)
        )
        self.filterbank = nn.Sequential(
            nn.Conv1d(n_spatial, n_filt, 25, padding=12, groups=n_spatial, bias=False),
            nn.BatchNorm1d(n_filt),
        )
        self.to_tokens = nn.Sequential(
            nn.ELU(),
            nn.AvgPool1d(5),
            nn.Dropout(dropout),
            nn.Conv1d(n_filt, n_filt, 7, padding=3, groups=n_filt, bias=False),
            nn.Conv1d(n_filt, 32, 1, bias=False),
            nn.BatchNorm1d(32),
            nn.ELU(),
            nn.AvgPool1d(5),
            nn.Dropout(dropout),
        )
        self.token_dim = 32
        self.pool_factor = 25
        self.attention = SelfAttention(32)
        self.head = _projection(32 + n_filt, embed_dim)

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, 32)`` tokens (T = samples / 25) and ``(B, filters)`` log band power.

        The window is first divided by its overall RMS: amplitude gains differ between
        people and caps, the spectral and spatial shape is what carries the biomarker.
        """
        x = x / (x.pow(2).mean(dim=(1, 2), keepdim=True).sqrt() + 1e-3)
        z = self.filterbank(self.spatial(x))  # (B, filters, S)
        log_power = torch.log(z.pow(2).mean(dim=2) + 1e-6)
        t = self.to_tokens(z).transpose(1, 2)  # (B, T, 32)
        return self.attention(t), log_power

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(*self.tokens(x))


class NirsEncoder(Encoder):
    """Temporal convolutions over HbO/HbR and the cue regressors + self-attention -> embedding.

    Its input is the HbO/HbR channels followed by the two cue regressors of
    :mod:`models.context` (what was on the screen), so it can learn cue-locked responses.
    """

    def __init__(self, spec: InputSpec, embed_dim: int = 32, dropout: float = 0.25):
        super().__init__()
        self.spec = spec
        n_ch = len(spec.channels) + N_CONTEXT
        self.conv = nn.Sequential(
            nn.Conv1d(n_ch, 32, 5, padding=2),
            nn.BatchNorm1d(32),
            nn.ELU(),
            nn.Dropout(dropout),
            nn.Conv1d(32, 32, 5, padding=2),
            nn.BatchNorm1d(32),
            nn.ELU(),
        )
        self.token_dim = 32
        self.pool_factor = 1
        self.attention = SelfAttention(32)
        self.head = _projection(32 + n_ch, embed_dim)

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, 32)`` tokens and ``(B, channels)`` window means."""
        return self.attention(self.conv(x).transpose(1, 2)), x.mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(*self.tokens(x))


class NeuroclipModel(nn.Module):
    """Encoders, a joint embedding, ``n_heads`` linear heads and a hand-crafted feature branch.

    ``forward`` takes the tensors named in :attr:`input_names` (the modalities, then
    ``context`` when fNIRS is used, then ``features``) and returns
    ``(logits (B, n_heads), embedding (B, D))``; the embedding is the L2-normalised
    concatenation of the per-modality embeddings. Each head's logit is the feature branch (a
    standardised linear model, fitted first and then frozen) plus ``gate`` times the deep
    heads: with the gate at 0 the model is its feature branch alone, which training chooses
    when the deep part does not help on validation subjects.
    """

    def __init__(self, encoders: dict[str, Encoder], n_features: int, n_heads: int = 8):
        super().__init__()
        self.modalities = tuple(encoders)
        self.encoders = nn.ModuleDict(encoders)
        embed = sum(e.head[-1].out_features for e in encoders.values())
        self.heads = nn.Linear(embed, n_heads)
        # the joint embedding has unit norm; a learnable scale lets the heads reach
        # confident logits (a cosine classifier)
        self.head_scale = nn.Parameter(torch.tensor(10.0))
        self.log_tau = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(0.07)))))
        self.decoders = nn.ModuleDict(
            {
                name: nn.Linear(enc.token_dim, len(enc.spec.channels) + _extra(name))
                for name, enc in encoders.items()
            }
        )
        self.n_features = n_features
        self.feature_head = nn.Linear(n_features + embed, 1)
        self.register_buffer("feature_mean", torch.zeros(n_features + embed))
        self.register_buffer("feature_scale", torch.ones(n_features + embed))
        self.register_buffer("gate", torch.tensor(1.0))
        # 1 when the (frozen, aligned) joint embedding is stacked onto the features
        self.register_buffer("stack", torch.tensor(0.0))

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of ``forward``'s inputs, in order (also the ONNX input names)."""
        context = ("context",) if "nirs" in self.modalities else ()
        return (*self.modalities, *context, "features")

    def set_feature_branch(
        self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: float
    ) -> None:
        """Load a fitted standardised linear model into the feature branch and freeze it.

        ``coef`` covers the features alone, or the features followed by the joint embedding
        (stacked); the embedding's weights are zero otherwise.
        """
        n_in = self.feature_head.in_features
        if len(coef) not in (self.n_features, n_in):
            raise ValueError(
                f"the feature branch takes {self.n_features} features (or {n_in} with the "
                f"embedding stacked), got {len(coef)} coefficients"
            )
        stacked = len(coef) == n_in
        pad = n_in - len(coef)
        with torch.no_grad():
            self.feature_mean.copy_(
                torch.as_tensor(np.r_[mean, np.zeros(pad)], dtype=torch.float32)
            )
            self.feature_scale.copy_(
                torch.as_tensor(np.r_[scale, np.ones(pad)], dtype=torch.float32)
            )
            self.feature_head.weight.copy_(
                torch.as_tensor(np.r_[coef, np.zeros(pad)], dtype=torch.float32)[None]
            )
            self.feature_head.bias.fill_(float(intercept))
            self.stack.fill_(1.0 if stacked else 0.0)
        for p in self.feature_head.parameters():
            p.requires_grad_(False)

    def encoder_inputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each encoder's input tensor (fNIRS with the cue regressors appended)."""
        out = {}
        for m in self.modalities:
            out[m] = (
                torch.cat([inputs["nirs"], inputs["context"]], dim=1) if m == "nirs" else inputs[m]
            )
        return out

    def embed(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Normalised embedding per modality."""
        enc_in = self.encoder_inputs(inputs)
        return {m: F.normalize(self.encoders[m](enc_in[m]), dim=1) for m in self.modalities}

    def feature_logit(self, features: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
        """``(B, 1)`` logit of the feature branch (the embedding counts only when stacked)."""
        x = torch.cat([features, joint * self.stack], dim=1)
        return self.feature_head((x - self.feature_mean) / self.feature_scale)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = dict(zip(self.input_names, tensors, strict=True))
        parts = self.embed(inputs)
        joint = F.normalize(torch.cat([parts[m] for m in self.modalities], dim=1), dim=1)
        deep = self.heads(joint * self.head_scale)
        return self.feature_logit(inputs["features"], joint) + self.gate * deep, joint


def _extra(modality: str) -> int:
    return N_CONTEXT if modality == "nirs" else 0


def build_model(
    specs: dict[str, InputSpec], n_features: int, n_heads: int = 8, embed_dim: int = 32
) -> NeuroclipModel:
    """The model for the given modalities (``eeg``, ``nirs`` or both)."""
    encoders: dict[str, Encoder] = {}
    for name, spec in specs.items():
        kind = EegEncoder if name == "eeg" else NirsEncoder
        encoders[name] = kind(spec, embed_dim=embed_dim)
    return NeuroclipModel(encoders, n_features, n_heads=n_heads)
