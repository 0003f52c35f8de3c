"""The argument rules in fastcnn._validate, each on good and bad values, and their callers."""
import math

import numpy as np
import pytest

import fastcnn
from fastcnn import _validate as v
from fastcnn import nn, optim


# ------------------------------------------------------------------------------- integer

@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3), np.int32(3), np.array(3)],
                         ids=repr)
def test_integer_accepts_python_and_numpy_ints_as_a_plain_int(value):
    out = v.integer("f", "n", value)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [True, False, np.True_], ids=repr)
def test_integer_refuses_bools(value):
    with pytest.raises(TypeError, match=r"f: n must be an int, got bool"):
        v.integer("f", "n", value)


@pytest.mark.parametrize("value", [2.5, 2.0, np.float64(2.0), "2", None, [2], np.array([2])],
                         ids=repr)
def test_integer_refuses_floats_strings_and_arrays_naming_the_value(value):
    with pytest.raises(TypeError, match=rf"f: n must be an int, got {type(value).__name__} "):
        v.integer("f", "n", value)


def test_integer_names_the_minimum_and_the_value():
    with pytest.raises(ValueError, match=r"^f: n must be >= 1, got 0$"):
        v.integer("f", "n", 0, minimum=1)


def test_integer_names_the_maximum_and_the_value():
    with pytest.raises(ValueError, match=r"^f: n must be <= 4, got 5$"):
        v.integer("f", "n", 5, maximum=4)


def test_integer_with_both_bounds_names_the_interval():
    with pytest.raises(ValueError, match=r"^f: n must be in \[1, 4\], got 0$"):
        v.integer("f", "n", 0, 1, 4)
    assert v.integer("f", "n", 4, 1, 4) == 4


# ---------------------------------------------------------------------------------- real

@pytest.mark.parametrize("value", [1, 1.5, np.float32(1.5), np.int64(2), math.inf], ids=repr)
def test_real_accepts_ints_floats_and_infinity_as_a_float(value):
    out = v.real("f", "x", value)
    assert out == float(value) and type(out) is float


def test_real_refuses_nan():
    with pytest.raises(ValueError, match=r"f: x must be a number, not NaN, got nan"):
        v.real("f", "x", math.nan)


@pytest.mark.parametrize("value", [True, "1.0", None, 1j], ids=repr)
def test_real_refuses_bools_strings_and_complex(value):
    with pytest.raises(TypeError, match=r"f: x must be a number, got"):
        v.real("f", "x", value)


def test_real_names_a_closed_interval_and_an_open_end():
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\], got 1.5"):
        v.real("f", "x", 1.5, 0, 1)
    with pytest.raises(ValueError, match=r"x must be in \[0.0, 1.0\), got 1.0"):
        v.real("f", "x", 1.0, 0.0, 1.0, high_open=True)
    with pytest.raises(ValueError, match=r"x must be > 0.0, got 0.0"):
        v.real("f", "x", 0.0, low=0.0, low_open=True)
    with pytest.raises(ValueError, match=r"x must be <= 2, got 3.0"):
        v.real("f", "x", 3, high=2)


# ------------------------------------------------------------------------- choice, flag

def test_choice_returns_an_allowed_value_and_names_the_options_otherwise():
    assert v.choice("f", "mode", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"f: mode must be one of \('a', 'b'\), got 'c'"):
        v.choice("f", "mode", "c", ("a", "b"))


@pytest.mark.parametrize("value", [True, False, np.True_, np.False_], ids=repr)
def test_flag_accepts_python_and_numpy_bools_as_a_plain_bool(value):
    out = v.flag("f", "on", value)
    assert out == bool(value) and type(out) is bool


@pytest.mark.parametrize("value", [0, 1, "yes", None], ids=repr)
def test_flag_refuses_ints_strings_and_none(value):
    with pytest.raises(TypeError, match=rf"f: on must be a bool, got {type(value).__name__}"):
        v.flag("f", "on", value)


# ---------------------------------------------------------------------------------- pair

@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ((1, 2), (1, 2)), ([1, 2], (1, 2)),
                                             (np.int64(2), (2, 2)),
                                             ((np.int32(1), 4), (1, 4))], ids=repr)
def test_pair_turns_an_int_or_a_pair_into_a_tuple_of_ints(value, expected):
    out = v.pair("f", "stride", value, 1)
    assert out == expected and all(type(n) is int for n in out)


@pytest.mark.parametrize("value", [(), (1,), (1, 2, 3)], ids=repr)
def test_pair_refuses_sequences_of_the_wrong_length(value):
    with pytest.raises(ValueError, match=rf"stride must be an int or a pair of ints, got a "
                                         rf"sequence of length {len(value)}"):
        v.pair("f", "stride", value, 1)


@pytest.mark.parametrize("value", [True, 1.5, (1, False), (1, 2.0), "2", None], ids=repr)
def test_pair_refuses_bools_floats_and_strings_anywhere(value):
    with pytest.raises(TypeError, match=r"f: stride must be an int or a pair of ints, got"):
        v.pair("f", "stride", value, 1)


def test_pair_names_the_minimum_and_the_whole_value():
    with pytest.raises(ValueError, match=r"f: padding must be >= 0, got \(0, -2\)"):
        v.pair("f", "padding", (0, -2), 0)


# --------------------------------------------------------------------------------- shapes

def test_shape_returns_a_tuple_of_ints():
    out = v.shape("f", "input_shape", [1, np.int64(2), 3, 0])
    assert out == (1, 2, 3, 0) and all(type(n) is int for n in out)


def test_shape_refuses_the_wrong_number_of_sizes():
    with pytest.raises(ValueError, match=r"f: input_shape must be a 4-tuple of sizes, got"):
        v.shape("f", "input_shape", (1, 2, 3))
    assert v.shape("f", "input_shape", (5, 7), ndim=None) == (5, 7)


def test_shape_refuses_negative_and_non_integer_sizes():
    with pytest.raises(ValueError, match="must not have negative sizes"):
        v.shape("f", "s", (1, -1), ndim=2)
    with pytest.raises(TypeError, match=r"f: s must hold ints, got float 2.5"):
        v.shape("f", "s", (1, 2.5), ndim=2)
    with pytest.raises(TypeError, match=r"f: s must hold ints, got bool True"):
        v.shape("f", "s", (1, True), ndim=2)


def test_array_shape_names_the_expected_and_the_actual_shape():
    a = np.zeros((2, 3))
    assert v.array_shape("f", "grad_y", a, (2, 3)) is a
    with pytest.raises(ValueError, match=r"f: grad_y must have shape \(3, 2\), got \(2, 3\)"):
        v.array_shape("f", "grad_y", a, (3, 2))


# ------------------------------------------------------------------------------ dtypes

@pytest.mark.parametrize("value", [np.float32, "float64", np.dtype("f4")], ids=repr)
def test_float_dtype_accepts_float32_and_float64_in_any_spelling(value):
    assert v.float_dtype("f", "dtype", value) in (np.float32, np.float64)


@pytest.mark.parametrize("value", [np.float16, np.int64, "not a dtype"], ids=repr)
def test_float_dtype_refuses_other_dtypes(value):
    with pytest.raises(TypeError, match="f: dtype must be float32 or float64"):
        v.float_dtype("f", "dtype", value)


# ------------------------------------------------------------------------------ generator

def test_generator_from_a_seed_repeats_its_draws():
    a, b = v.generator("f", 7), v.generator("f", np.int64(7))
    assert isinstance(a, np.random.Generator)
    assert a.random() == b.random()


def test_generator_returns_a_given_generator_itself():
    rng = np.random.default_rng(0)
    assert v.generator("f", rng) is rng


def test_generator_from_none_is_a_fresh_generator():
    assert isinstance(v.generator("f", None), np.random.Generator)


@pytest.mark.parametrize("value", [1.5, True, "0", np.random.RandomState(0)], ids=repr)
def test_generator_refuses_floats_bools_strings_and_legacy_random_state(value):
    with pytest.raises(TypeError, match=r"f: rng must be a numpy.random.Generator, an int seed "
                                        r"or None, got"):
        v.generator("f", value)


def test_init_as_generator_is_the_same_rule():
    assert nn.init.as_generator(3).random() == v.generator("f", 3).random()
    with pytest.raises(TypeError, match="as_generator: rng must be"):
        nn.init.as_generator(1.5)


# ----------------------------------------------------------------------- callers: fit etc.

def tiny_fit(**kw):
    x = np.random.default_rng(0).standard_normal((8, 1, 2, 2)).astype(np.float32)
    y = np.arange(8) % 2
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0))
    opt = optim.SGD(model.parameters(), lr=0.1)
    return fastcnn.fit(model, x, y, optimizer=opt, batch_size=4, rng=0, verbose=False, **kw)


def test_fit_refuses_a_fractional_epoch_count():
    with pytest.raises(TypeError, match=r"fit: epochs must be an int, got float 2.5"):
        tiny_fit(epochs=2.5)


def test_fit_refuses_a_bool_epoch_count():
    with pytest.raises(TypeError, match=r"fit: epochs must be an int, got bool True"):
        tiny_fit(epochs=True)


def test_fit_accepts_a_numpy_int_epoch_count():
    assert tiny_fit(epochs=np.int64(1)).epochs == 1


def test_fit_refuses_a_float_rng():
    with pytest.raises(TypeError, match=r"fit: rng must be a numpy.random.Generator"):
        x = np.zeros((4, 1, 2, 2), np.float32)
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0))
        fastcnn.fit(model, x, np.zeros(4, np.int64), optimizer=optim.SGD(model.parameters(),
                    lr=0.1), epochs=1, rng=0.5, verbose=False)


def test_set_num_threads_names_its_interval():
    with pytest.raises(ValueError, match=r"set_num_threads: n must be in \[1, \d+\], got 0"):
        fastcnn.set_num_threads(0)


def test_conv_layer_refuses_a_float_rng_naming_the_layer():
    with pytest.raises(TypeError, match="Conv2d: rng must be"):
        nn.Conv2d(1, 1, 3, rng=1.5)
