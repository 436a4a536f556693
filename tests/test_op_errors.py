# Bad input to the ops, one row per failure mode: the exception type (TypeError for dtypes and
# non-tensors, ValueError for shapes and values) and the words its message must contain, i.e. the
# argument's name and both the expected and the actual dtype / shape / value. A caller who reads
# only the message should be able to fix the call.
from __future__ import annotations

import numpy as np
import pytest
import torch

from llama4_native import _C, ops

X = torch.randn(4, 8)  # [tokens, hidden] float32
X3 = torch.randn(3, 2, 8)  # [tokens, heads, head_dim]
POS = torch.arange(3)
FREQ = torch.ones(4)
Q = X.to(torch.float8_e4m3fn)
S = torch.ones(4)

# (id, call, exception, substrings of the message)
CASES = [
    # ---- wrong dtype -> TypeError: argument, expected, actual
    ("rms_norm_weight_dtype", lambda: ops.rms_norm(X, torch.ones(8, dtype=torch.bfloat16)),
     TypeError, ["rms_norm", "'weight'", "float32", "bfloat16"]),
    ("rms_norm_x_int", lambda: ops.rms_norm(X.int(), None),
     TypeError, ["rms_norm", "'x'", "float32/bfloat16/float16", "int32"]),
    ("rope_positions_float", lambda: ops.rope(X3, POS.float(), FREQ),
     TypeError, ["rope", "'positions'", "int32/int64", "float32"]),
    ("rope_inv_freq_bf16", lambda: ops.rope(X3, POS, FREQ.bfloat16()),
     TypeError, ["rope", "'inv_freq'", "float32", "bfloat16"]),
    ("rope_inv_freq_float64", lambda: ops.rope(X3, POS, FREQ.double()),
     TypeError, ["'inv_freq'", "float64", "float32"]),
    ("silu_gate_up_dtype", lambda: ops.silu_gate(X, X.half()),
     TypeError, ["silu_gate", "'up'", "float32", "float16"]),
    ("quantize_x_float64", lambda: ops.quantize_fp8_rowwise(X.double()),
     TypeError, ["'x'", "float64", "float32"]),
    ("quantize_x_int", lambda: ops.quantize_fp8_rowwise(X.long()),
     TypeError, ["quantize_fp8_rowwise", "'x'", "float32/bfloat16/float16", "int64"]),
    ("dequantize_q_not_fp8", lambda: ops.dequantize_fp8_rowwise(X, S),
     TypeError, ["dequantize_fp8_rowwise", "'q'", "float8_e4m3fn", "float32"]),
    ("dequantize_scale_bf16", lambda: ops.dequantize_fp8_rowwise(Q, S.bfloat16()),
     TypeError, ["dequantize_fp8_rowwise", "'scale'", "float32", "bfloat16"]),
    ("cast_src_int", lambda: ops.cast(X.int(), "float32"),
     TypeError, ["cast", "'src'", "float32/bfloat16/float16/float8_e4m3fn", "int32"]),
    ("numpy_bool", lambda: ops.rms_norm(np.zeros((2, 3), dtype=bool), None),
     TypeError, ["'x'", "bool", "float32"]),
    # ---- wrong shape -> ValueError: argument, expected shape, actual shape
    ("rms_norm_weight_shape", lambda: ops.rms_norm(X, torch.ones(7)),
     ValueError, ["rms_norm", "'weight'", "[8]", "[7]"]),
    ("rope_positions_shape", lambda: ops.rope(X3, torch.arange(4), FREQ),
     ValueError, ["rope", "'positions'", "[3]", "[4]"]),
    ("rope_inv_freq_shape", lambda: ops.rope(X3, POS, torch.ones(5)),
     ValueError, ["rope", "'inv_freq'", "[4]", "[5]"]),
    ("rope_x_2d", lambda: ops.rope(X, POS, FREQ),
     ValueError, ["rope", "'x'", "3-d", "[4, 8]"]),
    ("rope_odd_head_dim", lambda: ops.rope(torch.randn(3, 2, 7), POS, FREQ),
     ValueError, ["rope", "head_dim", "even", "7"]),
    ("silu_gate_up_shape", lambda: ops.silu_gate(X, torch.randn(4, 9)),
     ValueError, ["silu_gate", "'up'", "[4, 8]", "[4, 9]"]),
    ("quantize_x_1d", lambda: ops.quantize_fp8_rowwise(torch.randn(8)),
     ValueError, ["quantize_fp8_rowwise", "'x'", "2-d", "[8]"]),
    ("dequantize_scale_shape", lambda: ops.dequantize_fp8_rowwise(Q, torch.ones(5)),
     ValueError, ["dequantize_fp8_rowwise", "'scale'", "[4]", "[5]"]),
    ("rms_norm_0d", lambda: ops.rms_norm(torch.tensor(1.0), None),
     ValueError, ["rms_norm", "'x'", "at least 1 dimension"]),
    ("too_many_dims", lambda: ops.rms_norm(torch.randn(1, 1, 1, 1, 1, 1, 2), None),
     ValueError, ["'x'", "7 dimensions", "at most 6"]),
    # ---- not a tensor -> TypeError naming the argument and what it got
    ("x_list", lambda: ops.rms_norm([1.0, 2.0], None), TypeError, ["'x'", "__dlpack__", "list"]),
    ("weight_float", lambda: ops.rms_norm(X, 1.0), TypeError, ["'weight'", "__dlpack__", "float"]),
    ("positions_range", lambda: ops.rope(X3, range(3), FREQ),
     TypeError, ["'positions'", "__dlpack__", "range"]),
    ("cast_str", lambda: ops.cast("x", "float32"), TypeError, ["'x'", "__dlpack__", "str"]),
    # ---- bad scale_ub -> ValueError (Python: must be > 0 or None; C++: finite and >= 0)
    ("scale_ub_negative", lambda: ops.quantize_fp8_rowwise(X, scale_ub=-1.0),
     ValueError, ["'scale_ub'", "-1"]),
    ("scale_ub_zero", lambda: ops.quantize_fp8_rowwise(X, scale_ub=0.0),
     ValueError, ["'scale_ub'", "0"]),
    ("scale_ub_nan", lambda: ops.quantize_fp8_rowwise(X, scale_ub=float("nan")),
     ValueError, ["'scale_ub'", "nan"]),
    ("scale_ub_inf", lambda: ops.quantize_fp8_rowwise(X, scale_ub=float("inf")),
     ValueError, ["quantize_fp8_rowwise", "'scale_ub'", "finite", "inf"]),
    ("scale_ub_negative_core", lambda: _C.quantize_fp8_rowwise(X, -1.0),  # the C++ check itself
     ValueError, ["quantize_fp8_rowwise", "'scale_ub'", ">= 0", "-1"]),
    # ---- other bad values -> ValueError
    ("rope_type", lambda: ops.rope_inv_freq(128, 5e5, {"rope_type": "yarn"}),
     ValueError, ["rope_type", "'default'", "'llama3'", "'yarn'"]),
    ("rope_head_dim_odd", lambda: ops.rope_inv_freq(127, 5e5), ValueError, ["head_dim", "even", "127"]),
    ("rope_factors_inverted",
     lambda: ops.rope_inv_freq(128, 5e5, dict(rope_type="llama3", factor=8.0, low_freq_factor=4.0,
                                              high_freq_factor=1.0)),
     ValueError, ["low_freq_factor", "high_freq_factor", "low=4", "high=1"]),
    ("rope_theta", lambda: ops.rope_inv_freq(128, -1.0), ValueError, ["rope_theta", "positive", "-1"]),
    ("rms_norm_eps", lambda: ops.rms_norm(X, None, eps=-1.0), ValueError, ["rms_norm", "'eps'", "-1"]),
    ("cast_dtype_name", lambda: ops.cast(X, "int8"), ValueError, ["dtype", "'float32'", "'int8'"]),
    ("dequantize_dtype_name", lambda: ops.dequantize_fp8_rowwise(Q, S, "float64"),
     ValueError, ["dtype", "'bfloat16'", "'float64'"]),
    ("dequantize_out_fp8", lambda: ops.dequantize_fp8_rowwise(Q, S, "float8_e4m3fn"),
     TypeError, ["dequantize_fp8_rowwise", "'out'", "float32/bfloat16/float16", "float8_e4m3fn"]),
]


@pytest.mark.parametrize("call,exc,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc  # not a subclass standing in (e.g. a bare RuntimeError)
    message = str(info.value)
    missing = [w for w in words if w not in message]
    assert not missing, f"message {message!r} lacks {missing}"


def test_error_leaves_module_usable():
    """An exception thrown while the GIL was released must not poison later calls."""
    for _ in range(3):
        with pytest.raises(ValueError):
            ops.rms_norm(X, torch.ones(7))
    torch.testing.assert_close(ops.rms_norm(X, None), ops.rms_norm(X.clone(), None), rtol=0, atol=0)
