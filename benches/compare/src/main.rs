//! `cd benches/compare && cargo run --release`
//!
//! Two-process round trip of one message (64 B and 1 KiB), side by side:
//! * shmcollab: a pair of rings, default adaptive wait (mirrors
//!   `shm/benches/ring.rs`, `ring_rtt` / `child_ring_echo`);
//! * iceoryx2 0.10: two publish-subscribe services (`ping` parent→child,
//!   `pong` child→parent) with a fixed-size payload, both sides busy-polling
//!   `receive()`.
//!
//! The child side is this binary re-executed with `SHMC_COMPARE_CHILD`.
//! `SHMC_BENCH_QUICK=1` shrinks the counts (smoke test).
//!
//! iceoryx2 gets its own root directory and file prefix for this run (both
//! carry the pid), and whatever it leaves there or in `/dev/shm` under that
//! prefix is removed at the end. A watchdog kills the child and exits
//! non-zero if one measurement takes more than 60 s or the child dies early.

#[path = "../../../shm/benches/common.rs"]
mod common;

use common::Row;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::{
    ipc, set_log_level, Config, FileName, LogLevel, Node, NodeBuilder, Path as IoxPath,
    SemanticString, SignalHandlingMode,
};
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use shmcollab_shm::ring::{create_ring, Consumer, Producer};
use shmcollab_shm::segment::Session;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
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
    shm_prefix: Option<String>,
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
        if let Some(p) = &w.shm_prefix {
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

// ---- main ----------------------------------------------------------------

fn child_main(role: &str) {
    die_with_parent();
    let arg = std::env::var(ARG_ENV).unwrap();
    match role {
        "ring_echo" => common::child_ring_echo(Path::new(&arg)),
        "iox_echo" => {
            let (env, size) = IoxEnv::from_arg(&arg);
            let r = match size {
                64 => child_iox_echo::<64>(&env),
                1024 => child_iox_echo::<1024>(&env),
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
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child_main(&role);
        return;
    }
    set_log_level(LogLevel::Warn);
    let iters = if quick() { 2_000 } else { 100_000 };
    let env = IoxEnv::new();
    {
        let mut w = watch().lock().unwrap();
        w.cleanup_dirs.push(PathBuf::from(&env.root));
        w.shm_prefix = Some(env.prefix.clone());
    }
    let run = || -> Res<Vec<Row>> {
        Ok(vec![
            ring_rtt(64, iters),
            iox_rtt::<64>(&env, iters)?,
            ring_rtt(1024, iters),
            iox_rtt::<1024>(&env, iters)?,
        ])
    };
    let rows = run();
    env.cleanup();
    match rows {
        Ok(rows) => common::print_table(&rows),
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(1);
        }
    }
}
