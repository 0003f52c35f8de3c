"""fit / evaluate / predict, callbacks, and a full training run on the digits."""
import io

import numpy as np
import pytest

import fastcnn
from fastcnn import data, nn, optim
from fastcnn.train import Callback, EarlyStopping, ModelCheckpoint, History


def tiny_problem(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].sum(axis=(1, 2)) > 0).astype(np.int64)  # learnable: top half's sign
    return x, y


def tiny_model(seed=0):
    return fastcnn.default_cnn(1, 2, (8, 8), width=4, rng=seed)


def train_once(seed=0, epochs=2, **kw):
    x, y = tiny_problem()
    model = tiny_model()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = fastcnn.fit(model, x, y, optimizer=opt, epochs=epochs, batch_size=16, rng=seed,
                          verbose=False, **kw)
    return model, history


def test_fit_is_deterministic_for_a_fixed_rng():
    a, _ = train_once(seed=3)
    b, _ = train_once(seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and np.array_equal(va, vb)


def test_fit_changes_with_the_rng():
    a, _ = train_once(seed=3)
    b, _ = train_once(seed=4)
    assert not np.array_equal(a[0].weight.data, b[0].weight.data)


def test_history_records_each_epoch():
    x, y = tiny_problem()
    model = tiny_model()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    h = fastcnn.fit(model, x, y, optimizer=opt, epochs=3, batch_size=16, rng=0, verbose=False,
                    validation_data=(x[:16], y[:16]),
                    scheduler=optim.StepLR(opt, step_size=1, gamma=0.5))
    assert h.epochs == 3
    assert set(h.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "images_per_s",
                              "lr"}
    assert h["lr"] == pytest.approx([1e-2, 5e-3, 2.5e-3])
    assert h["loss"][-1] < h["loss"][0]


def test_progress_goes_to_the_stream():
    out = io.StringIO()
    x, y = tiny_problem()
    model = tiny_model()
    fastcnn.fit(model, x, y, optimizer=optim.SGD(model.parameters(), lr=0.01), epochs=2,
                rng=0, stream=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2 loss") and "img/s" in lines[0]


def test_ctrl_c_stops_cleanly_and_keeps_the_last_step():
    class Interrupt(Callback):
        def on_epoch_end(self, epoch, metrics, model):
            self.weights = model[0].weight.data.copy()
            raise KeyboardInterrupt

    cb = Interrupt()
    model, history = train_once(epochs=5, callbacks=[cb])
    assert history.interrupted and history.epochs == 1
    assert np.array_equal(model[0].weight.data, cb.weights)
    assert not model.training


def test_early_stopping_restores_the_best_weights():
    x, y = tiny_problem()
    model = tiny_model()
    stop = EarlyStopping(monitor="val_loss", patience=0)
    # a huge learning rate makes the validation loss worse after the first epoch
    opt = optim.SGD(model.parameters(), lr=50.0)
    h = fastcnn.fit(model, x, y, optimizer=opt, epochs=20, rng=0, verbose=False,
                    validation_data=(x, y), callbacks=[stop])
    assert h.stopped_early and h.epochs < 20
    best = int(np.argmin(h["val_loss"]))
    assert fastcnn.evaluate(model, x, y)["loss"] == pytest.approx(h["val_loss"][best], rel=1e-5)


def test_early_stopping_needs_its_metric():
    with pytest.raises(KeyError, match="val_loss"):
        train_once(callbacks=[EarlyStopping(monitor="val_loss")])


def test_checkpoint_saves_a_loadable_model(tmp_path):
    path = tmp_path / "best.fcnn"
    x, y = tiny_problem()
    model, _ = train_once(validation_data=(x, y), callbacks=[ModelCheckpoint(path)])
    loaded = fastcnn.load(path)
    assert loaded(x).shape == (len(x), 2)


def test_evaluate_and_predict():
    model, _ = train_once()
    x, y = tiny_problem(seed=1)
    result = fastcnn.evaluate(model, x, y)
    assert set(result) == {"loss", "accuracy"} and 0 <= result["accuracy"] <= 1
    p = fastcnn.predict(model, x, batch_size=7)
    assert p.shape == (len(x), 2)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-12)
    assert np.mean(np.argmax(p, axis=1) == y) == pytest.approx(result["accuracy"])


def test_evaluate_rejects_mismatched_lengths():
    model = tiny_model()
    with pytest.raises(ValueError, match="same length"):
        fastcnn.evaluate(model, np.zeros((4, 1, 8, 8)), np.zeros(3, np.int64))


def test_history_repr():
    assert "epochs=0" in repr(History())


def test_default_cnn_learns_the_digits():
    """The README's promise: the default CNN reaches at least 98% on the held-out digits."""
    x, y = data.load_digits("train")
    xt, yt = data.load_digits("test")
    model = fastcnn.default_cnn(rng=0)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    fastcnn.fit(model, x, y, optimizer=opt, epochs=20, batch_size=32, rng=0, verbose=False,
                scheduler=optim.CosineAnnealingLR(opt, T_max=20))
    assert fastcnn.evaluate(model, xt, yt)["accuracy"] >= 0.98
