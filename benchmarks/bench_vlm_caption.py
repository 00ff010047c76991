"""What can be measured offline about VLM captioning and paraphrasing, on the phantom's exact ground truth.

Usage: nice -n 10 python benchmarks/bench_vlm_caption.py [--n 200] [--size 96] [--per-caption 20]
       [--concurrency 8] [--latency-ms 20] [--seed 11]

1. The ``template`` paraphraser: acceptance rate (paraphrases whose parsed findings equal the
   caption's), diversity (unique prompts before -> after; seed 001 reports 483 -> 11,000 with
   GPT-3.5), and speed.
2. The ``api:`` captioner against a loopback chat-completions server that answers like a VLM
   agreeing with the mask captioner, with injected faults per request (10 % HTTP 429 with
   Retry-After 0, 5 % HTTP 500, 5 % malformed body, 5 % reply of the wrong schema) and a fixed
   per-request latency: throughput, requests per image, retries, repairs.
3. The accuracy of that whole api path against the phantom ground truth (the
   ``synthmed evaluate captions`` logic), beside the mask captioner's own: equal accuracy means
   the transport, retry, repair and parsing layers lose nothing.
4. A rerun: answered from the cache, zero requests.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from synthmed.caption import caption_dataset
from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.evaluate.captions import CaptionEvalConfig, evaluate_captions
from synthmed.findings.agreement import seed000_row
from synthmed.paraphrase import paraphrase_dataset
from synthmed.testing.chat_server import ChatServer, Reply, findings_table, image_key


def _accuracy_line(name: str, root: Path) -> str:
    report = evaluate_captions(CaptionEvalConfig(pred=root, ref=root, name=name))
    (aggs,) = report.agreements.values()
    row = seed000_row(aggs)
    cells = "  ".join(f"{k}={v:.3f}" if v is not None else f"{k}=n/a" for k, v in row.items())
    extra = "  ".join(f"{a}={aggs[a].accuracy:.3f}" for a in ("hemisphere", "lobe") if a in aggs)
    return f"{name:14s} {cells}  {extra}  (missing predictions: {next(iter(report.missing.values()))})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--per-caption", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "ph"
        generate_phantom(PhantomConfig(out=base, n=args.n, size=args.size, seed=args.seed, workers=1),
                         progress=False)

        # 1. Template paraphraser.
        root = Path(tmp) / "para"
        shutil.copytree(base, root)
        t0 = time.perf_counter()
        s = paraphrase_dataset(root, "template", per_caption=args.per_caption, progress=False, seed=args.seed)
        dt = time.perf_counter() - t0
        print(f"template paraphraser on the phantom (n={args.n}, K={args.per_caption}, seed={args.seed})")
        print(f"  proposed {s.proposed}, accepted {s.accepted}, rejected {s.rejected} "
              f"(acceptance {s.acceptance_rate:.3f}); reasons: {dict(s.rejection_reasons) or 'none'}")
        gain = s.unique_after / max(s.unique_before, 1)
        print(f"  unique prompts {s.unique_before} -> {s.unique_after} (x{gain:.1f}); "
              f"{s.proposed / dt:.0f} paraphrases/s")

        # 2-4. api: captioner against the loopback server.
        table = findings_table(str(base))
        rng = random.Random(args.seed)
        lock = threading.Lock()
        counts: Counter = Counter()

        def answer(req):  # noqa: ANN001, ANN202
            with lock:
                u = rng.random()
            time.sleep(args.latency_ms / 1000.0)
            if "could not be used" in req.text():
                kind = "repair"
            else:
                kind = ("429" if u < 0.10 else "500" if u < 0.15 else "malformed" if u < 0.20
                        else "wrong-schema" if u < 0.25 else "good")
            with lock:
                counts[kind] += 1
            if kind == "429":
                return Reply(status=429, headers={"Retry-After": "0"})
            if kind == "500":
                return Reply(status=500)
            if kind == "malformed":
                return Reply(body='{"choices": [{"message": ')
            if kind == "wrong-schema":
                return Reply('{"tumour": "present", "side": "left"}')
            return Reply(table[image_key(req.images()[0])])

        api_root, mask_root = Path(tmp) / "api", Path(tmp) / "mask"
        shutil.copytree(base, api_root)
        shutil.copytree(base, mask_root)
        with ChatServer(answer) as srv:
            t0 = time.perf_counter()
            s = caption_dataset(api_root, "api:loopback-vlm", base_url=srv.base_url, concurrency=args.concurrency,
                                batch_size=4 * args.concurrency, backoff_s=0.05, max_retries=6, progress=False)
            dt = time.perf_counter() - t0
            n_req = len(srv.requests)
            t1 = time.perf_counter()
            s2 = caption_dataset(api_root, "api:loopback-vlm", base_url=srv.base_url, progress=False)
            dt2 = time.perf_counter() - t1
            n_req2 = len(srv.requests) - n_req
        caption_dataset(mask_root, "mask", progress=False)
        print(f"\napi captioner vs loopback server (concurrency {args.concurrency}, "
              f"{args.latency_ms:.0f} ms latency per request, faults injected)")
        print(f"  captioned {s.captioned}/{s.rows}, failed {s.failed}; {s.rows / dt:.1f} images/s; "
              f"{n_req} requests ({n_req / s.rows:.2f} per image)")
        print(f"  server answers: {dict(sorted(counts.items()))}")
        print(f"  rerun: {s2.cached} of {s2.rows} from the cache, {n_req2} requests, {dt2:.2f} s")
        print("\naccuracy against the phantom ground truth (evaluate-captions logic):")
        print("  " + _accuracy_line("api:loopback", api_root))
        print("  " + _accuracy_line("mask", mask_root))


if __name__ == "__main__":
    main()
