"""A hand-made curve detector: a 7x7 filter of 30s along a curve, slid over a drawing.

Where the drawing holds a curve like the filter's, the products add up to a large number (the
guide's 6600); where the image is empty every product is 0; a straight line overlaps the
curve in a pixel or two and gives much less. Only one channel is used, as in the guide.

Run: python examples/curve_detector.py [OUT_DIR]   (saves curve_detector.png with matplotlib)
"""
import sys
import tempfile
from pathlib import Path

import numpy as np

import fastcnn.functional as F

# the filter: 30 along a curve that rises and bends to the right, 0 elsewhere
curve = np.zeros((7, 7), np.float32)
for r, c in [(1, 4), (1, 5), (2, 3), (3, 2), (4, 2), (5, 2), (6, 2)]:
    curve[r, c] = 30

# the image: 32x32, empty (0) but for a hand-drawn curve at the top left, drawn with pixel
# value 50 but fading to 20 at its tip and wandering off the filter's curve at the bottom,
# and a straight line at the bottom right
image = np.zeros((32, 32), np.float32)
for r, c in [(1, 4), (2, 3), (3, 2), (4, 2), (5, 1), (6, 1)]:
    image[r, c] = 50
image[1, 5] = 20
image[24, 16:30] = 50

response = F.conv2d(image[None, None], curve[None, None])[0, 0]   # (26, 26)

print("the filter (7x7):")
print(curve.astype(int))
print("the image's top-left 7x7 patch:")
print(image[:7, :7].astype(int))
products = [f"({int(image[r, c])} x {int(curve[r, c])})" for r, c in zip(*np.nonzero(
    image[:7, :7] * curve))]
print(f"products where both are non-zero: {' + '.join(products)} = "
      f"{int((image[:7, :7] * curve).sum())}")
print(f"activation map: {response.shape[0]}x{response.shape[1]}")
print(f"response on the curve (top-left): {response[0, 0]:.0f}")
print(f"response where the image is empty (top-right): {response[0, -1]:.0f}")
print(f"largest response on the straight line: {response[18:, 10:].max():.0f}")
row, col = np.unravel_index(response.argmax(), response.shape)
print(f"largest response anywhere: {response.max():.0f}, at row {row}, column {col}")
print(f"positions with response 0: {np.count_nonzero(response == 0)} of {response.size}")

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError:
    print("matplotlib is not installed: no picture (pip install matplotlib)")
    raise SystemExit(0)

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="fastcnn-"))
out.mkdir(parents=True, exist_ok=True)
fig = Figure(figsize=(10, 3.8))
FigureCanvasAgg(fig)
axes = fig.subplots(1, 3)
for ax, picture, title, cmap in [(axes[0], image, "image 32x32", "gray"),
                                 (axes[1], curve, "curve filter 7x7", "gray"),
                                 (axes[2], response, "activation map 26x26", "viridis")]:
    shown = ax.imshow(picture, cmap=cmap, interpolation="nearest")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.04)
axes[2].annotate(f"{response[0, 0]:.0f}", (0, 0), xytext=(5, 8), color="white",
                 arrowprops=dict(arrowstyle="->", color="white"))
fig.tight_layout()
fig.savefig(out / "curve_detector.png", dpi=100)
print(f"saved {out / 'curve_detector.png'}")
