"""The linearizability checker on hand-made histories (fast; no servers)."""

import random
import time

import pytest

from linearizability import INF, Op, check, check_key


def op(f, t0, t1, value=None, expected=None, status="ok", output=None, key="k", p=0):
    return Op(key, f, value=value, expected=expected, status=status, output=output,
              invoke=t0, complete=t1, process=p)


def W(t0, t1, v, **kw):
    return op("write", t0, t1, value=v, **kw)


def R(t0, t1, out, **kw):
    return op("read", t0, t1, output=out, **kw)


def CAS(t0, t1, exp, new, **kw):
    return op("cas", t0, t1, value=new, expected=exp, **kw)


def D(t0, t1, **kw):
    return op("delete", t0, t1, **kw)


def valid(*ops):
    return check(list(ops)).valid


def test_empty_and_sequential():
    assert valid() is True
    assert valid(R(0, 1, None)) is True
    assert valid(W(0, 1, "a"), R(2, 3, "a"), W(4, 5, "b"), R(6, 7, "b")) is True
    assert valid(R(0, 1, "a")) is False          # read of a value never written


def test_concurrent_history_is_linearizable():
    # two overlapping writes; concurrent reads may see either order, but consistently
    h = [W(0, 10, "a", p=1), W(2, 12, "b", p=2),
         R(3, 4, None, p=3),     # before either took effect
         R(5, 6, "b", p=3),      # b first...
         R(7, 14, "a", p=4),     # ...then a
         R(15, 16, "a", p=3)]
    assert valid(*h) is True


def test_concurrent_reads_cannot_disagree_on_order():
    h = [W(0, 10, "a", p=1), W(0, 10, "b", p=2),
         R(11, 12, "a", p=3), R(13, 14, "b", p=3), R(15, 16, "a", p=3)]
    assert valid(*h) is False


def test_stale_read_is_rejected():
    h = [W(0, 1, "1"), W(2, 3, "2"), R(4, 5, "1")]
    r = check(h)
    assert r.valid is False
    bad = r.anomalies()[0]
    assert bad.blocker.f == "read" and bad.blocker.output == "1"
    # the witness is the write of 2 and the read that missed it
    assert [(o.f, o.value, o.output) for o in bad.witness] == [("write", "2", None), ("read", None, "1")]


def test_stale_not_found_after_acknowledged_write_is_rejected():
    assert valid(W(0, 1, "x"), R(2, 3, None)) is False


def test_lost_write_is_rejected():
    # acknowledged write of b; a later read (nothing concurrent) shows the older a
    h = [W(0, 1, "a", p=1), R(2, 3, "a", p=2), W(4, 5, "b", p=1),
         R(6, 7, "b", p=2), R(20, 21, "a", p=3)]
    r = check(h)
    assert r.valid is False
    bad = r.anomalies()[0]
    assert bad.blocker.output == "a" and bad.blocker.invoke == 20
    text = bad.format()
    assert "NOT LINEARIZABLE" in text and "<--" in text


def test_concurrent_read_may_see_old_or_new():
    assert valid(W(0, 1, "a"), W(2, 10, "b"), R(3, 4, "a"), R(5, 6, "b"), R(11, 12, "b")) is True
    # once b was seen, a concurrent later read cannot go back to a
    assert valid(W(0, 1, "a"), W(2, 10, "b"), R(3, 4, "b"), R(5, 6, "a")) is False


def test_indeterminate_write_that_later_appears_is_accepted():
    h = [W(0, 1, "a"), W(2, None, "b", status="unknown"), R(3, 4, "a"), R(50, 51, "b"),
         R(60, 61, "b")]
    assert valid(*h) is True


def test_indeterminate_write_that_never_appears_is_accepted():
    h = [W(0, 1, "a"), W(2, None, "b", status="unknown"), R(3, 4, "a"), R(50, 51, "a"),
         W(52, 53, "c"), R(54, 55, "c")]
    assert valid(*h) is True


def test_indeterminate_write_cannot_take_effect_before_its_invocation():
    assert valid(W(0, 1, "a"), R(2, 3, "b"), W(5, None, "b", status="unknown")) is False


def test_indeterminate_write_takes_effect_once():
    # b appears, then the register goes back to a with no other write: not possible
    h = [W(0, 1, "a"), W(2, None, "b", status="unknown"), R(10, 11, "b"), R(12, 13, "a")]
    assert valid(*h) is False


def test_failed_reads_and_refused_writes_are_dropped():
    h = [W(0, 1, "a"), R(2, 3, "garbage", status="fail"), W(4, 5, "b", status="fail",
                                                              output="refused"),
         R(6, 7, "a")]
    assert valid(*h) is True


def test_cas_semantics():
    assert valid(W(0, 1, "x"), CAS(2, 3, "x", "y"), R(4, 5, "y")) is True
    # cas succeeded but the register held z
    assert valid(W(0, 1, "z"), CAS(2, 3, "x", "y")) is False
    # cas said mismatch (101) while the register held exactly the expected value
    assert valid(W(0, 1, "x"), CAS(2, 3, "x", "y", status="fail", output="mismatch")) is False
    assert valid(W(0, 1, "z"), CAS(2, 3, "x", "y", status="fail", output="mismatch"),
                 R(4, 5, "z")) is True
    # errorCode 100 on a cas: the key does not exist
    assert valid(CAS(0, 1, "x", "y", status="fail", output="missing")) is True
    assert valid(W(0, 1, "x"), CAS(2, 3, "x", "y", status="fail", output="missing")) is False
    # a mismatch cannot happen on a missing key (etcd answers 100 there)
    assert valid(CAS(0, 1, "x", "y", status="fail", output="mismatch")) is False


def test_concurrent_cas_only_one_wins():
    base = [W(0, 1, "x")]
    both_ok = base + [CAS(2, 10, "x", "y1", p=1), CAS(2, 10, "x", "y2", p=2)]
    assert valid(*both_ok) is False
    one_ok = base + [CAS(2, 10, "x", "y1", p=1),
                     CAS(2, 10, "x", "y2", p=2, status="fail", output="mismatch"),
                     R(11, 12, "y1")]
    assert valid(*one_ok) is True
    # a chain: x -> y1 -> y2 via two concurrent cas ops is fine
    chain = base + [CAS(2, 10, "x", "y1", p=1), CAS(2, 10, "y1", "y2", p=2), R(11, 12, "y2")]
    assert valid(*chain) is True


def test_indeterminate_cas():
    h = [W(0, 1, "x"), CAS(2, None, "x", "y", status="unknown")]
    assert valid(*(h + [R(10, 11, "y")])) is True
    assert valid(*(h + [R(10, 11, "x")])) is True
    # it cannot apply if the register never held its expected value
    assert valid(W(0, 1, "z"), CAS(2, None, "x", "y", status="unknown"), R(10, 11, "y")) is False


def test_delete():
    assert valid(W(0, 1, "x"), D(2, 3), R(4, 5, None)) is True
    assert valid(W(0, 1, "x"), D(2, 3), R(4, 5, "x")) is False
    assert valid(D(0, 1)) is False                       # nothing to delete
    assert valid(D(0, 1, status="fail", output="missing")) is True
    assert valid(W(0, 1, "x"), D(2, 3, status="fail", output="missing")) is False


def test_keys_are_checked_independently():
    h = [W(0, 1, "a", key="k1"), R(2, 3, "a", key="k1"),
         W(0, 1, "a", key="k2"), W(2, 3, "b", key="k2"), R(4, 5, "a", key="k2")]
    r = check(h)
    assert r.valid is False
    assert r.keys["k1"].valid is True and r.keys["k2"].valid is False
    assert [b.key for b in r.anomalies()] == ["k2"]
    assert "k2" in r.format()


def test_witness_is_small_in_a_long_history():
    # 300 sequential ops that are fine, then a stale read at the end
    h, t = [], 0
    for n in range(150):
        h.append(W(t, t + 1, "v%d" % n))
        h.append(R(t + 2, t + 3, "v%d" % n))
        t += 4
    h.append(R(t, t + 1, "v100"))
    r = check(h).anomalies()[0]
    assert r.prefix_len == 300
    assert len(r.witness) <= 3, r.format()
    assert r.witness[-1].output == "v100"


def simulate(seed, processes=6, ops=2000, unknown_rate=0.05, keys=("k",)):
    """A linearizable history: each op takes effect atomically at a random instant inside
    its [invoke, complete] interval on a real register; unknown ops take effect or not."""
    rng = random.Random(seed)
    events = []     # (effect time, op) to apply in order
    history = []
    clock = [0] * processes
    seen = {k: [None] for k in keys}
    counter = 0
    for n in range(ops):
        p = rng.randrange(processes)
        key = rng.choice(keys)
        t0 = clock[p] + rng.randint(1, 20)
        t1 = t0 + rng.randint(1, 60)
        clock[p] = t1
        at = rng.uniform(t0, t1)
        kind = rng.random()
        counter += 1
        if kind < 0.4:
            o = Op(key, "read", invoke=t0, complete=t1, process=p)
        elif kind < 0.75:
            o = Op(key, "write", value="v%d" % counter, invoke=t0, complete=t1, process=p)
        else:
            o = Op(key, "cas", expected=rng.choice(seen[key][-3:]), value="v%d" % counter,
                   invoke=t0, complete=t1, process=p)
        if o.f != "read" and rng.random() < unknown_rate:
            o.status = "unknown"
            o.complete = INF
            if rng.random() < 0.5:
                at = None           # never took effect
            else:
                at = t0 + rng.uniform(0, 500)
        events.append((at, n, o))
        history.append(o)
    state = {k: None for k in keys}
    for at, _, o in sorted((e for e in events if e[0] is not None), key=lambda e: (e[0], e[1])):
        s = state[o.key]
        if o.f == "read":
            o.output = s
        elif o.f == "write":
            state[o.key] = o.value
            seen[o.key].append(o.value)
        elif o.f == "cas":
            if o.expected is not None and s == o.expected:
                state[o.key] = o.value
            elif o.status != "unknown":
                o.status = "fail"
                o.output = "missing" if s is None else "mismatch"
    # a cas whose expectation was None (never written) on a missing key: etcd says 100
    return history


@pytest.mark.parametrize("seed", range(5))
def test_simulated_linearizable_histories_pass_fast(seed):
    h = simulate(seed)
    started = time.monotonic()
    r = check(h)
    took = time.monotonic() - started
    assert r.valid is True, r.format()
    assert took < 10, took


@pytest.mark.parametrize("seed", range(5))
def test_simulated_history_with_an_injected_stale_read_fails(seed):
    h = simulate(seed, ops=600)
    rng = random.Random(seed)
    # turn a late read into a read of a value overwritten long before
    reads = [o for o in h if o.f == "read" and o.output is not None]
    target = reads[-1]
    writes = [o for o in h if o.f == "write" and o.status == "ok"
              and o.complete < target.invoke - 2000]
    if not writes:
        pytest.skip("no old write to go stale on")
    target.output = rng.choice(writes[:len(writes) // 2 + 1]).value
    r = check(h)
    assert r.valid is False
    w = r.anomalies()[0]
    assert len(w.witness) <= 12, w.format()
    assert any(o.output == target.output and o.f == "read" for o in w.witness)


def test_check_key_budget_reports_undecided():
    h = simulate(1, ops=400)
    h.append(R(10 ** 9, 10 ** 9 + 1, "never-written"))
    r = check_key("k", h, max_steps=5)
    assert r.valid is None
    assert "UNDECIDED" in r.format()
