//! The `shmcollab` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shmcollab",
    version,
    about = "Run a collaboration of processes over shared memory on one host"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a collaboration in the foreground.
    Launch {
        /// The collaboration's config.toml.
        config: PathBuf,
    },
    /// Show the coordinator's view of a running collaboration.
    Status {
        /// Collaboration name (all running ones if omitted).
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a running collaboration gracefully.
    Stop {
        /// Collaboration name.
        name: String,
    },
    /// Remove what crashed sessions left in /dev/shm.
    Clean,
}

fn not_yet(what: &str) -> ExitCode {
    eprintln!("shmcollab: `{what}` is not implemented yet");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Launch { .. } => not_yet("launch"),
        Cmd::Status { .. } => not_yet("status"),
        Cmd::Stop { .. } => not_yet("stop"),
        Cmd::Clean => match shmcollab_shm::segment::clean_stale_sessions(None) {
            Ok(removed) => {
                for d in &removed {
                    println!("removed {}", d.display());
                }
                println!("{} stale session(s) removed", removed.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("shmcollab clean: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
