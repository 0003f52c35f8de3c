"""The guide's arithmetic, computed: the sizes and sums of its first convolution.

A 32x32 colour image is a 32x32x3 array of numbers from 0 to 255. A 5x5x3 filter (as deep as
the image) fits in 28 places across and 28 down: 784 positions, each giving one number, the sum
of 75 products of filter weights and pixels. Those 784 numbers are a 28x28 activation map.

Run: python examples/guide_arithmetic.py
"""
import numpy as np

import fastcnn.functional as F
from fastcnn import nn

rng = np.random.default_rng(0)
image = rng.integers(0, 256, size=(1, 3, 32, 32)).astype(np.float32)   # N, C, H, W
one_filter = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)      # K, C, R, S

maps = F.conv2d(image, one_filter)
_, _, rows, cols = maps.shape
weights = one_filter[0].size
print(f"image {image.shape[2]}x{image.shape[3]}x{image.shape[1]}, filter "
      f"{one_filter.shape[2]}x{one_filter.shape[3]}x{one_filter.shape[1]}")
print(f"activation map: {rows}x{cols} = {rows * cols} positions")
print(f"multiplications per position: {weights}")
print(f"multiplications for the whole map: {rows * cols} x {weights} = {rows * cols * weights}")

# the top-left number is the sum of the 75 products with the top-left 5x5x3 patch
by_hand = float((image[0, :, :5, :5] * one_filter[0]).sum())
print(f"top-left activation: {maps[0, 0, 0, 0]:.1f} (by hand: {by_hand:.1f})")
assert np.isclose(maps[0, 0, 0, 0], by_hand, rtol=1e-5)
# one step right moves the patch by one pixel
by_hand = float((image[0, :, :5, 1:6] * one_filter[0]).sum())
assert np.isclose(maps[0, 0, 0, 1], by_hand, rtol=1e-5)

# more filters, more maps: two 5x5x3 filters give a 28x28x2 volume
two = F.conv2d(image, rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
print(f"two 5x5x3 filters: {two.shape[2]}x{two.shape[3]}x{two.shape[1]}")
# a 7x7x3 filter fits in fewer places: 26x26
big = F.conv2d(image, rng.standard_normal((1, 3, 7, 7)).astype(np.float32))
print(f"one 7x7x3 filter: {big.shape[2]}x{big.shape[3]}x{big.shape[1]}")

# three 5x5x3 filters give a 28x28x3 volume, the input of the second conv layer, whose
# filters must be 3 deep to match it
first = F.conv2d(image, rng.standard_normal((3, 3, 5, 5)).astype(np.float32))
second = F.conv2d(first, rng.standard_normal((4, 3, 5, 5)).astype(np.float32))
print(f"three 5x5x3 filters: {first.shape[2]}x{first.shape[3]}x{first.shape[1]}; "
      f"then four 5x5x3 filters on that: {second.shape[2]}x{second.shape[3]}x{second.shape[1]}")

# the digit classifier's output: 10 probabilities; the guide's example says "a 3"
probabilities = np.array([0, .1, .1, .75, 0, 0, 0, 0, 0, .05])
print(f"output {probabilities.tolist()}: digit {probabilities.argmax()} "
      f"({probabilities.max():.0%}), probabilities sum to {probabilities.sum():g}")

# before training every class gets 0.1; the label of a 3 is one-hot at index 3;
# the loss is half the sum of squared differences
untrained = np.full(10, 0.1)
label = np.eye(10)[3]
loss = 0.5 * nn.MSELoss(reduction="sum")(untrained, label)
print(f"untrained output {untrained.tolist()} vs label {label.astype(int).tolist()}: "
      f"loss 1/2 * sum((label - output)^2) = {loss:.2f}")
