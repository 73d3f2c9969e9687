//! `-snapshot PATH`: Serf's snapshot file, so that a restarted agent finds its cluster
//! again and does not reuse Lamport times. One line per change, in Serf's text format:
//!
//! ```text
//! alive: NAME IP:PORT      a member joined
//! not-alive: NAME          it left or failed
//! clock: N                 the member clock
//! event-clock: N           the user event clock
//! query-clock: N           the query clock
//! leave                    this agent left gracefully
//! ```
//!
//! Lines are appended as things change (each written at once; the file is fsync'd at
//! most every half second while it changes, and at a leave) and the file is rewritten
//! with only what is current once it outgrows its limit. Replaying it at start gives the
//! members to rejoin and the clocks; after a `leave`, nothing is rejoined and the clocks
//! start over, unless `-rejoin` says to ignore the leave (Serf's rules, serf/snapshot.go).

use crate::events::{AgentEvent, MemberEventKind};
use musubi_gossip::lamport::Clocks;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// How often the clocks are looked at (and the file fsync'd if it changed).
const CLOCK_INTERVAL: Duration = Duration::from_millis(500);
/// Serf's compaction threshold: 128 KiB, or 128 bytes per live member if more.
const MIN_COMPACT_SIZE: u64 = 128 * 1024;
const BYTES_PER_MEMBER: u64 = 128;

/// What a snapshot said at start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Members alive when the agent stopped, `(name, "ip:port")`, by name.
    pub alive: Vec<(String, String)>,
    pub clock: u64,
    pub event_clock: u64,
    pub query_clock: u64,
}

/// The replayed state, and what the file holds on top of it.
#[derive(Default)]
struct State {
    alive: BTreeMap<String, String>,
    clock: u64,
    event_clock: u64,
    query_clock: u64,
}

/// The open snapshot, shared by the event tee and the agent's leave.
#[derive(Clone)]
pub struct Snapshot {
    file: Arc<Mutex<SnapshotFile>>,
}

struct SnapshotFile {
    path: PathBuf,
    file: File,
    size: u64,
    state: State,
    /// Written to since the last fsync.
    unsynced: bool,
    /// After our leave no member change is recorded: the leave must stay the last word
    /// on who is alive (the clocks still are, as Serf does).
    left: bool,
}

impl Snapshot {
    /// Replay the snapshot at `path` (a missing file is an empty one) and open it to
    /// append to. With `rejoin_after_leave`, a recorded leave is ignored.
    pub fn open(path: &Path, rejoin_after_leave: bool) -> Result<(Snapshot, Restored), String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("failed to open snapshot {}: {e}", path.display())),
        };
        let state = replay(&text, rejoin_after_leave);
        let file = open_append(path)
            .map_err(|e| format!("failed to open snapshot {}: {e}", path.display()))?;
        let restored = Restored {
            alive: state
                .alive
                .iter()
                .map(|(name, addr)| (name.clone(), addr.clone()))
                .collect(),
            clock: state.clock,
            event_clock: state.event_clock,
            query_clock: state.query_clock,
        };
        let snapshot = SnapshotFile {
            path: path.to_path_buf(),
            file,
            size: text.len() as u64,
            state,
            unsynced: false,
            left: false,
        };
        Ok((
            Snapshot {
                file: Arc::new(Mutex::new(snapshot)),
            },
            restored,
        ))
    }

    /// Record what a member event changes.
    pub fn record(&self, event: &AgentEvent) {
        let AgentEvent::Member { kind, members } = event else {
            return;
        };
        let mut file = self.lock();
        if file.left {
            return;
        }
        for member in members {
            match kind {
                MemberEventKind::Join => {
                    let addr = member.addr.to_string();
                    file.append(&format!("alive: {} {addr}\n", member.name));
                    file.state.alive.insert(member.name.clone(), addr);
                }
                MemberEventKind::Leave | MemberEventKind::Failed => {
                    file.append(&format!("not-alive: {}\n", member.name));
                    file.state.alive.remove(&member.name);
                }
                MemberEventKind::Update | MemberEventKind::Reap => {}
            }
        }
    }

    /// Record the clocks that moved (each as the last time it handed out, as Serf does),
    /// and fsync what was written since the last time.
    pub fn record_clocks(&self, clocks: &Clocks) {
        let mut file = self.lock();
        let last_of = |time: u64| time.saturating_sub(1);
        for (label, time) in [
            ("clock", last_of(clocks.member.time())),
            ("event-clock", last_of(clocks.event.time())),
            ("query-clock", last_of(clocks.query.time())),
        ] {
            let recorded = file.state.clock_mut(label);
            if time > *recorded {
                *recorded = time;
                file.append(&format!("{label}: {time}\n"));
            }
        }
        file.sync();
    }

    /// This agent leaves gracefully: say so, and make sure it is on disk.
    pub fn leave(&self) {
        let mut file = self.lock();
        file.append("leave\n");
        file.left = true;
        file.sync();
    }

    fn lock(&self) -> MutexGuard<'_, SnapshotFile> {
        // A panic while holding the lock leaves only a half-written line behind, which
        // the replay skips.
        self.file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Record every event that passes, then hand it on; look at the clocks twice a second.
pub fn spawn_tee(
    snapshot: Snapshot,
    clocks: Clocks,
    mut input: mpsc::UnboundedReceiver<AgentEvent>,
) -> mpsc::UnboundedReceiver<AgentEvent> {
    let (output, recorded) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CLOCK_INTERVAL);
        loop {
            tokio::select! {
                event = input.recv() => {
                    let Some(event) = event else { break };
                    snapshot.record(&event);
                    if output.send(event).is_err() {
                        break;
                    }
                }
                _ = tick.tick() => snapshot.record_clocks(&clocks),
            }
        }
        snapshot.record_clocks(&clocks);
    });
    recorded
}

impl State {
    fn clock_mut(&mut self, label: &str) -> &mut u64 {
        match label {
            "clock" => &mut self.clock,
            "event-clock" => &mut self.event_clock,
            _ => &mut self.query_clock,
        }
    }

    fn compacted(&self) -> String {
        let mut text: String = self
            .alive
            .iter()
            .map(|(name, addr)| format!("alive: {name} {addr}\n"))
            .collect();
        text.push_str(&format!(
            "clock: {}\nevent-clock: {}\nquery-clock: {}\n",
            self.clock, self.event_clock, self.query_clock
        ));
        text
    }
}

fn replay(text: &str, rejoin_after_leave: bool) -> State {
    let mut state = State::default();
    for line in text.lines() {
        let number = |value: &str| value.trim().parse::<u64>().ok();
        if let Some(info) = line.strip_prefix("alive: ") {
            match info.rsplit_once(' ') {
                Some((name, addr)) => {
                    state.alive.insert(name.to_string(), addr.to_string());
                }
                None => warn!("snapshot: malformed alive line {line:?}"),
            }
        } else if let Some(name) = line.strip_prefix("not-alive: ") {
            state.alive.remove(name);
        } else if let Some(n) = line.strip_prefix("clock: ").and_then(number) {
            state.clock = n;
        } else if let Some(n) = line.strip_prefix("event-clock: ").and_then(number) {
            state.event_clock = n;
        } else if let Some(n) = line.strip_prefix("query-clock: ").and_then(number) {
            state.query_clock = n;
        } else if line == "leave" {
            if rejoin_after_leave {
                info!("Ignoring previous leave in snapshot");
                continue;
            }
            state = State::default();
        } else if line.starts_with("coordinate: ") || line.starts_with('#') || line.is_empty() {
            // Serf records coordinates here; musubi keeps none across restarts.
        } else {
            warn!("Unrecognized snapshot line: {line:?}");
        }
    }
    state
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl SnapshotFile {
    fn append(&mut self, line: &str) {
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            error!("Failed to write to snapshot: {e}");
            return;
        }
        self.size += line.len() as u64;
        self.unsynced = true;
        let limit = MIN_COMPACT_SIZE.max(BYTES_PER_MEMBER * self.state.alive.len() as u64);
        if self.size > limit
            && let Err(e) = self.compact()
        {
            error!("Failed to compact snapshot: {e}");
        }
    }

    /// Write what is current to a new file and put it in place of the old one, so that a
    /// crash at any point leaves one whole snapshot behind.
    fn compact(&mut self) -> std::io::Result<()> {
        let text = self.state.compacted();
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".compact");
        let temporary = PathBuf::from(temporary);
        let mut fresh = File::create(&temporary)?;
        fresh.write_all(text.as_bytes())?;
        fresh.sync_all()?;
        std::fs::rename(&temporary, &self.path)?;
        self.file = open_append(&self.path)?;
        self.size = text.len() as u64;
        self.unsynced = false;
        Ok(())
    }

    fn sync(&mut self) {
        if !self.unsynced {
            return;
        }
        match self.file.sync_data() {
            Ok(()) => self.unsynced = false,
            Err(e) => error!("Failed to sync snapshot: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use musubi_gossip::identity::NodeId;

    fn member(kind: MemberEventKind, name: &str, port: u16) -> AgentEvent {
        AgentEvent::Member {
            kind,
            members: vec![NodeId {
                name: name.into(),
                addr: ([127, 0, 0, 1], port).into(),
                tags: Default::default(),
                started_ms: 1,
            }],
        }
    }

    fn alive(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|&(n, a)| (n.to_string(), a.to_string()))
            .collect()
    }

    #[test]
    fn changes_are_appended_in_serfs_format_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        let (snapshot, restored) = Snapshot::open(&path, false).unwrap();
        assert_eq!(restored, Restored::default());
        snapshot.record(&member(MemberEventKind::Join, "a", 1));
        snapshot.record(&member(MemberEventKind::Join, "b", 2));
        snapshot.record(&member(MemberEventKind::Failed, "b", 2));
        let clocks = Clocks::default();
        clocks.member.witness(1);
        clocks.event.witness(4);
        snapshot.record_clocks(&clocks);
        snapshot.record_clocks(&clocks);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "alive: a 127.0.0.1:1\nalive: b 127.0.0.1:2\nnot-alive: b\nclock: 1\nevent-clock: 4\n"
        );
        let (_, restored) = Snapshot::open(&path, false).unwrap();
        assert_eq!(
            restored,
            Restored {
                alive: alive(&[("a", "127.0.0.1:1")]),
                clock: 1,
                event_clock: 4,
                query_clock: 0,
            }
        );
    }

    #[test]
    fn a_leave_forgets_everything_unless_rejoining() {
        let text = "alive: a b 10.0.0.1:7946\nclock: 3\nevent-clock: 9\nleave\nbogus\n";
        let state = replay(text, false);
        assert!(state.alive.is_empty() && state.clock == 0 && state.event_clock == 0);
        let state = replay(text, true);
        // names may hold spaces: the address is after the last one
        assert_eq!(state.alive["a b"], "10.0.0.1:7946");
        assert_eq!((state.clock, state.event_clock), (3, 9));
        // alive again after the leave
        let state = replay(&format!("{text}alive: c 10.0.0.2:7946\n"), false);
        assert_eq!(state.alive.len(), 1);
    }

    #[test]
    fn no_member_change_follows_our_leave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        let (snapshot, _) = Snapshot::open(&path, false).unwrap();
        snapshot.leave();
        snapshot.record(&member(MemberEventKind::Join, "a", 1));
        let clocks = Clocks::default();
        clocks.member.witness(2);
        snapshot.record_clocks(&clocks);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "leave\nclock: 2\n");
    }

    #[test]
    fn a_grown_file_is_compacted_to_what_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        let (snapshot, _) = Snapshot::open(&path, false).unwrap();
        for _ in 0..4000 {
            snapshot.record(&member(MemberEventKind::Join, "flapper", 1));
            snapshot.record(&member(MemberEventKind::Failed, "flapper", 1));
        }
        snapshot.record(&member(MemberEventKind::Join, "a", 2));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() < 64 * 1024, "{} bytes", text.len());
        let (_, restored) = Snapshot::open(&path, false).unwrap();
        assert_eq!(restored.alive, alive(&[("a", "127.0.0.1:2")]));
        assert!(!dir.path().join("snap.compact").exists());
    }
}
