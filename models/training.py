"""Progressive training: alignment, probing, fine-tuning, then calibration and prototypes.

Stage 1 (fusion only) aligns the EEG and fNIRS embeddings of the same window with a
symmetric InfoNCE loss (optionally soft targets and masked-signal reconstruction); labels
are not used, so every usable window of the training subjects takes part. Stage 2 freezes
the encoders and trains ``n_heads`` linear heads, each on its own Poisson bootstrap of the
windows, for MA vs HC. Stage 3 unfreezes everything at a lower rate, stopping on the loss
of held-out validation subjects. The validation subjects then fit the temperature; the
training subjects give the class prototypes. Subjects never straddle the fit/validation split.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch.nn import functional as F  # noqa: N812
from tqdm import tqdm

from models.dataset import WindowSet
from models.errors import DatasetError
from models.losses import info_nce, mask_tokens, masked_reconstruction
from models.networks import InputSpec, NeuroclipModel, build_model
from models.train_config import TrainConfig

logger = logging.getLogger(__name__)

LABELED_SESSIONS = ("pre", "none")
"""Sessions that carry the group label for supervised stages (post-rTMS sessions are what
the shift analysis scores, so they never teach the classifier)."""


@dataclass
class TrainedModel:
    """A trained model with what the bundle needs beside the weights."""

    model: NeuroclipModel
    specs: dict[str, InputSpec]
    temperature: float
    prototypes: dict[str, np.ndarray]
    fit_subjects: list[str]
    val_subjects: list[str]
    history: list[dict[str, float]] = field(default_factory=list)


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA when torch sees a GPU, else the CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise DatasetError(
            "--device cuda was asked for but torch sees no CUDA device.",
            fix="use --device auto or cpu, or install a CUDA build of torch on a GPU machine.",
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def split_subjects(
    ws: WindowSet, fraction: float, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """Stratified subject split: at least one subject of each group on each side."""
    fit, val = [], []
    for group in (1, 0):
        subjects = sorted({s for s, g in zip(ws.subject, ws.group, strict=True) if g == group})
        if len(subjects) < 2:
            raise DatasetError(
                f"only {len(subjects)} {'MA' if group else 'HC'} subject(s) for training; "
                "at least 2 per group are needed (one to fit, one to validate).",
                fix="add subjects, or use fewer cross-validation folds.",
            )
        rng.shuffle(subjects)
        n_val = max(1, round(fraction * len(subjects)))
        val += subjects[:n_val]
        fit += subjects[n_val:]
    return sorted(fit), sorted(val)


def specs_for(ws: WindowSet, cfg: TrainConfig) -> dict[str, InputSpec]:
    """Input contracts of the configured modalities, from the data."""
    sig = cfg.signal
    all_specs = {
        "eeg": InputSpec("eeg", ws.eeg_channels, ws.eeg.shape[2], sig.eeg.target_sfreq),
        "nirs": InputSpec("nirs", ws.nirs_channels, ws.nirs.shape[2], sig.nirs.target_sfreq),
    }
    return {m: all_specs[m] for m in cfg.modalities}


def _inputs(
    ws: WindowSet, idx: np.ndarray, modalities: tuple[str, ...], device: torch.device
) -> list[torch.Tensor]:
    arrays = {"eeg": ws.eeg, "nirs": ws.nirs}
    return [torch.from_numpy(arrays[m][idx]).to(device) for m in modalities]


@torch.no_grad()
def predict(
    model: NeuroclipModel, ws: WindowSet, device: torch.device, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """``(logits (N, heads), embedding (N, D))`` in evaluation mode."""
    model.eval()
    logits, embeds = [], []
    for start in range(0, len(ws), batch):
        idx = np.arange(start, min(len(ws), start + batch))
        out_logits, out_embed = model(*_inputs(ws, idx, model.modalities, device))
        logits.append(out_logits.cpu().numpy())
        embeds.append(out_embed.cpu().numpy())
    if not logits:
        return np.zeros((0, model.heads.out_features)), np.zeros((0, model.heads.in_features))
    return np.concatenate(logits), np.concatenate(embeds)


def fit_temperature(mean_logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the validation negative log-likelihood."""

    def nll(log_t: float) -> float:
        z = mean_logits / math.exp(log_t)
        return float(np.mean(np.logaddexp(0, z) - labels * z))

    result = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(math.exp(result.x))


def train_model(ws: WindowSet, cfg: TrainConfig, *, progress: bool = True) -> TrainedModel:
    """Train one model on the windows of ``ws`` (its subjects are all training subjects)."""
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    device = select_device(cfg.device)
    fit_subjects, val_subjects = split_subjects(ws.take(ws.usable), cfg.val_fraction, rng)
    specs = specs_for(ws, cfg)
    model = build_model(specs, n_heads=cfg.n_heads, embed_dim=cfg.embed_dim).to(device)
    labeled = ws.usable & np.isin(ws.rtms, LABELED_SESSIONS)
    fit_mask = np.isin(ws.subject, fit_subjects)
    fit_all = ws.take(ws.usable & fit_mask)
    fit_lab = ws.take(labeled & fit_mask)
    val_lab = ws.take(labeled & np.isin(ws.subject, val_subjects))
    history: list[dict[str, float]] = []
    gen = torch.Generator().manual_seed(cfg.seed)
    st = cfg.stages

    if len(specs) == 2 and cfg.alignment.enabled and st.align_epochs:
        _align(model, fit_all, cfg, device, gen, history, progress)
    boot = torch.from_numpy(rng.poisson(1.0, (len(fit_lab), cfg.n_heads)).astype(np.float32))
    stages = ((st.probe_epochs, st.lr, True), (st.finetune_epochs, st.finetune_lr, False))
    for epochs, lr, frozen in stages:
        for p in model.encoders.parameters():
            p.requires_grad_(not frozen)
        _supervised(
            model,
            fit_lab,
            val_lab,
            boot,
            cfg,
            device,
            gen,
            history,
            epochs,
            lr,
            progress,
            frozen=frozen,
        )

    val_logits, _ = predict(model, val_lab, device)
    temperature = fit_temperature(val_logits.mean(axis=1), val_lab.group.astype(float))
    _, fit_embed = predict(model, fit_lab, device)
    prototypes = {
        name: _prototype(fit_embed[fit_lab.group == label])
        for name, label in (("HC", 0), ("MA", 1))
    }
    model.eval()
    return TrainedModel(
        model.cpu(), specs, temperature, prototypes, fit_subjects, val_subjects, history
    )


def _prototype(embeddings: np.ndarray) -> np.ndarray:
    mean = embeddings.mean(axis=0)
    return mean / max(np.linalg.norm(mean), 1e-12)


def _batches(n: int, size: int, gen: torch.Generator) -> list[np.ndarray]:
    order = torch.randperm(n, generator=gen).numpy()
    return [order[i : i + size] for i in range(0, n - size // 2, size)] or [order]


def _align(
    model: NeuroclipModel,
    ws: WindowSet,
    cfg: TrainConfig,
    device: torch.device,
    gen: torch.Generator,
    history: list[dict[str, float]],
    progress: bool,
) -> None:
    al, st = cfg.alignment, cfg.stages
    params = [p for n, p in model.named_parameters() if not n.startswith("heads")]
    opt = torch.optim.AdamW(params, lr=st.lr, weight_decay=st.weight_decay)
    for epoch in tqdm(
        range(st.align_epochs), desc="stage 1 align", disable=not progress, leave=False
    ):
        model.train()
        total = 0.0
        for idx in _batches(len(ws), st.batch_size, gen):
            eeg, nirs = _inputs(ws, idx, ("eeg", "nirs"), device)
            enc_e, enc_n = model.encoders["eeg"], model.encoders["nirs"]
            loss = torch.zeros((), device=device)
            if al.masked_reconstruction > 0:
                # one pass on masked views: reconstruction target and augmentation at once
                eeg_in, mask_e = mask_tokens(eeg, enc_e.pool_factor, al.mask_ratio, gen)
                nirs_in, mask_n = mask_tokens(nirs, enc_n.pool_factor, al.mask_ratio, gen)
            else:
                eeg_in, nirs_in = eeg, nirs
            tok_e, extra_e = enc_e.tokens(eeg_in)
            tok_n, extra_n = enc_n.tokens(nirs_in)
            if al.masked_reconstruction > 0:
                loss = loss + al.masked_reconstruction * (
                    masked_reconstruction(
                        tok_e, model.decoders["eeg"], eeg, enc_e.pool_factor, mask_e
                    )
                    + masked_reconstruction(tok_n, model.decoders["nirs"], nirs, 1, mask_n)
                )
            emb_e = F.normalize(enc_e.embed_tokens(tok_e, extra_e), dim=1)
            emb_n = F.normalize(enc_n.embed_tokens(tok_n, extra_n), dim=1)
            loss = loss + info_nce(emb_e, emb_n, model.log_tau, al.soft_targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append({"stage": 1, "epoch": epoch, "loss": total / max(len(ws), 1)})


def _weighted_bce(
    logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, class_weight: torch.Tensor
) -> torch.Tensor:
    per = F.binary_cross_entropy_with_logits(logits, y[:, None].expand_as(logits), reduction="none")
    w = weights * class_weight[y.long()][:, None]
    return (per * w).sum() / w.sum().clamp(min=1e-6)


def _supervised(
    model: NeuroclipModel,
    fit: WindowSet,
    val: WindowSet,
    boot: torch.Tensor,
    cfg: TrainConfig,
    device: torch.device,
    gen: torch.Generator,
    history: list[dict[str, float]],
    epochs: int,
    lr: float,
    progress: bool,
    frozen: bool,
) -> None:
    st = cfg.stages
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=st.weight_decay)
    y_all = torch.from_numpy(fit.group.astype(np.float32))
    counts = torch.bincount(y_all.long(), minlength=2).float().clamp(min=1)
    class_weight = (counts.sum() / (2 * counts)).to(device)
    best = (math.inf, copy.deepcopy(model.state_dict()))
    stale = 0
    for epoch in tqdm(
        range(epochs),
        desc=f"stage {'2 probe' if frozen else '3 finetune'}",
        disable=not progress,
        leave=False,
    ):
        model.train()
        if frozen:
            model.encoders.eval()  # frozen encoders keep their batch-norm statistics
        for idx in _batches(len(fit), st.batch_size, gen):
            logits, _ = model(*_inputs(fit, idx, model.modalities, device))
            loss = _weighted_bce(logits, y_all[idx].to(device), boot[idx].to(device), class_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        val_logits, _ = predict(model, val, device)
        z = val_logits.mean(axis=1)
        val_loss = float(np.mean(np.logaddexp(0, z) - val.group * z))
        history.append({"stage": 2 if frozen else 3, "epoch": epoch, "val_loss": val_loss})
        if val_loss < best[0] - 1e-4:
            best = (val_loss, copy.deepcopy(model.state_dict()))
            stale = 0
        elif not frozen:
            stale += 1
            if stale >= st.patience:
                break
    model.load_state_dict(best[1])
