"""A linearizability checker for histories of v2 key-value operations.

The model is one register per key: write(v), cas(expected, new), read() -> v or "not
found", delete(). A history is partitioned by key (P-compositionality: a history of
independent registers is linearizable iff each key's sub-history is), and each key is
checked with the Wing & Gong search as improved by Lowe (memoising every (set of
linearized operations, register state) pair already explored, as Porcupine does).

Operations
----------
Each `Op` has invoke and complete times (monotonic nanoseconds, one clock) and a status:

  ok       the server acknowledged it; `output` is what a read saw (None: not found)
  fail     it definitely did not take effect. For a cas or delete the server may have
           said why, which is information about the state: output "mismatch" (v2
           errorCode 101, the key holds another value) or "missing" (errorCode 100, no
           such key). A fail with any other output (connection refused, a 4xx before
           anything was proposed) tells nothing and is dropped, as are failed reads.
  unknown  indeterminate (a timeout, a reset after the request was sent, a 5xx): it may
           take effect at any point after its invocation, or never. It is checked with a
           completion time of infinity, as Knossos and Porcupine treat :info operations.

An operation whose completion time is infinite need not be linearized at all; that is
what makes "never took effect" possible. A read whose answer came back after the cut-off
of a prefix is made optional the same way (witness minimisation uses that).

Deciding
--------
The search is depth-first over the Wing & Gong list; see _Search for the reductions that
keep indeterminate ops from blowing it up. A history that is not linearizable makes the
search exhaust everything before the furthest point any branch reached: the completion
of an op, R, that no ordering can place. When the search keeps backtracking without
getting further, it tries to prove the anomaly locally: a window of the history ending
at R (ops invoked from some start on, plus those still pending then, which become
optional) checked from an unconstrained register over-approximates the history, so if
the window cannot be linearized, neither can the history.

Witness
-------
On failure the window is shrunk: the latest start that still fails, then every definite
op that can be relaxed to "may or may not have happened" is (both steps only relax, so
what remains still proves the anomaly). What is printed are the ops that had to stay
definite (for a stale read typically: the older write, the newer acknowledged write, and
the read that saw the older value), with R marked, plus the indeterminate ops that could
have produced a value they observe.
"""

import time
from bisect import bisect_left

INF = float("inf")
ILLEGAL = object()          # a step the model refuses
ANY = ("<any>",)            # an unconstrained initial register (witness minimisation only)


class Op:
    """One client operation on one key."""

    __slots__ = ("id", "process", "key", "f", "value", "expected", "status", "output",
                 "invoke", "complete", "member", "note", "answered")

    def __init__(self, key, f, value=None, expected=None, status="ok", output=None,
                 invoke=0, complete=None, process=None, member=None, note=None, id=None):
        if f not in ("read", "write", "cas", "delete"):
            raise ValueError("unknown operation %r" % f)
        if status not in ("ok", "fail", "unknown"):
            raise ValueError("unknown status %r" % status)
        self.id = id
        self.process = process
        self.key = key
        self.f = f
        self.value = value
        self.expected = expected
        self.status = status
        self.output = output
        self.invoke = invoke
        self.complete = INF if (status == "unknown" or complete is None) else complete
        self.member = member
        self.note = note
        self.answered = complete       # when the answer came (kept when made optional)

    def copy(self, **changes):
        o = Op.__new__(Op)
        for s in Op.__slots__:
            setattr(o, s, getattr(self, s))
        for k, v in changes.items():
            setattr(o, k, v)
        return o

    def describe(self):
        f = self.f
        if f == "read":
            call = "read()"
        elif f == "write":
            call = "write(%r)" % self.value
        elif f == "cas":
            call = "cas(%r -> %r)" % (self.expected, self.value)
        else:
            call = "delete()"
        if self.status == "unknown":
            res = "? unknown" + (" (%s)" % self.note if self.note else "")
        elif self.status == "fail":
            res = "fail %s" % (self.output or "")
            if self.note:
                res += " (%s)" % self.note
        elif f == "read":
            res = "not found" if self.output is None else repr(self.output)
        else:
            res = "ok"
        return "%s -> %s" % (call, res)

    def format(self, t0=0):
        def t(ns):
            return "      inf" if ns is None or ns == INF else "%9.3f" % ((ns - t0) / 1e9)
        who = "%s@%s" % (self.process if self.process is not None else "-", self.member or "-")
        relaxed = self.complete == INF and self.status != "unknown" and self.answered is not None
        end = t(self.answered) if relaxed else t(self.complete)
        return "[%s s .. %s s] %-12s %s%s" % (t(self.invoke), end, who, self.describe(),
                                              "   (optional in the witness)" if relaxed else "")

    def __repr__(self):
        return "Op(%s %s)" % (self.key, self.format())


def relevant(op):
    """Whether an op constrains the register (see the module doc)."""
    if op.status == "fail":
        return op.f in ("cas", "delete") and op.output in ("mismatch", "missing")
    if op.f == "read":
        return op.status == "ok"
    return True


def step(state, op):
    """The register model: the state after `op`, or ILLEGAL. State None = no such key."""
    f = op.f
    if f == "read":
        if state is ANY:
            return op.output
        return state if state == op.output else ILLEGAL
    if f == "write":
        return op.value
    if f == "cas":
        if op.status == "fail":
            if op.output == "missing":
                return None if (state is None or state is ANY) else ILLEGAL
            # mismatch: the key exists and holds something else
            if state is ANY:
                return ANY
            return state if (state is not None and state != op.expected) else ILLEGAL
        # ok, or unknown linearized (an unknown cas that did not apply is never linearized)
        return op.value if (state is ANY or state == op.expected) else ILLEGAL
    if f == "delete":
        if op.status == "fail":      # missing
            return None if (state is None or state is ANY) else ILLEGAL
        return None if (state is ANY or state is not None) else ILLEGAL
    raise ValueError(f)


class Budget(Exception):
    pass


OTHER = ("<unobserved>",)    # a value that no remaining op can tell from another


class _Search:
    """Wing-Gong-Lowe over one key's relevant ops, as an explicit depth-first search.

    Definite ops (finite completion) sit in the doubly linked list of call and return
    entries of Wing & Gong; an op may be linearized when its call precedes the first
    return still in the list (the frontier). Optional ops (indeterminate: completion
    infinite) are kept apart: each is available once invoked (invocation <= frontier) and
    may be used once, or never. A configuration is (definite ops placed, optional ops
    used, register state); the search succeeds when every definite op is placed.

    Reductions, each sound and complete:
    - Lowe's memoisation, strengthened by dominance: since an optional op may always be
      left unused, a configuration with the same definite set and state that used a
      subset of these optional ops can do all this one can; having seen one prunes this.
    - A value is live while some op not yet placed can observe it (a read returning it, a
      cas expecting it; a cas whose outcome is unknown keeps its expectation live for
      good). A dead value is OTHER: nothing can tell it from another dead value. Optional
      ops whose effect is the same dead value form a group: all are already invoked, so
      only how many were used matters, and only the latest invoked one need be tried.
    - Definite ops are tried before optional ones.
    """

    def __init__(self, ops, init=None, max_steps=None, deadline=None, stuck=None,
                 stuck_after=5000):
        self.ops = ops
        self.init = init
        self.max_steps = max_steps
        self.deadline = deadline
        self.stuck = stuck              # stuck(blocker) -> True: give up, proven not linearizable
        self.stuck_after = stuck_after  # steps without progress before calling it
        self.blocker = None             # op whose completion was the furthest point reached
        self.steps = 0

    def run(self):
        import bisect
        definite = [o for o in self.ops if o.complete != INF]
        # optional ops without an effect (reads, a refused cas or delete) can be left out
        optional = [o for o in self.ops if o.complete == INF
                    and not (o.f == "read" or o.status == "fail")]
        optional.sort(key=lambda o: o.invoke)
        n, m = len(definite), len(optional)
        if n == 0:
            return True

        live = {}                   # value -> definite observers not yet placed
        forever = set()             # values an optional cas may compare against
        observes = [None] * n
        for i, o in enumerate(definite):
            v = o.output if o.f == "read" else (o.expected if o.f == "cas" else None)
            if v is not None:
                observes[i] = v
                live[v] = live.get(v, 0) + 1
        for o in optional:
            if o.f == "cas":
                forever.add(o.expected)

        def is_live(v):
            return v in forever or live.get(v, 0) > 0

        def canon(v):
            if v is None or v is ANY or v is OTHER or is_live(v):
                return v
            return OTHER

        # optional ops: effect value, group when dead, and which can ever be live
        val = [None if o.f == "delete" else o.value for o in optional]
        grp = [(o.f, o.expected, None if o.f == "delete" else OTHER) for o in optional]
        ever_live = [j for j in range(m) if val[j] is not None and
                     (val[j] in forever or val[j] in live)]
        ever_set = set(ever_live)
        by_value = {}
        for j in ever_live:
            by_value.setdefault(val[j], []).append(j)
        groups = {}                 # group -> ([invoke], [j]) of never-live ops, by invoke
        for j in range(m):
            if j not in ever_set:
                inv, js = groups.setdefault(grp[j], ([], []))
                inv.append(optional[j].invoke)
                js.append(j)
        group_list = list(groups.items())
        used = [False] * m
        used_mask = [0]             # used optional ops whose value is live
        used_counts = {}            # group -> used ops whose value is dead

        # the linked list of definite calls (2i) and returns (2i+1)
        events = []
        for i, op in enumerate(definite):
            events.append((op.invoke, 0, 2 * i))
            events.append((op.complete, 1, 2 * i + 1))
        events.sort()
        head = 2 * n
        nxt = [None] * (2 * n + 1)
        prv = [None] * (2 * n + 1)
        prev = head
        for _, _, e in events:
            nxt[prev] = e
            prv[e] = prev
            prev = e
        nxt[prev] = None

        def lift(e):
            p, q = prv[e], nxt[e]
            nxt[p] = q
            if q is not None:
                prv[q] = p
            r = e + 1
            p, q = prv[r], nxt[r]
            nxt[p] = q
            if q is not None:
                prv[q] = p

        def unlift(e):
            r = e + 1
            p, q = prv[r], nxt[r]
            nxt[p] = r
            if q is not None:
                prv[q] = r
            p, q = prv[e], nxt[e]
            nxt[p] = e
            if q is not None:
                prv[q] = e

        def count(g, d):
            c = used_counts.get(g, 0) + d
            if c:
                used_counts[g] = c
            else:
                del used_counts[g]

        def use(j, on):
            used[j] = on
            if j in ever_set and is_live(val[j]):
                used_mask[0] ^= 1 << j
            else:
                count(grp[j], 1 if on else -1)

        def observed(v, d):
            """A definite observer of v placed (d=-1) or taken back (d=+1)."""
            was = is_live(v)
            live[v] += d
            now = is_live(v)
            if was != now:
                for j in by_value.get(v, ()):
                    if used[j]:
                        used_mask[0] ^= 1 << j
                        count(grp[j], 1 if was else -1)

        best = [-1.0]
        since = [0]

        def candidates(state):
            """The moves from here, [(definite?, index, new state)], or True when done."""
            out = []
            e = nxt[head]
            while e is not None and e % 2 == 0:
                i = e >> 1
                new = step(state, definite[i])
                if new is not ILLEGAL:
                    out.append((True, i, new))
                e = nxt[e]
            if e is None:
                return True
            frontier = definite[e >> 1].complete
            if frontier > best[0]:
                best[0] = frontier
                self.blocker = definite[e >> 1]
                since[0] = 0
            if m:
                pick = {}       # canonical effect -> (invoke, j, new): latest invoked wins
                for g, (inv, js) in group_list:
                    k = bisect.bisect_right(inv, frontier) - 1
                    while k >= 0 and used[js[k]]:
                        k -= 1
                    if k >= 0:
                        j = js[k]
                        new = step(state, optional[j])
                        if new is not ILLEGAL:
                            pick[g] = (inv[k], j, new)
                for j in ever_live:
                    o = optional[j]
                    if o.invoke > frontier:
                        break
                    if used[j]:
                        continue
                    new = step(state, o)
                    if new is ILLEGAL:
                        continue
                    g = (o.f, o.expected, canon(new))
                    had = pick.get(g)
                    if had is None or had[0] <= o.invoke:
                        pick[g] = (o.invoke, j, new)
                out.extend((False, j, new) for _, j, new in pick.values())
            return out

        seen = {}

        def fresh(dmask, state):
            key = (dmask, canon(state))
            mask = used_mask[0]
            lst = seen.get(key)
            if lst is None:
                seen[key] = [(mask, dict(used_counts))]
                return True
            for um, uc in lst:
                if um & ~mask == 0 and all(used_counts.get(g, 0) >= c for g, c in uc.items()):
                    return False
            lst.append((mask, dict(used_counts)))
            return True

        def apply(definite_move, i):
            if definite_move:
                lift(2 * i)
                if observes[i] is not None:
                    observed(observes[i], -1)
            else:
                use(i, True)

        def undo(definite_move, i):
            if definite_move:
                if observes[i] is not None:
                    observed(observes[i], +1)
                unlift(2 * i)
            else:
                use(i, False)

        max_steps, deadline = self.max_steps, self.deadline
        stuck, stuck_after = self.stuck, self.stuck_after
        steps = 0
        dmask = 0
        c = candidates(self.init)
        if c is True:
            return True
        stack = [[c, 0, None]]   # [moves, next move, the move that led here]
        while stack:
            steps += 1
            if max_steps is not None and steps > max_steps:
                self.steps = steps
                raise Budget()
            if (steps & 0x3FF) == 0 and deadline is not None and time.monotonic() > deadline:
                self.steps = steps
                raise Budget()
            since[0] += 1
            if stuck is not None and since[0] > stuck_after:
                since[0] = 0
                stuck_after *= 2
                if stuck(self.blocker):
                    self.steps = steps
                    return False
            frame = stack[-1]
            moves, k, via = frame
            if k >= len(moves):
                stack.pop()
                if via is not None:
                    undo(via[0], via[1])
                    if via[0]:
                        dmask &= ~(1 << via[1])
                continue
            frame[1] = k + 1
            is_def, i, new = moves[k]
            apply(is_def, i)
            nd = dmask | (1 << i) if is_def else dmask
            if not fresh(nd, new):
                undo(is_def, i)
                continue
            dmask = nd
            nc = candidates(new)
            if nc is True:
                self.steps = steps
                return True
            stack.append([nc, 0, (is_def, i)])
        self.steps = steps
        return False


def check_ops(ops, init=None, max_steps=None, deadline=None, stuck=None):
    """(result, blocker, steps): result True (linearizable), False, or None (budget
    exhausted). `ops` must be relevant ops of one key."""
    s = _Search(ops, init, max_steps, deadline, stuck)
    try:
        ok = s.run()
    except Budget:
        return None, s.blocker, s.steps
    return ok, s.blocker, s.steps


def window(ops, start, blocker):
    """The sub-history that decides whether `blocker` can be placed, seen from time
    `start` on: ops invoked from `start` up to the blocker's completion, plus those
    invoked earlier that were still pending at `start` (indeterminate ones included),
    which become optional, as do ops completing after the blocker. Checked from an
    unconstrained register (ANY), it over-approximates the history: if it cannot be
    linearized, neither can the whole."""
    cut = blocker.complete
    out = []
    for o in ops:
        if o.invoke > cut:
            continue
        if o is blocker:
            out.append(o)
        elif o.invoke >= start:
            out.append(o if o.complete <= cut else o.copy(complete=INF))
        elif o.complete > start:
            out.append(o.copy(complete=INF))
    return out


def _fails(ops, init, deadline):
    ok, _, _ = check_ops(ops, init=init, deadline=deadline)
    return ok is False


def localise(ops, blocker, deadline, sizes=(16, 64, 256, 1024)):
    """Tries to prove `ops` not linearizable from windows ending at `blocker`: returns
    the start time of the first (smallest) window that cannot be linearized, or None."""
    before = sorted({o.invoke for o in ops if o.invoke <= blocker.invoke}, reverse=True)
    for size in sizes:
        if not before:
            return None
        start = before[min(size, len(before)) - 1]
        ok, _, _ = check_ops(window(ops, start, blocker), init=ANY, deadline=deadline)
        if ok is False:
            return start
        if size >= len(before):
            return None
    return None


def minimise(ops, blocker, start=None, time_limit=10.0):
    """A small witness that `ops` (relevant ops of one key) is not linearizable, given
    the op no ordering can place. Returns (definite, optional): the window from the
    latest start that still cannot be linearized from an unconstrained register, with
    every definite op that need not be definite made optional (each step only relaxes,
    so the result still proves the anomaly); `optional` lists the ops that may have taken
    effect at any time after their invocation and could matter (their value is observed
    by the witness, or they are a cas or delete)."""
    deadline = time.monotonic() + time_limit
    starts = sorted({o.invoke for o in ops if o.invoke <= blocker.invoke})
    if start is None:
        start = starts[0] if starts else blocker.invoke
    # 1. the latest start whose window still fails (failing is monotone in the start)
    lo = bisect_left(starts, start)
    hi = len(starts) - 1
    best = window(ops, start, blocker)
    if not _fails(best, ANY, deadline):
        # only the whole history from an empty key fails: keep it all
        best_init = None
        best = window(ops, starts[0], blocker) if starts else [blocker]
        lo = hi = -1
    else:
        best_init = ANY
    while lo < hi and time.monotonic() < deadline:
        mid = (lo + hi + 1) // 2
        w = window(ops, starts[mid], blocker)
        if _fails(w, ANY, deadline):
            lo, best = mid, w
        else:
            hi = mid - 1
    # 2. relax definite ops to optional while it still fails, latest first
    best = sorted(best, key=lambda o: (o.invoke, o.id if o.id is not None else 0))
    if len(best) <= 600:
        for idx in range(len(best) - 1, -1, -1):
            if time.monotonic() > deadline:
                break
            o = best[idx]
            if o is blocker or o.complete == INF:
                continue
            trial = best[:idx] + [o.copy(complete=INF)] + best[idx + 1:]
            if _fails(trial, best_init, deadline):
                best = trial
    core = [o for o in best if o.complete != INF]
    seen_values = {o.output for o in core if o.f == "read"} | {o.expected for o in core if o.f == "cas"}
    effectful = [o for o in best if o.complete == INF and o.f != "read" and o.status != "fail"]
    # worth showing: the indeterminate ops that could produce a value the witness observes
    opt = [o for o in effectful if (o.f == "delete" and None in seen_values)
           or (o.f != "delete" and o.value in seen_values)]
    return core, opt, best_init is ANY, len(best), len(effectful) - len(opt)


class KeyResult:
    def __init__(self, key, ops, valid, blocker=None, steps=0, seconds=0.0):
        self.key = key
        self.ops = ops                # the relevant ops checked
        self.valid = valid            # True / False / None (gave up)
        self.blocker = blocker        # the op that no linearization of the prefix can place
        self.witness = []             # the definite ops of a minimal non-linearizable window
        self.optional = []            # indeterminate ops of that window that could matter
        self.any_start = False        # the window starts from an unconstrained register
        self.window_size = 0          # ops in that window (definite and optional)
        self.hidden = 0               # indeterminate ops of it not shown (values nobody observed)
        self.prefix_len = 0           # ops completed before the blocker
        self.steps = steps
        self.seconds = seconds

    def span(self):
        """(first invoke, last finite complete) of the witness, in ns, or None."""
        ops = self.witness + self.optional
        if not ops:
            return None
        ends = [o.complete for o in ops if o.complete != INF]
        return min(o.invoke for o in ops), max(ends) if ends else max(o.invoke for o in ops)

    def format(self, t0=0):
        if self.valid:
            return "key %s: linearizable (%d ops)" % (self.key, len(self.ops))
        if self.valid is None:
            return "key %s: UNDECIDED (search budget exhausted after %d steps, %d ops)" % (
                self.key, self.steps, len(self.ops))
        lines = ["key %s: NOT LINEARIZABLE (%d ops; %d completed before the op that breaks it)"
                 % (self.key, len(self.ops), self.prefix_len),
                 "  the op no ordering can place:",
                 "    " + self.blocker.format(t0),
                 "  witness: these ops cannot be linearized%s (a window of %d ops, every other "
                 "op in it relaxed to may-or-may-not-have-happened):"
                 % (" whatever the register held before them" if self.any_start
                    else " from an empty key", self.window_size)]
        for o in sorted(self.witness + self.optional, key=lambda o: o.invoke):
            mark = "   <-- breaks it" if o.id == self.blocker.id else ""
            lines.append("    " + o.format(t0) + mark)
        shown = {o.id for o in self.witness + self.optional}
        observed = {o.output for o in self.witness if o.f == "read" and o.output is not None}
        observed |= {o.expected for o in self.witness if o.f == "cas"}
        producers = [o for o in self.ops if o.f in ("write", "cas") and o.value in observed
                     and o.id not in shown and o.status != "fail"]
        if producers:
            lines.append("  for context, the ops that wrote the values observed there:")
            for o in sorted(producers, key=lambda o: o.invoke):
                lines.append("    " + o.format(t0))
        if self.hidden:
            lines.append("    ... and %d indeterminate writes/cas/deletes (not shown) of values "
                         "that no op above observes" % self.hidden)
        if self.hidden or any(o.complete == INF for o in self.witness + self.optional):
            lines.append("    (an op whose completion is inf, or marked optional, may take "
                         "effect at any time after its invocation, or never)")
        return "\n".join(lines)


def check_key(key, ops, max_steps=None, time_limit=60.0, minimise_limit=10.0):
    """Checks one key's ops (any ops; irrelevant ones are dropped). Returns a KeyResult."""
    started = time.monotonic()
    deadline = started + time_limit
    rel = [o for o in ops if relevant(o)]
    rel.sort(key=lambda o: (o.invoke, o.id if o.id is not None else 0))
    ids = {o.id for o in rel}
    if None in ids or len(ids) != len(rel):
        for n, o in enumerate(rel):
            o.id = n
    proven = {}

    def stuck(blocker):
        # the search keeps backtracking: try to prove the anomaly in a window
        if blocker is None:
            return False
        start = localise(rel, blocker, min(deadline, time.monotonic() + 5.0))
        if start is not None:
            proven["at"] = (blocker, start)
            return True
        return False

    ok, blocker, steps = check_ops(rel, max_steps=max_steps, deadline=deadline, stuck=stuck)
    if ok is None and blocker is not None and "at" not in proven:
        # out of budget: a last try at a window around the furthest point reached
        start = localise(rel, blocker, time.monotonic() + 10.0, sizes=(16, 64, 256, 1024, 4096))
        if start is not None:
            ok, proven["at"] = False, (blocker, start)
    res = KeyResult(key, rel, ok, steps=steps)
    if ok is False:
        blocker, start = proven.get("at", (blocker, None))
        res.blocker = blocker
        res.prefix_len = sum(1 for o in rel if o.complete < blocker.complete)
        (res.witness, res.optional, res.any_start, res.window_size,
         res.hidden) = minimise(
            rel, blocker, start, minimise_limit)
    res.seconds = time.monotonic() - started
    return res


class Result:
    def __init__(self, keys):
        self.keys = keys      # {key: KeyResult}

    @property
    def valid(self):
        """True if every key is linearizable, False if one is not, None if undecided."""
        vals = [r.valid for r in self.keys.values()]
        if any(v is False for v in vals):
            return False
        if any(v is None for v in vals):
            return None
        return True

    def anomalies(self):
        return [r for r in self.keys.values() if r.valid is False]

    def undecided(self):
        return [r for r in self.keys.values() if r.valid is None]

    def format(self, t0=0):
        bad = self.anomalies() + self.undecided()
        if not bad:
            return "linearizable: %d keys, %d ops" % (len(self.keys),
                                                     sum(len(r.ops) for r in self.keys.values()))
        return "\n".join(r.format(t0) for r in bad)


def check(history, max_steps=None, time_limit=60.0):
    """Checks a whole history (an iterable of Op), key by key."""
    by_key = {}
    for o in history:
        by_key.setdefault(o.key, []).append(o)
    return Result({k: check_key(k, ops, max_steps=max_steps, time_limit=time_limit)
                   for k, ops in sorted(by_key.items())})
