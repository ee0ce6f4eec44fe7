"""The C ABI (capi/pardict_capi.h) through ctypes, with plain byte blobs (no NRT references:
every mask is 0). Keys are passed in buffers of their size class, padding zeroed."""

import ctypes
import random
import struct

import pytest

import pardict
from pardict.numba.abi import Status

OK, ERR_NOMEM, ERR_INVALID, ERR_MUTATED = (
    Status.OK,
    Status.ERR_NOMEM,
    Status.ERR_INVALID,
    Status.ERR_MUTATED,
)

c_void_p, c_int32, c_int64, c_uint32 = (
    ctypes.c_void_p,
    ctypes.c_int32,
    ctypes.c_int64,
    ctypes.c_uint32,
)
P_i32 = ctypes.POINTER(c_int32)
PP = ctypes.POINTER(c_void_p)


@pytest.fixture(scope="module")
def lib():
    L = ctypes.CDLL(pardict._ext.__file__)
    sigs = {
        "pardict_key_class": (c_uint32, [c_uint32]),
        "pardict_value_class": (c_uint32, [c_uint32]),
        "pardict_new": (
            c_void_p,
            [c_uint32, c_uint32, c_uint32, c_uint32, c_uint32, c_int64, P_i32],
        ),
        "pardict_free": (None, [c_void_p]),
        "pardict_len": (c_int64, [c_void_p]),
        "pardict_set": (c_int32, [c_void_p, c_void_p, c_void_p, c_void_p]),
        "pardict_get": (c_int32, [c_void_p, c_void_p, c_void_p]),
        "pardict_contains": (c_int32, [c_void_p, c_void_p]),
        "pardict_pop": (c_int32, [c_void_p, c_void_p, c_void_p]),
        "pardict_popitem": (c_int32, [c_void_p, c_void_p, c_void_p]),
        "pardict_setdefault": (c_int32, [c_void_p, c_void_p, c_void_p, c_void_p]),
        "pardict_insert": (c_int32, [c_void_p, c_void_p, c_void_p]),
        "pardict_clear": (c_int32, [c_void_p]),
        "pardict_reserve": (c_int32, [c_void_p, c_int64]),
        "pardict_copy": (c_void_p, [c_void_p, P_i32]),
        "pardict_iter_new": (c_void_p, [c_void_p, c_void_p, P_i32]),
        "pardict_watch_new": (c_void_p, [c_void_p, c_void_p, P_i32]),
        "pardict_iter_next": (c_int32, [c_void_p, PP, PP]),
        "pardict_iter_len": (c_int64, [c_void_p]),
        "pardict_iter_free": (None, [c_void_p]),
        "pardict_live_dicts": (c_int64, []),
        "pardict_live_refs": (c_int64, []),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(L, name)
        fn.restype = res
        fn.argtypes = args
    return L


class Table:
    """A pardict table with blob keys/values of the given sizes, plus buffer helpers."""

    def __init__(self, lib, key_size, value_size, n_keys=0):
        self.lib = lib
        self.ks, self.vs = key_size, value_size
        self.kc, self.vc = lib.pardict_key_class(key_size), lib.pardict_value_class(value_size)
        st = c_int32(99)
        self.h = lib.pardict_new(key_size, value_size, 0, 0, 0, n_keys, ctypes.byref(st))
        assert self.h and st.value == OK

    def kbuf(self, key: bytes):
        assert len(key) == self.ks
        b = ctypes.create_string_buffer(self.kc)  # zero-filled: padding is zero
        b.raw = key + bytes(self.kc - self.ks)
        return b

    def vbuf(self, value: bytes = None):
        b = ctypes.create_string_buffer(self.vc)
        if value is not None:
            assert len(value) == self.vs
            ctypes.memmove(b, value, self.vs)
        return b

    def val(self, buf):
        return buf.raw[: self.vs]

    # operations returning (status, value bytes)
    def set(self, k, v):
        old = self.vbuf()
        st = self.lib.pardict_set(self.h, self.kbuf(k), self.vbuf(v), old)
        return st, self.val(old)

    def get(self, k):
        out = self.vbuf()
        return self.lib.pardict_get(self.h, self.kbuf(k), out), self.val(out)

    def contains(self, k):
        return self.lib.pardict_contains(self.h, self.kbuf(k))

    def pop(self, k):
        out = self.vbuf()
        return self.lib.pardict_pop(self.h, self.kbuf(k), out), self.val(out)

    def popitem(self):
        kout, vout = ctypes.create_string_buffer(self.kc), self.vbuf()
        st = self.lib.pardict_popitem(self.h, kout, vout)
        return st, kout.raw[: self.ks], self.val(vout), kout.raw[self.ks :]

    def setdefault(self, k, v):
        out = self.vbuf()
        return self.lib.pardict_setdefault(self.h, self.kbuf(k), self.vbuf(v), out), self.val(out)

    def insert(self, k, v):
        return self.lib.pardict_insert(self.h, self.kbuf(k), self.vbuf(v))

    def __len__(self):
        return self.lib.pardict_len(self.h)

    def items(self, h=None):
        st = c_int32(99)
        it = self.lib.pardict_iter_new(h or self.h, None, ctypes.byref(st))
        assert it and st.value == OK
        n = self.lib.pardict_iter_len(it)
        out = []
        kp, vp = c_void_p(), c_void_p()
        while True:
            r = self.lib.pardict_iter_next(it, ctypes.byref(kp), ctypes.byref(vp))
            assert r in (0, 1), r
            if r == 0:
                break
            out.append((ctypes.string_at(kp.value, self.ks), ctypes.string_at(vp.value, self.vs)))
        assert self.lib.pardict_iter_len(it) == 0
        self.lib.pardict_iter_free(it)
        assert n == len(out)
        return out

    def free(self):
        self.lib.pardict_free(self.h)
        self.h = None


def i64(x):
    return int(x).to_bytes(8, "little", signed=True)


# ---- size classes and creation --------------------------------------------------------------------


def test_size_classes(lib):
    def expect(size, top, value=False):
        if size > top:
            return 0
        if value and 48 < size <= 56:  # a 1-d array struct: key and value fill a cache line
            return 56
        c = 4
        while c < size:
            c *= 2
        return c

    for s in range(0, 300):
        assert lib.pardict_key_class(s) == (0 if s == 0 else expect(s, 128)), s
        assert lib.pardict_value_class(s) == expect(max(s, 1), 256, value=True), s
    assert lib.pardict_key_class(2**32 - 1) == 0 and lib.pardict_value_class(2**32 - 1) == 0


@pytest.mark.parametrize(
    "args",
    [
        (0, 8, 0, 0, 0, 0),  # key size 0
        (129, 8, 0, 0, 0, 0),  # key too large
        (8, 257, 0, 0, 0, 0),  # value too large
        (8, 8, 0, 0, 0, -1),  # negative n_keys
        (8, 8, 0b10, 0, 0, 0),  # key reference mask names a word outside the key
        (12, 8, 0b10, 0, 0, 0),  # ... also when the size class (16) would hold it
        (8, 16, 0, 0, 0b100, 0),  # value reference mask outside the value
        (8, 8, 0, 0b1, 0, 0),  # a 48-byte string struct cannot fit an 8-byte key
        (64, 8, 0, 0b1000, 0, 0),  # a string struct at word 3 of a 64-byte key ends at byte 72
    ],
    ids=str,
)
def test_new_invalid(lib, args):
    st = c_int32(99)
    before = lib.pardict_live_dicts()
    h = lib.pardict_new(*args, ctypes.byref(st))
    assert not h
    assert st.value == ERR_INVALID
    assert lib.pardict_live_dicts() == before


def test_new_string_struct_that_fits(lib):
    st = c_int32(99)
    before = lib.pardict_live_dicts()
    h = lib.pardict_new(64, 8, 0, 0b100, 0, 0, ctypes.byref(st))  # bytes 16..64: fits exactly
    assert h and st.value == OK
    assert lib.pardict_live_dicts() == before + 1
    lib.pardict_free(h)
    assert lib.pardict_live_dicts() == before


def test_new_absurd_n_keys(lib):
    for n in (10**18, 2**62, 2**63 - 1):
        st = c_int32(99)
        assert not lib.pardict_new(8, 8, 0, 0, 0, n, ctypes.byref(st))
        assert st.value == ERR_NOMEM
    # status may be null
    assert not lib.pardict_new(8, 8, 0, 0, 0, -1, None)


def test_new_free_counts(lib):
    before = lib.pardict_live_dicts()
    refs = lib.pardict_live_refs()
    ts = [Table(lib, 8, 8, n) for n in (0, 1, 1000)]
    assert lib.pardict_live_dicts() == before + 3
    for t in ts:
        t.free()
    assert lib.pardict_live_dicts() == before
    assert lib.pardict_live_refs() == refs


# ---- 8-byte int keys and values ------------------------------------------------------------------


def test_int_keys_all_operations(lib):
    t = Table(lib, 8, 8)
    assert len(t) == 0
    assert t.get(i64(1))[0] == 0 and t.contains(i64(1)) == 0
    assert t.set(i64(1), i64(100))[0] == 0
    assert t.set(i64(-(2**63)), i64(5))[0] == 0
    assert t.set(i64(1), i64(101)) == (1, i64(100))  # replaced: old value handed out
    assert len(t) == 2
    assert t.get(i64(1)) == (1, i64(101))
    assert t.contains(i64(-(2**63))) == 1
    assert t.pop(i64(1)) == (1, i64(101))
    assert t.pop(i64(1))[0] == 0 and len(t) == 1
    assert t.setdefault(i64(7), i64(70)) == (1, i64(70))
    assert t.setdefault(i64(7), i64(71)) == (0, i64(70))
    assert t.insert(i64(8), i64(80)) == 1
    assert t.insert(i64(8), i64(81)) == 0
    assert t.get(i64(8)) == (1, i64(80))
    assert sorted(t.items()) == sorted(
        [(i64(-(2**63)), i64(5)), (i64(7), i64(70)), (i64(8), i64(80))]
    )
    seen = {}
    while True:
        st, k, v, pad = t.popitem()
        if st == 0:
            break
        assert st == 1 and k not in seen
        seen[k] = v
    assert seen == {i64(-(2**63)): i64(5), i64(7): i64(70), i64(8): i64(80)}
    assert len(t) == 0
    for i in range(1000):
        t.set(i64(i), i64(-i))
    assert lib.pardict_reserve(t.h, 5000) == OK
    assert lib.pardict_reserve(t.h, -1) == ERR_INVALID
    assert lib.pardict_reserve(t.h, 10**18) == ERR_NOMEM
    assert len(t) == 1000 and all(t.get(i64(i)) == (1, i64(-i)) for i in range(0, 1000, 37))
    assert lib.pardict_clear(t.h) == OK
    assert len(t) == 0 and t.items() == []
    t.free()


@pytest.mark.parametrize("size, ffmt, ifmt", [(8, "<d", "<q"), (4, "<f", "<i")])
def test_scalar_keys_placed_in_order_stay_distinct(lib, size, ffmt, ifmt):
    """4- and 8-byte keys are placed in order when they are small integers, whether the bytes are
    an integer's or a float's equal to one (capi/dict_impl.hpp, scalar_key_hash): the int 5 and
    the bytes of 5.0 then share a hash and must stay two keys; fractional, huge, negative and
    boundary values too, and keys in order from empty must all be found after the table grew."""
    t = Table(lib, size, 8)
    ints = [0, 1, 5, -1, -5, 63, 64, 2**31 - 1, -(2**31)]
    if size == 8:
        ints += [2**37 - 1, -(2**37), 2**37, 2**62, -(2**63)]
    floats = [0.0, 1.0, 5.0, -5.0, 0.5, -2.25, 1e30, 2.0**37, 2.0**37 - 1, -(2.0**37)]
    keys = {struct.pack(ifmt, i) for i in ints} | {struct.pack(ffmt, x) for x in floats}
    for n, k in enumerate(sorted(keys)):
        assert t.set(k, i64(n))[0] == 0
    assert len(t) == len(keys)
    for n, k in enumerate(sorted(keys)):
        assert t.get(k) == (1, i64(n))
    assert t.contains(struct.pack(ffmt, 5.5)) == 0
    n = 50_000
    for i in range(n):
        t.set(struct.pack(ffmt, float(i + 100)), i64(i))
    assert len(t) == len(keys) + n
    assert all(t.get(struct.pack(ffmt, float(i + 100))) == (1, i64(i)) for i in range(0, n, 7))
    assert all(t.get(k)[0] == 1 for k in keys)
    t.free()


def test_copy_is_independent(lib):
    t = Table(lib, 8, 8)
    for i in range(300):
        t.set(i64(i), i64(i * i))
    st = c_int32(99)
    before = lib.pardict_live_dicts()
    h2 = lib.pardict_copy(t.h, ctypes.byref(st))
    assert h2 and st.value == OK
    assert lib.pardict_live_dicts() == before + 1
    assert lib.pardict_len(h2) == 300
    assert sorted(t.items(h2)) == sorted(t.items())
    t.set(i64(0), i64(-1))
    t.pop(i64(1))
    out = ctypes.create_string_buffer(8)
    assert lib.pardict_get(h2, t.kbuf(i64(0)), out) == 1 and out.raw == i64(0)
    assert lib.pardict_contains(h2, t.kbuf(i64(1))) == 1
    lib.pardict_free(h2)
    t.free()


def test_iterator_mutation_detection(lib):
    t = Table(lib, 8, 8)
    for i in range(10):
        t.set(i64(i), i64(i))
    st = c_int32(99)
    kp, vp = c_void_p(), c_void_p()
    # replacing values does not invalidate
    it = lib.pardict_iter_new(t.h, None, ctypes.byref(st))
    assert lib.pardict_iter_next(it, ctypes.byref(kp), ctypes.byref(vp)) == 1
    t.set(i64(3), i64(33))
    assert lib.pardict_iter_next(it, ctypes.byref(kp), ctypes.byref(vp)) == 1
    # inserting a key does
    t.set(i64(100), i64(0))
    assert lib.pardict_iter_next(it, ctypes.byref(kp), ctypes.byref(vp)) == ERR_MUTATED
    lib.pardict_iter_free(it)
    # so does erasing
    it = lib.pardict_iter_new(t.h, None, ctypes.byref(st))
    t.pop(i64(100))
    assert lib.pardict_iter_next(it, ctypes.byref(kp), ctypes.byref(vp)) == ERR_MUTATED
    lib.pardict_iter_free(it)
    # a watch iterates nothing but sees key changes
    w = lib.pardict_watch_new(t.h, None, ctypes.byref(st))
    assert w and st.value == OK
    assert lib.pardict_iter_next(w, ctypes.byref(kp), ctypes.byref(vp)) == 0
    t.insert(i64(200), i64(0))
    assert lib.pardict_iter_next(w, ctypes.byref(kp), ctypes.byref(vp)) == ERR_MUTATED
    lib.pardict_iter_free(w)
    # the snapshot is unaffected by later changes
    it = lib.pardict_iter_new(t.h, None, ctypes.byref(st))
    assert lib.pardict_iter_len(it) == 11
    lib.pardict_iter_free(it)
    lib.pardict_iter_free(None)  # a null iterator is ignored
    t.free()


# ---- 16- and 32-byte blob keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    "ks,vs", [(12, 8), (16, 4), (24, 20), (32, 256), (3, 1), (8, 56), (4, 50)], ids=lambda x: str(x)
)
def test_blob_keys_against_model(lib, ks, vs):
    rng = random.Random(ks * 1000 + vs)
    t = Table(lib, ks, vs)
    assert t.kc >= ks and t.vc >= vs
    # keys that share long prefixes and differ in single bytes, including the last one
    pool = [bytes(ks)] + [bytes(rng.getrandbits(8) for _ in range(ks)) for _ in range(40)]
    pool += [bytes(ks - 1) + bytes([b]) for b in (1, 2, 255)]
    pool = list(dict.fromkeys(pool))
    model = {}
    for step in range(1500):
        k = rng.choice(pool)
        v = bytes(rng.getrandbits(8) for _ in range(vs))
        op = rng.randrange(7)
        if op == 0:
            st, old = t.set(k, v)
            assert st == (1 if k in model else 0)
            if st == 1:
                assert old == model[k]
            model[k] = v
        elif op == 1:
            st, got = t.get(k)
            assert st == (1 if k in model else 0)
            if st:
                assert got == model[k]
        elif op == 2:
            assert t.contains(k) == (1 if k in model else 0)
        elif op == 3:
            st, got = t.pop(k)
            assert st == (1 if k in model else 0)
            if st:
                assert got == model.pop(k)
        elif op == 4:
            st, got = t.setdefault(k, v)
            assert st == (0 if k in model else 1)
            assert got == model.setdefault(k, v)
        elif op == 5:
            assert t.insert(k, v) == (0 if k in model else 1)
            model.setdefault(k, v)
        elif op == 6 and step % 50 == 0:
            st, pk, pv, pad = t.popitem()
            if model:
                assert st == 1 and model.pop(pk) == pv
                assert pad == bytes(len(pad))  # the key comes back in its zero-padded class
            else:
                assert st == 0
        assert len(t) == len(model)
    assert dict(t.items()) == model and len(t.items()) == len(model)
    t.free()
