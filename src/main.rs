//! The `podium` binary: parse the command line, load the configuration, run.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use podium::Config;

/// glibc's allocator serves the many small, short-lived buffers of frames and store replies
/// slowly (a fifth of the CPU of an ingest run went to `malloc`/`free`, mostly consolidating
/// arenas); mimalloc's per-thread heaps take about a tenth of that. See docs/PERFORMANCE.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "podium",
    version,
    about = "Realtime engine for browser promo games"
)]
struct Cli {
    /// TOML configuration file; environment variables override it.
    #[arg(long, env = "PODIUM_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine (the default).
    Serve,
    /// Apply the PostgreSQL migrations not yet applied (DATABASE_URL), then exit.
    Migrate,
    /// Ask the local engine's /ready (for container health checks); exit 0 when ready.
    Probe,
    /// Recompute a campaign's boards (every campaign's without --campaign) from PostgreSQL
    /// and raise the Redis boards to them.
    Rebuild {
        #[arg(long)]
        campaign: Option<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("podium: {err}");
            std::process::exit(2);
        }
    };
    podium::observe::init_logs(config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let result = actix_rt::System::new().block_on(migrate(config));
            match result {
                Ok(applied) => {
                    println!("migrations applied: {applied:?} (none means the schema was current)")
                }
                Err(err) => {
                    eprintln!("podium migrate: {err}");
                    std::process::exit(1);
                }
            }
        }
        Command::Rebuild { campaign } => {
            match actix_rt::System::new().block_on(rebuild(config, campaign)) {
                Ok(changed) => println!("boards rebuilt: {changed} rows raised"),
                Err(err) => {
                    eprintln!("podium rebuild: {err}");
                    std::process::exit(1);
                }
            }
        }
        Command::Probe => std::process::exit(if probe(&config.listen) { 0 } else { 1 }),
        Command::Serve => {
            let result = actix_rt::System::new().block_on(podium::run(config, shutdown_signal()));
            if let Err(err) = result {
                eprintln!("podium: {err:#}");
                std::process::exit(1);
            }
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn migrate(config: Config) -> Result<Vec<i32>, podium_actors::store::StoreError> {
    let pool = podium_actors::store::postgres::pool(&config.postgres)?;
    podium_actors::store::postgres::migrate::migrate(&pool, &config.postgres.schema).await
}

async fn rebuild(config: Config, campaign: Option<String>) -> anyhow::Result<u64> {
    let durable = podium_actors::store::durable::Durable::connect(&config)?;
    let store = podium_actors::store::Store::Durable(durable.clone());
    // PostgreSQL holds every campaign, including those created through the admin API.
    let campaigns = match campaign {
        Some(name) => vec![store
            .campaign(&name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("--campaign: no campaign {name:?} in PostgreSQL"))?],
        None => store.campaigns().await?,
    };
    let now = podium_actors::domain::clock::now_ms();
    let mut changed = 0;
    for c in &campaigns {
        changed += durable
            .rebuild_boards(c.name.as_str(), &c.rules, now, false)
            .await?;
    }
    Ok(changed)
}

/// `GET /ready` on this engine's own port, over a plain socket (the image has no curl).
fn probe(listen: &str) -> bool {
    use std::io::{Read, Write};
    let port = listen.rsplit(':').next().unwrap_or("8080");
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port.parse().unwrap_or(8080)))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let asked = stream
        .write_all(b"GET /ready HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        .is_ok();
    let mut head = [0u8; 12];
    asked && stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
