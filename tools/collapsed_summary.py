"""Top functions (inclusive and self) of a py-spy raw (collapsed) profile: FILE [N]."""
import sys, collections
f = sys.argv[1]; top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
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
