"""The benchmark runner behind `fastcnn bench`: a consistent case table, the engines' calls,
the command line (JSON keys, bad options), and what importing and plotting leave alone.
Figures are not checked: benchmarks are not tests."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastcnn
import fastcnn.functional as F
from fastcnn import _args, _blas, bench
from fastcnn.bench import runner
from fastcnn.bench.cli import Progress

CASES = {case.name: case for case in bench.CASES}


def test_case_names_are_unique_and_ops_fit_their_kind():
    assert len(CASES) == len(bench.CASES)
    ops = {"conv": {"forward", "backward_data", "backward_weight"},
           "pool": {"forward", "backward"}, "net": {"train_step", "inference"}}
    for case in bench.CASES:
        assert case.op in ops[case.kind], case.name
        assert case.name.startswith(f"{case.kind}.") and case.name.endswith(f".{case.op}")


def test_conv_flops_match_a_hand_count():
    # LeNet-5 conv2: 64 images, 6 -> 16 channels, 14x14 -> 10x10, 5x5 kernel.
    assert CASES["conv.lenet5-c2.forward"].flops == 2 * 64 * 16 * 10 * 10 * 6 * 5 * 5
    # Stem: 224 + 2*3 - 7 = 223, // 2 + 1 = 112 outputs per side.
    assert CASES["conv.stem-7x7s2.backward_weight"].flops == 2 * 8 * 64 * 112 * 112 * 3 * 7 * 7
    # Depthwise: each output channel reads one input channel.
    assert CASES["conv.depthwise-3x3.backward_data"].flops == 2 * 16 * 128 * 28 * 28 * 1 * 3 * 3


def test_training_step_flops_are_three_forwards_of_conv_and_linear_layers():
    conv1 = 2 * 64 * 6 * 28 * 28 * 1 * 5 * 5
    conv2 = 2 * 64 * 16 * 10 * 10 * 6 * 5 * 5
    linear = 2 * 64 * (400 * 120 + 120 * 84 + 84 * 10)
    assert CASES["net.lenet5.inference"].flops == conv1 + conv2 + linear
    assert CASES["net.lenet5.train_step"].flops == 3 * (conv1 + conv2 + linear)


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_every_case_shape_is_valid_for_functional(quick):
    for case in bench.CASES:
        s = case.quick() if quick else case
        s = s.spec
        if isinstance(s, bench.Conv):
            x = np.empty((s.N, s.C, s.H, s.W), np.float32)
            w = np.empty((s.K, s.C // s.groups, s.R, s.S), np.float32)
            g = _args.conv_geometry("conv2d", x.shape, w.shape, s.stride, s.padding, 1, s.groups)
            assert (g.P, g.Q) == (s.P, s.Q), case.name
        elif isinstance(s, bench.Pool):
            g = _args.pool_geometry("max_pool2d", (s.N, s.C, s.H, s.W), s.kernel, s.stride,
                                    s.padding, 1, False)
            assert (g.P, g.Q) == (s.P, s.Q), case.name


def test_quick_divides_only_the_batch_by_eight():
    case = CASES["conv.vgg-3x3.forward"]
    assert case.quick().spec == bench.Conv(1, 64, 56, 56, 64, 3, 3, padding=1)
    assert CASES["net.vgg-cifar.train_step"].quick().spec.N == 8


@pytest.mark.parametrize("name", ["conv.stem-7x7s2", "conv.depthwise-3x3", "conv.cifar-c1"])
@pytest.mark.parametrize("engine", ["fastcnn", "reference"])
def test_engine_conv_gradient_calls_equal_conv2d_backward(name, engine):
    s = CASES[f"{name}.forward"].spec
    s = bench.Conv(1, s.C, 12, 12, s.K, s.R, s.S, s.stride, s.padding, s.groups)
    d = bench.make_inputs(bench.Case("x", "forward", s))
    want_x, want_w, _ = F.conv2d_backward(d["grad_y"], d["x"], d["weight"], s.stride,
                                          s.padding, 1, s.groups)
    calls = {op: bench.ENGINES[engine].prepare(bench.Case("x", op, s), d)
             for op in ("backward_data", "backward_weight")}
    np.testing.assert_allclose(calls["backward_data"](), want_x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(calls["backward_weight"](), want_w, rtol=1e-4, atol=1e-4)


def test_fastcnn_and_reference_engines_run_the_same_network():
    case = bench.Case("x", "inference", bench.Net("LeNet-5", 4, (1, 28, 28), bench.LENET5))
    d = bench.make_inputs(case)
    fast, ref = (bench.ENGINES[name].prepare(case, d)() for name in ("fastcnn", "reference"))
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-5)


def test_reference_training_step_lowers_the_loss():
    case = CASES["net.lenet5.train_step"]
    case = bench.Case(case.name, case.op, bench.Net("LeNet-5", 4, (1, 28, 28), bench.LENET5))
    step = bench.ENGINES["reference"].prepare(case, bench.make_inputs(case))
    losses = [float(step()) for _ in range(5)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_quick_run_writes_json_with_the_documented_keys(tmp_path, capsys):
    path = tmp_path / "bench.json"
    threads_before = fastcnn.get_num_threads()
    assert bench.main(["--quick", "--filter", "conv.lenet5-c1.forward", "--threads", "1",
                       "--json", str(path)]) == 0
    assert fastcnn.get_num_threads() == threads_before
    out = capsys.readouterr().out
    assert "conv.lenet5-c1.forward" in out and "sgemm peak" in out
    report = json.loads(path.read_text())
    assert {"date", "elapsed_s", "quick", "threads", "settings", "machine", "sgemm_n",
            "sgemm_peak_gflops", "cases", "load_average_end"} <= set(report)
    assert report["quick"] is True and report["threads"] == 1
    assert {"cpu_model", "logical_cpus", "usable_cpus", "load_average", "threads", "python",
            "numpy", "numpy_blas", "numpy_blas_kernels", "fastcnn", "torch",
            "build_info"} <= set(report["machine"])
    assert report["sgemm_peak_gflops"] > 0 and report["copy_gbytes_per_s"] > 0
    (case,) = report["cases"]
    assert {"name", "kind", "op", "spec", "batch", "flops", "engines", "speedup_vs_reference",
            "speedup_vs_torch"} <= set(case)
    assert case["spec"]["N"] == 8 and case["flops"] == 2 * 8 * 6 * 28 * 28 * 25
    for name in ("fastcnn", "reference"):
        result = case["engines"][name]
        assert {"median_s", "min_s", "times_s", "gflops", "peak_memory_bytes"} <= set(result)
        assert result["median_s"] > 0 and result["peak_memory_bytes"] > 0
    assert case["speedup_vs_reference"] > 0
    # '% sgemm' is against the sgemm timed in turns with the case, not the run's first one
    assert case["sgemm_gflops"] > 0
    pct = f"{100 * case['engines']['fastcnn']['gflops'] / case['sgemm_gflops']:.1f}%"
    (row,) = [line for line in out.splitlines() if line.startswith("conv.lenet5-c1.forward")]
    assert [cell for cell in row.split() if cell.endswith("%")] == [pct], (row, pct)


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads: expected a positive integer, got 0"),
    (["--threads", "two"], "--threads: expected a positive integer, got 'two'"),
    (["--filter", "no-such-case"], "--filter no-such-case matches no case"),
    (["--json", "/no/such/folder/out.json"], "folder /no/such/folder does not exist"),
    (["--speed"], "unrecognized arguments: --speed"),
    (["--scaling", "--threads", "1"], "--threads must be at least 2, got 1"),
    (["--scaling", "--threads", "2", "--plot", "x.png"], "--plot draws speedups against"),
])
def test_bad_option_exits_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_list_prints_every_case(capsys):
    assert bench.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in CASES)


def test_progress_writes_one_line_per_step_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(2, stream)
    progress.show(1, "conv.vgg-3x3.forward")
    progress.close()
    assert stream.getvalue().startswith("[") and "1/2" in stream.getvalue()
    assert stream.getvalue().count("\n") == 1


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    result = {"median_s": 1.0}
    report = {"machine": {"fastcnn": "0", "cpu_model": "cpu", "threads": 1},
              "cases": [{"name": "conv.a.forward", "speedup_vs_reference": 3.0,
                         "speedup_vs_torch": 0.5, "engines": {"fastcnn": result}}]}
    bench.plot(report, str(tmp_path / "speedups.png"))
    assert (tmp_path / "speedups.png").read_bytes()[:4] == b"\x89PNG"


def test_pool_case_counts_the_bytes_it_must_move(tmp_path, capsys):
    # 2x2/2 on (N, C, 56, 56): read x (4 B an element), write y (4 B) and the int64 indices
    # (8 B) of the 28x28 outputs; the backward moves the same arrays the other way
    pool = bench.Pool(32, 64, 56, 56, 2, 2)
    assert pool.bytes_moved == 32 * 64 * (4 * 56 * 56 + 12 * 28 * 28)
    path = tmp_path / "bench.json"
    assert bench.main(["--quick", "--filter", "pool.2x2s2.backward", "--threads", "1",
                       "--json", str(path)]) == 0
    assert "% copy" in capsys.readouterr().out
    (case,) = json.loads(path.read_text())["cases"]
    assert case["bytes_moved"] == bench.Pool(4, 64, 56, 56, 2, 2).bytes_moved
    assert case["sgemm_gflops"] is None  # only convolutions time an sgemm beside them
    result = case["engines"]["fastcnn"]
    assert result["gbytes_per_s"] == pytest.approx(case["bytes_moved"] / result["median_s"] / 1e9)


def test_scaling_times_one_thread_and_n_in_the_same_turns(tmp_path, capsys, monkeypatch):
    # every call of the four sets its own thread counts, so that they can take turns
    seen, measure = {}, runner.measure

    def recording_measure(calls, settings):
        for name, fn in calls.items():
            fn()
            seen[name] = (fastcnn.get_num_threads(), _blas.threads())
        return measure(calls, settings)

    monkeypatch.setattr(runner, "measure", recording_measure)
    path = tmp_path / "scaling.json"
    threads_before, blas_before = fastcnn.get_num_threads(), _blas.threads()
    assert bench.main(["--scaling", "--quick", "--threads", "2", "--filter",
                       "conv.resnet-3x3.forward", "--json", str(path)]) == 0
    assert (fastcnn.get_num_threads(), _blas.threads()) == (threads_before, blas_before)
    assert {name: fc for name, (fc, _) in seen.items() if name.startswith("fastcnn")} == {
        "fastcnn_1": 1, "fastcnn_n": 2}
    if blas_before is not None:  # NumPy's BLAS is OpenBLAS: its threads are set too
        assert {name: b for name, (_, b) in seen.items() if name.startswith("sgemm")} == {
            "sgemm_1": 1, "sgemm_n": 2}
    report = json.loads(path.read_text())
    assert report["scaling"] is True and report["threads"] == 2
    (case,) = report["cases"]
    assert case["name"] == "conv.resnet-3x3.forward" and case["threads"] == 2
    assert set(case["times_s"]) == {"fastcnn_1", "fastcnn_n", "sgemm_1", "sgemm_n"}
    assert case["one_thread_s"] == np.median(case["times_s"]["fastcnn_1"])
    assert case["speedup"] == pytest.approx(case["one_thread_s"] / case["threads_s"])
    (row,) = [line for line in capsys.readouterr().out.splitlines()
              if line.startswith("conv.resnet-3x3.forward")]
    assert f"{case['speedup']:.2f}x" in row and f"{case['sgemm_speedup']:.2f}x" in row


def test_scaling_run_needs_two_threads():
    with pytest.raises(ValueError, match="threads must be at least 2, got 1"):
        bench.run([CASES["conv.lenet5-c1.forward"]], 1, quick=True, scaling=True)


def _run_python(code: str, **env) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env={**os.environ, **env}, cwd="/")  # not the checkout
    return result.stdout.strip()


def test_importing_bench_does_not_import_the_fastcnn_command():
    code = "import sys, fastcnn.bench; print('fastcnn.cli' in sys.modules)"
    assert _run_python(code) == "False"


def test_plot_leaves_the_matplotlib_backend_alone(tmp_path):
    pytest.importorskip("matplotlib")
    report = {"machine": {"fastcnn": "0", "cpu_model": "cpu", "threads": 1},
              "cases": [{"name": "conv.a.forward", "speedup_vs_reference": 3.0,
                         "speedup_vs_torch": 0.5}]}
    code = (f"import sys, matplotlib; from fastcnn import bench; "
            f"bench.plot({report!r}, {str(tmp_path / 'chart.png')!r}); "
            f"print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    assert _run_python(code, MPLBACKEND="svg") == "svg False"
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
