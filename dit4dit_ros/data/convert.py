"""Convert episode bags into a LeRobotDataset v3.0 directory (docs/dataset.md): every camera image, thinned to
the dataset's fps, becomes a frame together with the joint state and the command nearest its header stamp.

    dit4dit-convert BAG_OR_DIR [...] -o OUT [--fps 30] [--offset TOPIC=SECONDS ...] [--only-success] [--overwrite]

Alignment is on header stamps (sim time under use_sim_time), never on bag arrival times, with the rules the
policy uses at run time (FrameRateLimiter to thin the camera, StateHistory.at's nearest-stamp lookup), so
training frames pair images and states the way live inference will.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dit4dit_ros import g1
from dit4dit_ros.data.bags import BagError, EpisodeBag, TimedMessage, read_episode, topic_matches, topic_names
from dit4dit_ros.data.lerobot_format import DatasetWriter, EpisodeMeta
from dit4dit_ros.perception.images import FrameRateLimiter, ImageFormatError, image_to_rgb

# Why a camera frame is not in the dataset, in the order they are checked (the first that applies counts).
DROP_REASONS = ("resampled", "no_state", "bad_state", "no_action", "before_first_command", "bad_action")
ALIGNED_ROLES = ("camera", "joint_states", "joint_commands")


@dataclass
class AlignedEpisode:
    """The frames of one episode that have a state and an action, and how the rest were lost."""

    frames: list[np.ndarray]  # (H, W, 3) uint8 RGB
    states: np.ndarray  # (n, 16)
    actions: np.ndarray  # (n, 16)
    timestamps: np.ndarray  # (n,) seconds since the first kept image
    dropped: dict[str, int]
    alignment: dict[str, float | None]
    warnings: list[str]


@dataclass
class EpisodeReport:
    source_bag: Path
    episode_index: int
    frames: int
    dropped: dict[str, int]
    alignment: dict[str, float | None]
    warnings: list[str]
    truncated: bool

    def summary(self) -> str:
        """One line (plus one per warning) for the command line."""
        def ms(key: str) -> str:
            value = self.alignment.get(key)
            return "-" if value is None else f"{value:.1f}"

        reasons = ", ".join(f"{why} {n}" for why, n in self.dropped.items())
        lags = " / ".join(f"{role} {ms(role + '_log_minus_stamp_ms_p50')}" for role in ALIGNED_ROLES)
        line = (f"episode {self.episode_index} <- {self.source_bag}: {self.frames} frames kept, "
                f"{sum(self.dropped.values())} dropped{f' ({reasons})' if reasons else ''}; "
                f"|state - image| p50 {ms('state_to_image_ms_p50')} max {ms('state_to_image_ms_max')} ms, "
                f"|action - image| p50 {ms('action_to_image_ms_p50')} max {ms('action_to_image_ms_max')} ms, "
                f"log - stamp p50 {lags} ms")
        return "\n".join([line] + [f"  warning: {text}" for text in self.warnings])


@dataclass
class ConversionReport:
    output: Path
    episodes: list[EpisodeReport] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (bag, why: a message naming the bag)

    @property
    def total_frames(self) -> int:
        return sum(episode.frames for episode in self.episodes)


class _Track:
    """One topic's 16-D vectors by stamp, looked up with StateHistory.at's rule (the one live inference uses):
    the entry whose stamp is nearest, the earlier on a tie, if within the tolerance. Entries that must not reach
    the dataset carry a drop reason."""

    def __init__(self, stamps: list[int], values: list[np.ndarray], reasons: list[str]):
        order = np.argsort(np.asarray(stamps, np.int64), kind="stable")
        self.stamps = np.asarray(stamps, np.int64)[order]
        self.values = np.asarray(values, np.float64).reshape(-1, len(g1.ACTION_NAMES))[order]
        self.reasons = np.asarray(reasons, dtype=object)[order]

    def nearest(self, stamps: np.ndarray, tolerance_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(index of the entry for each stamp, -1 where none is within tolerance; |entry stamp - stamp| in ns)."""
        after = np.clip(np.searchsorted(self.stamps, stamps, side="left"), 0, len(self.stamps) - 1)
        before = np.clip(after - 1, 0, None)
        use_after = np.abs(self.stamps[after] - stamps) < np.abs(self.stamps[before] - stamps)
        index = np.where(use_after, after, before)
        distance = np.abs(self.stamps[index] - stamps)
        return np.where(distance <= tolerance_ns, index, -1), distance

    def reasons_at(self, index: np.ndarray) -> np.ndarray:
        return np.where(index >= 0, self.reasons[np.clip(index, 0, None)], "")


def _state_track(messages: list[TimedMessage], shift_ns: int) -> tuple[_Track, dict[str, int]]:
    """joint_states -> observation.state (g1.action_state); unusable messages are kept as 'bad_state' entries
    so that the frames they are nearest to are dropped rather than paired with an older state."""
    stamps, values, reasons, problems = [], [], [], {}
    for m in messages:
        try:
            state = g1.action_state(dict(zip(m.msg.name, m.msg.position)))
            problem = None if np.isfinite(state).all() else "non-finite positions"
        except KeyError as exc:
            state, problem = np.full(len(g1.ACTION_NAMES), np.nan), str(exc.args[0])
        if problem:
            problems[problem] = problems.get(problem, 0) + 1
        stamps.append(m.stamp_ns + shift_ns)
        values.append(state)
        reasons.append("bad_state" if problem else "")
    return _Track(stamps, values, reasons), problems


def _action_track(messages: list[TimedMessage], shift_ns: int) -> tuple[_Track, dict[str, int]]:
    """joint_commands -> action (g1.ACTION_NAMES order). Names missing from a command keep their previous value;
    a command with a non-finite value is a 'bad_action' entry and changes nothing that follows."""
    slot = {name: i for i, name in enumerate(g1.ACTION_NAMES)}
    current = np.full(len(g1.ACTION_NAMES), np.nan)
    stamps, values, reasons, problems = [], [], [], {}
    for m in sorted(messages, key=lambda m: m.stamp_ns):
        update = {slot[name]: float(value) for name, value in zip(m.msg.name, m.msg.position) if name in slot}
        bad = sorted(g1.ACTION_NAMES[i] for i, value in update.items() if not np.isfinite(value))
        if bad:
            problem = f"non-finite value for {bad}"
            problems[problem] = problems.get(problem, 0) + 1
            values.append(np.full(len(g1.ACTION_NAMES), np.nan))
            reasons.append("bad_action")
        else:
            current[list(update)] = list(update.values())
            values.append(current.copy())
            reasons.append("" if np.isfinite(current).all() else "before_first_command")
        stamps.append(m.stamp_ns + shift_ns)
    return _Track(stamps, values, reasons), problems


def _p50_max_ms(values_ns: Sequence[float]) -> tuple[float | None, float | None]:
    if not len(values_ns):
        return None, None
    values = np.asarray(values_ns, np.float64) / 1e6
    return float(np.median(values)), float(values.max())


def align_episode(bag: EpisodeBag, *, fps: float = 30.0, offsets_ns: dict[str, int] | None = None,
                  state_tolerance: float = 0.05, action_tolerance: float = 0.05) -> AlignedEpisode:
    """The dataset frames of one episode (docs/dataset.md section 2).

    ``offsets_ns`` (role -> ns) is added to that role's header stamps before aligning. The alignment report
    gives each topic's (log time - header stamp) as recorded (before offsets: it is what reveals a clock
    offset) and |state stamp - image stamp|, |action stamp - image stamp| of the kept frames (after offsets).
    """
    offsets_ns = offsets_ns or {}
    camera = sorted(bag.camera, key=lambda m: m.stamp_ns)
    image_stamps = np.array([m.stamp_ns for m in camera], np.int64) + offsets_ns.get("camera", 0)
    limiter = FrameRateLimiter(fps)
    sampled = np.array([limiter.accept(stamp) for stamp in image_stamps], bool)
    states, state_problems = _state_track(bag.joint_states, offsets_ns.get("joint_states", 0))
    actions, action_problems = _action_track(bag.joint_commands, offsets_ns.get("joint_commands", 0))
    state_index, state_dt = states.nearest(image_stamps, round(state_tolerance * 1e9))
    action_index, action_dt = actions.nearest(image_stamps, round(action_tolerance * 1e9))

    reasons = np.where(sampled, "", "resampled").astype(object)
    for candidate in (np.where(state_index < 0, "no_state", states.reasons_at(state_index)),
                      np.where(action_index < 0, "no_action", actions.reasons_at(action_index))):
        reasons = np.where(reasons == "", candidate, reasons)
    keep = reasons == ""
    dropped = {why: int((reasons == why).sum()) for why in DROP_REASONS if (reasons == why).any()}

    warnings = []
    for topic, problems, why in ((bag.topics["joint_states"], state_problems, "bad_state"),
                                 (bag.topics["joint_commands"], action_problems, "bad_action")):
        for problem, count in problems.items():
            warnings.append(f"{topic}: {count} message(s) unusable ({problem}); the frames nearest them are "
                            f"dropped ({why}: {dropped.get(why, 0)} frame(s) in all)")

    frames = []
    for i in np.flatnonzero(keep):
        m = camera[i].msg
        try:
            frames.append(image_to_rgb(m.encoding, m.height, m.width, m.step, m.data, m.is_bigendian))
        except ImageFormatError as exc:
            raise BagError(f"{bag.path}: the image stamped {camera[i].stamp_ns} ns on {bag.topics['camera']} "
                           f"cannot be decoded: {exc}") from exc
    if not frames:
        raise BagError(f"{bag.path}: no frame can be kept: of {len(camera)} images, dropped {dropped}")
    if len({frame.shape for frame in frames}) > 1:
        raise BagError(f"{bag.path}: the images change size within the episode "
                       f"({sorted({frame.shape[:2] for frame in frames})})")

    kept_stamps = image_stamps[keep]
    timestamps = (kept_stamps - kept_stamps[0]) / 1e9
    drift = float(np.abs(timestamps - np.arange(len(timestamps)) / fps).max())
    if drift > 0.5 / fps:
        warnings.append(f"timestamps drift up to {drift * 1e3:.0f} ms from frame_index / fps (frames dropped "
                        f"inside the episode or gaps in the camera stream); the video holds the kept frames "
                        f"back to back")

    alignment: dict[str, float | None] = {}
    for role in ALIGNED_ROLES:
        lags = [m.log_ns - m.stamp_ns for m in getattr(bag, role)]
        alignment[f"{role}_log_minus_stamp_ms_p50"], alignment[f"{role}_log_minus_stamp_ms_max"] = _p50_max_ms(lags)
    for name, dt in (("state", state_dt), ("action", action_dt)):
        alignment[f"{name}_to_image_ms_p50"], alignment[f"{name}_to_image_ms_max"] = _p50_max_ms(dt[keep])

    return AlignedEpisode(frames=frames, states=states.values[state_index[keep]],
                          actions=actions.values[action_index[keep]], timestamps=timestamps.astype(np.float32),
                          dropped=dropped, alignment=alignment, warnings=warnings)


def offsets_by_role(offsets: dict[str, float], names: dict[str, str]) -> dict[str, int]:
    """{topic: seconds} -> {role: ns}; a topic that is not the camera, joint_states or joint_commands topic
    (as configured, with or without a leading slash or namespace) is a ValueError."""
    by_role = {}
    for topic, seconds in offsets.items():
        roles = [role for role in ALIGNED_ROLES
                 if topic.lstrip("/") == names[role].lstrip("/") or topic_matches(topic, names[role])]
        if not roles:
            raise ValueError(f"offset for {topic!r}: not one of the aligned topics "
                             f"({', '.join(names[role] for role in ALIGNED_ROLES)})")
        by_role[roles[0]] = round(float(seconds) * 1e9)
    return by_role


def _episode_meta(bag: EpisodeBag, warnings: list[str], alignment: dict[str, float | None]) -> EpisodeMeta:
    seed = bag.metadata.get("seed")
    success = (bag.outcome or {}).get("success")
    return EpisodeMeta(source_bag=str(bag.path), seed=seed if isinstance(seed, int) and not isinstance(seed, bool)
                       else None, source=bag.metadata.get("source"),
                       success=success if isinstance(success, bool) else None, warnings=warnings, alignment=alignment)


def _convert_one(path: Path, writer: DatasetWriter, *, names: dict[str, str], only_success: bool,
                 **align_options) -> EpisodeReport | str:
    """Add the episode of one bag to ``writer``: its report, or why it was left out (only_success)."""
    bag = read_episode(path, names)
    if only_success and (bag.outcome or {}).get("success") is not True:
        return f"{path}: not a successful episode (outcome: {bag.outcome})"
    task = bag.metadata.get("instruction") or bag.metadata.get("task")
    if not task:
        raise BagError(f"{path}: the episode metadata names no instruction (nor task): nothing to train it on")
    aligned = align_episode(bag, **align_options)
    try:
        writer.check_frame_size(*aligned.frames[0].shape[:2])
    except ValueError as exc:
        raise BagError(f"{path}: {exc}") from exc
    warnings = bag.warnings + aligned.warnings
    index = writer.add_episode(aligned.frames, aligned.states, aligned.actions, aligned.timestamps, task,
                               _episode_meta(bag, warnings, aligned.alignment))
    return EpisodeReport(source_bag=path, episode_index=index, frames=len(aligned.frames), dropped=aligned.dropped,
                         alignment=aligned.alignment, warnings=warnings, truncated=bag.truncated)


def convert(bags: Iterable[str | Path], output: str | Path, *, fps: float = 30.0,
            offsets: dict[str, float] | None = None, state_tolerance: float = 0.05, action_tolerance: float = 0.05,
            only_success: bool = False, vcodec: str = "libx264", crf: int = 18,
            topics: dict[str, str] | None = None, overwrite: bool = False,
            log: Callable[[str], None] | None = None) -> ConversionReport:
    """Convert the episode bags, in the given order, into one dataset at ``output``.

    With a single bag a BagError propagates; with several, a bag that cannot be converted is skipped and
    listed in the report (a truncated but readable bag is converted, its warning kept in ``meta/warnings``).
    The dataset is built in a hidden sibling directory and moved into place at the end, so a failed run
    leaves no half-written dataset. ``output`` must be empty or absent unless ``overwrite``. ``log`` receives
    each episode's summary as it is done.
    """
    bags, output, log = [Path(b) for b in bags], Path(output), log or (lambda text: None)
    if not bags:
        raise ValueError("no bags to convert")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    names = topic_names(topics)
    offsets_ns = offsets_by_role(offsets or {}, names)
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"{output} exists and is not a directory")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"{output} is not empty: choose another output or pass overwrite (--overwrite)")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    writer = DatasetWriter(staging, fps, vcodec=vcodec, crf=crf)
    report = ConversionReport(output)
    try:
        for path in bags:
            try:
                result = _convert_one(path, writer, names=names, only_success=only_success, fps=fps,
                                      offsets_ns=offsets_ns, state_tolerance=state_tolerance,
                                      action_tolerance=action_tolerance)
            except BagError as exc:
                if len(bags) == 1:
                    raise
                result = str(exc)
            if isinstance(result, str):
                report.skipped.append((path, result))
                log(f"skipped {result}")
            else:
                report.episodes.append(result)
                log(result.summary())
        if not report.episodes:
            raise BagError("no episode to write: " + "; ".join(why for _, why in report.skipped))
        writer.close()
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        writer.discard()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def find_bags(paths: Iterable[str | Path]) -> list[Path]:
    """The bags the arguments name: a bag (directory with metadata.yaml or .mcap files, or an .mcap file) stands
    for itself; any other directory with subdirectories for the subdirectories and .mcap files in it, sorted
    by name (hidden ones left out)."""
    found = []
    for path in map(Path, paths):
        is_bag = path.is_file() or (path / "metadata.yaml").exists() or any(path.glob("*.mcap"))
        if path.is_dir() and not is_bag and any(child.is_dir() for child in path.iterdir()):
            found += sorted(child for child in path.iterdir()
                            if not child.name.startswith(".") and (child.is_dir() or child.suffix == ".mcap"))
        else:
            found.append(path)
    return found


def _assignments(items: list[str], option: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.rpartition("=")
        if not sep or not key or not value:
            parser.error(f"{option} wants NAME=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dit4dit-convert", description="Convert episode bags (rosbag2, MCAP) "
                                     "into a LeRobotDataset v3.0 directory (docs/dataset.md).")
    parser.add_argument("bags", nargs="+", type=Path, metavar="BAG_OR_DIR",
                        help="episode bags, or directories of them (all bags inside, sorted by name)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="the dataset directory to create")
    parser.add_argument("--fps", type=float, default=30.0, help="dataset frame rate; a faster camera is thinned")
    parser.add_argument("--offset", action="append", default=[], metavar="TOPIC=SECONDS",
                        help="seconds added to that topic's header stamps before aligning (a known clock offset)")
    parser.add_argument("--topic", action="append", default=[], metavar="ROLE=NAME",
                        help="rename a topic: roles camera, joint_states, joint_commands, metadata, success")
    parser.add_argument("--state-tolerance", type=float, default=0.05, help="max |state - image| stamp (s)")
    parser.add_argument("--action-tolerance", type=float, default=0.05, help="max |command - image| stamp (s)")
    parser.add_argument("--only-success", action="store_true", help="leave out episodes that did not succeed")
    parser.add_argument("--vcodec", default="libx264", help="video encoder (default libx264)")
    parser.add_argument("--crf", type=int, default=18, help="video quality (lower is better, default 18)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    args = parser.parse_args(argv)
    try:
        offsets = {topic: float(value) for topic, value in _assignments(args.offset, "--offset", parser).items()}
    except ValueError as exc:
        parser.error(f"--offset: {exc}")
    topics = _assignments(args.topic, "--topic", parser)
    output = args.output.resolve()
    bags = [path for path in find_bags(args.bags) if path.resolve() != output]
    try:
        report = convert(bags, args.output, fps=args.fps, offsets=offsets, state_tolerance=args.state_tolerance,
                         action_tolerance=args.action_tolerance, only_success=args.only_success,
                         vcodec=args.vcodec, crf=args.crf, topics=topics, overwrite=args.overwrite, log=print)
    except (BagError, FileExistsError, ValueError) as exc:
        print(f"dit4dit-convert: error: {exc}", file=sys.stderr)
        return 1
    skipped = f", skipped {len(report.skipped)} bag(s)" if report.skipped else ""
    print(f"wrote {report.output}: {len(report.episodes)} episode(s), {report.total_frames} frames{skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
