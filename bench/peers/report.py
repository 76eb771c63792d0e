"""The table of a run: per workload and thread count, every peer's ms/step, nnc's, the best
peer, best-peer time / nnc time, and whether the implementations' losses agree.

Usage: report.py RESULTS.jsonl [MORE.jsonl ...] [--markdown FILE] [--header FILE]
Prints the table as text; --markdown also writes it as a markdown table (with --header's
lines above it, e.g. the machine). Several files are read in order, a later record of the
same peer, workload and thread count replacing an earlier one. Exits 1 when the losses of
some row disagree."""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PEERS = ["numpy", "jax.jit", "torch.eager", "torch.compile", "pytensor.numba", "pytensor.c"]
NNC = "nnc"


def load(paths):
    """The records by (workload, threads, peer). Several records of one key (one per
    interleaved round, see run.sh) are merged into one: their timed repeats pooled, the
    median, min and max taken over all of them. Each round keeps the cross-core probes
    run.sh took just before and after it (see `spells`)."""
    groups = {}
    for path in paths:
        last_probe, waiting = None, []
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                if r.get("probe") == "cross_core":
                    for w in waiting:
                        w["probe_after"] = r["ns"]
                    last_probe, waiting = r["ns"], []
                    continue
                r["probe_before"] = last_probe
                waiting.append(r)
                groups.setdefault((r["workload"], int(r["threads"]), r["peer"]), []).append(r)
    return {key: merge(rs) for key, rs in groups.items()}


def merge(rs):
    """One record from the rounds `rs` of one implementation (the last round's losses)."""
    rounds = [(r.get("ms", [r["ms_median"]]), r.get("probe_before"), r.get("probe_after")) for r in rs]
    if len(rs) == 1:
        return dict(rs[0], round_probes=rounds)
    times = [t for r in rs for t in r.get("ms", [r["ms_median"]])]
    rec = dict(rs[-1])
    rec.update(
        ms=times, ms_median=statistics.median(times), ms_min=min(times), ms_max=max(times),
        repeats=len(times), rounds=len(rs), round_probes=rounds,
        cpu_over_wall=statistics.median(r["cpu_over_wall"] for r in rs),
        repeat_final_losses=[l for r in rs for l in r.get("repeat_final_losses", [r["final_loss"]])],
    )
    return rec


def ms(x):
    """Three significant digits, trailing zeros kept (0.100, 15.0, 229)."""
    return f"{x:.0f}" if x >= 100 else f"{x:#.3g}"


def spread(values):
    """Largest relative difference between any two values."""
    lo, hi = min(values), max(values)
    scale = max(abs(lo), abs(hi))
    return (hi - lo) / scale if scale else 0.0


def loss_check(w, recs):
    """(cell text, agrees) for the first- and last-step losses of one row."""
    setup = lambda r: (r.get("steps", w.steps), r.get("lr", w.lr))  # older records lack lr
    if {setup(r) for r in recs} != {(w.steps, w.lr)}:
        return "SETUP DIFFERS: (steps, lr) " + ", ".join(f"{r['peer']} {setup(r)}" for r in recs), False
    if len(recs) < 2:
        return "-", True
    first = spread([r["first_loss"] for r in recs])
    final = spread([r["final_loss"] for r in recs])
    ok = first <= w.first_rtol and final <= w.final_rtol
    text = f"{first:.0e} / {final:.0e}"
    if not ok:
        med = statistics.median(r["final_loss"] for r in recs)
        worst = max(recs, key=lambda r: abs(r["final_loss"] - med))
        text += f" DISAGREE (farthest: {worst['peer']})"
    return text, ok


def rows(recs):
    peers = PEERS + sorted({p for (_, _, p) in recs} - set(PEERS) - {NNC})
    header = ["workload", "threads"] + peers + [NNC, "best peer", "best/nnc", "loss spread first / final"]
    out, all_ok, wins, compared = [], True, 0, 0
    for wid, threads in sorted({(w, t) for (w, t, _) in recs}):
        w = common.WORKLOADS[wid]
        row_recs = {p: recs[(wid, threads, p)] for p in peers + [NNC] if (wid, threads, p) in recs}
        cells = [f"{wid} {w.model} ({w.dtype.replace('float', 'f')})", str(threads)]
        cells += [ms(row_recs[p]["ms_median"]) if p in row_recs else "-" for p in peers + [NNC]]
        present = [p for p in peers if p in row_recs]
        if present:
            best = min(present, key=lambda p: row_recs[p]["ms_median"])
            cells.append(best)
        else:
            best = None
            cells.append("-")
        if best and NNC in row_recs:
            ratio = row_recs[best]["ms_median"] / row_recs[NNC]["ms_median"]
            cells.append(f"{ratio:.2f}x")
            compared += 1
            wins += ratio > 1
        else:
            cells.append("-")
        text, ok = loss_check(w, list(row_recs.values()))
        all_ok &= ok
        cells.append(text)
        out.append(cells)
    return header, out, all_ok, (wins, compared)


def text_table(header, body):
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    numeric = [0 < i < len(header) - 1 and h not in ("best peer", "spell") for i, h in enumerate(header)]
    fmt = lambda r: "  ".join(c.rjust(wd) if num else c.ljust(wd) for c, wd, num in zip(r, widths, numeric)).rstrip()
    return "\n".join([fmt(header), fmt(["-" * wd for wd in widths])] + [fmt(r) for r in body])


def markdown_table(header, body):
    numeric = [0 < i < len(header) - 1 and h not in ("best peer", "spell") for i, h in enumerate(header)]
    line = lambda r: "| " + " | ".join(r) + " |"
    rule = "|" + "|".join("---:" if num else "---" for num in numeric) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in body])


def notes(recs, all_ok, wins, compared):
    any_rec = next(iter(recs.values()))
    lines = [
        f"ms/step: median over {any_rec['repeats']} repeats"
        + (f" (in {any_rec['rounds']} interleaved rounds)" if any_rec.get("rounds") else "")
        + " of the workload's full step count "
        f"(W1 2000, W2 10000, W3 300, W4 50), each from the initial parameters, after "
        f"{common.WARMUP_STEPS} untimed warm-up steps; 1-thread rows pinned to one core, others unpinned.",
        "best/nnc = best peer's time / nnc's time: above 1, nnc is faster"
        + (f"; nnc is faster than the best peer in {wins} of {compared} rows." if compared else "."),
        "loss spread: the largest relative difference between implementations of the first step's "
        "loss and of the last step's; tolerances "
        + ", ".join(f"{w.id} {w.first_rtol:.0e} / {w.final_rtol:.0e}" for w in common.WORKLOADS.values())
        + " (W2's lr-1.0 trajectory amplifies rounding)"
        + ("; every row agrees." if all_ok else "; SOME ROWS DISAGREE."),
        "MFLOP per step (matmuls, forward and backward): "
        + ", ".join(f"{w.id} {w.mflop:.2f}" for w in common.WORKLOADS.values()) + ".",
    ]
    busy = [r for r in recs.values() if r["threads"] == 1 and r.get("cpu_over_wall", 0) > 1.15]
    if busy:
        lines.append("more than one core busy in a 1-thread run (cpu/wall): "
                     + ", ".join(f"{r['peer']} {r['workload']} {r['cpu_over_wall']:.2f}" for r in busy))
    return lines


def spells(recs):
    """The multi-thread rows again, each round put in the host's spell it ran in.

    The cross-core round trip (nnc-step's `cross-core`, run before and after every
    multi-thread round) flips on shared hosts between a fast and a slow spell, and a
    slow spell slows every 2-thread step that moves data between its threads. A round
    is fast when both of its probes are under twice the run's smallest probe, slow when
    both are above, and left out when the spell changed during it. Returns (header,
    body, threshold ns), or None when the run has no probes or only one spell."""
    probes = [p for r in recs.values() if r["threads"] > 1
              for (_, before, after) in r.get("round_probes", []) for p in (before, after)
              if p is not None]
    if not probes:
        return None
    threshold = 2 * min(probes)

    def spell(before, after):
        if before is None or after is None:
            return None
        if max(before, after) < threshold:
            return "fast"
        return "slow" if min(before, after) >= threshold else None

    by_spell = {}
    for (wid, threads, peer), r in recs.items():
        if threads < 2:
            continue
        for times, before, after in r.get("round_probes", []):
            s = spell(before, after)
            if s:
                by_spell.setdefault((wid, threads, s), {}).setdefault(peer, []).extend(times)
    if len({s for (_, _, s) in by_spell}) < 2:
        return None
    peers = PEERS + sorted({p for cell in by_spell.values() for p in cell} - set(PEERS) - {NNC})
    header = ["workload", "threads", "spell"] + peers + [NNC, "best peer", "best/nnc"]
    body = []
    for (wid, threads, s) in sorted(by_spell):
        cell = {p: statistics.median(ts) for p, ts in by_spell[(wid, threads, s)].items()}
        row = [wid, str(threads), s]
        row += [f"{ms(cell[p])} ({len(by_spell[(wid, threads, s)][p])})" if p in cell else "-"
                for p in peers + [NNC]]
        present = [p for p in peers if p in cell]
        best = min(present, key=cell.get) if present else None
        row.append(best or "-")
        row.append(f"{cell[best] / cell[NNC]:.2f}x" if best and NNC in cell else "-")
        body.append(row)
    return header, body, threshold


def spell_notes(threshold):
    return [
        "By spell: the multi-thread rounds split by the cross-core round trip measured just "
        f"before and after each (fast: both under {threshold:.0f} ns, twice the run's smallest; "
        "slow: both above; rounds that straddled a change are left out). Each cell is the "
        "median of the repeats in that spell (their count in brackets)."
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--markdown", help="also write the table here, as markdown")
    ap.add_argument("--header", help="a text file whose lines go above the markdown table")
    args = ap.parse_args()
    recs = load(args.results)
    if not recs:
        sys.exit(f"{' '.join(args.results)}: no records")
    header, body, all_ok, (wins, compared) = rows(recs)
    foot = notes(recs, all_ok, wins, compared)
    print(text_table(header, body))
    print()
    print("\n".join(foot))
    split = spells(recs)
    if split:
        s_header, s_body, threshold = split
        print()
        print(text_table(s_header, s_body))
        print()
        print("\n".join(spell_notes(threshold)))
    if args.markdown:
        top = open(args.header).read().strip() + "\n\n" if args.header else ""
        with open(args.markdown, "w") as f:
            f.write(top + markdown_table(header, body) + "\n\n" + "\n".join(f"- {l}" for l in foot) + "\n")
            if split:
                f.write("\n" + markdown_table(s_header, s_body) + "\n\n"
                        + "\n".join(f"- {l}" for l in spell_notes(threshold)) + "\n")
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
