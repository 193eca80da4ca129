//! End-to-end tests: real collaborations launched with the real binary, real
//! managers and LPs (the example programs), real shared memory.
//!
//! The LP programs are the examples, which `cargo test --workspace` builds;
//! `cargo test --test e2e` alone does not rebuild them (run
//! `cargo build --examples` first in that case).

use shmcollab::runtime::wire::RingName;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shmcollab"))
}

/// An example program built next to the binary by `cargo test`.
fn example(name: &str) -> PathBuf {
    let p = bin().parent().unwrap().join("examples").join(name);
    assert!(p.exists(), "{} is not built", p.display());
    p
}

/// A temporary directory removed on drop, even when the test fails.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("shmc-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A launched collaboration; killed (with its process group's managers)
/// if the test ends without it having exited.
struct Launched {
    child: Option<Child>,
    name: String,
}
impl Launched {
    fn start(config: &Path, name: &str) -> Launched {
        let mut cmd = Command::new(bin());
        cmd.arg("launch").arg(config);
        Launched::spawn(cmd, name)
    }

    /// Run `cmd` (which runs `shmcollab launch` for collaboration `name`)
    /// with its output piped.
    fn spawn(mut cmd: Command, name: &str) -> Launched {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        Launched {
            child: Some(child),
            name: name.to_owned(),
        }
    }

    /// Wait for the end with a watchdog; returns (exit code, stdout, stderr).
    fn wait(mut self, limit: Duration) -> (i32, String, String) {
        let mut child = self.child.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = Command::new(bin()).args(["stop", &self.name]).output();
                let _ = child.kill();
                let _ = child.wait();
                let (o, e) = (t_out.join().unwrap(), t_err.join().unwrap());
                panic!(
                    "watchdog: {} did not finish in {limit:?}\nstdout:\n{o}\nstderr:\n{e}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (
            status.code().unwrap_or(-1),
            t_out.join().unwrap(),
            t_err.join().unwrap(),
        )
    }
}
impl Drop for Launched {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new(bin()).args(["stop", &self.name]).output();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn status_json(name: &str) -> Option<serde_json::Value> {
    let out: Output = Command::new(bin())
        .args(["status", name, "--json"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn lp_entry<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    v["lps"].as_array()?.iter().find(|l| l["name"] == name)
}

/// Poll the coordinator's view until `pred` holds (watchdog: 30 s).
fn wait_status(
    name: &str,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = status_json(name) {
            if pred(&v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: status of {name} never showed {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn unique(tag: &str) -> String {
    format!("{tag}{}", std::process::id())
}

/// Write `text` as `dir/config.toml`.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A pingpong collaboration: `ping` runs with `ping_args`, `pong` gets the
/// TOML line `pong_extra`; `pong_first` puts pong in slot 0 and ping in 1.
fn pingpong_config(
    dir: &Path,
    name: &str,
    ping_args: &[&str],
    pong_extra: &str,
    pong_first: bool,
) -> PathBuf {
    let ping = format!(
        "[[process]]\nname = \"ping\"\ncommand = {:?}\nhosts = [\"ping\"]\n",
        std::iter::once(example("pingpong-ping").display().to_string())
            .chain(ping_args.iter().map(|a| a.to_string()))
            .collect::<Vec<_>>()
    );
    let pong = format!(
        "[[process]]\nname = \"pong\"\ncommand = [{:?}]\nhosts = [\"pong\"]\n{pong_extra}\n",
        example("pingpong-pong").display().to_string()
    );
    let (first, second) = if pong_first {
        (pong, ping)
    } else {
        (ping, pong)
    };
    write_config(
        dir,
        &format!(
            "name = \"{name}\"\nreport_interval_ms = 20\n[[subfunction]]\nname = \"ping\"\n[[subfunction]]\nname = \"pong\"\n{first}{second}"
        ),
    )
}

// ---------------------------------------------------------------------------

#[test]
fn wordcount_matches_a_count_made_here() {
    let dir = TempDir::new("wc");
    // A generated text with a known count.
    let vocab: Vec<String> = (0..300)
        .map(|i| format!("w{}x{}", i * 7919 % 1000, i % 13))
        .collect();
    let mut text = String::new();
    let mut want = std::collections::BTreeMap::<String, u64>::new();
    let mut x: u64 = 12345;
    for i in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Skewed: low indexes far more frequent.
        let k = ((x % 300) * (x % 300) / 300) as usize;
        let w = &vocab[k];
        text.push_str(w);
        text.push(if i % 11 == 10 { '\n' } else { ' ' });
        *want.entry(w.clone()).or_default() += 1;
    }
    std::fs::write(dir.0.join("text.txt"), &text).unwrap();
    let out_file = dir.0.join("counts.txt");
    let name = unique("wc");
    let cfg = format!(
        r#"
name = "{name}"
report_interval_ms = 100
[[subfunction]]
name = "split"
[[subfunction]]
name = "count"
partitions = 8
[[process]]
name = "splitter"
command = ["{splitter}", "text.txt"]
hosts = ["split"]
env = {{ WC_OUT = "{out}" }}
[[process]]
name = "counter"
instances = 4
command = ["{counter}"]
hosts = ["count/*"]
"#,
        splitter = example("wordcount-splitter").display(),
        counter = example("wordcount-counter").display(),
        out = out_file.display(),
    );
    let cfg_path = write_config(&dir.0, &cfg);
    let (code, stdout, stderr) = Launched::start(&cfg_path, &name).wait(Duration::from_secs(120));
    assert_eq!(
        code, 0,
        "launch failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let got: std::collections::BTreeMap<String, u64> = std::fs::read_to_string(&out_file)
        .unwrap()
        .lines()
        .map(|l| {
            let (w, n) = l.rsplit_once(' ').unwrap();
            (w.to_owned(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(got, want, "per-word counts differ");
    // The printed top 10, prefixed with the LP's name.
    let mut top: Vec<(&String, &u64)> = want.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let printed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("splitter"))
        .collect();
    for (w, n) in top.iter().take(10) {
        let line = format!("{n:>8} {w}");
        assert!(
            printed.iter().any(|l| l.ends_with(&line)),
            "top-10 line {line:?} missing from:\n{stdout}"
        );
    }
    assert!(
        printed
            .iter()
            .any(|l| l.contains("20000 words sent, 20000 counted")),
        "{stdout}"
    );
}

#[test]
fn pong_killed_mid_stream_loses_nothing() {
    let dir = TempDir::new("kill");
    let log = dir.0.join("pong.log");
    let name = unique("pk");
    const N: u64 = 30_000;
    let n = N.to_string();
    // pong in slot 0, ping in slot 1: a reply reaches ping only because its
    // manager stamped the request with ping's slot.
    let cfg_path = pingpong_config(
        &dir.0,
        &name,
        &["stream", &n],
        &format!("env = {{ PONG_LOG = {:?} }}", log.display().to_string()),
        true,
    );
    let run = Launched::start(&cfg_path, &name);
    // Once messages flow, kill the receiving LP with SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) < 8 * 2000 {
        assert!(
            Instant::now() < deadline,
            "watchdog: no traffic reached pong"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let v = wait_status(&name, "pong's pid", |v| {
        lp_entry(v, "pong").is_some_and(|p| p["pid"].as_u64().is_some())
    });
    let pid = lp_entry(&v, "pong").unwrap()["pid"].as_u64().unwrap();
    let before = std::fs::metadata(&log).unwrap().len() / 8;
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (code, stdout, stderr) = run.wait(Duration::from_secs(120));
    assert_eq!(
        code, 0,
        "launch failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        before < N,
        "the kill came after the stream ended; make N larger"
    );
    assert!(
        stderr.contains("pong exited (signal: 9"),
        "no restart seen:\n{stderr}"
    );
    let bytes = std::fs::read(&log).unwrap();
    let mut seen = vec![false; N as usize];
    for c in bytes.chunks_exact(8) {
        let i = u64::from_le_bytes(c.try_into().unwrap());
        assert!(i < N, "pong logged {i}, never sent");
        seen[i as usize] = true;
    }
    let missing: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| !**s)
        .map(|(i, _)| i)
        .collect();
    // And in order: one step back at most, where the restarted pong got
    // again what its predecessor had not released; +1 everywhere else.
    let logged: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let odd: Vec<(usize, u64, u64)> = logged
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] != w[0] + 1)
        .map(|(i, w)| (i, w[0], w[1]))
        .collect();
    assert!(
        odd.len() <= 1 && odd.iter().all(|&(_, a, b)| b <= a),
        "out of order (position, previous, next): {:?}",
        &odd[..odd.len().min(10)]
    );
    assert!(
        missing.is_empty(),
        "{} messages lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

/// A pingpong whose ping (slot 0) waits for the file `go` before 100 round
/// trips, launched and both LPs ready: (launch, go file, session dir).
fn idle_pingpong(dir: &TempDir, name: &str) -> (Launched, PathBuf, PathBuf) {
    let go = dir.0.join("go");
    let go_arg = go.display().to_string();
    let cfg_path = pingpong_config(&dir.0, name, &["wait", &go_arg], "", false);
    let run = Launched::start(&cfg_path, name);
    wait_status(name, "both LPs ready", |v| {
        ["ping", "pong"]
            .iter()
            .all(|n| lp_entry(v, n).is_some_and(|l| l["state"] == "ready"))
    });
    let sdir = session_dirs(name).pop().expect("session directory");
    (run, go, sdir)
}

/// Let ping of an `idle_pingpong` go and wait for the collaboration to end
/// with exit code 0; returns ping's (stdout, stderr).
fn go_and_finish(run: Launched, go: &Path) -> (String, String) {
    std::fs::write(go, b"go").unwrap();
    let (code, stdout, stderr) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}

/// The segment names in session directory `sdir`.
fn segment_names(sdir: &Path) -> Vec<String> {
    std::fs::read_dir(sdir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect()
}

/// A DATA frame to `dst` with sequence `seq`, well formed (valid CRC) but
/// sealed with no key: a made-up tag.
fn forged_frame(seq: u64, dst: u32) -> Vec<u8> {
    use shmcollab::shm::frame::{kind, FrameHeader};
    let hdr = FrameHeader {
        version: 1,
        kind: kind::DATA,
        payload_len: 16,
        seq,
        dst,
        ..Default::default()
    };
    let mut frame = hdr.encode().to_vec();
    frame.extend_from_slice(&[0x41u8; 16]);
    frame.extend_from_slice(&[0x99; 16]);
    let mut crc = crc32c::crc32c(&frame[..28]);
    crc = crc32c::crc32c_append(crc, &frame[32..]);
    frame[28..32].copy_from_slice(&crc.to_le_bytes());
    frame
}

#[test]
fn forged_frame_is_rejected_counted_and_the_collaboration_goes_on() {
    use shmcollab::shm::ring::{open_ring, Producer};
    use shmcollab::shm::segment::Session;
    let dir = TempDir::new("forge");
    let name = unique("fg");
    let (run, go, sdir) = idle_pingpong(&dir, &name);
    // ping (slot 0) is idle now, waiting for the go file: write a forged
    // frame into its outbound ring.
    let ring = segment_names(&sdir)
        .into_iter()
        .find(|n| matches!(RingName::parse(n), Some(RingName::LpOut { slot: 0, .. })))
        .expect("ping's outbound ring");
    let session = Session::open(&sdir).unwrap();
    let mut p = Producer::attach(&open_ring(&session, &ring).unwrap(), None).unwrap();
    // Sequence 1: ping sent its READY as 0.
    p.try_send(&forged_frame(1, 1)).unwrap();
    drop(p);
    let v = wait_status(&name, "the forged frame counted", |v| {
        lp_entry(v, "ping").is_some_and(|l| l["auth_failures"].as_u64() >= Some(1))
            && lp_entry(v, "pong").is_some_and(|l| l["msgs_in"].is_u64())
    });
    let l = lp_entry(&v, "ping").unwrap();
    assert_eq!(l["rejected"]["forged"], 1, "{l}");
    assert_eq!(l["auth_failures"], 1, "{l}");
    // pong never saw it.
    assert_eq!(lp_entry(&v, "pong").unwrap()["msgs_in"], 0);
    // The collaboration goes on: ping now does real round trips and ends.
    let (stdout, _) = go_and_finish(run, &go);
    assert!(stdout.contains("round trips of 64 B"), "{stdout}");
}

/// In an `idle_pingpong` session: the name of the direct ring from ping's
/// manager (slot 0) into pong (slot 1), and the doorbell pong waits on
/// (its main ring's), which that ring's writer rings.
fn direct_ring_into_pong(sdir: &Path) -> (String, shmcollab::shm::ring::BellRef) {
    use shmcollab::shm::ring::{data_bell_ref, open_ring};
    use shmcollab::shm::segment::Session;
    let names = segment_names(sdir);
    let direct = names
        .iter()
        .find(|n| {
            matches!(
                RingName::parse(n),
                Some(RingName::Direct { from: 0, lp: 1, .. })
            )
        })
        .unwrap_or_else(|| panic!("no direct ring into pong among {names:?}"));
    let main_in = names
        .iter()
        .find(|n| matches!(RingName::parse(n), Some(RingName::LpIn { slot: 1, .. })))
        .expect("pong's inbound ring");
    let session = Session::open(sdir).unwrap();
    let bell = data_bell_ref(&open_ring(&session, main_in).unwrap()).unwrap();
    (direct.clone(), bell)
}

/// A frame forged into a direct ring (manager a -> LP b, the 4-hop path)
/// is rejected by LP b, counted in its status, and the ring still works.
#[test]
fn forged_frame_in_a_direct_ring_is_rejected_and_counted() {
    use shmcollab::shm::ring::{open_ring, Producer};
    use shmcollab::shm::segment::Session;
    let dir = TempDir::new("forged");
    let name = unique("fd");
    let (run, go, sdir) = idle_pingpong(&dir, &name);
    // ping (slot 0) waits for the go file, so its manager writes nothing
    // into pong's (slot 1) direct ring from it: the test may.
    let (direct, bell) = direct_ring_into_pong(&sdir);
    let session = Session::open(&sdir).unwrap();
    let mut p = Producer::attach(&open_ring(&session, &direct).unwrap(), Some(bell)).unwrap();
    p.try_send(&forged_frame(0, 1)).unwrap();
    drop(p);
    let v = wait_status(&name, "the forged frame counted", |v| {
        lp_entry(v, "pong").is_some_and(|l| l["auth_failures"].as_u64() >= Some(1))
    });
    let l = lp_entry(&v, "pong").unwrap();
    assert_eq!(l["auth_failures"], 1, "{l}");
    // Counted by the LP on its direct ring, told to its manager in STATS,
    // and broken down like the manager's own rejects.
    assert_eq!(l["rejected"]["forged"], 1, "{l}");
    assert_eq!(l["msgs_in"], 0, "{l}");
    // The ring still carries ping's real requests.
    let (stdout, _) = go_and_finish(run, &go);
    assert!(stdout.contains("100 round trips of 64 B"), "{stdout}");
}

/// Garbage in a direct ring's indices: the LP hands the ring to its
/// manager, which counts it, drops it and sends the writer back to the
/// 6-hop path; messages sent afterwards still arrive.
#[test]
fn corrupt_direct_ring_is_dropped_and_traffic_goes_the_long_way() {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new("corrupt");
    let name = unique("cr");
    let (run, go, sdir) = idle_pingpong(&dir, &name);
    let (direct, bell) = direct_ring_into_pong(&sdir);
    // The ring's tail index (segment header 128 bytes, then the ring's
    // meta and head lines of 128 bytes each): a misaligned position.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(sdir.join(&direct))
        .unwrap();
    f.write_all_at(&3u64.to_le_bytes(), 128 + 256).unwrap();
    drop(f);
    bell.get().notify();
    let v = wait_status(&name, "the corrupt ring counted", |v| {
        lp_entry(v, "pong").is_some_and(|l| l["bad_rings"].as_u64() >= Some(1))
    });
    assert_eq!(lp_entry(&v, "pong").unwrap()["msgs_in"], 0);
    // ping's requests now go through pong's manager, and all get answers.
    let (stdout, stderr) = go_and_finish(run, &go);
    assert!(stdout.contains("100 round trips of 64 B"), "{stdout}");
    assert!(stderr.contains("cannot read the direct ring"), "{stderr}");
}

#[test]
fn bad_config_exits_2_and_names_the_line() {
    let dir = TempDir::new("badcfg");
    let cfg_path = write_config(
        &dir.0,
        "name = \"bad\"\n[[subfunction]]\nname = \"a\"\n[[process]]\nname = \"p\"\ncommand = [\"true\"]\nhosts = [\"a\"]\ninstances = \"many\"\n",
    );
    let out = Command::new(bin())
        .arg("launch")
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml:8:"), "no line 8 in: {err}");
    assert!(err.contains("instances"), "field not named: {err}");
}

#[allow(dead_code)]
fn lines(r: impl Read) -> Vec<String> {
    BufReader::new(r).lines().map_while(Result::ok).collect()
}

fn idle_config(dir: &Path, name: &str, n: usize) -> PathBuf {
    let cfg = format!(
        r#"
name = "{name}"
report_interval_ms = 20
grace_ms = 2000
[[subfunction]]
name = "w"
partitions = {n}
[[process]]
name = "worker"
instances = {n}
command = ["{idle}"]
hosts = ["w"]
restart = "permanent"
"#,
        idle = example("idle").display(),
    );
    write_config(dir, &cfg)
}

fn session_dirs(name: &str) -> Vec<PathBuf> {
    let shm = std::env::var_os("SHMCOLAB_SHM_ROOT")
        .map(PathBuf::from)
        .unwrap_or("/dev/shm".into());
    std::fs::read_dir(shm)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("shmc.{name}."))
        })
        .collect()
}

fn all_ready(v: &serde_json::Value, n: usize) -> bool {
    v["lps"].as_array().is_some_and(|a| {
        a.len() == n && a.iter().all(|l| l["state"] == "ready" && l["pid"].is_u64())
    })
}

/// `shmcollab status` shows every LP, its sub-functions and the coordinator;
/// `shmcollab stop` ends the collaboration with exit code 0, stops every
/// process and removes the session.
#[test]
fn status_then_stop_removes_everything() {
    let dir = TempDir::new("stop");
    let name = unique("st");
    let cfg = idle_config(&dir.0, &name, 3);
    let run = Launched::start(&cfg, &name);
    let v = wait_status(&name, "3 ready LPs, worker.0 coordinating", |v| {
        all_ready(v, 3) && v["coordinator"]["name"] == "worker.0"
    });
    let pids: Vec<u64> = v["lps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| {
            [
                l["pid"].as_u64().unwrap(),
                l["manager_pid"].as_u64().unwrap(),
            ]
        })
        .collect();
    assert_eq!(v["coordinator"]["name"], "worker.0");
    let table = Command::new(bin())
        .args(["status", &name])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    for lp in [
        "worker.0",
        "worker.1",
        "worker.2",
        "w/0",
        "w/2",
        "coordinator: worker.0",
    ] {
        assert!(table.contains(lp), "{lp} missing from:\n{table}");
    }
    let stop = Command::new(bin()).args(["stop", &name]).output().unwrap();
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let (code, _out, err) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    assert!(session_dirs(&name).is_empty(), "session left behind");
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} survived the stop"
        );
    }
}

/// A manager killed with SIGKILL is restarted by the supervisor; the new one
/// starts its LP again, the others rediscover it, and when the coordinator's
/// manager was the one killed, the role moves on with a new epoch.
#[test]
fn killed_manager_is_restarted_and_rediscovered() {
    let dir = TempDir::new("mgr");
    let name = unique("mk");
    let cfg = idle_config(&dir.0, &name, 2);
    let run = Launched::start(&cfg, &name);
    // "auto": the lowest live slot coordinates, whichever registered first.
    let v = wait_status(&name, "2 ready LPs, worker.0 coordinating", |v| {
        all_ready(v, 2) && v["coordinator"]["name"] == "worker.0"
    });
    let epoch = v["coordinator"]["epoch"].as_u64().unwrap();
    let w0 = lp_entry(&v, "worker.0").unwrap().clone();
    let old_mgr = w0["manager_pid"].as_u64().unwrap();
    let old_lp = w0["pid"].as_u64().unwrap();
    assert!(Command::new("kill")
        .args(["-9", &old_mgr.to_string()])
        .status()
        .unwrap()
        .success());
    let v = wait_status(
        &name,
        "worker.0 back with a new manager, coordinating again",
        |v| {
            all_ready(v, 2)
                && v["coordinator"]["name"] == "worker.0"
                && lp_entry(v, "worker.0").is_some_and(|l| {
                    l["manager_pid"].as_u64().is_some_and(|p| p != old_mgr)
                        && l["generation"].as_u64() >= Some(2)
                })
        },
    );
    assert!(v["coordinator"]["epoch"].as_u64().unwrap() > epoch, "{v}");
    // Its LP died with it (PR_SET_PDEATHSIG) and was started anew.
    let new_lp = lp_entry(&v, "worker.0").unwrap()["pid"].as_u64().unwrap();
    assert_ne!(new_lp, old_lp);
    let _ = Command::new(bin()).args(["stop", &name]).output();
    let (code, _out, err) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("manager of worker.0 died"), "{err}");
}

/// An LP that keeps failing exhausts its restarts: launch stops everything
/// and exits non-zero with a one-line reason.
#[test]
fn lp_failing_for_good_fails_the_launch() {
    let dir = TempDir::new("fail");
    let name = unique("fl");
    let cfg = format!(
        r#"
name = "{name}"
[[subfunction]]
name = "a"
[[subfunction]]
name = "b"
[[process]]
name = "steady"
command = ["{idle}"]
hosts = ["a"]
[[process]]
name = "crashy"
command = ["false"]
hosts = ["b"]
restart = "permanent"
max_restarts = 2
within_secs = 30
"#,
        idle = example("idle").display(),
    );
    let p = write_config(&dir.0, &cfg);
    let (code, _out, err) = Launched::start(&p, &name).wait(Duration::from_secs(60));
    assert_eq!(code, 1, "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.contains("crashy failed for good"),
        "last line: {last:?}\n{err}"
    );
    assert!(session_dirs(&name).is_empty(), "session left behind");
}

/// Messages to an LP that ended for good neither block the sender nor
/// vanish: they are dropped and counted in the sender's state report.
#[test]
fn messages_to_a_finished_lp_are_counted_not_blocking() {
    let dir = TempDir::new("after");
    let go = dir.0.join("go");
    let name = unique("af");
    let go_arg = go.display().to_string();
    let p = pingpong_config(&dir.0, &name, &["afterlife", "50000", &go_arg], "", false);
    let run = Launched::start(&p, &name);
    // 50000 messages are far more than the rings and queues towards pong
    // would hold if they were kept: ping finishing them proves no blocking.
    let v = wait_status(&name, "ping done sending, its drops counted", |v| {
        lp_entry(v, "ping").is_some_and(|l| {
            l["custom"]["sent_after_pong"] == "50000" && l["dropped"].as_u64() >= Some(50000)
        })
    });
    assert_eq!(lp_entry(&v, "pong").unwrap()["state"], "exited", "{v}");
    std::fs::write(&go, b"go").unwrap();
    let (code, _out, err) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
}

/// The CPUs a process may run on, from `/proc/<pid>/status`
/// (`Cpus_allowed_list`, e.g. "0-1,4").
fn cpus_of(pid: &str) -> Option<Vec<usize>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut out = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// With more processes than CPUs, LPs go to one half of the CPUs and
/// managers to the other once ready; an LP that computes without pause is
/// then let onto every CPU, and one that sleeps stays where it was put.
#[test]
fn cpu_bound_lps_are_let_onto_every_cpu() {
    let dir = TempDir::new("place");
    let name = unique("pl");
    let cfg = write_config(
        &dir.0,
        &format!(
            r#"
name = "{name}"
report_interval_ms = 20
grace_ms = 500
[[subfunction]]
name = "burn"
partitions = 3
[[subfunction]]
name = "calm"
[[process]]
name = "burner"
instances = 3
command = ["{idle}", "burn"]
hosts = ["burn/*"]
restart = "temporary"
[[process]]
name = "calm"
command = ["{idle}"]
hosts = ["calm"]
restart = "temporary"
"#,
            idle = example("idle").display(),
        ),
    );
    // Launched on (at most) two CPUs, so that 4 LPs and 4 managers are more
    // processes than CPUs on any machine with two or more.
    let mine = cpus_of("self").unwrap();
    let all: Vec<usize> = mine.iter().copied().take(2).collect();
    let split = all.len() == 2;
    let (lp_cpus, mgr_cpus) = all.split_at(all.len().div_ceil(2));
    let list = all
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut taskset = Command::new("taskset");
    taskset
        .args(["-c", &list])
        .arg(bin())
        .arg("launch")
        .arg(&cfg);
    let run = Launched::spawn(taskset, &name);
    // Placed once ready: from here the burners are on the LPs' CPUs until
    // the governor lets them out (which it prints).
    let v = wait_status(&name, "4 ready LPs", |v| all_ready(v, 4));
    let lps: Vec<(String, String, String)> = v["lps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["pid"].to_string(),
                l["manager_pid"].to_string(),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let burners_wide = lps
            .iter()
            .filter(|(n, _, _)| n.starts_with("burner"))
            .all(|(_, pid, _)| cpus_of(pid).as_deref() == Some(&all[..]));
        if !split || burners_wide {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "burners never got every CPU: {:?}",
            lps.iter()
                .map(|(n, p, _)| (n, cpus_of(p)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for (n, pid, mpid) in &lps {
        let (want_mgr, want_calm) = if split {
            (mgr_cpus, lp_cpus)
        } else {
            (&all[..], &all[..])
        };
        assert_eq!(cpus_of(mpid).as_deref(), Some(want_mgr), "manager of {n}");
        if n == "calm" {
            assert_eq!(
                cpus_of(pid).as_deref(),
                Some(want_calm),
                "calm, an LP that sleeps"
            );
        }
    }
    let stop = Command::new(bin()).args(["stop", &name]).output().unwrap();
    assert!(stop.status.success());
    let (_code, _out, err) = run.wait(Duration::from_secs(60));
    if split {
        assert!(err.contains("burner.0 is CPU-bound"), "{err}");
        assert!(!err.contains("calm is CPU-bound"), "{err}");
    }
}
