#!/usr/bin/env python3
"""Write photo-like sample JPEGs (gradients, shapes and noise) for the demo and benchmarks.

usage: make-samples.py DIR COUNT [WIDTH HEIGHT]
"""
import os
import random
import sys

from PIL import Image, ImageDraw, ImageFilter


def sample(width, height, seed):
    rnd = random.Random(seed)
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    r, g, b = (rnd.randint(40, 255) for _ in range(3))
    tint = Image.new("RGB", (width, height), (r, g, b))
    img = Image.blend(img, tint, 0.55)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rnd.randint(0, width), rnd.randint(0, height)
        s = rnd.randint(width // 20, width // 4)
        colour = tuple(rnd.randint(0, 255) for _ in range(3))
        draw.ellipse((x - s, y - s, x + s, y + s), fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(2))
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    return Image.blend(img, noise, 0.15)


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    width = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    height = int(sys.argv[4]) if len(sys.argv) > 4 else 768
    for i in range(count):
        sub = os.path.join(out, f"trip-{i % 3 + 1}")
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"photo-{i:03}.jpg")
        if not os.path.exists(path):
            sample(width, height, i).save(path, quality=90)


if __name__ == "__main__":
    main()
