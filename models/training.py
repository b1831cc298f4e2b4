"""Progressive training: a feature branch, alignment, probing, fine-tuning, then a gate,
calibration and prototypes.

Stage 0 fits the hand-crafted feature branch (:mod:`models.handcrafted`: a logistic
regression whose regularisation an inner subject-wise CV chooses) on the fit subjects and
freezes it; the deep part learns what the features miss. Stage 1 (fusion only) aligns the
EEG and fNIRS embeddings of the same window with a symmetric InfoNCE loss (optionally soft
targets and masked-signal reconstruction); labels are not used, so every usable window of
the training subjects takes part. Stage 2 freezes the encoders and trains ``n_heads`` linear
heads, each on its own Poisson bootstrap of the windows, for MA vs HC. Stage 3 unfreezes
everything at a lower rate, stopping on the loss of held-out validation subjects. Then the
gate: the deep part is kept only when it lowers the validation subjects' loss without
lowering their subject-level AUC, and when its outputs are not collapsed to a constant;
otherwise the model is its feature branch alone, refitted on every training subject, and the
reason is recorded. A model whose feature branch cannot separate held-out training subjects
(inner AUC at chance) and whose deep part failed too is marked as failing validation: its
bundle records why and refuses to become the default. Calibration is per window (a
temperature) and per session (:mod:`models.session_estimate`). Subjects never straddle the
fit/validation split.

Under torchrun (``WORLD_SIZE`` above 1, :mod:`models.distributed`) every rank draws the same
batches and takes its share of each; the network is wrapped in DistributedDataParallel and the
losses are split so that the averaged gradient is the one-process gradient of the whole batch
(:func:`_align_step`, :func:`_weighted_bce`). The rest (feature branch, gate, calibration)
is computed alike on every rank from the same, synchronised model.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812
from tqdm import tqdm

from contract.errors import DatasetError, TrainingFailedError
from models.dataset import LABELED_SESSIONS, WindowSet
from models.distributed import DistContext, Shard, shard_layers
from models.features import modality_columns
from models.handcrafted import HandcraftedModel, LabelledWindows, session_means
from models.losses import info_nce, mask_tokens, masked_reconstruction
from models.networks import InputSpec, NeuroclipModel, build_model
from models.session_estimate import (
    SessionCalibration,
    fit_session_calibration,
    fit_temperature,
    within_session_sd,
)
from models.train_config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    """A trained model with what the bundle needs beside the weights."""

    model: NeuroclipModel
    specs: dict[str, InputSpec]
    temperature: float
    prototypes: dict[str, np.ndarray]
    fit_subjects: list[str]
    val_subjects: list[str]
    feature_columns: np.ndarray
    feature_names: list[str]
    session_calibration: SessionCalibration
    validation: dict
    """Validation figures, the gate's decision, warnings and ``passed``."""
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
                f"only {len(subjects)} {'MA' if group else 'HC'} subject(s) with usable "
                f"windows for training ({len(ws)} usable windows in all); at least 2 per "
                "group are needed (one to fit, one to validate).",
                fix="add subjects or use fewer cross-validation folds; if the dataset has "
                "subjects, the quality gate rejected their windows: 'neuroclip inspect' "
                "shows the fNIRS coupling, and flat or railing EEG fails it too.",
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
    ws: WindowSet, idx: np.ndarray, model: NeuroclipModel, device: torch.device
) -> list[torch.Tensor]:
    """The model's input tensors for rows ``idx``, in :attr:`NeuroclipModel.input_names` order."""
    columns = model.feature_columns
    arrays = {
        "eeg": lambda: ws.eeg[idx],
        "nirs": lambda: ws.nirs[idx],
        "context": lambda: ws.context[idx],
        "features": lambda: ws.features[idx][:, columns],
    }
    return [
        torch.from_numpy(np.ascontiguousarray(arrays[n](), np.float32)).to(device)
        for n in model.input_names
    ]


@torch.no_grad()
def predict(
    model: NeuroclipModel, ws: WindowSet, device: torch.device, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """``(logits (N, heads), embedding (N, D))`` in evaluation mode."""
    model.eval()
    logits, embeds = [], []
    for start in range(0, len(ws), batch):
        idx = np.arange(start, min(len(ws), start + batch))
        out_logits, out_embed = model(*_inputs(ws, idx, model, device))
        logits.append(out_logits.cpu().numpy())
        embeds.append(out_embed.cpu().numpy())
    if not logits:
        return np.zeros((0, model.heads.out_features)), np.zeros((0, model.heads.in_features))
    return np.concatenate(logits), np.concatenate(embeds)


def labelled_windows(ws: WindowSet, mask: np.ndarray) -> LabelledWindows:
    """The labelled (``pre``/``none``) usable windows of ``ws`` where ``mask`` holds."""
    keep = mask & ws.usable & np.isin(ws.rtms, LABELED_SESSIONS)
    return LabelledWindows(ws.features[keep], ws.subject[keep], ws.session[keep], ws.group[keep])


def fit_feature_model(ws: WindowSet, mask: np.ndarray, cfg: TrainConfig) -> HandcraftedModel:
    """The hand-crafted model of ``cfg.modalities`` on the subjects where ``mask`` holds."""
    return HandcraftedModel(ws.feature_names, tuple(cfg.modalities), cfg.seed).fit(
        labelled_windows(ws, mask)
    )


def _subject_auc(ws: WindowSet, logits: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    _, means = session_means(logits, ws.subject, ws.session)
    _, labels = session_means(ws.group.astype(float), ws.subject, ws.session)
    return float(roc_auc_score(labels, means)) if len(set(labels.tolist())) == 2 else 0.5


def _nll(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0, logits) - y * logits))


COLLAPSE_SD = 1e-3
"""Outputs whose standard deviation over validation windows is below this are a constant."""
TEMPERATURE_LIMIT = 10.0
"""A fitted window temperature above this (the bound is 20) says the logits are noise."""
CHANCE_AUC = 0.6
"""An inner-CV subject AUC at or below this is taken as no signal found."""


def train_model(
    ws: WindowSet, cfg: TrainConfig, *, progress: bool = True, dist: DistContext | None = None
) -> TrainedModel:
    """Train one model on the windows of ``ws`` (its subjects are all training subjects).

    With ``dist`` of several processes (each holding the same ``ws``), the network's stages
    run data-parallel over them; every rank returns the same model.

    Raises
    ------
    TrainingFailedError
        When the final model gives the same output for every training window.
    """
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    device = select_device(cfg.device)
    ddp = dist if dist is not None and dist.enabled else None
    if ddp is not None and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())  # LOCAL_RANK's GPU
    fit_subjects, val_subjects = split_subjects(ws.take(ws.usable), cfg.val_fraction, rng)
    specs = specs_for(ws, cfg)
    columns = modality_columns(ws.feature_names, tuple(cfg.modalities))
    fit_mask = np.isin(ws.subject, fit_subjects)
    model = build_model(specs, len(columns), n_heads=cfg.n_heads, embed_dim=cfg.embed_dim)
    model.feature_columns = columns
    model.to(device)
    history: list[dict[str, float]] = []
    gen = torch.Generator().manual_seed(cfg.seed)
    st = cfg.stages
    aligned = len(specs) == 2 and cfg.alignment.enabled and st.align_epochs > 0
    result = (model, ws, cfg, device, specs, fit_subjects, val_subjects, history)
    if cfg.deep_in_score in ("never", "stack"):
        if aligned:
            # unsupervised: every training subject's usable windows may take part
            _align(model, ws.take(ws.usable), cfg, device, gen, history, progress, ddp)
        if cfg.deep_in_score == "stack" and aligned:
            return _finish(*result, _stack(model, ws, cfg, device))
        return _finish(*result, _features_only(model, ws, cfg, device))

    features_fit = fit_feature_model(ws, fit_mask, cfg)
    _load_feature_branch(model.cpu(), features_fit)
    model.to(device)
    labeled = ws.usable & np.isin(ws.rtms, LABELED_SESSIONS)
    fit_all = ws.take(ws.usable & fit_mask)
    fit_lab = ws.take(labeled & fit_mask)
    val_lab = ws.take(labeled & np.isin(ws.subject, val_subjects))
    if aligned:
        _align(model, fit_all, cfg, device, gen, history, progress, ddp)
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
            ddp=ddp,
        )

    validation = _gate(model, features_fit, val_lab, device, cfg)
    if validation["gate"]:
        val_logits, _ = predict(model, val_lab, device)
        mean_val = val_logits.mean(axis=1)
        temperature = fit_temperature(mean_val, val_lab.group.astype(float))
        _, means = session_means(mean_val, val_lab.subject, val_lab.session)
        _, labels = session_means(val_lab.group.astype(float), val_lab.subject, val_lab.session)
        keys = np.char.add(
            np.char.add(val_lab.subject.astype(str), "/"), val_lab.session.astype(str)
        )
        session_cal = fit_session_calibration(means, labels, within_session_sd(mean_val, keys))
        decided = (validation, temperature, session_cal)
    else:
        # the deep part is off: the feature branch is refitted on every training subject
        features_all = fit_feature_model(ws, np.ones(len(ws), bool), cfg)
        _load_feature_branch(model.cpu(), features_all)
        with torch.no_grad():
            model.gate.fill_(0.0)
        model.to(device)
        validation["inner_auc"] = features_all.inner_auc
        validation["c"] = features_all.c
        validation["part_weights"] = features_all.part_weights
        validation["part_aucs"] = features_all.part_aucs
        decided = (validation, features_all.window_temperature, features_all.calibration)
    return _finish(model, ws, cfg, device, specs, fit_subjects, val_subjects, history, decided)


def _finish(
    model: NeuroclipModel,
    ws: WindowSet,
    cfg: TrainConfig,
    device: torch.device,
    specs: dict[str, InputSpec],
    fit_subjects: list[str],
    val_subjects: list[str],
    history: list[dict[str, float]],
    decided: tuple[dict, float, SessionCalibration],
) -> TrainedModel:
    """Checks, prototypes and the result, once the model's form is decided."""
    validation, temperature, session_cal = decided
    if temperature > TEMPERATURE_LIMIT:
        note = (
            f"the window temperature reached {temperature:.1f}: calibration flattened the "
            "window scores toward 0.5, their logits carry almost no information"
        )
        logger.warning("%s: %s", "+".join(cfg.modalities), note)
        validation["warnings"].append(note)
    validation["temperature"] = temperature
    _verdict(validation, validation["inner_auc"], tuple(cfg.modalities))
    labeled = ws.usable & np.isin(ws.rtms, LABELED_SESSIONS)
    fit_lab = ws.take(labeled & np.isin(ws.subject, fit_subjects))
    fit_logits, fit_embed = predict(model, fit_lab, device)
    if float(fit_logits.mean(axis=1).std()) < COLLAPSE_SD:
        raise TrainingFailedError(
            f"training produced a constant: the model gives every one of {len(fit_lab)} "
            "training windows the same score.",
            fix="check that the dataset's groups differ (neuroclip evaluate's hand-crafted "
            "reference) and that its signals are not flat; add subjects.",
        )
    prototypes = {
        name: _prototype(fit_embed[fit_lab.group == label])
        for name, label in (("HC", 0), ("MA", 1))
    }
    model.eval()
    columns = model.feature_columns
    return TrainedModel(
        model.cpu(),
        specs,
        temperature,
        prototypes,
        fit_subjects,
        val_subjects,
        columns,
        [ws.feature_names[i] for i in columns],
        session_cal,
        validation,
        history,
    )


def _features_only(
    model: NeuroclipModel, ws: WindowSet, cfg: TrainConfig, device: torch.device
) -> tuple[dict, float, SessionCalibration]:
    """The score is the feature branch fitted on every training subject; the encoders (aligned
    by stage 1 in fusion) give the embedding and the prototype distances only."""
    fitted = fit_feature_model(ws, np.ones(len(ws), bool), cfg)
    _load_feature_branch(model.cpu(), fitted)
    with torch.no_grad():
        model.gate.fill_(0.0)
    model.to(device)
    validation = {
        "mode": "never",
        "gate": False,
        "collapsed": False,
        "inner_auc": fitted.inner_auc,
        "c": fitted.c,
        "part_weights": fitted.part_weights,
        "part_aucs": fitted.part_aucs,
        "warnings": [],
    }
    return validation, fitted.window_temperature, fitted.calibration


STACK_MARGIN = 0.02
"""Inner-CV subject AUC the stacked embedding must add before it is kept."""


def _stack(
    model: NeuroclipModel, ws: WindowSet, cfg: TrainConfig, device: torch.device
) -> tuple[dict, float, SessionCalibration]:
    """Feed the aligned joint embedding to the feature branch where the inner CV says it helps.

    Both linear models (features, and features plus embedding) are fitted with their own
    inner subject-wise CV on every training subject; the embedding is kept only when it
    raises the inner-CV subject AUC by :data:`STACK_MARGIN`. The encoders stay as stage 1
    left them; the deep heads are not used (gate 0).
    """
    _, joint = predict(model, ws, device)
    keep = ws.usable & np.isin(ws.rtms, LABELED_SESSIONS)
    modalities = tuple(cfg.modalities)
    names = [*ws.feature_names, *(f"emb:{i}" for i in range(joint.shape[1]))]
    extended = np.concatenate([ws.features, joint], axis=1)[keep]
    rows = (ws.subject[keep], ws.session[keep], ws.group[keep])
    plain = HandcraftedModel(ws.feature_names, modalities, cfg.seed).fit(
        LabelledWindows(ws.features[keep], *rows)
    )
    stacked = HandcraftedModel(names, (*modalities, "emb"), cfg.seed).fit(
        LabelledWindows(extended, *rows)
    )
    a_plain = plain.inner_auc if plain.inner_auc is not None else 0.5
    a_stack = stacked.inner_auc if stacked.inner_auc is not None else 0.5
    use = a_stack >= a_plain + STACK_MARGIN
    chosen = stacked if use else plain
    _load_feature_branch(model.cpu(), chosen)
    model.to(device)
    with torch.no_grad():
        model.gate.fill_(0.0)
    note = (
        f"the aligned embedding {'raised' if use else 'did not raise'} the inner-CV subject "
        f"AUC ({a_stack:.3f} with it, {a_plain:.3f} without); "
        + ("it is stacked onto the features" if use else "the model is its feature branch alone")
    )
    logger.info("%s: %s", "+".join(modalities), note)
    validation = {
        "mode": "stack",
        "gate": False,
        "stacked": use,
        "inner_auc": chosen.inner_auc,
        "inner_auc_features": plain.inner_auc,
        "inner_auc_stacked": stacked.inner_auc,
        "c": chosen.c,
        "part_weights": chosen.part_weights,
        "part_aucs": chosen.part_aucs,
        "collapsed": False,
        "warnings": [] if use else [note],
    }
    return validation, chosen.window_temperature, chosen.calibration


def _load_feature_branch(model: NeuroclipModel, fitted: HandcraftedModel) -> None:
    assert fitted.fit_ is not None
    f = fitted.fit_
    model.set_feature_branch(f.mean, f.scale, f.coef, f.intercept)


def _gate(
    model: NeuroclipModel,
    features_fit: HandcraftedModel,
    val: WindowSet,
    device: torch.device,
    cfg: TrainConfig,
) -> dict:
    """Keep the deep part only where it helps the validation subjects; say why."""
    warnings: list[str] = []
    logits, _ = predict(model, val, device)
    with_deep = logits.mean(axis=1)
    without = features_fit.logits(val.features)
    deep_part = with_deep - without
    y = val.group.astype(float)
    figures = {
        "val_subjects": len(set(val.subject.tolist())),
        "val_auc_features": _subject_auc(val, without),
        "val_auc_deep": _subject_auc(val, with_deep),
        "val_nll_features": _nll(without, y),
        "val_nll_deep": _nll(with_deep, y),
        "deep_sd": float(deep_part.std()),
        "inner_auc": features_fit.inner_auc,
        "c": features_fit.c,
    }
    collapsed = figures["deep_sd"] < COLLAPSE_SD
    helps = (
        figures["val_nll_deep"] < figures["val_nll_features"] - 0.01
        and figures["val_auc_deep"] >= figures["val_auc_features"]
    )
    gate = bool(helps and not collapsed)
    if collapsed:
        warnings.append(
            "the deep part collapsed to a constant on the validation subjects; the model is "
            "its hand-crafted feature branch alone"
        )
    elif not helps:
        warnings.append(
            "the deep part did not improve the validation subjects (loss "
            f"{figures['val_nll_deep']:.3f} vs {figures['val_nll_features']:.3f} for the "
            "features alone); the model is its hand-crafted feature branch alone"
        )
    with torch.no_grad():
        model.gate.fill_(1.0 if gate else 0.0)
    for w in warnings:
        logger.warning("%s: %s", "+".join(model.modalities), w)
    figures.update(mode="gate", gate=gate, collapsed=collapsed, warnings=warnings)
    return figures


def _verdict(validation: dict, inner_auc: float | None, modalities: tuple[str, ...]) -> None:
    """Whether the final model passed validation, with the warnings that say why not."""
    inner = 0.5 if inner_auc is None else inner_auc
    deep_ok = validation["gate"] and validation["val_auc_deep"] > CHANCE_AUC
    validation["passed"] = bool(inner > CHANCE_AUC or deep_ok)
    if inner_auc is None:
        note = (
            "too few training subjects for an inner cross-validation (fewer than 2 per group): "
            "regularisation fixed, no evidence of signal"
        )
    elif not validation["passed"]:
        note = (
            f"no usable signal: the subject AUC on held-out training subjects is {inner:.2f} "
            f"(chance is 0.5; needs > {CHANCE_AUC}); this model's scores carry no evidence"
        )
    else:
        return
    logger.warning("%s: %s", "+".join(modalities), note)
    validation["warnings"].append(note)


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
    ddp: DistContext | None = None,
) -> None:
    st = cfg.stages
    params = [p for n, p in model.named_parameters() if not n.startswith("heads")]
    opt = torch.optim.AdamW(params, lr=st.lr, weight_decay=st.weight_decay)
    if ddp is not None:
        _align_distributed(model, ws, cfg, device, gen, history, progress, ddp, opt)
        return
    for epoch in tqdm(
        range(st.align_epochs), desc="stage 1 align", disable=not progress, leave=False
    ):
        model.train()
        total = 0.0
        for idx in _batches(len(ws), st.batch_size, gen):
            loss = _align_step(model, ws, idx, cfg, device, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append({"stage": 1, "epoch": epoch, "loss": total / max(len(ws), 1)})


def _align_step(
    model: NeuroclipModel,
    ws: WindowSet,
    idx: np.ndarray,
    cfg: TrainConfig,
    device: torch.device,
    gen: torch.Generator,
    ddp: DistContext | None = None,
    shard: Shard | None = None,
) -> torch.Tensor:
    """Stage 1's loss on the batch ``idx``; with ``ddp``, the loss this rank backpropagates.

    Distributed, each rank encodes its rows ``shard`` of the batch. The masks are drawn for
    the whole batch (the generator stays in step on every rank) and sliced. The masked
    reconstruction is a mean over the whole batch's masked tokens: each rank's part is its
    sum over that whole count, times the number of ranks (DDP averages gradients). InfoNCE
    is not a sum over rows: every rank computes it on the whole batch's embeddings
    (:meth:`DistContext.gather_rows`, whose backward sums the ranks' gradients, so the
    averaged gradient is again the whole batch's).
    """
    al = cfg.alignment
    rows = idx if shard is None else shard.rows(idx)
    tensors = dict(zip(model.input_names, _inputs(ws, rows, model, device), strict=True))
    enc_in = model.encoder_inputs(tensors)
    eeg, nirs = enc_in["eeg"], enc_in["nirs"]
    enc_e, enc_n = model.encoders["eeg"], model.encoders["nirs"]
    loss = torch.zeros((), device=device)
    if al.masked_reconstruction > 0 and shard is None:
        # one pass on masked views: reconstruction target and augmentation at once
        eeg_in, mask_e = mask_tokens(eeg, enc_e.pool_factor, al.mask_ratio, gen)
        nirs_in, mask_n = mask_tokens(nirs, enc_n.pool_factor, al.mask_ratio, gen)
    elif al.masked_reconstruction > 0 and shard is not None:
        eeg_in, mask_e, all_e = _shard_mask(eeg, enc_e.pool_factor, al.mask_ratio, gen, shard)
        nirs_in, mask_n, all_n = _shard_mask(nirs, enc_n.pool_factor, al.mask_ratio, gen, shard)
    else:
        eeg_in, nirs_in = eeg, nirs
    tok_e, extra_e = enc_e.tokens(eeg_in)
    tok_n, extra_n = enc_n.tokens(nirs_in)
    if al.masked_reconstruction > 0:
        rec_e = masked_reconstruction(tok_e, model.decoders["eeg"], eeg, enc_e.pool_factor, mask_e)
        rec_n = masked_reconstruction(tok_n, model.decoders["nirs"], nirs, 1, mask_n)
        if shard is not None and ddp is not None:
            part_e, part_n = _mask_part(mask_e, all_e, tok_e), _mask_part(mask_n, all_n, tok_n)
            rec_e, rec_n = rec_e * part_e * ddp.world_size, rec_n * part_n * ddp.world_size
        loss = loss + al.masked_reconstruction * (rec_e + rec_n)
    emb_e = F.normalize(enc_e.embed_tokens(tok_e, extra_e), dim=1)
    emb_n = F.normalize(enc_n.embed_tokens(tok_n, extra_n), dim=1)
    if shard is not None and ddp is not None:
        emb_e, emb_n = ddp.gather_rows(emb_e, shard), ddp.gather_rows(emb_n, shard)
    return loss + info_nce(emb_e, emb_n, model.log_tau, al.soft_targets)


def _shard_mask(
    x: torch.Tensor, pool: int, ratio: float, gen: torch.Generator, shard: Shard
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`mask_tokens` drawn for the whole batch, applied to this rank's rows ``x``:
    ``(masked x, its token mask, the whole batch's token mask)``."""
    ones = torch.ones((shard.total, 1, x.shape[2]))
    kept, mask = mask_tokens(ones, pool, ratio, gen)
    mine = shard.rows(kept).to(x.device)
    return x.masked_fill(mine == 0, 0.0), shard.rows(mask).to(x.device), mask


def _mask_part(mask: torch.Tensor, whole: torch.Tensor, tokens: torch.Tensor) -> float:
    """This rank's masked tokens over the whole batch's, as :func:`masked_reconstruction`
    counts them (its mean times this is the rank's part of the whole batch's mean)."""
    t = min(mask.shape[1], tokens.shape[1])
    return float(mask[:, :t].sum()) / max(float(whole[:, :t].sum()), 1.0)


def _align_distributed(
    model: NeuroclipModel,
    ws: WindowSet,
    cfg: TrainConfig,
    device: torch.device,
    gen: torch.Generator,
    history: list[dict[str, float]],
    progress: bool,
    ddp: DistContext,
    opt: torch.optim.Optimizer,
) -> None:
    """Stage 1 data-parallel: DDP over :func:`_align_step` on each rank's share."""
    st = cfg.stages
    step = ddp.wrap(_AlignStep(model, ws, cfg, device, gen, ddp), device)
    with shard_layers(model, ddp) as layers:
        for epoch in tqdm(
            range(st.align_epochs),
            desc="stage 1 align",
            disable=not (progress and ddp.is_main),
            leave=False,
        ):
            model.train()
            total = 0.0
            for idx in _batches(len(ws), st.batch_size, gen):
                shard = _shard_of(ddp, len(idx))
                layers.use(shard)
                loss, value = step(idx, shard)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(value) * len(idx)
            ddp.broadcast_module(model)  # equal already; rounding must never drift apart
            history.append({"stage": 1, "epoch": epoch, "loss": total / max(len(ws), 1)})


class _AlignStep(torch.nn.Module):
    """:func:`_align_step` as a module, for DistributedDataParallel to wrap; it returns the
    rank's loss and the whole batch's loss value (for the history)."""

    def __init__(
        self,
        model: NeuroclipModel,
        ws: WindowSet,
        cfg: TrainConfig,
        device: torch.device,
        gen: torch.Generator,
        ddp: DistContext,
    ):
        super().__init__()
        self.model = model
        self.ws, self.cfg, self.device, self.gen, self.ddp = ws, cfg, device, gen, ddp

    def forward(self, idx: np.ndarray, shard: Shard) -> tuple[torch.Tensor, torch.Tensor]:
        loss = _align_step(
            self.model, self.ws, idx, self.cfg, self.device, self.gen, self.ddp, shard
        )
        with torch.no_grad():
            # the InfoNCE term is the whole batch's on every rank; the rest is split
            value = self.ddp.all_reduce(loss.detach()) / self.ddp.world_size
        return loss, value


def _shard_of(ddp: DistContext, n: int) -> Shard:
    shard = ddp.shard(n)
    if n < ddp.world_size:
        raise DatasetError(
            f"a batch of {n} windows cannot be shared by {ddp.world_size} processes, expected "
            "at least one window per process.",
            fix="run fewer processes (--nproc-per-node), or raise stages.batch_size where the "
            "training set is not this small.",
        )
    return shard


def _weighted_bce(
    logits: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    class_weight: torch.Tensor,
    total_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted mean BCE; ``total_weight`` (the whole batch's, where these rows are one
    rank's share) replaces these rows' own weight sum as the divisor."""
    per = F.binary_cross_entropy_with_logits(logits, y[:, None].expand_as(logits), reduction="none")
    w = weights * class_weight[y.long()][:, None]
    return (per * w).sum() / (w.sum() if total_weight is None else total_weight).clamp(min=1e-6)


def _supervised_loss(
    model: NeuroclipModel,
    fit: WindowSet,
    idx: np.ndarray,
    y_all: torch.Tensor,
    boot: torch.Tensor,
    class_weight: torch.Tensor,
    device: torch.device,
    run: tuple[torch.nn.Module, Any, DistContext] | None = None,
) -> torch.Tensor:
    """The class- and bootstrap-weighted BCE of the batch ``idx``; with ``run`` (the DDP
    module, :class:`models.distributed.ShardedLayers` and the context), this rank's part:
    its rows' weighted sum over the whole batch's weight, times the number of ranks (DDP
    averages the gradients)."""
    if run is None:
        logits, _ = model(*_inputs(fit, idx, model, device))
        return _weighted_bce(logits, y_all[idx].to(device), boot[idx].to(device), class_weight)
    net, layers, ddp = run
    shard = _shard_of(ddp, len(idx))
    layers.use(shard)
    y = y_all[idx].to(device)
    whole = (boot[idx].to(device) * class_weight[y.long()][:, None]).sum()
    rows = shard.rows(idx)
    logits, _ = net(*_inputs(fit, rows, model, device))
    return ddp.world_size * _weighted_bce(
        logits, y_all[rows].to(device), boot[rows].to(device), class_weight, whole
    )


@contextlib.contextmanager
def _data_parallel(
    model: NeuroclipModel, ddp: DistContext | None, device: torch.device
) -> Iterator[tuple[torch.nn.Module, Any, DistContext] | None]:
    """``None`` for one process; else what :func:`_supervised_loss` runs on: the model in
    DDP (one wrapper per stage: it takes the parameters that need a gradient when wrapped),
    the sharded layers and the context."""
    if ddp is None:
        yield None
        return
    with shard_layers(model, ddp) as layers:
        yield ddp.wrap(model, device), layers, ddp


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
    ddp: DistContext | None = None,
) -> None:
    """Stages 2 and 3; with ``ddp``, data-parallel (:func:`_supervised_loss`)."""
    params = [p for p in model.parameters() if p.requires_grad]
    with _data_parallel(model, ddp, device) as run:
        st = cfg.stages
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=st.weight_decay)
        y_all = torch.from_numpy(fit.group.astype(np.float32))
        counts = torch.bincount(y_all.long(), minlength=2).float().clamp(min=1)
        class_weight = (counts.sum() / (2 * counts)).to(device)
        best = (math.inf, copy.deepcopy(model.state_dict()))
        stale = 0
        for epoch in tqdm(
            range(epochs),
            desc=f"stage {'2 probe' if frozen else '3 finetune'}",
            disable=not progress or (run is not None and not run[2].is_main),
            leave=False,
        ):
            model.train()
            if frozen:
                model.encoders.eval()  # frozen encoders keep their batch-norm statistics
            for idx in _batches(len(fit), st.batch_size, gen):
                loss = _supervised_loss(model, fit, idx, y_all, boot, class_weight, device, run)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if run is not None:
                run[2].broadcast_module(model)  # equal already; rounding must never drift apart
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
