"""Training and cross-validation under torchrun: one process against two.

The unit tests read the launch environment and check the sharded layers alone (no sockets).
The tests marked ``integration`` start ``python -m torch.distributed.run --standalone
--nproc-per-node 2`` (gloo on localhost, a free port) on the small simulated cohort; run as a
script under torchrun, this file is also the worker of the one-step gradient test.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from models.distributed import DistContext, DistributedError, Shard, launch_from_env
from tests.conftest import QUICK_TRAIN, REPO

ONE_VS_TWO_TOLERANCE = 0.03
"""Largest absolute difference allowed between a one-process and a two-process training in
a figure that depends on the trained network (the ONNX embedding of fixed windows, the
prototypes, the validation loss and output spread of the deep part).

Two processes compute the same whole-batch gradients in a different order (each rank's
share, then DDP's average; batch-norm statistics summed over ranks), so the runs differ by
float32 rounding. Adam then amplifies it: the biases in front of batch normalisation get
gradients of about 1e-15, pure rounding noise, which Adam's normalisation turns into full
steps. Measured on the quick gate configuration (tests/models/test_distributed.py, 2 cores):
embedding 0.008, prototypes 0.005, validation loss 1e-4 apart, where one process run with 1
thread instead of 2 already moves them 0.003, 0.002 and 2e-4. 0.03 leaves a margin of about
four. Adam is nearly blind to the scale of a gradient, so this end-to-end check catches
ranks that drift apart or see other batches, not a wrong loss scale: the one-step gradient
test (:data:`GRADIENT_TOLERANCE`) does. Figures of the feature branch (calibration, inner-CV
AUC) must agree exactly."""
GRADIENT_TOLERANCE = 1e-4
"""Largest difference between the two-rank and the one-process gradient of one step (stage 1,
then stage 3), relative to the largest gradient component. Float32 rounding gave 2e-6 (stage
1) and 3e-7 (stage 3); each rank dividing by its own shard's weight in stage 3, without the
factor of two, gave 0.25."""
CV_TOLERANCE = 1e-9
"""Cross-validation metrics of one and two processes: each (fold, model) is trained by one
process from its seed with the same thread count, so they are the same numbers."""
RUN_TIMEOUT_S = 240


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO)
    return {**env, **extra}


def _run(args: list[str], procs: int, timeout: float = RUN_TIMEOUT_S):
    import subprocess

    launcher = [sys.executable]
    if procs > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
    return subprocess.run(
        [*launcher, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=_env(),
    )


def _ok(result) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


# -- unit tier: no process group ------------------------------------------------------------


def _launch_env(**values: str) -> dict[str, str]:
    base = {
        "WORLD_SIZE": "2",
        "RANK": "1",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }
    return {k: v for k, v in {**base, **values}.items() if v is not None}


def test_the_launch_is_read_from_torchruns_environment():
    assert launch_from_env({}) is None
    assert launch_from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None  # one process: as before
    launch = launch_from_env(_launch_env())
    assert launch is not None
    assert (launch.rank, launch.world_size, launch.local_rank) == (1, 2, 1)
    assert launch.master == "127.0.0.1:29500"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"RANK": None}, "RANK=None"),
        ({"RANK": "2"}, "RANK=2 with WORLD_SIZE=2"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two'"),
        ({"MASTER_PORT": None}, "MASTER_PORT unset"),
    ],
)
def test_an_inconsistent_launch_is_refused_in_one_line(change, says):
    with pytest.raises(DistributedError) as info:
        launch_from_env(_launch_env(**change))
    text = str(info.value)
    assert says in text and "expected" in text and "Fix: start the command with torchrun" in text
    assert "\n" not in text


def test_a_launch_without_torch_distributed_is_refused(monkeypatch):
    torch = pytest.importorskip("torch")
    from models.distributed import launched

    for key, value in _launch_env(RANK="0", LOCAL_RANK="0").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.distributed, "is_available", lambda: False)
    with (
        pytest.raises(DistributedError, match=r"no torch.distributed.*Fix: install"),
        launched("cpu"),
    ):
        pass


@pytest.mark.parametrize(("n", "world"), [(32, 2), (33, 2), (17, 3), (5, 5), (64, 7)])
def test_the_shards_put_end_to_end_are_the_batch(n, world):
    shards = [DistContext(r, world).shard(n) for r in range(world)]
    assert [s.start for s in shards] == [0, *(s.stop for s in shards[:-1])]
    assert shards[-1].stop == n and all(s.total == n for s in shards)
    sizes = [s.stop - s.start for s in shards]
    assert max(sizes) - min(sizes) <= 1


def test_folds_are_dealt_costliest_first_to_the_least_loaded_rank():
    from models.evaluation import _deal

    assert _deal([4.0, 1.5, 1.0, 4.0, 0.25], 1) == [0] * 5
    assert _deal([4.0, 1.5, 1.0, 4.0, 0.25], 2) == [0, 0, 1, 1, 1]


def test_the_sharded_layers_of_one_process_are_torchs_layers():
    torch = pytest.importorskip("torch")
    import copy

    from models.distributed import SINGLE, shard_layers

    net = torch.nn.Sequential(
        torch.nn.Conv1d(4, 8, 3), torch.nn.BatchNorm1d(8), torch.nn.ELU(), torch.nn.Dropout(0.25)
    )
    twin = copy.deepcopy(net)
    x = torch.randn(16, 4, 12)
    torch.manual_seed(1)
    expected = net(x)
    with shard_layers(twin, SINGLE) as layers:
        layers.use(Shard(0, 16, 16))
        torch.manual_seed(1)
        got = twin(x)
    assert torch.equal(expected == 0, got == 0), "dropout must draw torch's own mask"
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(twin[1].running_var, net[1].running_var, atol=1e-6, rtol=1e-6)
    assert "forward" not in vars(twin[1]), "the layers are restored"


def test_a_process_that_joined_a_group_ends_with_its_output_flushed():
    import subprocess

    script = (
        "import logging, sys\n"
        "from models.distributed import end_process\n"
        "logging.basicConfig()\n"
        "print('the report is written', end='')\n"  # block-buffered into a pipe
        "logging.getLogger('neuroclip').warning('last warning')\n"
        "end_process(3)\n"
        "print('never')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=_env()
    )
    assert result.returncode == 3
    assert result.stdout == "the report is written"
    assert "last warning" in result.stderr


def test_the_command_line_ends_a_distributed_process_with_the_commands_status(
    monkeypatch, tmp_path, capsys
):
    import models.distributed as distributed
    from neuroclip.cli import main

    ended: list[int] = []
    monkeypatch.setattr(distributed, "_GROUP_JOINED", True)
    monkeypatch.setattr(distributed, "end_process", ended.append)
    code = main(["score", str(tmp_path / "absent"), "--out", str(tmp_path / "out")])
    assert code != 0, capsys.readouterr()
    assert ended == [code]
    monkeypatch.setattr(distributed, "_GROUP_JOINED", False)
    assert main(["score", str(tmp_path / "absent"), "--out", str(tmp_path / "o2")]) == code
    assert ended == [code], "a process without a group ends as always"


# -- two processes ---------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_one_step_on_two_ranks_has_the_one_process_gradient(train_cohort, tmp_path):
    out = _ok(_run([__file__, str(train_cohort), str(tmp_path)], procs=2))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2], out
    for r in ranks:
        assert r["loss"] == pytest.approx(r["loss_one_process"], rel=1e-6)
        for stage in ("align", "finetune"):
            assert r[stage] <= GRADIENT_TOLERANCE, (stage, r)


@pytest.mark.integration
@pytest.mark.slow
def test_train_on_two_processes_matches_one(train_cohort, tmp_path):
    from models.bundle import BundleScorer, load_bundle
    from models.dataset import load_windows
    from neuroclip.modelling import windowset_feeds

    config = tmp_path / "gate.yaml"  # the deep heads too: stages 1, 2 and 3 all train
    config.write_text(QUICK_TRAIN.read_text() + "deep_in_score: gate\n")
    common = ["--data", str(train_cohort), "--config", str(config), "--cache", str(tmp_path)]
    one = _ok(_run(["-m", "neuroclip", "train", "--out", str(tmp_path / "one"), *common], 1))
    two = _ok(_run(["-m", "neuroclip", "train", "--out", str(tmp_path / "two"), *common], 2))
    assert "distributed" not in one
    assert two.count("distributed: 2 processes, backend gloo") == 1, two
    assert two.count("wrote bundle") == 1, "rank 0 alone prints"
    a, b = load_bundle(tmp_path / "one"), load_bundle(tmp_path / "two")
    assert "distributed" not in a.meta["training"]
    assert b.meta["training"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    va, vb = a.meta["validation"], b.meta["validation"]
    for key in ("gate", "passed", "inner_auc", "c", "val_auc_features", "val_nll_features"):
        assert va[key] == vb[key], key
    for key in ("val_auc_deep", "val_nll_deep", "deep_sd", "temperature"):
        assert vb[key] == pytest.approx(va[key], abs=ONE_VS_TWO_TOLERANCE), key
    assert a.meta["calibration"] == b.meta["calibration"]
    for group in ("HC", "MA"):
        pa, pb = (np.array(m.meta["reference"]["prototypes"][group]) for m in (a, b))
        np.testing.assert_allclose(pb, pa, atol=ONE_VS_TWO_TOLERANCE)
    ws = load_windows(train_cohort, a.signal_params, hop_s=5.0, cache_dir=tmp_path)
    fixed = ws.take(np.arange(48))
    sa, sb = BundleScorer(a), BundleScorer(b)
    logits_a, embed_a = sa.run(**windowset_feeds(sa, fixed))
    logits_b, embed_b = sb.run(**windowset_feeds(sb, fixed))
    np.testing.assert_allclose(logits_b, logits_a, atol=ONE_VS_TWO_TOLERANCE)
    np.testing.assert_allclose(embed_b, embed_a, atol=ONE_VS_TWO_TOLERANCE)
    assert not np.allclose(embed_a, 0), "the embedding is the trained encoders'"


@pytest.mark.integration
@pytest.mark.slow
def test_cross_validation_on_two_processes_matches_one(train_cohort, tmp_path):
    common = ["--data", str(train_cohort), "--cv", "3", "--config", str(QUICK_TRAIN)]
    common += ["--cache", str(tmp_path)]
    one = _ok(_run(["-m", "neuroclip", "evaluate", "--out", str(tmp_path / "one"), *common], 1))
    two = _ok(_run(["-m", "neuroclip", "evaluate", "--out", str(tmp_path / "two"), *common], 2))
    assert "distributed" not in one and two.count("distributed: 2 processes") == 1, two
    a, b = (json.loads((tmp_path / n / "report.json").read_text()) for n in ("one", "two"))
    assert b["distributed"] == {"world_size": 2, "backend": "gloo"} and "distributed" not in a
    assert a["folds"] == b["folds"]
    for model in a["by_model"]:
        ma, mb = a["by_model"][model], b["by_model"][model]
        for key in ("auc", "window_auc", "ece"):
            assert mb[key] == pytest.approx(ma[key], abs=CV_TOLERANCE), (model, key)
        assert mb["warnings"] == ma["warnings"]
        assert [r["session"] for r in ma["sessions"]] == [r["session"] for r in mb["sessions"]]
        sa, sb = ([r["score"] for r in m["sessions"]] for m in (ma, mb))
        np.testing.assert_allclose(sb, sa, atol=CV_TOLERANCE, err_msg=model)
    assert b["rtms_shift"] == pytest.approx(a["rtms_shift"], abs=CV_TOLERANCE)


@pytest.mark.integration
def test_an_error_on_one_rank_ends_every_rank_with_its_exit_code(tmp_path):
    result = _run([__file__, "fail", str(tmp_path)], procs=2, timeout=120)
    assert result.returncode != 0
    codes = {r: int((tmp_path / f"exit{r}").read_text()) for r in (0, 1)}
    assert codes == {0: 3, 1: 3}
    assert "rank 1 stops: rank 0 failed: the bundle folder is full" in result.stderr


# -- the worker, under torchrun --------------------------------------------------------------


def _one_step(data: Path, out: Path) -> None:
    """One stage-1 and one stage-3 step on two ranks against one process."""
    from models.distributed import launched

    with launched("cpu") as ctx:
        result = _one_step_on(ctx, data, out)
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(result))


def _one_step_on(ctx, data: Path, out: Path) -> dict:
    """The steps on this rank, with DDP, and the same steps in one process."""
    import copy

    import torch

    from contract.settings import load_config
    from models import training
    from models.dataset import load_windows
    from models.distributed import shard_layers
    from models.features import modality_columns
    from models.networks import build_model
    from models.train_config import TrainConfig

    cfg = load_config(TrainConfig, QUICK_TRAIN, name="train", environ={})

    def load():
        return load_windows(data, cfg.signal, hop_s=cfg.train_hop_s, cache_dir=out)

    loaded = ctx.run_on_main(load)  # rank 0 fills the cache, then the others read it
    ws = loaded if loaded is not None else load()
    ws = ws.take(ws.usable)
    torch.manual_seed(0)
    columns = modality_columns(ws.feature_names, tuple(cfg.modalities))
    model = build_model(training.specs_for(ws, cfg), len(columns), n_heads=cfg.n_heads)
    model.feature_columns = columns
    alone = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    idx = training._batches(len(ws), 33, gen)[0]  # an odd batch: unequal shards
    states = gen.get_state(), torch.get_rng_state()
    device = torch.device("cpu")
    model.train()
    step = ctx.wrap(training._AlignStep(model, ws, cfg, device, gen, ctx), device)
    with shard_layers(model, ctx) as layers:
        shard = ctx.shard(len(idx))
        layers.use(shard)
        loss, value = step(idx, shard)
        loss.backward()
    gen.set_state(states[0])
    torch.set_rng_state(states[1])
    alone.train()
    expected = training._align_step(alone, ws, idx, cfg, device, gen)
    expected.backward()
    result = {
        "world_size": ctx.world_size,
        "loss": float(value),
        "loss_one_process": float(expected.detach()),
        "align": _gradient_difference(model, alone),
    }
    # a stage-3 step: every parameter but the feature branch, bootstrap and class weights
    for net in (model, alone):
        net.zero_grad()
    y = torch.from_numpy(ws.group.astype(np.float32))
    boot = torch.from_numpy(np.random.default_rng(0).poisson(1.0, (len(ws), cfg.n_heads)))
    boot = boot.float()
    weight = torch.tensor([0.8, 1.3])
    states = torch.get_rng_state()
    with shard_layers(model, ctx) as layers:
        run = (ctx.wrap(model, device), layers, ctx)
        loss = training._supervised_loss(model, ws, idx, y, boot, weight, device, run)
        loss.backward()
    torch.set_rng_state(states)
    training._supervised_loss(alone, ws, idx, y, boot, weight, device).backward()
    result["finetune"] = _gradient_difference(model, alone)
    return result


def _gradient_difference(model, alone) -> float:
    """Largest gradient difference, relative to the largest one-process gradient."""
    grads = {n: p.grad for n, p in alone.named_parameters() if p.grad is not None}
    scale = max(float(g.abs().max()) for g in grads.values())
    assert {n for n, p in model.named_parameters() if p.grad is not None} == set(grads)
    return max(
        float((p.grad - grads[n]).abs().max()) / scale
        for n, p in model.named_parameters()
        if n in grads
    )


def _fail(out: Path) -> int:
    """Rank 0 fails inside :meth:`DistContext.run_on_main`; both must end with its code."""
    from contract.errors import OutputError
    from models.distributed import launched

    def write():
        raise type("FullError", (OutputError,), {"exit_code": 3})("the bundle folder is full")

    with launched("cpu", timeout_s=60) as ctx:
        try:
            ctx.run_on_main(write)
        except Exception as exc:
            code = getattr(exc, "exit_code", 1)
            print(f"rank {ctx.rank}: {exc}", file=sys.stderr)
            (out / f"exit{ctx.rank}").write_text(str(code))
            return code
    return 0


if __name__ == "__main__":
    from models.distributed import end_process  # as the command line ends (see there)

    if sys.argv[1] == "fail":
        end_process(_fail(Path(sys.argv[2])))
    _one_step(Path(sys.argv[1]), Path(sys.argv[2]))
    end_process(0)
