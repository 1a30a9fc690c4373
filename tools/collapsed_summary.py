"""Top functions (inclusive and self) of a py-spy raw (collapsed) profile.

    python3 tools/collapsed_summary.py FILE [N]
    python3 tools/collapsed_summary.py FILE [N] --under process_batch --having UsageStatistics

``--under F`` prints instead where the samples inside function ``F`` went: the two frames
called below it, as shares of the samples in ``F``; ``--having S`` keeps only the stacks that
name ``S`` somewhere (e.g. one consumer's batches where both run in one process, as in
``tools/consumer_bench.py``).
"""
import sys, collections
args = [a for a in sys.argv[1:]]
def option(name):
    if name not in args: return None
    i = args.index(name); value = args[i + 1]; del args[i:i + 2]; return value
under, having = option("--under"), option("--having")
f = args[0]; top = int(args[1]) if len(args) > 1 else 25
if under:
    below = collections.Counter(); total = 0
    for line in open(f):
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack or (having and having not in stack): continue
        names = [fr.split(" (")[0] for fr in stack.split(";")]
        if under not in names: continue
        i = names.index(under); total += int(n)
        below[" > ".join(names[i + 1:i + 3]) or "(itself)"] += int(n)
    print("samples in", under, total)
    [print(f"{100*v/total:5.1f}% {k}") for k, v in below.most_common(top)]
    sys.exit()
incl = collections.Counter(); selfc = collections.Counter(); total = 0
for line in open(f):
    line = line.rstrip()
    if not line: continue
    stack, _, n = line.rpartition(" "); n = int(n); total += n
    frames = stack.split(";")
    seen = set()
    for fr in frames:
        key = fr.split(" (")[0] + " (" + fr.split(" (")[1].split(":")[0].split("/")[-1] + ")" if " (" in fr else fr
        if key not in seen: incl[key] += n; seen.add(key)
    last = frames[-1]; selfc[last.split(" (")[0] + " (" + (last.split(" (")[1].split(":")[0].split("/")[-1] if " (" in last else "") + ")"] += n
print("total", total)
print("-- inclusive"); [print(f"{100*v/total:5.1f}% {k}") for k, v in incl.most_common(top)]
print("-- self"); [print(f"{100*v/total:5.1f}% {k}") for k, v in selfc.most_common(15)]
