#!/usr/bin/env python3
"""Points every bank instance of a generated pipeline at instance 0's module.

RustHDL writes one Verilog module per bank instance (top$vd$0 .. top$vd$7,
each with its own flip-flop submodules). Instances of one kind differ only
in localparams that hold their configuration address (`base`) and, in exact
and decaying-filter banks, their decay-table page (`fac_page`). This script
checks that (any other difference is an error, exit 1), rewrites the `top`
module so that every instance of a kind instantiates instance 0's module,
and drops the other instances' modules. A hierarchical synthesis of the
result, with yosys' `stat` counting a module once per instance, then gives
the design's cell count while synthesizing each bank kind once.

Usage: dedup_banks.py IN.v OUT.v   (prints the instance counts per kind)
"""
import re
import sys

KINDS = ("vd", "exact", "global", "decay")
PARAMS = re.compile(r"^\s*localparam\s+(base|fac_page)\s*=.*$", re.M)


def main():
    src = open(sys.argv[1]).read()
    parts = re.split(r"(?m)^(?=module )", src)
    head, mods = parts[0], parts[1:]
    name_of = [re.match(r"module (\S+?)\(", m).group(1) for m in mods]

    def family(prefix):
        return "".join(
            m.replace(prefix, "@")
            for n, m in zip(name_of, mods)
            if n == prefix or n.startswith(prefix + "$")
        )

    drop, counts = set(), {}
    for kind in KINDS:
        insts = sorted(
            {int(g) for n in name_of for g in re.findall(r"^top\$%s\$(\d+)$" % kind, n)}
        )
        if not insts:
            continue
        counts[kind] = len(insts)
        ref = PARAMS.sub("", family("top$%s$0" % kind)).strip()
        for i in insts[1:]:
            prefix = "top$%s$%d" % (kind, i)
            if PARAMS.sub("", family(prefix)).strip() != ref:
                sys.exit("dedup_banks: %s differs from top$%s$0 beyond base/fac_page" % (prefix, kind))
            drop.add(prefix)

    out = [head]
    for n, m in zip(name_of, mods):
        if any(n == p or n.startswith(p + "$") for p in drop):
            continue
        if n == "top":
            m = re.sub(
                r"(?m)^(\s*)top\$(%s)\$\d+ (\2\$\d+\()" % "|".join(KINDS),
                r"\1top$\2$0 \3",
                m,
            )
        out.append(m)
    open(sys.argv[2], "w").write("".join(out))
    print(" ".join("%s %d" % kv for kv in counts.items()))


if __name__ == "__main__":
    main()
