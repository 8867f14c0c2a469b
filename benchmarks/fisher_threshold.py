"""Time Child-Tuning_D's global threshold over BERT-large's eligible weights (random Fisher values).

BERT-large has 24 encoder layers x 16 tensors whose names contain `layer` (the official rule):
384 tensors, 302,309,376 values. Ours (childtuning.fisher: radix select, no concatenated copy)
is timed against the official approach (AliceMind ChildTuningD.py: np.append in a loop, then
np.percentile), which also checks that both select exactly the same set.

    python benchmarks/fisher_threshold.py [--skip-official] [--also-cat-kthvalue]
"""
import argparse
import json
import time

import numpy as np
import torch

from childtuning.fisher import percentile_threshold

HIDDEN, INTER, LAYERS = 1024, 4096, 24
LAYER_SHAPES = [(HIDDEN, HIDDEN), (HIDDEN,)] * 4 + [(HIDDEN,), (HIDDEN,)] + \
               [(INTER, HIDDEN), (INTER,), (HIDDEN, INTER), (HIDDEN,), (HIDDEN,), (HIDDEN,)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep-ratio", type=float, default=0.3)
    ap.add_argument("--skip-official", action="store_true", help="skip the official-style baseline (~90 s)")
    ap.add_argument("--also-cat-kthvalue", action="store_true", help="also time torch.cat + kthvalue")
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    # squared Gaussians: a heavy-tailed, Fisher-like distribution
    fisher = [torch.randn(s, generator=g).square_() for _ in range(LAYERS) for s in LAYER_SHAPES]
    n = sum(f.numel() for f in fisher)
    print(f"{len(fisher)} tensors, {n:,} values, keep_ratio {args.keep_ratio}, {torch.get_num_threads()} threads")

    t0 = time.perf_counter()
    threshold = percentile_threshold(fisher, args.keep_ratio)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    kept = sum(int((f >= threshold).sum()) for f in fisher)
    mask_s = time.perf_counter() - t0
    print(f"ours: threshold {threshold!r} in {ours_s:.2f} s; masks (f >= threshold) in {mask_s:.2f} s; kept {kept:,}")
    result = {"tensors": len(fisher), "values": n, "keep_ratio": args.keep_ratio, "ours_threshold_s": round(ours_s, 3),
              "ours_mask_s": round(mask_s, 3), "kept": kept, "threads": torch.get_num_threads()}

    if args.also_cat_kthvalue:
        t0 = time.perf_counter()
        flat = torch.cat([f.reshape(-1) for f in fisher])
        kth = float(flat.kthvalue(n - kept + 1).values)
        del flat
        result["cat_kthvalue_s"] = round(time.perf_counter() - t0, 3)
        print(f"torch.cat + kthvalue: {result['cat_kthvalue_s']:.2f} s (value {kth!r})")

    if not args.skip_official:
        t0 = time.perf_counter()
        r = None
        for f in fisher:                      # the official loop, verbatim in spirit
            v = f.view(-1).numpy()
            r = v if r is None else np.append(r, v)
        polar = np.percentile(r, (1 - args.keep_ratio) * 100)
        official_s = time.perf_counter() - t0
        same = float(polar) == threshold and int((r >= polar).sum()) == kept
        del r
        print(f"official (np.append + np.percentile): {official_s:.2f} s, polar {float(polar)!r}, same set: {same}")
        result.update(official_s=round(official_s, 3), speedup_vs_official=round(official_s / ours_s, 1),
                      same_set_as_official=same)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
