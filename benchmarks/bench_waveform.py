"""Throughput of waveform-domain vs spectrogram-domain attacks, in clip-iterations per second.

One clip-iteration: one clip through one PGD step (forward, backward to the input, step,
projection). The spectrogram-domain attack perturbs the normalised log spectrogram
``[B, 1, frames, 149]`` of the model directly; the waveform-domain attack perturbs the audio
``[B, samples]`` through :class:`robustmer.models.WaveformModel` (front end in float64,
normalisation, model) with an SNR budget, so each step also runs the front end forward and
backward and the SNR projection. Random model weights and random audio (throughput does not
depend on them); the same model and excerpt length in both domains.

Usage::

    nice -n 10 python benchmarks/bench_waveform.py --width 0.25 --frames 313 --batch 4 --steps 5
"""

from __future__ import annotations

import argparse
import time

import torch

from robustmer.attacks import attack_config, build_attack
from robustmer.audio import FrontEndConfig, Normalization
from robustmer.models import WaveformModel, build_model


def _rate(attack, x: torch.Tensor, y: torch.Tensor, steps: int, repeats: int) -> float:
    """Best-of-``repeats`` clip-iterations per second."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        attack(x, y)
        best = max(best, x.shape[0] * steps / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="a2m2e")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--frames", type=int, default=313)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.arch, width=args.width).eval()
    wave_model = WaveformModel(model, FrontEndConfig(), Normalization(0.3, 0.4), args.frames)
    gen = torch.Generator().manual_seed(0)
    wave = (torch.rand(args.batch, wave_model.samples, generator=gen) * 2 - 1) * 0.5
    with torch.no_grad():
        spec = wave_model.spectrogram(wave)  # [B, 1, frames, 149]
    y = torch.rand(args.batch, 8, generator=gen)
    common = {"steps": args.steps}
    spec_attack = build_attack(attack_config("pgd", epsilon=0.1, **common), model)
    wave_attack = build_attack(
        attack_config("pgd", epsilon=0.01, domain="waveform", snr_db=30.0, **common), wave_model
    )
    rates = {
        "spectrogram": _rate(spec_attack, spec, y, args.steps, args.repeats),
        "waveform": _rate(wave_attack, wave, y, args.steps, args.repeats),
    }
    print(
        f"{args.arch} width {args.width}, {args.frames} frames ({wave_model.samples} samples), "
        f"batch {args.batch}, {args.steps} PGD steps, {torch.get_num_threads()} thread(s):"
    )
    for domain, rate in rates.items():
        print(f"  {domain:12s} {rate:8.2f} clip-iterations/s")
    print(f"  waveform / spectrogram: {rates['waveform'] / rates['spectrogram']:.2f}")


if __name__ == "__main__":
    main()
