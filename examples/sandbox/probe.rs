//! sandbox: an LP that tries to reach what the sandbox closes and then
//! checks that everything it may do still works (issue 11, build 3).
//!
//! Two processes run it: `b` answers requests and stops on "stop"; `a`
//! tries to open the session directory, the registry, its own ring (by
//! the path its descriptor points at, and through `/proc/self/fd`), the
//! peer's ring (`b` answers a request `where` with its path), and to signal its manager (signal 0: a permission check
//! that disturbs nothing); then a request to `b`, a message, a
//! transaction over both sub-functions and the collaboration state, and
//! whether a direct ring reached it (by descriptor, on its socket). Each
//! result goes to stdout as `probe <what> <ok | errno>`, then `probe done`.
use shmcollab::runtime::Lp;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EACCES) => "EACCES".into(),
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::ENOENT) => "ENOENT".into(),
        Some(n) => format!("errno{n}"),
        None => e.to_string(),
    }
}

fn say(what: &str, r: Result<(), String>) {
    match r {
        Ok(()) => println!("probe {what} ok"),
        Err(e) => println!("probe {what} {e}"),
    }
}

fn open(p: &Path) -> Result<(), String> {
    std::fs::File::open(p).map(drop).map_err(|e| errno(&e))
}

/// Our descriptor of our ring from the manager (`...in`), and its file.
fn own_ring() -> (String, PathBuf) {
    let fds = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten();
    for e in fds {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        if target.to_string_lossy().ends_with(".in") {
            return (e.file_name().to_string_lossy().into_owned(), target);
        }
    }
    (String::new(), PathBuf::new())
}

fn probes(lp: &mut Lp) {
    let session = PathBuf::from(std::env::var("SHMCOLAB_SESSION").unwrap_or_default());
    say("session_dir", open(&session));
    say("registry", open(&session.join("registry")));
    let (fd, own) = own_ring();
    say("own_ring", open(&own));
    say("own_ring_proc", open(&Path::new("/proc/self/fd").join(fd)));
    // The peer's ring from its manager: `b` tells where it is.
    let peer = lp.request("b", b"where", Duration::from_secs(20));
    let peer = peer.map(|m| PathBuf::from(String::from_utf8_lossy(&m.payload).into_owned()));
    say(
        "peer_ring",
        peer.map_err(|e| e.to_string()).and_then(|p| open(&p)),
    );
    // SAFETY: kill with signal 0 sends nothing; it only checks permission.
    let r = unsafe { libc::kill(libc::getppid(), 0) };
    let sig = if r == 0 {
        Ok(())
    } else {
        Err(errno(&std::io::Error::last_os_error()))
    };
    say("signal_manager", sig);
}

fn works(lp: &mut Lp) {
    let r = lp.request("b", b"ping", Duration::from_secs(20));
    say(
        "request",
        match r {
            Ok(m) if m.payload == b"ping" => Ok(()),
            Ok(m) => Err(format!("wrong reply {:?}", m.payload)),
            Err(e) => Err(e.to_string()),
        },
    );
    say("send", lp.send("b", b"hello").map_err(|e| e.to_string()));
    let t = lp.transaction(|t| {
        t.put("a", b"k", b"1")?;
        t.put("b", b"k", b"2")?;
        Ok(())
    });
    let back = t.and_then(|()| lp.transaction(|t| Ok((t.get("a", b"k")?, t.get("b", b"k")?))));
    say(
        "transaction",
        match back {
            Ok((Some(a), Some(b))) if a == b"1" && b == b"2" => Ok(()),
            Ok(other) => Err(format!("read back {other:?}")),
            Err(e) => Err(e.to_string()),
        },
    );
    // The coordinator publishes within a report interval.
    let until = Instant::now() + Duration::from_secs(20);
    let state = loop {
        match lp.collaboration_state() {
            Ok(s) if s.lps.len() == 2 => break Ok(()),
            Ok(_) | Err(_) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Ok(s) => break Err(format!("{} LPs", s.lps.len())),
            Err(e) => break Err(e.to_string()),
        }
    };
    say("state", state);
    // How our manager reports the sandbox (in the published state).
    let word = lp
        .collaboration_state()
        .ok()
        .and_then(|s| s.lps.into_iter().find(|l| l.name == "a"))
        .and_then(|l| l.report)
        .map_or_else(|| "unknown".to_owned(), |r| r.sandbox);
    println!("probe sandbox_status {word}");
    // The registry must not be mapped, sandbox or not.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mapped = maps.lines().any(|l| l.ends_with("/registry"));
    println!(
        "probe registry_mapped {}",
        if mapped { "yes" } else { "no" }
    );
}

/// Whether a direct ring from `b`'s manager reached us (its descriptor
/// came on the socket, behind ATTACH): requests go on until one is open.
fn direct(lp: &mut Lp) {
    let until = Instant::now() + Duration::from_secs(20);
    let has_direct = || {
        let fds = std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .flatten();
        fds.filter_map(|e| std::fs::read_link(e.path()).ok())
            .any(|t| t.to_string_lossy().contains("-lp"))
    };
    while !has_direct() && Instant::now() < until {
        let _ = lp.request("b", b"ping", Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(10));
    }
    say(
        "direct_ring",
        if has_direct() {
            Ok(())
        } else {
            Err("none".into())
        },
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut lp = Lp::connect()?;
    lp.ready()?;
    if lp.name() == "b" {
        loop {
            let m = lp.recv()?;
            if m.payload == b"stop" {
                return Ok(());
            }
            if m.kind == shmcollab::runtime::MessageKind::Request && m.payload == b"where" {
                let (_, path) = own_ring();
                lp.reply(&m, path.to_string_lossy().as_bytes())?;
            } else if m.kind == shmcollab::runtime::MessageKind::Request {
                lp.reply(&m, &m.payload)?;
            }
        }
    }
    probes(&mut lp);
    works(&mut lp);
    direct(&mut lp);
    println!("probe uid {}", rustix_uid());
    println!("probe done");
    lp.send("b", b"stop")?;
    Ok(())
}

fn rustix_uid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}
