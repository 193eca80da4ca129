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
        /// Collaboration name (the only running one if omitted).
        name: Option<String>,
        /// Print JSON (the format is in the README).
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
    /// (internal) run the manager of one LP.
    #[command(hide = true)]
    Manager {
        #[arg(long)]
        session: PathBuf,
        #[arg(long)]
        slot: u32,
    },
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(c.clamp(0, 255) as u8)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Launch { config } => code(shmcollab_supervisor::launch::launch(&config)),
        Cmd::Status { name, json } => {
            code(shmcollab_supervisor::status::status(name.as_deref(), json))
        }
        Cmd::Stop { name } => code(shmcollab_supervisor::stop::stop(&name)),
        Cmd::Manager { session, slot } => match shmcollab_runtime::manager::run(&session, slot) {
            Ok(c) => code(c),
            Err(e) => {
                eprintln!("shmcollab manager {slot}: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Clean => code(shmcollab_supervisor::clean::clean()),
    }
}
