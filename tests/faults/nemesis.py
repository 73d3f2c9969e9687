"""The nemesis: faults injected while the clients run, one at a time, each logged with
its time (seconds since the run's start, the clock of the history) and marked in every
member's log.

Families (`--nemesis kill,pause,partition,membership`):
  kill        kill -9 one member, the leader, a minority, or all members; then restart
              them at once, after a delay, or the old leader first and the others 0.5 s
              later
  pause       SIGSTOP one member, the leader, or a minority; SIGCONT a few seconds later
  partition   (members in network namespaces only) a link down, every packet dropped
              both ways, packets from (or to) the other members dropped one way, the
              leader isolated with a minority, a random minority/majority split
  membership  remove a member (DELETE /v2/members/<id>; sometimes the leader), then add
              it back with a fresh data dir (POST /v2/members, start with
              --initial-cluster-state existing)

Every choice comes from the rng it is given (seeded from the run's seed).
"""

import json
import threading
import time

FAMILIES = ("kill", "pause", "partition", "membership")


class Event:
    __slots__ = ("t", "kind", "text")

    def __init__(self, t, kind, text):
        self.t = t
        self.kind = kind
        self.text = text

    def format(self):
        return "[%8.3f s] %-10s %s" % (self.t, self.kind, self.text)


class Nemesis:
    def __init__(self, cluster, rng, families, log=None, interval=(1.0, 3.0)):
        self.cluster = cluster
        self.rng = rng
        self.families = [f for f in families if f != "partition" or cluster.use_netns]
        self.log = log or (lambda s: None)
        self.interval = interval
        self.events = []
        self.leader_kills = []          # run times (s) at which the leader was killed
        self.stop_event = threading.Event()
        self.thread = None
        self.removed = set()            # nodes removed and not yet added back
        self.errors = []
        self.crashes = []               # (time, member, exit code) of exits nobody caused

    # -- bookkeeping -------------------------------------------------------------------

    def record(self, kind, text):
        e = Event(self.cluster.now(), kind, text)
        self.events.append(e)
        self.cluster.mark_all("%s: %s" % (kind, text))
        self.log("  nemesis " + e.format())
        return e

    def sleep(self, seconds):
        """Sleeps, but returns early (False) once the run is being stopped."""
        return not self.stop_event.wait(seconds)

    def start(self, until):
        self.thread = threading.Thread(target=self._run, args=(until,), name="nemesis", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        if self.thread:
            self.thread.join(120)

    def _run(self, until):
        if not self.families:
            return
        while not self.stop_event.is_set():
            quiet = self.rng.uniform(*self.interval)
            if self.cluster.now() + quiet + 2 >= until or not self.sleep(quiet):
                break
            self.check_crashes()
            # kills twice as often as the others: the commonest fault in real life, and
            # the one that exercises restarts and elections
            family = self.rng.choice([f for f in self.families for _ in range(2 if f == "kill" else 1)])
            try:
                getattr(self, "fault_" + family)()
            except Exception as e:  # noqa: BLE001 - log it, heal, go on
                self.errors.append("%s: %r" % (family, e))
                self.record("error", "%s fault failed: %r" % (family, e))
                try:
                    self.heal_all(wait=False)
                except Exception as e2:  # noqa: BLE001
                    self.errors.append("heal: %r" % e2)

    def check_crashes(self):
        """A member that exited by itself is a finding: recorded, then restarted."""
        for n in self.cluster.nodes:
            rc = n.crashed()
            if rc is not None and n not in self.removed:
                self.crashes.append((self.cluster.now(), n.name, rc))
                self.record("crash", "%s exited by itself with %d; restarting it" % (n.name, rc))
                n.start()

    # -- choosing targets ------------------------------------------------------------

    def minority(self):
        return (len(self.cluster.nodes) - 1) // 2

    def pick(self, how, leader):
        nodes = [n for n in self.cluster.nodes if n not in self.removed]
        if how == "leader" and leader is not None:
            return [leader]
        if how == "minority":
            k = max(1, self.minority())
            return self.rng.sample(nodes, k)
        if how == "all":
            return list(nodes)
        return [self.rng.choice(nodes)]

    def hold(self, lo, hi):
        return self.sleep(self.rng.uniform(lo, hi))

    def names(self, nodes, leader):
        return ",".join(n.name + ("(leader)" if n is leader else "") for n in nodes)

    # -- kill --------------------------------------------------------------------------

    def fault_kill(self):
        leader = self.cluster.leader()
        how = self.rng.choice(["one", "leader", "leader", "minority", "all"])
        victims = self.pick(how, leader)
        modes = ["at once", "delay"]
        if leader in victims and len(victims) > 1:
            modes.append("leader first")
        mode = self.rng.choice(modes)
        self.record("kill", "kill -9 %s (%s)" % (self.names(victims, leader), how))
        for n in victims:
            n.kill()
            if n is leader:
                self.leader_kills.append(self.cluster.now())
        if mode == "delay":
            self.hold(0.5, 3.0)
        elif mode == "leader first":
            leader.start()
            self.record("restart", "%s (the old leader first)" % leader.name)
            self.sleep(0.5)
            victims = [n for n in victims if n is not leader]
        for n in victims:
            n.start()
        self.record("restart", "%s (%s)" % (",".join(n.name for n in victims), mode))
        self.sleep(1.0)

    # -- pause -------------------------------------------------------------------------

    def fault_pause(self):
        leader = self.cluster.leader()
        how = self.rng.choice(["one", "leader", "minority"])
        victims = [n for n in self.pick(how, leader) if n.alive()]
        if not victims:
            return
        self.record("pause", "SIGSTOP %s (%s)" % (self.names(victims, leader), how))
        for n in victims:
            n.pause()
        self.hold(1.0, 4.0)
        for n in victims:
            n.resume()
        self.record("resume", "SIGCONT %s" % ",".join(n.name for n in victims))
        self.sleep(1.0)

    # -- partition -------------------------------------------------------------------

    def fault_partition(self):
        c = self.cluster
        leader = c.leader()
        kind = self.rng.choice(["link-down", "isolate", "one-way", "leader+minority", "split"])
        nodes = [n for n in c.nodes if n not in self.removed]
        if kind in ("link-down", "isolate", "one-way"):
            who = leader if (leader is not None and self.rng.random() < 0.5) else self.rng.choice(nodes)
            if kind == "link-down":
                self.record("partition", "link down %s" % self.names([who], leader))
                c.link_down(who)
            elif kind == "isolate":
                self.record("partition", "drop every packet to and from %s (but the test's)"
                            % self.names([who], leader))
                c.isolate(who)
            else:
                direction = self.rng.choice(["in", "out"])
                self.record("partition", "%s drops packets %s the other members (one way)"
                            % (self.names([who], leader), "from" if direction == "in" else "to"))
                c.drop_one_way(who, direction)
        else:
            k = max(1, self.minority())
            if kind == "leader+minority" and leader is not None:
                rest = [n for n in nodes if n is not leader]
                small = [leader] + self.rng.sample(rest, k - 1)
            else:
                small = self.rng.sample(nodes, k)
            big = [n for n in nodes if n not in small]
            self.record("partition", "%s: %s | %s" % (kind, self.names(small, leader),
                                                      self.names(big, leader)))
            c.partition([small, big])
        self.hold(2.0, 6.0)
        c.heal_network()
        self.record("heal", "network healed")
        self.sleep(1.0)

    # -- membership ------------------------------------------------------------------

    def _retry(self, what, fn, timeout=20.0):
        # Not cut short when the run is being stopped: a membership change half done (a
        # member removed, not yet added back) must be finished, or healing cannot; `stop`
        # waits for it.
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                got = fn()
                if got:
                    return got
            except OSError as e:
                last = repr(e)
            time.sleep(0.3)
        raise RuntimeError("%s did not succeed within %.0fs (last: %s)" % (what, timeout, last))

    def fault_membership(self):
        c = self.cluster
        leader = self._retry("finding a leader", c.leader)
        listed = c.refresh_ids()
        nodes = [n for n in c.nodes if n not in self.removed and n.member_id]
        if len(listed) != len(c.nodes) or not all(n.alive() for n in c.nodes):
            return      # not everyone is back from the last fault: skip this one
        victim = leader if self.rng.random() < 0.3 else self.rng.choice(nodes)
        old_id = victim.member_id
        others = [n for n in c.nodes if n is not victim]

        def delete():
            via = self.rng.choice(others)
            st, _, body = via.request("DELETE", "/v2/members/" + old_id, timeout=5.0)
            if st == 204:
                return True
            listed = c.members(via)
            if listed is not None and old_id not in [m["id"] for m in listed]:
                return True         # an earlier try that timed out went through
            return False
        self.record("member", "remove %s (id %s)" % (self.names([victim], leader), old_id))
        self._retry("DELETE /v2/members/%s" % old_id, delete)
        self.removed.add(victim)
        self.record("member", "%s removed" % victim.name)
        deadline = time.time() + 10
        while victim.alive() and time.time() < deadline:
            time.sleep(0.1)
        exited = not victim.alive()
        victim.kill()
        self.record("member", "%s %s" % (victim.name, "exited by itself" if exited
                                          else "still running 10 s after its removal: killed"))
        self.hold(0.5, 3.0)
        self.add_back(victim)
        self.sleep(1.0)

    def add_back(self, victim):
        c = self.cluster
        others = [n for n in c.nodes if n is not victim and n.alive()]
        victim.fresh_data_dir()

        def add():
            via = self.rng.choice(others)
            listed = c.members(via)
            if listed is not None and any(victim.peer_url in m.get("peerURLs", []) for m in listed):
                return listed
            st, _, body = via.request("POST", "/v2/members",
                                      json.dumps({"peerURLs": [victim.peer_url]}), timeout=5.0,
                                      headers={"Content-Type": "application/json"})
            if st in (200, 201):
                return c.members(via)
            return None
        self.record("member", "add %s back (POST /v2/members %s)" % (victim.name, victim.peer_url))
        listed = self._retry("POST /v2/members for %s" % victim.name, add, timeout=30.0)
        victim.initial_cluster = ",".join(
            "%s=%s" % (m.get("name") or victim.name, u)
            for m in listed for u in m.get("peerURLs", [])[:1])
        victim.initial_state = "existing"
        victim.start()
        self.removed.discard(victim)
        c.refresh_ids()
        self.record("member", "%s started with a fresh data dir (--initial-cluster-state existing)"
                    % victim.name)

    # -- healing ---------------------------------------------------------------------

    def heal_all(self, wait=True, timeout=60.0):
        """Resumes the paused, heals the network, adds back the removed and starts the
        dead; with `wait`, until each serves /version."""
        c = self.cluster
        for n in c.nodes:
            if n.paused:
                n.resume()
        c.heal_network()
        for n in list(self.removed):
            self.add_back(n)
        for n in c.nodes:
            if not n.alive():
                n.start()
        if wait:
            deadline = time.time() + timeout
            for n in c.nodes:
                while not n.serving():
                    if time.time() > deadline:
                        raise RuntimeError("%s does not serve after healing (%s)" % (n, n.process_state()))
                    if not n.alive():
                        n.start()
                    time.sleep(0.1)
