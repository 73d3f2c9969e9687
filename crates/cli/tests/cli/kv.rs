//! `musubi kv` verbs: output, errors and exit codes.

use crate::util::{Run, bootstrap, free_port, run};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every verb and option, in an order that exercises success and failure paths. `{p}` is
/// the key prefix; etcdctl and musubi each get their own so they see the same states. `{i}`
/// is the store index before the script, so watches replay each prefix's history.
const SCRIPT: &[&[&str]] = &[
    &["set", "{p}/a", "one"],
    &["set", "{p}/a", "two"],
    &["-o", "extended", "set", "{p}/a", "three"],
    &["-o", "json", "set", "--ttl", "100", "{p}/t", "v"],
    &["get", "{p}/a"],
    &["-o", "extended", "get", "{p}/a"],
    &["-o", "json", "get", "--sort", "{p}/a"],
    &["get", "-q", "{p}/missing"],
    &["get", "{p}"],
    &["mk", "{p}/a", "x"],
    &["mk", "{p}/b", "x"],
    &["-o", "json", "mk", "--in-order", "{p}/q", "first"],
    &["mk", "--in-order", "{p}/q", "second"],
    &["mkdir", "{p}/d"],
    &["mkdir", "{p}/d"],
    &["-o", "extended", "mkdir", "{p}/d2"],
    &["setdir", "{p}/d3"],
    &["setdir", "{p}/d3"],
    &["-o", "json", "updatedir", "--ttl", "50", "{p}/d3"],
    &["updatedir", "{p}/nodir"],
    &["update", "{p}/a", "four"],
    &["update", "{p}/missing", "x"],
    &["-o", "extended", "update", "--ttl", "9", "{p}/a", "five"],
    &["set", "--swap-with-value", "wrong", "{p}/a", "x"],
    &["set", "--swap-with-value", "five", "{p}/a", "six"],
    &["set", "--swap-with-index", "1", "{p}/a", "x"],
    &["set", "{p}/d/x/y", "deep"],
    &["set", "{p}/a/x", "nested"],
    &["ls", "--sort", "{p}"],
    &["ls", "--sort", "-r", "-p", "{p}"],
    &["-o", "extended", "ls", "{p}/d/x"],
    &["-o", "json", "ls", "--sort", "{p}/q"],
    &["ls", "{p}/a"],
    &["ls", "{p}/missing"],
    &["get", "{p}/d"],
    &["rm", "{p}/d"],
    &["rmdir", "{p}/d"],
    &["rm", "--dir", "{p}/d"],
    &["-o", "json", "rm", "-r", "{p}/d"],
    &["rm", "-r", "{p}/d2"],
    &["rm", "{p}/a"],
    &["rm", "{p}/a"],
    &["set", "{p}/c", "one"],
    &["rm", "--with-value", "two", "{p}/c"],
    &["rm", "--with-value", "one", "{p}/c"],
    &["set", "{p}/c", "<one & two>"],
    &["-o", "json", "get", "{p}/c"],
    &["rm", "--with-index", "1", "{p}/c"],
    &["-o", "extended", "rmdir", "{p}/d3"],
    &["watch", "--after-index", "{i}", "{p}/b"],
    &["watch", "--after-index", "{i}", "-r", "{p}"],
    &["-o", "extended", "watch", "--after-index", "{i}", "{p}/c"],
    &[
        "--debug",
        "--no-sync",
        "set",
        "--ttl",
        "5",
        "--swap-with-value",
        "a b",
        "{p}/c",
        "x&y",
    ],
    &["--debug", "mk", "--in-order", "{p}/q", "v v"],
    &["--debug", "get", "--sort", "-q", "{p}/c"],
    &["--debug", "rm", "--dir", "-r", "{p}/q"],
    &["set", "{p}/k"],
    &["get"],
    &["exec-watch", "{p}"],
];

fn with_prefix<'a>(
    args: &[&str],
    prefix: &str,
    index: u64,
    storage: &'a mut Vec<String>,
) -> Vec<&'a str> {
    *storage = args
        .iter()
        .map(|a| a.replace("{p}", prefix).replace("{i}", &index.to_string()))
        .collect();
    storage.iter().map(String::as_str).collect()
}

#[test]
fn every_verb_prints_what_etcdctl_prints() {
    let Some(server) = bootstrap() else { return };
    if server.etcdctl(&["--version"]).is_none() {
        eprintln!("skipped: {} is not installed", crate::util::ETCDCTL);
        return;
    }
    // `--after-index 0` means "from now on", so the script must start past index 0.
    server.kv(&["set", "/prime", "x"]);
    let index = server.index();
    let mut mismatches = Vec::new();
    for args in SCRIPT {
        let (mut e, mut m) = (Vec::new(), Vec::new());
        let want = server
            .etcdctl(&with_prefix(args, "/ctl", index, &mut e))
            .expect("etcdctl");
        let got = server.kv(&with_prefix(args, "/kv", index, &mut m));
        let (want, got) = (want.normalized("/ctl"), got.normalized("/kv"));
        if want != got {
            mismatches.push(format!(
                "{}\n-- etcdctl:\n{want}\n-- musubi:\n{got}",
                args.join(" ")
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

/// Expected output that does not depend on etcdctl being installed (taken from it).
fn expect(run: Run, stdout: &str, stderr: &str, code: i32) {
    assert_eq!(
        (run.stdout.as_str(), run.stderr.as_str(), run.code),
        (stdout, stderr, code)
    );
}

#[test]
fn verbs_print_values_and_errors_with_etcdctl_exit_codes() {
    let Some(s) = bootstrap() else { return };
    let base = s.index();
    expect(s.kv(&["set", "/foo", "bar"]), "bar\n", "", 0);
    expect(s.kv(&["get", "/foo"]), "bar\n", "", 0);
    let exists = format!("Error:  105: Key already exists (/foo) [{}]\n", base + 1);
    expect(s.kv(&["mk", "/foo", "x"]), "", &exists, 4);
    expect(s.kv(&["mkdir", "/dir"]), "", "", 0);
    expect(s.kv(&["ls", "--sort", "-p"]), "/dir/\n/foo\n", "", 0);
    expect(s.kv(&["get", "/dir"]), "", "/dir: is a directory\n", 1);
    expect(
        s.kv(&["--format", "json", "get", "/foo"]).clone(),
        &format!(
            "{{\"action\":\"get\",\"node\":{{\"key\":\"/foo\",\"value\":\"bar\",\"nodes\":null,\"createdIndex\":{i},\"modifiedIndex\":{i}}},\"prevNode\":null}}\n",
            i = base + 1
        ),
        "",
        0,
    );
    expect(s.kv(&["rm", "/foo"]), "PrevNode.Value: bar\n", "", 0);
    expect(s.kv(&["rmdir", "/dir"]), "", "", 0);
    let missing = format!("Error:  100: Key not found (/foo) [{}]\n", base + 4);
    expect(s.kv(&["get", "/foo"]), "", &missing, 4);
    expect(s.kv(&["get"]), "", "Error:  key required\n", 1);
    expect(s.kv(&["set", "/foo"]), "", "Error:  value required\n", 1);
    assert_eq!(s.kv(&["no-such-verb"]).code, 3);
    assert_eq!(s.kv(&["get", "--no-such-flag", "/foo"]).code, 1);
}

#[test]
fn value_is_read_from_stdin_when_absent() {
    let Some(s) = bootstrap() else { return };
    let mut child = Command::new(env!("CARGO_BIN_EXE_musubi"))
        .args(["kv", "--endpoints", &s.url, "set", "/piped"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"from stdin\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from stdin\n\n");
    assert_eq!(s.kv(&["get", "/piped"]).stdout, "from stdin\n\n");
}

#[test]
fn unreachable_cluster_exits_2_and_the_next_endpoint_is_tried() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let musubi = || Command::new(env!("CARGO_BIN_EXE_musubi"));
    let r = run(musubi().args(["kv", "--endpoints", &dead, "get", "/x"]));
    let port = dead.trim_start_matches("http://");
    let why = format!("dial tcp {port}: connect: connection refused");
    let want = format!(
        "Error:  client: etcd cluster is unavailable or misconfigured; error #0: {why}\n\nerror #0: {why}\n\n"
    );
    expect(r, "", &want, 2);
    // Without the member-list sync, the failure is the request's own: exit 4.
    assert_eq!(
        run(musubi().args(["kv", "--no-sync", "--endpoints", &dead, "get", "/x"])).code,
        4
    );

    let Some(s) = bootstrap() else { return };
    s.kv(&["set", "/x", "y"]);
    let both = format!("{dead},{}", s.url);
    let r = run(musubi().args([
        "kv",
        "--no-sync",
        "--debug",
        "--endpoints",
        &both,
        "get",
        "/x",
    ]));
    assert_eq!(r.stdout, "y\n");
    assert_eq!(
        r.stderr.matches("cURL Command: curl -X GET").count(),
        2,
        "{}",
        r.stderr
    );
}

#[test]
fn watch_forever_prints_each_live_change() {
    let Some(s) = bootstrap() else { return };
    let mut watch = Command::new(env!("CARGO_BIN_EXE_musubi"))
        .args([
            "kv",
            "--endpoints",
            &s.url,
            "watch",
            "--forever",
            "--recursive",
            "/w",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    // The watch must be registered before the writes; give it a moment to connect.
    std::thread::sleep(Duration::from_millis(500));
    s.kv(&["set", "/w/a", "1"]);
    s.kv(&["mkdir", "/w/dir"]);
    s.kv(&["set", "/w/b", "2"]);
    s.kv(&["rm", "/w/a"]);
    std::thread::sleep(Duration::from_millis(500));
    watch.kill().expect("kill watch");
    let out = watch.wait_with_output().expect("wait");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "[set] /w/a\n1\n[set] /w/b\n2\n[delete] /w/a\nPrevNode.Value: 1\n"
    );
}

#[test]
fn exec_watch_runs_the_command_with_the_event_environment() {
    let Some(s) = bootstrap() else { return };
    // `--after-index 0` means "from now on", so replaying needs a base past index 0.
    s.kv(&["set", "/prime", "x"]);
    let base = s.index();
    s.kv(&["set", "/x/a", "1"]);
    s.kv(&["mkdir", "/x/dir"]);
    s.kv(&["rm", "/x/a"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events");
    let script = format!(
        "echo \"$ETCD_WATCH_ACTION $ETCD_WATCH_KEY '$ETCD_WATCH_VALUE' $ETCD_WATCH_MODIFIED_INDEX\" >> {}",
        log.display()
    );
    // Replaying history from the start makes the events certain without racing the writes.
    let mut exec = Command::new(env!("CARGO_BIN_EXE_musubi"))
        .args([
            "kv",
            "--endpoints",
            &s.url,
            "exec-watch",
            "--recursive",
            "--after-index",
        ])
        .arg(base.to_string())
        .args(["/x", "--", "sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn exec-watch");
    let deadline = Instant::now() + Duration::from_secs(10);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    while read().lines().count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    exec.kill().expect("kill exec-watch");
    let stderr = exec.wait_with_output().expect("wait").stderr;
    let mut lines: Vec<String> = read().lines().map(str::to_string).collect();
    // The commands run concurrently, so their appends may land in either order.
    lines.sort();
    let want = vec![
        format!("delete /x/a '' {}", base + 3),
        format!("set /x/a '1' {}", base + 1),
    ];
    assert_eq!(lines, want);
    assert_eq!(
        String::from_utf8_lossy(&stderr),
        "Ignored dir /x/dir change\n"
    );
}
