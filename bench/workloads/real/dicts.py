# Builds and drops dicts, lists and strings (run with PYTHONMALLOC=malloc so
# every object goes through the preloaded malloc). Deterministic output.
import sys

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
rounds = max(2, int(40 * scale))
total = 0
for r in range(rounds):
    d = {}
    for i in range(20000):
        k = "key-%d-%d" % (r, i)
        d[k] = [i, str(i * 7), {"v": i % 13}]
    s = sum(len(k) + v[0] for k, v in d.items())
    words = " ".join(d.keys()).split(" ")
    total += s + len(words)
    del d, words
print("dicts: rounds=%d checksum=%d" % (rounds, total))
