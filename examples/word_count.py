"""Parallel word count over a text: string keys, d.add from prange.

python examples/word_count.py
"""

import collections

import numba
import numpy as np
from numba import prange, types

import pardict

TEXT = """It was the best of times, it was the worst of times, it was the age of wisdom, it was
the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the
season of Light, it was the season of Darkness, it was the spring of hope, it was the winter of
despair."""


@numba.njit(parallel=True)
def count_words(tokens):
    counts = pardict.Dict.empty(types.unicode_type, types.int64)
    for i in prange(tokens.size):
        counts.add(tokens[i], 1)  # one atomic step: no lost update
    return counts


def main(repeat=2000):
    words = [w.strip(",.").lower() for w in TEXT.split()] * repeat
    tokens = np.array(words)  # a NumPy unicode array; its elements become str keys
    counts = count_words(tokens)
    expect = collections.Counter(words)
    assert counts.to_dict() == dict(expect), "word counts differ from collections.Counter"
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    print(f"{len(tokens):,} tokens, {len(counts)} distinct words; top 5: {top}")


if __name__ == "__main__":
    main()
