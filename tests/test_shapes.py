"""The bucketed shapes of a decode session's calls: packed prefill sizes and their index."""

import numpy as np

from exsearch_jax.sampling import shapes


def test_packed_sizes_waste_at_most_a_quarter_with_four_sizes_per_octave():
  assert [shapes.packed_size(n) for n in (1, 64, 65, 80, 81, 100, 128, 129, 610)] == [
      64,
      64,
      80,
      80,
      96,
      112,
      128,
      160,
      640,
  ]
  for n in range(33, 5000):
    size = shapes.packed_size(n)
    assert n <= size <= max(64, 1.25 * n)
  assert len({shapes.packed_size(n) for n in range(513, 1025)}) == 4


def test_the_packing_index_lists_the_real_tokens_in_order_then_out_of_range_entries():
  mask = np.zeros((8, 64), bool)
  mask[0, :50], mask[3, 10:12], mask[7, 63] = True, True, True
  index = shapes.packing_index(mask)
  assert index.dtype == np.int32 and len(index) == 64  # 53 real tokens: the smallest size
  np.testing.assert_array_equal(index[:53], np.flatnonzero(mask.reshape(-1)))
  assert (index[53:] == mask.size).all()
  assert shapes.packing_index(np.ones((8, 64), bool)) is None  # nothing to save
  assert shapes.packing_index(np.ones((2, 40), bool)) is None  # 64 entries > 85% of 80 slots
  assert shapes.packing_index(mask, saving=0.1) is None
