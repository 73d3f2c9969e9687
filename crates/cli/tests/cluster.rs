//! Three `musubi serve` processes on loopback form one static cluster: writes on any
//! member, quorum reads on followers, leader failover, catch-up after a restart, and a
//! fast, explicit failure once a quorum is gone.
#![cfg(feature = "server")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

/// One HTTP/1.1 exchange: the status and the body (our replies carry a length, and the
/// connection closes after the reply).
fn http(port: u16, method: &str, path: &str, form: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    Some((head.get(9..12)?.parse().ok()?, body.to_string()))
}

struct Member {
    name: String,
    client: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Member {
    /// Starts the member; it serves clients only once it has a leader, as etcd's does, so
    /// a new cluster's members are all started before any is waited for.
    fn spawn(&mut self, cluster: &str) {
        let peer = cluster
            .split(',')
            .find_map(|e| e.strip_prefix(&format!("{}=", self.name)))
            .expect("member in cluster")
            .to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_musubi"))
            .args(["serve", "--name", &self.name, "--data-dir"])
            .arg(&self.dir)
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{}", self.client),
                "--listen-peer-urls",
                &peer,
                "--initial-cluster",
                cluster,
                "--initial-cluster-state",
                "new",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("musubi starts");
        self.child = Some(child);
    }

    fn wait_serving(&self) {
        wait_for("the member serves", || {
            http(self.client, "GET", "/version", "").is_some()
        });
    }

    fn start(&mut self, cluster: &str) {
        self.spawn(cluster);
        self.wait_serving();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    fn put(&self, key: &str, value: &str) -> (u16, String) {
        http(
            self.client,
            "PUT",
            &format!("/v2/keys/{key}"),
            &format!("value={value}"),
        )
        .expect("a reply")
    }

    fn get(&self, path: &str) -> (u16, String) {
        http(self.client, "GET", path, "").expect("a reply")
    }

    fn leader_name(&self) -> Option<String> {
        let (status, body) = http(self.client, "GET", "/v2/members/leader", "")?;
        (status == 200).then(|| field(&body, "name"))
    }
}

/// The string value of `"key":"..."` in a flat JSON body.
fn field(body: &str, key: &str) -> String {
    let start = body.find(&format!("\"{key}\":\"")).expect(key) + key.len() + 4;
    body[start..].split('"').next().unwrap().to_string()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cluster(dir: &Path) -> (Vec<Member>, String) {
    let names = ["n1", "n2", "n3"];
    let peers: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let spec = names
        .iter()
        .zip(&peers)
        .map(|(n, p)| format!("{n}=http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members: Vec<Member> = names
        .iter()
        .map(|n| Member {
            name: n.to_string(),
            client: free_port(),
            dir: dir.join(n),
            child: None,
        })
        .collect();
    for m in &mut members {
        m.spawn(&spec);
    }
    for m in &members {
        m.wait_serving();
    }
    (members, spec)
}

#[test]
fn three_members_form_one_cluster_fail_over_and_refuse_without_quorum() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut members, spec) = cluster(tmp.path());

    // One leader, and every member lists all three with their client URLs.
    wait_for("a leader is elected", || {
        members.iter().all(|m| m.leader_name().is_some())
    });
    wait_for("every member knows every client URL", || {
        members.iter().all(|m| {
            let (_, body) = m.get("/v2/members");
            members.iter().all(|o| {
                body.contains(&format!(
                    "\"clientURLs\":[\"http://127.0.0.1:{}\"]",
                    o.client
                ))
            })
        })
    });
    let leader = members[0].leader_name().unwrap();
    for m in &members {
        let (_, stats) = m.get("/v2/stats/self");
        let state = if m.name == leader {
            "StateLeader"
        } else {
            "StateFollower"
        };
        assert!(stats.contains(state), "{}: {stats}", m.name);
    }
    let li = members.iter().position(|m| m.name == leader).unwrap();
    let (status, stats) = members[li].get("/v2/stats/leader");
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats.matches("\"latency\"").count(), 2, "{stats}");

    // A write on each member is visible on all; quorum reads work on followers.
    for (i, m) in members.iter().enumerate() {
        let (status, body) = m.put(&format!("k{i}"), &format!("v{i}"));
        assert!(status == 200 || status == 201, "{}: {body}", m.name);
    }
    for m in &members {
        for i in 0..3 {
            let (status, body) = m.get(&format!("/v2/keys/k{i}?quorum=true"));
            assert_eq!(status, 200, "{}: {body}", m.name);
            assert_eq!(field(&body, "value"), format!("v{i}"), "{}", m.name);
        }
    }

    // The leader counts the appends each follower acknowledged, with their latency.
    let (_, stats) = members[li].get("/v2/stats/leader");
    assert!(!stats.contains("\"success\":0"), "{stats}");
    assert!(!stats.contains("\"maximum\":0,"), "{stats}");
    let (_, sent) = members[li].get("/v2/stats/self");
    assert!(!sent.contains("\"sendAppendRequestCnt\":0"), "{sent}");
    let (_, received) = members[(li + 1) % 3].get("/v2/stats/self");
    assert!(
        !received.contains("\"recvAppendRequestCnt\":0"),
        "{received}"
    );

    // Kill the leader: the other two elect a new one and keep taking writes.
    members[li].kill();
    let survivor = (li + 1) % 3;
    wait_for("a new leader is elected", || {
        members[survivor].leader_name().is_some_and(|l| l != leader)
    });
    let (status, body) = members[survivor].put("after", "failover");
    assert!(status == 200 || status == 201, "{body}");

    // The killed member restarts on its data dir and catches up.
    members[li].start(&spec);
    wait_for("the restarted member catches up", || {
        let (status, body) = members[li].get("/v2/keys/after");
        status == 200 && field(&body, "value") == "failover"
    });

    // Two members down: a write fails fast with error 300, naming who is missing.
    let last = (li + 2) % 3;
    let down: Vec<String> = [li, survivor]
        .iter()
        .map(|&i| members[i].name.clone())
        .collect();
    members[li].kill();
    members[survivor].kill();
    let started = Instant::now();
    let (status, body) = members[last].put("lost", "quorum");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("\"errorCode\":300"), "{body}");
    for name in &down {
        assert!(
            body.contains(&format!("{name} (http://127.0.0.1:")),
            "{body}"
        );
    }
}
