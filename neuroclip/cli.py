"""The ``neuroclip`` command line: one console script, one subcommand per working feature.

Errors the user can fix (:class:`contract.errors.NeuroclipError`) are printed as one message
with its fix and exit with status 2; Ctrl-C exits with 130 after a clean stop.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from contract.errors import NeuroclipError
from neuroclip import __version__

logger = logging.getLogger("neuroclip")


def _handler(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand's handler, imported when it runs: ``neuroclip score`` never pays for
    the monitor's, the demo's or the dashboard's imports (nor they for each other's)."""

    def run(args: argparse.Namespace) -> int:
        return importlib.import_module(module).__dict__[name](args)

    run.__qualname__ = f"{module}.{name}"
    return run


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a cohort as BIDS, or stream one synthetic subject over LSL",
        description="Simulate simultaneous EEG (32 ch, 500 Hz), fNIRS (18 pairs x 760/850 nm, "
        "10 Hz) and markers driven by a latent severity. With --out, write a BIDS dataset; "
        "with --live, stream one subject as LSL outlets (EEG, NIRS, Markers) in real time.",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", type=Path, help="write a BIDS dataset into this (new) folder")
    mode.add_argument("--live", action="store_true", help="stream over LSL in real time")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML configuration (default: embedded defaults, as configs/simulate.yaml)",
    )
    p.add_argument(
        "--generator",
        choices=["neuroclip", "literature"],
        default="neuroclip",
        help="with --out: 'literature' writes the cohort with the second, independent "
        "generator (models/literature_sim: 19-channel EEG at 512 Hz, event-related cues, "
        "fNIRS at 7.8125 Hz; --ma, --hc, --minutes and --seed apply), used to check that a "
        "model did not learn one simulator",
    )
    p.add_argument("--ma", type=int, help="number of MA subjects (cohort.ma)")
    p.add_argument("--hc", type=int, help="number of healthy controls (cohort.hc)")
    p.add_argument("--minutes", type=float, help="minutes per session (cohort.minutes)")
    p.add_argument("--seed", type=int, help="seed (cohort.seed, or live.seed with --live)")
    p.add_argument(
        "--rtms-in-sessions",
        action="store_true",
        default=None,
        help="put an rTMS block with pulse artifacts in every recorded session",
    )
    p.add_argument("--duration", type=float, help="seconds to stream with --live (live.duration_s)")
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        metavar="K",
        help="with --live, stream K simulated seconds per real second (live.speed)",
    )
    p.add_argument(
        "--wait-consumers",
        type=float,
        default=None,
        metavar="S",
        help="with --live, wait up to S s for a reader of every outlet before "
        "streaming (live.wait_for_consumer_s)",
    )
    p.add_argument(
        "--name-prefix",
        default=None,
        help="prefix of the three LSL stream names with --live (e.g. a room)",
    )
    p.add_argument(
        "--stage",
        choices=["pre", "post"],
        default=None,
        help="with --live, the session to stream: pre, or post (the same subject after its "
        "rTMS course: lower severity, another cue order) (live.stage)",
    )
    p.set_defaults(func=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from contract.settings import load_config
    from models.simulation.config import SimulationConfig

    if args.generator == "literature":
        if args.live:
            from contract.errors import ConfigError

            raise ConfigError(
                "--generator literature writes cohorts only; it has no live outlets.",
                key="generator",
                fix="use --out DIR with --generator literature, or --live without it.",
            )
        return _write_literature(args)

    overrides: dict[str, object] = {
        "cohort.ma": args.ma,
        "cohort.hc": args.hc,
        "cohort.minutes": args.minutes,
        "cohort.rtms_in_sessions": args.rtms_in_sessions,
        "live.duration_s": args.duration,
        "live.speed": args.speed,
        "live.wait_for_consumer_s": args.wait_consumers,
        "live.stage": args.stage,
        ("live.seed" if args.live else "cohort.seed"): args.seed,
    }
    if args.name_prefix:
        overrides.update(
            {
                "live.eeg_name": f"{args.name_prefix}-EEG",
                "live.nirs_name": f"{args.name_prefix}-NIRS",
                "live.markers_name": f"{args.name_prefix}-Markers",
                "live.source_prefix": args.name_prefix,
            }
        )
    cfg = load_config(SimulationConfig, args.config, name="simulate", overrides=overrides)
    if args.live:
        from streamer.lsl.simulator import stream_live

        def say(text: str) -> None:
            print(text, flush=True)

        from neuroclip.stopping import stop_on_signals

        with stop_on_signals() as stopping:  # Ctrl-C or SIGTERM (docker stop): a clean stop
            totals = stream_live(cfg, on_start=say, on_outlets=say, should_stop=stopping.is_set)
        print(
            ("stopped" if stopping.is_set() else "done")
            + f": {totals.eeg_samples} EEG samples, {totals.nirs_samples} NIRS samples, "
            f"{totals.markers} markers"
        )
        return 0
    return _write_dataset(args.out, cfg)


def _say(line: str) -> None:
    """A progress line on stderr that leaves a progress bar there intact."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)
    sys.stderr.flush()


class SubjectProgress:
    """The cohort writers' progress callback: one line per subject written, on stderr.

    The writers call it with ``"sub-<label> ses-<session>"`` before each session, a
    subject's sessions one after the other; a subject is written when the next one starts
    or when :meth:`finish` is called after the writer returns. ``bar`` (a tqdm bar, maybe
    disabled) advances per session.
    """

    def __init__(self, n_subjects: int, bar=None):
        self.n_subjects = n_subjects
        self.bar = bar
        self.done = 0
        self._current: str | None = None
        self._sessions = 0
        self._started = 0.0

    def __call__(self, label: str) -> None:
        import time

        subject = label.split()[0]
        if subject != self._current:
            self.finish()
            self._current, self._sessions, self._started = subject, 0, time.monotonic()
        self._sessions += 1
        if self.bar is not None:
            self.bar.set_postfix_str(label)
            self.bar.update(1)

    def finish(self) -> None:
        """The subject being written is complete: say so."""
        import time

        if self._current is None:
            return
        self.done += 1
        plural = "" if self._sessions == 1 else "s"
        _say(
            f"subject {self.done}/{self.n_subjects} {self._current}: {self._sessions} "
            f"session{plural} written ({time.monotonic() - self._started:.1f} s)"
        )
        self._current = None


def _write_literature(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tqdm import tqdm

    from models.literature_sim import LiteratureCohortConfig, write_literature_cohort

    given = {"ma": args.ma, "hc": args.hc, "minutes": args.minutes, "seed": args.seed}
    cfg = replace(LiteratureCohortConfig(), **{k: v for k, v in given.items() if v is not None})
    sessions = 2 * cfg.ma + cfg.hc
    _say(
        f"simulating {cfg.ma + cfg.hc} subjects ({sessions} sessions of {cfg.minutes:g} min, "
        f"literature generator) into {args.out}"
    )
    bar = tqdm(total=sessions, unit="session", desc="simulating", disable=None)
    progress = SubjectProgress(cfg.ma + cfg.hc, bar)
    try:
        root = write_literature_cohort(args.out, cfg, progress=progress)
        progress.finish()
    finally:
        bar.close()
    print(
        f"wrote {cfg.ma} MA + {cfg.hc} HC subjects ({2 * cfg.ma + cfg.hc} sessions of "
        f"{cfg.minutes:g} min, literature generator) to {root}"
    )
    return 0


def _write_dataset(out: Path, cfg) -> int:
    from tqdm import tqdm

    from models.simulation.bids_writer import remove_partial, sessions_of, write_cohort
    from models.simulation.subject import draw_cohort

    created = not out.exists()
    subjects = draw_cohort(cfg)
    total = sum(len(sessions_of(s)) for s in subjects)
    _say(
        f"simulating {len(subjects)} subjects ({total} sessions of {cfg.cohort.minutes:g} min) "
        f"into {out}"
    )
    bar = tqdm(total=total, unit="session", desc="simulating", disable=None)
    progress = SubjectProgress(len(subjects), bar)
    try:
        root = write_cohort(out, cfg, progress=progress)
        progress.finish()
    except BaseException:
        if created and out.exists():
            remove_partial(out)
        raise
    finally:
        bar.close()
    print(
        f"wrote {cfg.cohort.ma} MA + {cfg.cohort.hc} HC subjects ({total} sessions of "
        f"{cfg.cohort.minutes:g} min) to {root}"
    )
    return 0


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="read a recording or BIDS dataset and report streams, channels and quality",
        description="Read an XDF file, a file MNE reads (SNIRF, EDF/BDF, BrainVision, EEGLAB, "
        "FIF), a NIRx folder, or a BIDS dataset (--bids), and print its streams, rates, "
        "durations, markers and fNIRS scalp coupling index. Exits 2 with a clear message "
        "when the input is unusable.",
    )
    p.add_argument("path", type=Path, help="recording file, NIRx folder, or BIDS root with --bids")
    p.add_argument("--bids", action="store_true", help="PATH is a BIDS dataset root")
    p.add_argument(
        "--window",
        type=float,
        default=None,
        help="also require every stream to hold at least one window of this many s",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail on NaN or infinite samples instead of reporting them",
    )
    _add_nirs_unit(p)
    p.set_defaults(func=_run_inspect)


def _add_nirs_unit(p: argparse.ArgumentParser) -> None:
    """``--nirs-unit``: the haemoglobin unit of a file that declares none."""
    p.add_argument(
        "--nirs-unit",
        default=None,
        metavar="UNIT",
        help="unit of the file's HbO/HbR data when the file declares none (e.g. uM, M); "
        "never needed for raw intensity or for files that name their unit",
    )


def _run_inspect(args: argparse.Namespace) -> int:
    from neuroclip.inspect import inspect_bids, inspect_file

    lines = (
        inspect_bids(args.path, args.window, args.strict)
        if args.bids
        else inspect_file(args.path, args.window, args.strict, args.nirs_unit)
    )
    print("\n".join(lines))
    return 0


def _add_model_commands(sub: argparse._SubParsersAction) -> None:
    from neuroclip.modelling import run_calibrate, run_evaluate, run_train

    p = sub.add_parser(
        "train",
        help="train a NeuroCLIP model on a BIDS dataset and write its bundle",
        description="Progressive training (stage 1 EEG-fNIRS contrastive alignment, stage 2 "
        "probing, stage 3 fine-tuning), temperature scaling on validation subjects, export to "
        "ONNX with a parity check, and a bundle (model.onnx + bundle.json). Needs the train "
        "extra (torch). Under torchrun (torchrun --standalone --nproc-per-node N -m neuroclip "
        "train ...) the processes train data-parallel (gloo on the CPU, nccl on CUDA) and "
        "rank 0 writes the bundle.",
    )
    p.add_argument("--data", type=Path, required=True, help="BIDS dataset root")
    p.add_argument("--out", type=Path, required=True, help="new bundle folder")
    p.add_argument("--modalities", help="eeg,nirs (default), eeg or nirs")
    p.add_argument("--config", type=Path, help="YAML (default: embedded, as configs/train.yaml)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device")
    p.add_argument("--seed", type=int, help="seed of splits, initialisation and batches")
    p.add_argument("--name", help="model name stored in the bundle")
    p.add_argument("--cache", type=Path, help="folder to cache preprocessed windows in")
    p.add_argument(
        "--dist-timeout",
        type=float,
        metavar="SECONDS",
        help="under torchrun: how long a process waits for the others (default 1800)",
    )
    p.set_defaults(func=run_train)

    p = sub.add_parser(
        "evaluate",
        help="cross-validate fusion, unimodal and hand-crafted models, or one bundle",
        description="With --cv K: subject-wise K-fold cross-validation of the fused model, "
        "the EEG-only and fNIRS-only models and the hand-crafted reference (trains models: "
        "needs the train extra, torch). With --model: score one bundle on a dataset, on ONNX "
        "Runtime alone. Writes OUT/report.json and a self-contained OUT/report.html. --cv "
        "under torchrun shares the folds' trainings among the processes.",
    )
    p.add_argument("--data", type=Path, required=True, help="BIDS dataset root")
    p.add_argument("--out", type=Path, required=True, help="folder for report.json/html")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--cv", type=int, help="number of subject-wise folds (>= 2)")
    mode.add_argument(
        "--model", type=Path, help="a bundle to score on the dataset (no torch needed)"
    )
    p.add_argument(
        "--ablation",
        action="store_true",
        help="with --cv: also train fusion without alignment, soft targets, masked reconstruction",
    )
    p.add_argument(
        "--config", type=Path, help="with --cv: YAML (default: embedded, as configs/train.yaml)"
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="with --cv: torch device")
    p.add_argument("--seed", type=int, help="with --cv: seed of folds and training")
    p.add_argument("--cache", type=Path, help="folder to cache preprocessed windows in")
    p.add_argument(
        "--dist-timeout",
        type=float,
        metavar="SECONDS",
        help="with --cv under torchrun: how long a process waits for the others (default 1800)",
    )
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser(
        "calibrate",
        help="recalibrate a bundle on a site's labelled recordings (no retraining)",
        description="Score a site's labelled BIDS recordings with the bundle, replace the class "
        "prototypes with the site's, and refit temperature and bias when both groups are "
        "present (otherwise keep the calibration and say so). The ONNX model is unchanged; "
        "runs on ONNX Runtime alone (no torch).",
    )
    p.add_argument("--model", type=Path, required=True, help="bundle to start from")
    p.add_argument("--data", type=Path, required=True, help="the site's BIDS dataset")
    p.add_argument("--out", type=Path, required=True, help="new bundle folder")
    p.add_argument("--cache", type=Path, help="folder to cache preprocessed windows in")
    p.set_defaults(func=run_calibrate)


def _add_monitor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor",
        help="score a live EEG + fNIRS session from LSL and publish the biomarker",
        description="Read the EEG, NIRS and Markers LSL streams named in the configuration, "
        "cut a window every hop, score it with the model bundle on ONNX Runtime (CUDA when "
        "present) and publish each score to MQTT, an LSL score stream and the session log. "
        "Runs until Ctrl-C or --duration. Research software, not a medical device.",
    )
    p.add_argument("--config", type=Path, help="YAML (default: embedded, as configs/monitor.yaml)")
    p.add_argument("--site", help="site or room (a topic level)")
    p.add_argument("--session", help="pseudonymous session id (never a patient name)")
    p.add_argument("--model", type=Path, help="model bundle (default: the shipped model)")
    p.add_argument("--broker", help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--no-mqtt", action="store_true", help="publish to LSL and the log only")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--log-dir", type=Path, help="folder of the session logs")
    p.set_defaults(func=_handler("neuroclip.monitoring", "run_monitor"))


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="write a recorded session (XDF) into a BIDS dataset for training",
        description="Convert one recorded session (an XDF from neuroclip record or "
        "LabRecorder, or any file neuroclip score reads) into ROOT/sub-S/ses-X of a BIDS "
        "dataset: EEG as BrainVision, fNIRS raw intensity as SNIRF, both cropped to the span "
        "both streams cover, markers as events, the group in participants.tsv and craving "
        "and rTMS state in the sessions file (docs/datasets.md).",
    )
    p.add_argument("path", type=Path, help="the recorded session (XDF or another file)")
    p.add_argument("--bids", type=Path, required=True, help="dataset root (created if new)")
    p.add_argument("--subject", required=True, help="pseudonymous subject label, e.g. 07")
    p.add_argument("--session", required=True, help="session label, e.g. pre")
    p.add_argument("--group", required=True, choices=["MA", "HC"], help="diagnostic group")
    p.add_argument("--rtms", default="none", choices=["pre", "post", "none"])
    p.add_argument("--craving", type=float, help="craving VAS 0-100 (default: n/a)")
    p.add_argument("--optodes", type=Path, help="optode table: name x y z in metres")
    p.add_argument("--line-freq", type=float, default=50.0, help="mains frequency in Hz")
    _add_nirs_unit(p)
    p.set_defaults(func=_handler("neuroclip.converting", "run_convert"))


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score a recorded session offline, exactly as the monitor would live",
        description="Run a recorded session (an XDF file, a file MNE reads, or a BIDS session "
        "folder such as ROOT/sub-01/ses-pre) through the monitor's own preprocessing, windows, "
        "quality gate and ONNX model, as fast as the machine allows, and write one "
        "neuroclip.score/2 record per window (JSON lines, as the session log). Research "
        "software, not a medical device.",
    )
    p.add_argument("path", type=Path, help="XDF, SNIRF/EDF/... file, or BIDS session folder")
    p.add_argument("--out", type=Path, required=True, help="JSON-lines file to write (new)")
    p.add_argument("--model", type=Path, help="model bundle (default: the shipped model)")
    p.add_argument("--site", default="offline", help="site written into the records")
    p.add_argument("--session", help="session id in the records (default: from the path)")
    p.add_argument("--hop", type=float, help="seconds between windows (default: the bundle's)")
    p.add_argument(
        "--phase",
        type=float,
        default=0.0,
        help="window ends at whole hops plus this many seconds (a monitor's windows.phase_s; "
        "default 0)",
    )
    p.add_argument("--warmup", type=float, help="seconds not scored after the start")
    p.add_argument("--smoothing", type=int, help="windows of the smoothed score (default 5)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all)")
    _add_nirs_unit(p)
    p.set_defaults(func=_handler("neuroclip.scoring", "run_score"))


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="publish a recorded session as LSL outlets, in real time or faster",
        description="Replay an XDF file (LabRecorder's or neuroclip record's), a BIDS session "
        "folder (EEG + NIRS + events as markers) or a single file MNE reads as three LSL "
        "outlets, <prefix>-EEG, <prefix>-NIRS and <prefix>-Markers, keeping the original "
        "timing across streams. --speed K runs a virtual clock K times faster (timestamps "
        "stay consistent with the sampling rates).",
    )
    p.add_argument("path", type=Path, help="XDF, SNIRF/EDF/... file, or BIDS session folder")
    p.add_argument("--speed", type=float, default=1.0, help="virtual clock factor (default 1)")
    p.add_argument("--loop", action="store_true", help="start over at the end, forever")
    p.add_argument(
        "--model", type=Path, help="bundle the streams are checked against (default: shipped)"
    )
    p.add_argument(
        "--no-model-check",
        action="store_true",
        help="replay even when the model could not use these channels",
    )
    p.add_argument(
        "--name-prefix", default="NeuroCLIP-Replay", help="outlet names: PREFIX-EEG etc."
    )
    p.add_argument(
        "--wait-consumers",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S s for a reader of every outlet before starting",
    )
    _add_nirs_unit(p)
    p.set_defaults(func=_handler("neuroclip.replaying", "run_replay"))


def _add_record(sub: argparse._SubParsersAction) -> None:
    from neuroclip.recording import run_record, seconds

    p = sub.add_parser(
        "record",
        help="record the live EEG, NIRS, Markers and score LSL streams to an XDF file",
        description="Find the EEG, NIRS and Markers streams of the monitor configuration "
        "(and the monitor's score stream for --site/--session) and record them to a new XDF "
        "file as LabRecorder does: the streams' own timestamps, clock offsets every 5 s and "
        "the full stream headers. A lost outlet is looked for again. Runs until Ctrl-C, "
        "SIGTERM or --duration; the file is readable even if the recorder is killed.",
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="SESSION.xdf", help="XDF file to write (new)"
    )
    p.add_argument("--config", type=Path, help="YAML (default: embedded, as configs/monitor.yaml)")
    p.add_argument("--duration", type=seconds, metavar="S", help="stop after S seconds")
    p.add_argument("--no-scores", action="store_true", help="do not record the score stream")
    p.add_argument("--site", help="site of the monitor whose score stream to record")
    p.add_argument("--session", help="session of the monitor whose score stream to record")
    p.add_argument(
        "--name-prefix",
        metavar="PREFIX",
        help="stream names PREFIX-EEG, PREFIX-NIRS and PREFIX-Markers (as simulate --live "
        "and replay name them)",
    )
    p.set_defaults(func=run_record)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole system on this machine: patient, broker, monitor, dashboard",
        description="Start a broker (Mosquitto when installed, otherwise the amqtt broker) "
        "and the dashboard, then two sessions of one synthetic patient, pre and post rTMS "
        "(e.g. P001-pre, then P001-post), each its LSL streams and the monitor with the "
        "default model. On the compressed protocol (the default) a 4-minute session shows "
        "every phase: resting baseline, drug and neutral cues, rTMS trains (unusable "
        "windows), inter-train, post; then the dashboard compares pre with post. Prints its "
        "progress and a status line every --status-every seconds; the broker and the "
        "dashboard stay up after the sessions; Ctrl-C stops everything. Research software, "
        "not a medical device.",
    )
    p.add_argument("--port", type=int, default=8050, help="dashboard port (another if taken)")
    p.add_argument("--broker-port", type=int, default=1883, help="broker port (another if taken)")
    p.add_argument(
        "--embedded-broker",
        action="store_true",
        help="use the amqtt broker even when Mosquitto is installed",
    )
    p.add_argument("--site", default="demo", help="site of the demo sessions")
    p.add_argument(
        "--session",
        default="P001-pre",
        help="pseudonymous id of the first session, ending in pre (the second is the same "
        "ending in post), or a stem such as P002 (P002-pre, then P002-post)",
    )
    p.add_argument(
        "--protocol",
        choices=["compressed", "standard"],
        default="compressed",
        help="compressed (default): every phase in 4 minutes (60 s baseline, 2 cue blocks, "
        "3 rTMS trains 20 s apart, 2 cue blocks); standard: the simulator's own timings "
        "(configs/simulate.yaml). NEUROCLIP_SIMULATE__PROTOCOL__<KEY> overrides either",
    )
    p.add_argument(
        "--session-s",
        type=float,
        default=None,
        metavar="S",
        help="seconds each session streams (default: 240 compressed, 600 standard)",
    )
    p.add_argument(
        "--status-every",
        type=float,
        default=30.0,
        metavar="S",
        help="print a status line every S seconds during a session (0: never)",
    )
    p.add_argument("--log-dir", type=Path, default=Path("sessions"), help="session log folder")
    p.add_argument("--duration", type=float, help="stop everything after this many seconds")
    p.set_defaults(func=_handler("neuroclip.demo", "run_demo"))


def _add_dashboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve the live dashboard of every session on an MQTT broker",
        description="Subscribe to neuroclip/v1/# on the broker and serve a page with every "
        "session, its live score, signal quality, stream health and summary, on "
        "http://127.0.0.1:8050/ unless configured. Basic auth from "
        "NEUROCLIP_DASHBOARD__AUTH__USERNAME / __PASSWORD. Research software, not a medical "
        "device.",
    )
    p.add_argument(
        "--config", type=Path, help="YAML (default: embedded, as configs/dashboard.yaml)"
    )
    p.add_argument("--broker", help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--host", help="address to serve on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to serve on (default 8050)")
    p.add_argument(
        "--sessions-dir",
        type=Path,
        help="the monitors' session-log folder on this machine: finished sessions get a "
        "report link (default: none)",
    )
    p.set_defaults(func=_handler("neuroclip.dashboarding", "run_dashboard"))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="neuroclip",
        description="NeuroCLIP Monitor: EEG-fNIRS biomarker of methamphetamine dependence "
        "during rTMS. Research software, not a medical device.",
    )
    parser.add_argument("--version", action="version", version=f"neuroclip {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_simulate(sub)
    _add_inspect(sub)
    _add_model_commands(sub)
    _add_monitor(sub)
    _add_dashboard(sub)
    _add_score(sub)
    _add_convert(sub)
    _add_replay(sub)
    _add_record(sub)
    _add_demo(sub)
    _add_report(sub)
    return parser


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="a self-contained HTML report of sessions from their session logs",
        description="Read monitor session logs (.scores.jsonl) and write one HTML page: per "
        "session the trajectory and the session estimate, the phases, quality over time, the "
        "estimate of each part, pre against post when both sessions of a patient are given "
        "(ids ending in pre and post), and the model that scored them. Needs no network and "
        "no script to view. Research software, not a medical device.",
    )
    p.add_argument("logs", type=Path, nargs="+", metavar="SESSION_LOG", help="session logs")
    p.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    p.add_argument(
        "--model",
        type=Path,
        help="bundle whose healthy-control session range to draw (default: none drawn "
        "unless it is the committed default model)",
    )
    p.set_defaults(func=_handler("neuroclip.reporting", "run_report"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # the monitor reports its health at INFO; the other commands stay quiet by default
    verbosity = args.verbose + (1 if args.command in ("monitor", "dashboard") else 0)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command not in ("monitor", "dashboard"):  # the live path never loads MNE
        try:
            import mne

            mne.set_log_level("ERROR")
        except ImportError:
            logger.debug("mne not installed")
    if getattr(args, "cv", None) is not None and args.cv < 2:
        parser.error(f"--cv must be at least 2, got {args.cv}")
    code = _run_command(args)
    distributed = sys.modules.get("models.distributed")  # imported only by train and evaluate
    if distributed is not None and distributed.group_was_joined():
        distributed.end_process(code)  # see there: torch may keep the group's threads alive
    return code


def _run_command(args: argparse.Namespace) -> int:
    """The command's exit status; its errors in one line on stderr."""
    try:
        return int(args.func(args))
    except NeuroclipError as exc:
        print(f"neuroclip {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"neuroclip {args.command}: interrupted", file=sys.stderr)
        return 130
