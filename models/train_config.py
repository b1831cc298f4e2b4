"""Training configuration (``configs/train.yaml`` restates these defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contract.settings import InvalidSettingError, setting
from models.windows import SignalParams


@dataclass(frozen=True)
class StageConfig:
    """Progressive training: alignment, probing, fine-tuning."""

    align_epochs: int = setting(6, ge=0, doc="stage 1: contrastive EEG-fNIRS alignment")
    probe_epochs: int = setting(6, ge=0, doc="stage 2: frozen encoders, classifier heads")
    finetune_epochs: int = setting(10, ge=0, doc="stage 3: everything, at a lower rate")
    lr: float = setting(3e-3, gt=0, doc="stages 1 and 2")
    finetune_lr: float = setting(5e-4, gt=0, doc="stage 3")
    weight_decay: float = setting(1e-3, ge=0)
    batch_size: int = setting(64, ge=4)
    patience: int = setting(3, ge=1, doc="stage 3 stops after this many epochs without gain")


@dataclass(frozen=True)
class AlignmentConfig:
    """Stage 1 options, each switchable for the ablation."""

    enabled: bool = setting(True, doc="stage 1 contrastive alignment (fusion only)")
    soft_targets: float = setting(0.2, ge=0, lt=1, doc="softening of InfoNCE targets (0: off)")
    masked_reconstruction: float = setting(
        0.5, ge=0, doc="weight of the masked-signal loss (0: off)"
    )
    mask_ratio: float = setting(0.25, gt=0, lt=1)


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``neuroclip train`` and ``neuroclip evaluate`` need."""

    modalities: tuple[Literal["eeg", "nirs"], ...] = setting(("eeg", "nirs"))
    seed: int = setting(0, ge=0)
    train_hop_s: float = setting(5.0, gt=0, doc="hop between training windows")
    n_heads: int = setting(8, ge=1, doc="bootstrap heads: the score's uncertainty interval")
    deep_in_score: Literal["never", "stack", "gate"] = setting(
        "never",
        doc="how the deep NeuroCLIP part enters the score: never (stage 1 aligns the encoders "
        "for the embedding and prototype distances; the score is the feature branch), stack "
        "(the aligned embedding joins the feature branch where the inner CV shows it helps), "
        "gate (deep heads on top of the features, kept where they help validation subjects). "
        "never was chosen on the development cohorts (docs/benchmarks.md)",
    )
    embed_dim: int = setting(32, ge=4)
    val_fraction: float = setting(
        0.2, gt=0, lt=1, doc="training subjects held out for early stopping and temperature scaling"
    )
    device: Literal["auto", "cpu", "cuda"] = setting("auto")
    threads: int = setting(0, ge=0, doc="torch CPU threads (0: torch's default)")
    signal: SignalParams = SignalParams()
    stages: StageConfig = StageConfig()
    alignment: AlignmentConfig = AlignmentConfig()

    def check(self) -> None:
        """At least one modality, no repeats."""
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise InvalidSettingError(
                "modalities", "a non-empty list of eeg and/or nirs", list(self.modalities)
            )
