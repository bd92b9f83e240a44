"""``dims`` at the seams: integers only (``operator.index``), every other type named."""

import numpy as np
import pytest
import torch

from mdmest import TotalCorrelation
from mdmest._validation import check_dims


def test_integers_of_any_kind_are_accepted():
    assert check_dims([np.int64(3), torch.tensor(2), 4]) == (3, 2, 4)
    assert all(type(d) is int for d in check_dims((np.int32(5), 2)))


@pytest.mark.parametrize(
    ("dims", "named"),
    [
        ([3.5, 2], "dims[0] = 3.5 (float)"),
        ([3, 2.0], "dims[1] = 2.0 (float)"),  # integral floats are refused too
        ([True, 2], "dims[0] = True (bool)"),
        (["3", 2], "dims[0] = '3' (str)"),
        ([3, None], "dims[1] = None (NoneType)"),
        ([np.float32(4), 2], "dims[0] = 4.0 (float32)"),
    ],
)
def test_a_non_integer_entry_is_named(dims, named):
    with pytest.raises(TypeError, match="dims must hold integers") as raised:
        check_dims(dims)
    assert named in str(raised.value)


@pytest.mark.parametrize("dims", ["32", 5, None])
def test_dims_must_be_a_sequence(dims):
    with pytest.raises(TypeError, match="dims must be a sequence of integers"):
        check_dims(dims)


def test_a_measure_refuses_fractional_dims_instead_of_truncating():
    with pytest.raises(TypeError, match=r"dims\[0\] = 3.5 \(float\)"):
        TotalCorrelation(dims=[3.5, 2])
    assert TotalCorrelation(dims=[3, 2]).dims == (3, 2)


def test_counts_below_one_and_single_views_stay_value_errors():
    with pytest.raises(ValueError, match=">= 1"):
        check_dims([0, 2])
    with pytest.raises(ValueError, match="at least 2 views"):
        check_dims([4])
