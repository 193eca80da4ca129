//! `cd benches/compare && cargo run --release`
//!
//! Two-process round trip of one message (64 B and 1 KiB), side by side:
//! * shmcollab: a pair of rings, default adaptive wait (mirrors
//!   `shm/benches/ring.rs`, `ring_rtt` / `child_ring_echo`);
//! * iceoryx2 0.10: two publish-subscribe services (`ping` parent→child,
//!   `pong` child→parent) with a fixed-size payload, both sides busy-polling
//!   `receive()`.
//!
//! `cargo run --release -- lat`: the round trip at every load, 64 B, back to
//! back and paced at one request per 100 µs, 1 ms and 10 ms (the pacing code
//! of `ping paced`, `examples/pingpong/pace.rs`), 3 alternating rounds,
//! medians, with p50 / p99 / p99.9 and the CPU time of all the processes
//! involved per round trip:
//! * `iceoryx2_blocking`: iceoryx2 0.10 publish-subscribe (`[u8; 64]`) plus
//!   an event service each way; the sender publishes, then notifies; the
//!   receiver sleeps in `Listener::blocking_wait` until notified;
//! * `shmcollab`: the LP pair of `examples/pingpong` through its managers,
//!   launched with the workspace's release `shmcollab` (`ping paced`), its
//!   CPU that of the supervisor, both managers and both LPs;
//! * `unix_socket_1cpu` / `unix_socket_2cpu`: the e2e bench's socket
//!   baseline pinned to one CPU / two, the better one (lower p50) as
//!   `unix_socket`.
//!
//! No argument runs both parts; `poll` only the first.
//!
//! The child side is this binary re-executed with `SHMC_COMPARE_CHILD`
//! (`SHMC_BENCH_CHILD=sock_echo` for the socket's echo child).
//! `SHMC_BENCH_QUICK=1` shrinks the counts (smoke test).
//!
//! iceoryx2 gets its own root directory and file prefix for this run (both
//! carry the pid), and whatever it leaves there or in `/dev/shm` under that
//! prefix is removed at the end. A watchdog kills the child and exits
//! non-zero if one measurement takes more than 60 s or the child dies early.

#[path = "../../../shm/benches/common.rs"]
mod common;

use common::pace::{self, Pacer, Summary};
use common::{LatRow, Placement, Row};
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::{
    ipc, set_log_level, Config, FileName, LogLevel, Node, NodeBuilder, Path as IoxPath,
    SemanticString, SignalHandlingMode,
};
use iceoryx2::service::port_factory::event::PortFactory as EventFactory;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use shmcollab_shm::ring::{create_ring, Consumer, Producer};
use shmcollab_shm::segment::Session;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error>>;

const ROLE_ENV: &str = "SHMC_COMPARE_CHILD";
const ARG_ENV: &str = "SHMC_COMPARE_ARG";
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn quick() -> bool {
    std::env::var_os("SHMC_BENCH_QUICK").is_some()
}

fn label(size: usize) -> String {
    if size >= 1024 {
        format!("{}k", size / 1024)
    } else {
        size.to_string()
    }
}

// ---- watchdog ------------------------------------------------------------

/// What the watchdog looks after while one measurement runs.
struct Guarded {
    what: String,
    pid: i32,
    deadline: Instant,
    /// Set just before the parent tells the child to stop: from then on the
    /// child exiting is expected.
    stopping: bool,
}

#[derive(Default)]
struct Watch {
    run: Option<Guarded>,
    /// Left-overs to remove if the watchdog has to end the process.
    cleanup_dirs: Vec<PathBuf>,
    /// Prefixes of entries in /dev/shm to remove then (iceoryx2's files,
    /// the launched collaborations' session directories).
    shm_prefixes: Vec<String>,
}

fn watch() -> &'static Mutex<Watch> {
    static W: OnceLock<Mutex<Watch>> = OnceLock::new();
    W.get_or_init(|| {
        std::thread::spawn(watchdog);
        Mutex::new(Watch::default())
    })
}

fn watch_start(what: &str, pid: i32) {
    watch().lock().unwrap().run = Some(Guarded {
        what: what.into(),
        pid,
        deadline: Instant::now() + RUN_LIMIT,
        stopping: false,
    });
}

fn watch_stopping() {
    if let Some(g) = watch().lock().unwrap().run.as_mut() {
        g.stopping = true;
    }
}

fn watch_end() {
    watch().lock().unwrap().run = None;
}

/// True if `pid` has exited (without reaping it: the main thread does that).
fn exited(pid: i32) -> bool {
    // SAFETY: a zeroed siginfo_t is a valid out-buffer for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall on our own child; WNOWAIT leaves it unreaped.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled `info` (or left it zeroed, giving pid 0).
    r == 0 && unsafe { info.si_pid() } == pid
}

fn watchdog() {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let w = watch().lock().unwrap();
        let Some(g) = &w.run else { continue };
        let why = if Instant::now() > g.deadline {
            format!("took more than {} s", RUN_LIMIT.as_secs())
        } else if !g.stopping && exited(g.pid) {
            "child exited early".to_string()
        } else {
            continue;
        };
        eprintln!(
            "compare: watchdog: {}: {why}; killing child {}",
            g.what, g.pid
        );
        // SAFETY: signalling and reaping our own child process.
        unsafe {
            libc::kill(g.pid, libc::SIGKILL);
            libc::waitpid(g.pid, std::ptr::null_mut(), 0);
        }
        for d in &w.cleanup_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        for p in &w.shm_prefixes {
            remove_shm_prefixed(p);
        }
        std::process::exit(2);
    }
}

/// The echo child; killed and reaped on drop unless `finish` reaped it.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn pid(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Wait for the child to exit on its own (after it was told to stop).
    fn finish(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.0.as_mut().expect("child").wait();
        self.0 = None;
        status
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        watch_end();
    }
}

fn spawn_child(what: &str, role: &str, arg: &str) -> ChildGuard {
    let child = Command::new(std::env::current_exe().unwrap())
        .env(ROLE_ENV, role)
        .env(ARG_ENV, arg)
        .spawn()
        .unwrap();
    let g = ChildGuard(Some(child));
    watch_start(what, g.pid());
    g
}

/// In the child: die with the parent.
fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } == 1 {
        std::process::exit(3);
    }
}

// ---- shmcollab -----------------------------------------------------------

fn ring_rtt(size: usize, iters: usize) -> Row {
    let bench = format!("rtt_{}", label(size));
    let s = Session::create(&format!("compare-rtt-{}", std::process::id())).unwrap();
    watch()
        .lock()
        .unwrap()
        .cleanup_dirs
        .push(s.dir().to_path_buf());
    let mut tx = Producer::attach(&create_ring(&s, "ping", 1 << 16).unwrap(), None).unwrap();
    let mut rx = Consumer::attach(&create_ring(&s, "pong", 1 << 16).unwrap()).unwrap();
    let mut child = spawn_child(
        &format!("{bench} shmcollab"),
        "ring_echo",
        s.dir().to_str().unwrap(),
    );
    let mut samples = common::ring_rtt_samples(&mut tx, &mut rx, size, iters);
    watch_stopping();
    tx.send(&[]).unwrap();
    let status = child.finish().unwrap();
    assert!(status.success(), "shmcollab echo child failed: {status}");
    drop(child);
    let dir = s.dir().to_path_buf();
    drop((tx, rx, s));
    watch().lock().unwrap().cleanup_dirs.retain(|d| *d != dir);
    Row::latency(&bench, "shmcollab", &mut samples)
}

// ---- iceoryx2 ------------------------------------------------------------

/// iceoryx2's settings for this run: its own root dir and file prefix.
#[derive(Clone)]
struct IoxEnv {
    root: String,
    prefix: String,
}

impl IoxEnv {
    fn new() -> IoxEnv {
        let pid = std::process::id();
        IoxEnv {
            root: format!("/tmp/shmc-compare-iox2-{pid}/"),
            prefix: format!("shmccmp{pid}_"),
        }
    }

    fn to_arg(&self, size: usize) -> String {
        format!("{}|{}|{}", self.root, self.prefix, size)
    }

    fn from_arg(arg: &str) -> (IoxEnv, usize) {
        let mut it = arg.split('|');
        let root = it.next().unwrap().to_string();
        let prefix = it.next().unwrap().to_string();
        let size = it.next().unwrap().parse().unwrap();
        (IoxEnv { root, prefix }, size)
    }

    fn config(&self) -> Res<Config> {
        let mut c = Config::default();
        c.global.set_root_path(&IoxPath::new(self.root.as_bytes())?);
        c.global.prefix = FileName::new(self.prefix.as_bytes())?;
        Ok(c)
    }

    fn node(&self) -> Res<Node<ipc::Service>> {
        Ok(NodeBuilder::new()
            .config(&self.config()?)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()?)
    }

    /// Remove what iceoryx2 left: its root dir and its files in /dev/shm.
    fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
        remove_shm_prefixed(&self.prefix);
    }
}

fn remove_shm_prefixed(prefix: &str) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir("/dev/shm") {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                let _ = std::fs::remove_file(e.path());
                let _ = std::fs::remove_dir_all(e.path());
                n += 1;
            }
        }
    }
    n
}

type Pub<const N: usize> = Publisher<ipc::Service, [u8; N], ()>;
type Sub<const N: usize> = Subscriber<ipc::Service, [u8; N], ()>;

/// Open (or create) one of the two services, sized for ping-pong: one
/// publisher, one subscriber, a buffer of 2, no history.
fn iox_service<const N: usize>(
    node: &Node<ipc::Service>,
    name: &str,
) -> Res<PortFactory<ipc::Service, [u8; N], ()>> {
    Ok(node
        .service_builder(&name.try_into()?)
        .publish_subscribe::<[u8; N]>()
        .max_publishers(1)
        .max_subscribers(1)
        .max_nodes(2)
        .history_size(0)
        .subscriber_max_buffer_size(2)
        .subscriber_max_borrowed_samples(1)
        .open_or_create()?)
}

fn iox_ports<const N: usize>(
    node: &Node<ipc::Service>,
    tx_name: &str,
    rx_name: &str,
) -> Res<(Pub<N>, Sub<N>)> {
    let tx = iox_service::<N>(node, tx_name)?;
    let rx = iox_service::<N>(node, rx_name)?;
    let publisher = tx.publisher_builder().max_loaned_samples(1).create()?;
    let subscriber = rx.subscriber_builder().buffer_size(2).create()?;
    Ok((publisher, subscriber))
}

fn service_names(size: usize) -> (String, String) {
    (
        format!("shmc_compare/rtt_{size}/ping"),
        format!("shmc_compare/rtt_{size}/pong"),
    )
}

/// Payload byte 0: 0xab data, 0x00 stop, 0x01 ready (child → parent).
const DATA: u8 = 0xab;
const STOP: u8 = 0x00;
const READY: u8 = 0x01;

fn child_iox_echo<const N: usize>(env: &IoxEnv) -> Res<()> {
    let node = env.node()?;
    let (ping, pong) = service_names(N);
    let (tx, rx) = iox_ports::<N>(&node, &pong, &ping)?;
    // Our subscriber exists now: tell the parent it may start.
    tx.send_copy([READY; N])?;
    loop {
        let Some(sample) = rx.receive()? else {
            std::hint::spin_loop();
            continue;
        };
        if sample.payload()[0] == STOP {
            return Ok(());
        }
        tx.loan_uninit()?.write_payload(*sample.payload()).send()?;
    }
}

fn iox_rtt<const N: usize>(env: &IoxEnv, iters: usize) -> Res<Row> {
    let bench = format!("rtt_{}", label(N));
    let node = env.node()?;
    let (ping, pong) = service_names(N);
    let (tx, rx) = iox_ports::<N>(&node, &ping, &pong)?;
    let mut child = spawn_child(&format!("{bench} iceoryx2"), "iox_echo", &env.to_arg(N));
    // Wait for the child's "ready" (sent once its subscriber exists).
    loop {
        if let Some(s) = rx.receive()? {
            assert_eq!(s.payload()[0], READY);
            break;
        }
        std::thread::yield_now();
    }
    let msg = [DATA; N];
    let warm = iters / 10;
    let mut samples = Vec::with_capacity(iters);
    for i in 0..warm + iters {
        let t = Instant::now();
        tx.loan_uninit()?.write_payload(msg).send()?;
        loop {
            if let Some(s) = rx.receive()? {
                debug_assert_eq!(s.payload()[N - 1], DATA);
                break;
            }
            std::hint::spin_loop();
        }
        if i >= warm {
            samples.push(t.elapsed().as_nanos() as u64);
        }
    }
    watch_stopping();
    tx.send_copy([STOP; N])?;
    let status = child.finish()?;
    drop(child);
    if !status.success() {
        return Err(format!("iceoryx2 echo child failed: {status}").into());
    }
    drop((tx, rx, node));
    Ok(Row::latency(&bench, "iceoryx2", &mut samples))
}

// ---- iceoryx2 with its blocking wait ---------------------------------------

type EvFactory = EventFactory<ipc::Service>;

fn iox_event(node: &Node<ipc::Service>, name: &str) -> Res<EvFactory> {
    Ok(node
        .service_builder(&name.try_into()?)
        .event()
        .open_or_create()?)
}

/// The blocking variant's services: publish-subscribe `ping` / `pong` and an
/// event service beside each.
fn blocking_names(size: usize) -> [String; 4] {
    let b = format!("shmc_compare/blk_rtt_{size}");
    [
        format!("{b}/ping"),
        format!("{b}/pong"),
        format!("{b}/ping_ev"),
        format!("{b}/pong_ev"),
    ]
}

/// One end's ports: publisher and notifier out, subscriber and listener in.
struct BlockingEnd<const N: usize> {
    tx: Pub<N>,
    rx: Sub<N>,
    notifier: Notifier<ipc::Service>,
    listener: Listener<ipc::Service>,
}

impl<const N: usize> BlockingEnd<N> {
    /// `parent`: publishes on ping, listens on pong_ev; the child the other
    /// way round.
    fn new(node: &Node<ipc::Service>, parent: bool) -> Res<BlockingEnd<N>> {
        let [ping, pong, ping_ev, pong_ev] = blocking_names(N);
        let (tx, rx, ntf, lsn) = if parent {
            (ping, pong, ping_ev, pong_ev)
        } else {
            (pong, ping, pong_ev, ping_ev)
        };
        let (tx, rx) = iox_ports::<N>(node, &tx, &rx)?;
        let notifier = iox_event(node, &ntf)?.notifier_builder().create()?;
        let listener = iox_event(node, &lsn)?.listener_builder().create()?;
        Ok(BlockingEnd {
            tx,
            rx,
            notifier,
            listener,
        })
    }

    /// Publish `msg`, then wake the other side.
    fn send(&self, msg: [u8; N]) -> Res<()> {
        self.tx.loan_uninit()?.write_payload(msg).send()?;
        self.notifier.notify()?;
        Ok(())
    }

    /// The next sample's first byte, sleeping in `blocking_wait` while there
    /// is none. (A notification that arrives between `receive` and the wait
    /// is kept by the listener: no lost wake-up.)
    fn recv(&self) -> Res<u8> {
        loop {
            if let Some(s) = self.rx.receive()? {
                return Ok(s.payload()[0]);
            }
            self.listener.blocking_wait(|_| {})?;
        }
    }
}

fn child_iox_blocking_echo<const N: usize>(env: &IoxEnv) -> Res<()> {
    let node = env.node()?;
    let end = BlockingEnd::<N>::new(&node, false)?;
    // Our subscriber and listener exist now: tell the parent it may start.
    end.send([READY; N])?;
    loop {
        match end.recv()? {
            STOP => return Ok(()),
            b => end.send([b; N])?,
        }
    }
}

/// `iters` round trips (after `iters / 10` warm-up ones) through iceoryx2
/// with its blocking wait on both sides, paced by [`Pacer`]; the CPU time
/// of both processes over the measured window per round trip.
fn iox_blocking_rtt<const N: usize>(env: &IoxEnv, iters: usize, interval_us: u64) -> Res<LatRow> {
    let bench = pace::bench_name(N, interval_us);
    let node = env.node()?;
    let end = BlockingEnd::<N>::new(&node, true)?;
    let mut child = spawn_child(
        &format!("{bench} iceoryx2_blocking"),
        "iox_blocking_echo",
        &env.to_arg(N),
    );
    if end.recv()? != READY {
        return Err("iceoryx2 blocking echo: no ready".into());
    }
    let mut pacer = Pacer::new(Duration::from_micros(interval_us));
    let mut once = || -> Res<u64> {
        pacer.wait();
        let t = Instant::now();
        end.send([DATA; N])?;
        let b = end.recv()?;
        let ns = t.elapsed().as_nanos() as u64;
        debug_assert_eq!(b, DATA);
        Ok(ns)
    };
    for _ in 0..(iters / 10).max(1) {
        once()?;
    }
    let pids = [std::process::id(), child.pid() as u32];
    let cpu0 = pace::cpu_ns_sum(&pids);
    let mut samples = (0..iters.max(1))
        .map(|_| once())
        .collect::<Res<Vec<u64>>>()?;
    let cpu1 = pace::cpu_ns_sum(&pids);
    let late = pacer.late();
    watch_stopping();
    end.send([STOP; N])?;
    let status = child.finish()?;
    drop(child);
    if !status.success() {
        return Err(format!("iceoryx2 blocking echo child failed: {status}").into());
    }
    drop((end, node));
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / samples.len() as f64),
        _ => None,
    };
    Ok(LatRow::new(
        &bench,
        "iceoryx2_blocking",
        &Summary::of(&mut samples),
        cpu,
        interval_us,
        late,
    ))
}

// ---- our LP pair -------------------------------------------------------------

/// The workspace's release binaries that run `examples/pingpong`.
struct LpBins {
    shmcollab: PathBuf,
    ping: PathBuf,
    pong: PathBuf,
}

/// Builds (when run by cargo) and finds `shmcollab` and the pingpong LPs in
/// the workspace's `target/release`; `None`, said why, if they are missing.
fn lp_bins() -> Option<LpBins> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if let Some(cargo) = std::env::var_os("CARGO") {
        eprintln!("compare: cargo build --release of shmcollab and pingpong in the workspace ...");
        let ok = Command::new(cargo)
            .args(["build", "--release", "-q", "--bin", "shmcollab"])
            .args(["--example", "pingpong-ping", "--example", "pingpong-pong"])
            .current_dir(&root)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("compare: that build failed: no shmcollab rows");
            return None;
        }
    }
    let rel = root.join("target/release");
    let bins = LpBins {
        shmcollab: rel.join("shmcollab"),
        ping: rel.join("examples/pingpong-ping"),
        pong: rel.join("examples/pingpong-pong"),
    };
    for p in [&bins.shmcollab, &bins.ping, &bins.pong] {
        if !p.is_file() {
            eprintln!("compare: {} is missing: no shmcollab rows", p.display());
            return None;
        }
    }
    Some(bins)
}

/// The number after `"key":` in a JSON line.
fn json_num(line: &str, key: &str) -> Option<f64> {
    let k = format!("\"{key}\":");
    let rest = &line[line.find(&k)? + k.len()..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

/// One pingpong collaboration running `ping paced ITERS INTERVAL_US 64`,
/// as the e2e bench runs it; the row from ping's JSON line (ping sums the
/// CPU time of the supervisor, the managers and the LPs itself).
fn lp_pair_rtt(bins: &LpBins, dir: &Path, iters: usize, interval_us: u64) -> Res<LatRow> {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("cmp{}lp{k}", std::process::id());
    let bench = pace::bench_name(64, interval_us);
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            r#"name = "{name}"
secure = true

[[subfunction]]
name = "ping"

[[subfunction]]
name = "pong"

[[process]]
name = "pong"
command = [{pong:?}]
hosts = ["pong"]
restart = "transient"

[[process]]
name = "ping"
command = [{ping:?}, "paced", "{iters}", "{interval_us}", "64"]
hosts = ["ping"]
restart = "temporary"
"#,
            pong = bins.pong.display().to_string(),
            ping = bins.ping.display().to_string(),
        ),
    )?;
    let mut child = Command::new(&bins.shmcollab)
        .arg("launch")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The watchdog minds the deadline only: the supervisor ends on its own.
    watch_start(&format!("{bench} shmcollab"), child.id() as i32);
    watch_stopping();
    let err = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
            s
        })
    });
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        std::io::Read::read_to_string(&mut o, &mut out)?;
    }
    let status = child.wait()?;
    watch_end();
    let err = err.and_then(|h| h.join().ok()).unwrap_or_default();
    let key = format!("\"bench\":\"{bench}\"");
    let line = out
        .lines()
        .find(|l| l.contains(&key))
        .filter(|_| status.success())
        .ok_or_else(|| format!("{name} exited {status} without the {bench} line\n{out}\n{err}"))?;
    let get = |k: &str| json_num(line, k).ok_or_else(|| format!("no {k} in {line}"));
    Ok(LatRow {
        bench: bench.clone(),
        system: "shmcollab".into(),
        p50_ns: get("p50_ns")?,
        p99_ns: get("p99_ns")?,
        p999_ns: get("p999_ns")?,
        max_ns: get("max_ns")?,
        cpu_ns_per_rtt: json_num(line, "cpu_ns_per_rtt"),
        rtts: iters as u64,
        interval_us,
        late: json_num(line, "late").unwrap_or(0.0) as u64,
    })
}

// ---- latency at every load -------------------------------------------------

/// The median of `v`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// `cargo run --release -- lat`: see the module doc. Prints the table, the
/// JSON lines and the ratios.
fn lat_figures(env: &IoxEnv) -> Res<()> {
    let paces: [(u64, usize); 4] = if quick() {
        [(0, 2_000), (100, 300), (1_000, 50), (10_000, 10)]
    } else {
        [(0, 20_000), (100, 10_000), (1_000, 2_000), (10_000, 300)]
    };
    let rounds = if quick() { 1 } else { 3 };
    let lp = lp_bins();
    let dir = std::env::temp_dir().join(format!("shmc-compare-lp-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    {
        let mut w = watch().lock().unwrap();
        w.cleanup_dirs.push(dir.clone());
        w.shm_prefixes
            .push(format!("shmc.cmp{}lp", std::process::id()));
    }
    // got[pace] = [iceoryx2, shmcollab, socket 1 CPU, socket 2 CPUs] over rounds.
    let mut got: Vec<[Vec<LatRow>; 4]> = paces.iter().map(|_| Default::default()).collect();
    let us = |v: f64| v / 1e3;
    for round in 0..rounds {
        for (i, &(interval, n)) in paces.iter().enumerate() {
            let iox = iox_blocking_rtt::<64>(env, n, interval)?;
            let ours = match &lp {
                Some(b) => Some(lp_pair_rtt(b, &dir, n, interval)?),
                None => None,
            };
            let one = common::sock_rtt_lat(64, n, interval, Placement::OneCpu);
            let two = common::sock_rtt_lat(64, n, interval, Placement::TwoCpus);
            eprintln!(
                "compare: round {round}: {}: iceoryx2_blocking p50 {:.2} µs; shmcollab p50 {:.2} µs; socket 1 CPU {:.2} µs, 2 CPUs {:.2} µs",
                iox.bench,
                us(iox.p50_ns),
                ours.as_ref().map_or(f64::NAN, |r| us(r.p50_ns)),
                us(one.p50_ns),
                us(two.p50_ns)
            );
            got[i][0].push(iox);
            got[i][1].extend(ours);
            got[i][2].push(one);
            got[i][3].push(two);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for [iox, ours, one, two] in &got {
        let iox_m = LatRow::median(iox, "iceoryx2_blocking");
        let (one_m, two_m) = (
            LatRow::median(one, Placement::OneCpu.system()),
            LatRow::median(two, Placement::TwoCpus.system()),
        );
        let mut sock = if one_m.p50_ns <= two_m.p50_ns {
            one_m.clone()
        } else {
            two_m.clone()
        };
        sock.system = "unix_socket".into();
        rows.push(iox_m.clone());
        if !ours.is_empty() {
            let ours_m = LatRow::median(ours, "shmcollab");
            // Ratios per round, then their median.
            let r50 = median(
                ours.iter()
                    .zip(iox)
                    .map(|(o, i)| o.p50_ns / i.p50_ns)
                    .collect(),
            );
            let r99 = median(
                ours.iter()
                    .zip(iox)
                    .map(|(o, i)| o.p99_ns / i.p99_ns)
                    .collect(),
            );
            let target = if iox_m.interval_us == 1_000 {
                format!(
                    "target <= 1.0: {}",
                    if r50 <= 1.0 { "ok" } else { "MISSED" }
                )
            } else {
                "reported".into()
            };
            verdicts.push(format!(
                "{} shmcollab / iceoryx2_blocking: p50 {r50:.3} ({target}), p99 {r99:.3}; \
                 p50 shmcollab {:.2} µs, iceoryx2_blocking {:.2} µs, unix_socket ({}) {:.2} µs; \
                 CPU per round trip {:.2} / {:.2} / {:.2} µs",
                iox_m.bench,
                us(ours_m.p50_ns),
                us(iox_m.p50_ns),
                if sock.p50_ns == one_m.p50_ns {
                    "1 CPU"
                } else {
                    "2 CPUs"
                },
                us(sock.p50_ns),
                us(ours_m.cpu_ns_per_rtt.unwrap_or(f64::NAN)),
                us(iox_m.cpu_ns_per_rtt.unwrap_or(f64::NAN)),
                us(sock.cpu_ns_per_rtt.unwrap_or(f64::NAN)),
            ));
            rows.push(ours_m);
        }
        rows.extend([sock, one_m, two_m]);
    }
    common::print_lat_table(&rows);
    println!();
    for v in verdicts {
        println!("{v}");
    }
    Ok(())
}

// ---- main ----------------------------------------------------------------

fn child_main(role: &str) {
    die_with_parent();
    let arg = std::env::var(ARG_ENV).unwrap();
    match role {
        "ring_echo" => common::child_ring_echo(Path::new(&arg)),
        "iox_echo" | "iox_blocking_echo" => {
            let (env, size) = IoxEnv::from_arg(&arg);
            let r = match (role, size) {
                ("iox_echo", 64) => child_iox_echo::<64>(&env),
                ("iox_echo", 1024) => child_iox_echo::<1024>(&env),
                (_, 64) => child_iox_blocking_echo::<64>(&env),
                _ => Err(format!("unsupported size {size}").into()),
            };
            if let Err(e) = r {
                eprintln!("compare: iceoryx2 echo child: {e}");
                std::process::exit(1);
            }
        }
        _ => panic!("unknown role {role}"),
    }
}

fn main() {
    if std::env::var("SHMC_BENCH_CHILD").as_deref() == Ok("sock_echo") {
        // The socket baseline's echo child (`common::sock_rtt_lat`).
        die_with_parent();
        let arg = std::env::var("SHMC_BENCH_ARG").unwrap();
        common::child_sock_echo(Path::new(&arg));
        return;
    }
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child_main(&role);
        return;
    }
    let (poll, lat) = match std::env::args().nth(1).as_deref() {
        None => (true, true),
        Some("poll") => (true, false),
        Some("lat") => (false, true),
        Some(other) => {
            eprintln!("compare: unknown argument {other:?}; usage: shmcollab-compare [poll|lat]");
            std::process::exit(2);
        }
    };
    set_log_level(LogLevel::Warn);
    let iters = if quick() { 2_000 } else { 100_000 };
    let env = IoxEnv::new();
    {
        let mut w = watch().lock().unwrap();
        w.cleanup_dirs.push(PathBuf::from(&env.root));
        w.shm_prefixes.push(env.prefix.clone());
    }
    let run = || -> Res<()> {
        if poll {
            common::print_table(&[
                ring_rtt(64, iters),
                iox_rtt::<64>(&env, iters)?,
                ring_rtt(1024, iters),
                iox_rtt::<1024>(&env, iters)?,
            ]);
        }
        if lat {
            lat_figures(&env)?;
        }
        Ok(())
    };
    let r = run();
    env.cleanup();
    if let Err(e) = r {
        eprintln!("compare: {e}");
        std::process::exit(1);
    }
}
