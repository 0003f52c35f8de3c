"""Ctrl-C at a random moment of training: real SIGINTs sent to a child process running `fit`.

A step must apply to every parameter, buffer and optimizer state, or to none. The child, once
interrupted, replays as many whole steps as its optimizer counts on a fresh model, and the two
must agree to the bit: a step cut in half would leave some parameters, running statistics or
Adam's moments a step ahead of the others.
"""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fastcnn import nn, optim
from fastcnn._signals import held

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import fastcnn
    from fastcnn import nn, optim

    fastcnn.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 10, 64)

    def train(stop_after=None):
        # a wide Linear makes optimizer.step most of each step's time, where a cut would land
        model = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.BatchNorm2d(4), nn.ReLU(),
                              nn.Flatten(), nn.Linear(64, 2048, rng=1), nn.ReLU(),
                              nn.Linear(2048, 10, rng=2))
        opt = optim.Adam(model.parameters(), lr=1e-3)
        calls = [0]

        def augment(xb, rng):  # called first thing in every step
            calls[0] += 1
            if calls[0] == 1 and stop_after is None:
                print("started", flush=True)
            if stop_after is not None and calls[0] > stop_after:
                raise KeyboardInterrupt
            return xb

        history = fastcnn.fit(model, x, y, optimizer=opt, epochs=10**6, batch_size=8, rng=0,
                              augment=augment, verbose=False)
        assert history.interrupted
        return model, opt

    model, opt = train()
    steps = {s["step"] for s in opt.state.values()}
    assert len(steps) == 1, f"parameters at different steps: {steps}"
    k = steps.pop()
    again, opt_again = train(stop_after=k)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert np.array_equal(a, b), f"{name} differs from {k} whole steps"
    for p, q in zip(opt.state.values(), opt_again.state.values()):
        for key in ("exp_avg", "exp_avg_sq"):
            assert np.array_equal(p[key], q[key]), f"{key} differs from {k} whole steps"
    print("ok", k, flush=True)
""")


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_at_random_moments_leaves_whole_steps(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    chooser = random.Random(0)
    results = []
    for trial in range(20):
        child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "started", child.stderr.read()
            time.sleep(chooser.uniform(0.02, 0.4))
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=120)
        finally:
            child.kill()
        assert child.returncode == 0 and out.startswith("ok"), f"trial {trial}: {err}"
        results.append(int(out.split()[1]))
    assert len(set(results)) > 5  # the signals landed at many different steps


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_signal_inside_held_arrives_when_the_block_ends():
    before = signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt):
        with held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            done.append(True)  # not cut short
    assert done == [True] and signal.getsignal(signal.SIGINT) is before


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_during_an_optimizer_step_waits_for_every_parameter():
    class Interrupted(optim.SGD):
        def _update(self, p, group, state):
            if not hasattr(self, "sent"):
                self.sent = os.kill(os.getpid(), signal.SIGINT)  # during the first update
            super()._update(p, group, state)

    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.Linear(4, 2, rng=1))
    before = [p.data.copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    with pytest.raises(KeyboardInterrupt):
        Interrupted(model.parameters(), lr=0.5).step()
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b - 0.5)
