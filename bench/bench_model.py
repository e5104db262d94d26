"""Policy benchmark: per preset, feature extraction (early exit at block k vs the full video-DiT pass),
action sampling (N Euler steps), a training step, parameters and FLOPs.

    .venv/bin/python bench/bench_model.py [--presets tiny small] [--repeats 20] [--threads 2] [--out bench/results]

Prints a table and writes bench/results/model.json and model.md. Medians over --repeats runs after warm-up.
The baseline in the same run is the FULL video-DiT pass (what the official code runs every call): the
early-exit speed-up is the ratio of the two medians. The paper preset (2 B video DiT) needs a GPU and its
weights are not needed for timing (random weights, same shapes); without CUDA it is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from dit4dit_ros.model.configuration_dit4dit import preset
from dit4dit_ros.model.modeling_dit4dit import DiT4DiTPolicy


def median_ms(fn, repeats: int, sync=lambda: None) -> float:
    fn()  # warm-up (allocations, lazy init)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def bench_preset(name: str, repeats: int, device: str, dtype: torch.dtype) -> dict:
    config = preset(name)
    if config.video.pretrained:
        # Timing needs shapes, not trained weights: build the same architecture from scratch, random weights.
        config.video.pretrained = None
        config.video.text_encoder = "bytes"
    torch.manual_seed(0)
    policy = DiT4DiTPolicy(config).to(device=device, dtype=dtype).eval()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    v, a = config.video, config.action
    frame = torch.rand(1, 1, 3, *v.image_size, device=device, dtype=dtype) * 2 - 1
    state = torch.zeros(1, a.state_dim, device=device, dtype=dtype)
    text = policy.embed_instructions(["touch the red cube with the right hand"]).to(dtype)
    backbone = policy.video

    # The same prepared inputs for the early-exit and the full pass.
    frames = torch.cat([frame, frame.new_zeros(1, v.num_frames - 1, 3, *v.image_size)], dim=1)
    inputs = backbone.prepare_inputs(backbone.codec.encode(frames), torch.Generator(device).manual_seed(0))
    args = (inputs.hidden_states.to(dtype), inputs.timestep.to(dtype), text, inputs.condition_mask.to(dtype))

    with torch.no_grad():
        features = backbone.forward_features(*args)
        results = {
            "preset": name,
            "params_video_dit": count(backbone.transformer),
            "params_action_dit": count(policy.action_head),
            "params_total_trainable": sum(p.numel() for p in policy.parameters() if p.requires_grad),
            "feature_tokens": int(features.shape[1] * features.shape[2] * features.shape[3]),
            "feature_dim": int(features.shape[-1]),
            "feature_layer": v.feature_layer,
            "num_layers": v.num_layers,
            "gflops_features_early_exit": flops(lambda: backbone.forward_features(*args)) / 1e9,
            "gflops_video_full_pass": flops(lambda: backbone.predict_velocity(*args)) / 1e9,
            "gflops_action_sampling": flops(lambda: policy.predict_action(features, state)) / 1e9,
            "ms_features_early_exit": median_ms(lambda: backbone.forward_features(*args), repeats, sync),
            "ms_video_full_pass": median_ms(lambda: backbone.predict_velocity(*args), repeats, sync),
            "ms_encode_video_end_to_end": median_ms(lambda: policy.encode_video(frame, text), repeats, sync),
            "ms_action_sampling": median_ms(lambda: policy.predict_action(features, state), repeats, sync),
            "action_steps": config.flow.num_inference_steps,
        }
    results["early_exit_speedup"] = results["ms_video_full_pass"] / results["ms_features_early_exit"]
    results["policy_call_hz"] = 1e3 / (results["ms_encode_video_end_to_end"] + results["ms_action_sampling"])

    if device == "cpu" or name != "paper":  # a training step (batch 8) where memory allows
        policy.train()
        batch = {
            "frames": torch.rand(8, v.num_frames, 3, *v.image_size, device=device, dtype=dtype) * 2 - 1,
            "instruction": ["touch the red cube"] * 8,
            "state": torch.zeros(8, a.state_dim, device=device, dtype=dtype),
            "actions": torch.zeros(8, a.horizon, a.action_dim, device=device, dtype=dtype),
        }
        optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)

        def step():
            loss = policy.compute_loss(batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        results["ms_train_step_batch8"] = median_ms(step, max(3, repeats // 4), sync)
    return results


def markdown(report: dict) -> str:
    rows = report["results"]
    keys = ["params_video_dit", "params_action_dit", "feature_tokens", "ms_features_early_exit",
            "ms_video_full_pass", "early_exit_speedup", "ms_encode_video_end_to_end", "ms_action_sampling",
            "policy_call_hz", "ms_train_step_batch8", "gflops_features_early_exit", "gflops_video_full_pass",
            "gflops_action_sampling"]
    lines = [f"# Policy benchmark ({report['device']}, {report['threads']} threads, torch {report['torch']})", "",
             "| metric | " + " | ".join(r["preset"] for r in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for key in keys:
        cells = []
        for r in rows:
            value = r.get(key)
            cells.append("-" if value is None else f"{value:,.0f}" if key.startswith("params") or key ==
                         "feature_tokens" else f"{value:.3g}")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    for skipped in report["skipped"]:
        lines.append(f"\nSkipped {skipped['preset']}: {skipped['reason']}")
    lines.append(f"\nMedians of {report['repeats']} runs after one warm-up. Baseline: the full video-DiT pass "
                 "on the same inputs (what the official code runs per call).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "paper"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    options = parser.parse_args(argv)
    torch.set_num_threads(options.threads)
    cuda = torch.cuda.is_available()
    report = {"device": torch.cuda.get_device_name(0) if cuda else f"CPU ({platform.processor() or 'x86_64'})",
              "threads": options.threads, "torch": torch.__version__, "repeats": options.repeats,
              "results": [], "skipped": []}
    for name in options.presets:
        if name == "paper" and not cuda:
            report["skipped"].append({"preset": name, "reason": "needs a CUDA GPU (2 B-parameter video DiT)"})
            continue
        device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
        result = bench_preset(name, options.repeats, device, dtype)
        report["results"].append(result)
        print(json.dumps(result, indent=1), flush=True)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "model.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (options.out / "model.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
