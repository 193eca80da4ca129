//! iceoryx2 0.10: the busy-polling round trip (publish-subscribe both ways)
//! and the one with its blocking wait (plus an event service each way).

use super::*;

// ---- iceoryx2 ------------------------------------------------------------

/// iceoryx2's settings for this run: its own root dir and file prefix.
#[derive(Clone)]
pub(crate) struct IoxEnv {
    pub(crate) root: String,
    pub(crate) prefix: String,
}

impl IoxEnv {
    pub(crate) fn new() -> IoxEnv {
        let pid = std::process::id();
        IoxEnv {
            root: format!("/tmp/shmc-compare-iox2-{pid}/"),
            prefix: format!("shmccmp{pid}_"),
        }
    }

    pub(crate) fn to_arg(&self, size: usize) -> String {
        format!("{}|{}|{}", self.root, self.prefix, size)
    }

    pub(crate) fn from_arg(arg: &str) -> (IoxEnv, usize) {
        let mut it = arg.split('|');
        let root = it.next().unwrap().to_string();
        let prefix = it.next().unwrap().to_string();
        let size = it.next().unwrap().parse().unwrap();
        (IoxEnv { root, prefix }, size)
    }

    pub(crate) fn config(&self) -> Res<Config> {
        let mut c = Config::default();
        c.global.set_root_path(&IoxPath::new(self.root.as_bytes())?);
        c.global.prefix = FileName::new(self.prefix.as_bytes())?;
        Ok(c)
    }

    pub(crate) fn node(&self) -> Res<Node<ipc::Service>> {
        Ok(NodeBuilder::new()
            .config(&self.config()?)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()?)
    }

    /// Remove what iceoryx2 left: its root dir and its files in /dev/shm.
    pub(crate) fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
        remove_shm_prefixed(&self.prefix);
    }
}

pub(crate) fn remove_shm_prefixed(prefix: &str) -> usize {
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

pub(crate) type Pub<const N: usize> = Publisher<ipc::Service, [u8; N], ()>;
pub(crate) type Sub<const N: usize> = Subscriber<ipc::Service, [u8; N], ()>;

/// Open (or create) one of the two services, sized for ping-pong: one
/// publisher, one subscriber, a buffer of 2, no history.
pub(crate) fn iox_service<const N: usize>(
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

pub(crate) fn iox_ports<const N: usize>(
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

pub(crate) fn service_names(size: usize) -> (String, String) {
    (
        format!("shmc_compare/rtt_{size}/ping"),
        format!("shmc_compare/rtt_{size}/pong"),
    )
}

/// Payload byte 0: 0xab data, 0x00 stop, 0x01 ready (child → parent).
pub(crate) const DATA: u8 = 0xab;
pub(crate) const STOP: u8 = 0x00;
pub(crate) const READY: u8 = 0x01;

pub(crate) fn child_iox_echo<const N: usize>(env: &IoxEnv) -> Res<()> {
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

pub(crate) fn iox_rtt<const N: usize>(env: &IoxEnv, iters: usize) -> Res<Row> {
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

pub(crate) type EvFactory = EventFactory<ipc::Service>;

pub(crate) fn iox_event(node: &Node<ipc::Service>, name: &str) -> Res<EvFactory> {
    Ok(node
        .service_builder(&name.try_into()?)
        .event()
        .open_or_create()?)
}

/// The blocking variant's services: publish-subscribe `ping` / `pong` and an
/// event service beside each.
pub(crate) fn blocking_names(size: usize) -> [String; 4] {
    let b = format!("shmc_compare/blk_rtt_{size}");
    [
        format!("{b}/ping"),
        format!("{b}/pong"),
        format!("{b}/ping_ev"),
        format!("{b}/pong_ev"),
    ]
}

/// One end's ports: publisher and notifier out, subscriber and listener in.
pub(crate) struct BlockingEnd<const N: usize> {
    tx: Pub<N>,
    rx: Sub<N>,
    notifier: Notifier<ipc::Service>,
    listener: Listener<ipc::Service>,
}

impl<const N: usize> BlockingEnd<N> {
    /// `parent`: publishes on ping, listens on pong_ev; the child the other
    /// way round.
    pub(crate) fn new(node: &Node<ipc::Service>, parent: bool) -> Res<BlockingEnd<N>> {
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
    pub(crate) fn send(&self, msg: [u8; N]) -> Res<()> {
        self.tx.loan_uninit()?.write_payload(msg).send()?;
        self.notifier.notify()?;
        Ok(())
    }

    /// The next sample's first byte, sleeping in `blocking_wait` while there
    /// is none. (A notification that arrives between `receive` and the wait
    /// is kept by the listener: no lost wake-up.)
    pub(crate) fn recv(&self) -> Res<u8> {
        loop {
            if let Some(s) = self.rx.receive()? {
                return Ok(s.payload()[0]);
            }
            self.listener.blocking_wait(|_| {})?;
        }
    }
}

pub(crate) fn child_iox_blocking_echo<const N: usize>(env: &IoxEnv) -> Res<()> {
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
pub(crate) fn iox_blocking_rtt<const N: usize>(
    env: &IoxEnv,
    iters: usize,
    interval_us: u64,
) -> Res<LatRow> {
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
