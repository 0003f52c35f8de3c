"""Train the default CNN on the bundled digits, then look inside it.

Trains `fastcnn.default_cnn()` (conv -> ReLU -> pool, twice, then linear) for a few epochs on
the 1,437 training digits (8x8 greyscale), prints the accuracy on the 360 held-out digits and
the confusion matrix, and with matplotlib saves two pictures:

- filters.png: the 32 learned 3x3 filters of the first conv layer;
- activations.png: the activation maps of every conv and pooling layer for one test digit.

Run: python examples/train_digits.py [OUT_DIR]   (default: a new temporary directory)
"""
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import fastcnn
from fastcnn import data, optim, viz

EPOCHS = 4

x_train, y_train = data.load_digits("train")
x_test, y_test = data.load_digits("test")
model = fastcnn.default_cnn(rng=0)
optimizer = optim.Adam(model.parameters(), lr=3e-3)
print(f"training the default CNN for {EPOCHS} epochs on {len(x_train)} digits "
      f"{x_train.shape[2]}x{x_train.shape[3]}")
start = time.perf_counter()
history = fastcnn.fit(model, x_train, y_train, optimizer=optimizer, epochs=EPOCHS, rng=0,
                      validation_data=(x_test, y_test), verbose=False)
for epoch, (loss, accuracy) in enumerate(zip(history["loss"], history["val_accuracy"]), 1):
    print(f"epoch {epoch}: training loss {loss:.3f}, test accuracy {accuracy:.3f}")
print(f"trained in {time.perf_counter() - start:.1f} s")

predicted = np.argmax(fastcnn.predict(model, x_test), axis=1)
print(f"test accuracy {np.mean(predicted == y_test):.3f} on {len(y_test)} held-out digits")
print("confusion matrix (rows: true digit, columns: predicted digit):")
print(viz.confusion_matrix(y_test, predicted, num_classes=10))

digit = x_test[np.flatnonzero(y_test == 3)[0]]   # the guide's example digit: a 3
if importlib.util.find_spec("matplotlib") is None:
    print("matplotlib is not installed: no pictures (pip install matplotlib)")
    raise SystemExit(0)

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="fastcnn-"))
out.mkdir(parents=True, exist_ok=True)
viz.plot_filters(model[0], out / "filters.png")
print(f"saved {out / 'filters.png'}: the 32 learned 3x3 filters of the first conv layer")
viz.plot_activations(model, digit, out / "activations.png")
print(f"saved {out / 'activations.png'}: the activation maps of a test digit 3, layer by layer")
