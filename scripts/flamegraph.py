#!/usr/bin/env python3
"""A flame graph (SVG) of `perf script -F tid,ip,sym` output, with no tool to install.

Usage: scripts/flamegraph.py STACKS.txt OUT.svg [TITLE]

Each sample's stack is read leaf first (as perf prints it) and drawn root at the
bottom; a frame's width is its share of the samples. Frames under 0.05% of the
samples are left out, so the file stays small. Hover a frame for its name, its
samples and its share. Written for `scripts/profile-tasks` (`FLAME=OUT.svg`), whose
phases read the samples with `stacks` too.
"""
import html
import re
import sys

WIDTH, ROW, FONT = 1600, 16, 11
MIN_SHARE = 0.0005


def stacks(path):
    """Yield each sample's frames, root first."""
    frames = None
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                yield frames[::-1]
            frames = None
        elif not line.startswith("\t"):  # a sample's header (its tid, right-aligned); frames are tab-indented
            frames = []
        elif frames is not None:
            parts = line.strip().split(None, 1)
            name = parts[1] if len(parts) > 1 else "?"
            frames.append(re.sub(r"::h[0-9a-f]{16}$", "", name))
    if frames:
        yield frames[::-1]


def tree(path):
    root = {"n": 0, "kids": {}}
    for frames in stacks(path):
        node = root
        node["n"] += 1
        for f in frames:
            node = node["kids"].setdefault(f, {"n": 0, "kids": {}})
            node["n"] += 1
    return root


def colour(name):
    h = sum(map(ord, name)) % 60
    if name.startswith(("kiln", "<kiln")):
        return f"rgb(230,{120 + h},40)"
    if "wasmtime" in name or "cranelift" in name:
        return f"rgb(90,{140 + h},220)"
    if re.match(r"^[a-z_0-9.]+$", name) and "::" not in name:  # the kernel and libc
        return f"rgb(200,{80 + h},{80 + h})"
    return f"rgb(240,{150 + h},{70 + h})"


def main():
    src, out = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "kiln"
    root = tree(src)
    total = max(root["n"], 1)
    rects, depth_max = [], 0

    def walk(node, name, x, depth):
        nonlocal depth_max
        w = WIDTH * node["n"] / total
        if node["n"] / total < MIN_SHARE:
            return
        depth_max = max(depth_max, depth)
        rects.append((x, depth, w, name, node["n"]))
        cx = x
        for kid_name, kid in sorted(node["kids"].items()):
            walk(kid, kid_name, cx, depth + 1)
            cx += WIDTH * kid["n"] / total

    walk(root, "all", 0.0, 0)
    height = (depth_max + 1) * ROW + 40
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="monospace" font-size="{FONT}">',
           f'<text x="4" y="16" font-size="14">{html.escape(title)}: {total} samples</text>']
    for x, depth, w, name, n in rects:
        y = height - (depth + 1) * ROW
        label = html.escape(name)
        svg.append(f'<g><title>{label} ({n} samples, {100 * n / total:.2f}%)</title>'
                   f'<rect x="{x:.1f}" y="{y}" width="{max(w - 0.3, 0.1):.1f}" height="{ROW - 1}" '
                   f'fill="{colour(name)}"/>')
        chars = int(w / (FONT * 0.6))
        if chars >= 4:
            text = name if len(name) <= chars else name[: chars - 2] + ".."
            svg.append(f'<text x="{x + 2:.1f}" y="{y + ROW - 4}">{html.escape(text)}</text>')
        svg.append("</g>")
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg))


if __name__ == "__main__":
    main()
