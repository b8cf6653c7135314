//! `threshold`: the one binary. The hub (`serve`), the demo, device agents, doors,
//! audit verification, user administration, the Wi-Fi attack detector and benchmarks.

mod agent_cmd;
mod allocator;
mod api_client;
mod bench_cmd;
mod demo;
mod demo_logins;
mod door_cmd;
mod hub_cmd;
mod wids_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "threshold",
    version,
    about = "Secure in-home delivery: hub, device agents and tools"
)]
struct Cli {
    /// Log lines on standard error: text (colour only on a terminal), or one JSON
    /// object per line for log collectors.
    #[arg(long, global = true, env = "THRESHOLD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the hub (HTTP API, web apps, device gateway).
    Serve(Box<hub_cmd::ServeArgs>),
    /// Run a hub with a simulated home and print URLs and logins.
    Demo(demo::DemoArgs),
    /// Run a device agent.
    #[command(subcommand)]
    Agent(agent_cmd::AgentCmd),
    /// An owner's doors through the hub's API: list, add, bind devices, unlock, lock
    /// (session token in THRESHOLD_TOKEN).
    Door(door_cmd::DoorArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(hub_cmd::AuditCmd),
    /// Manage accounts directly in the database.
    #[command(subcommand)]
    User(hub_cmd::UserCmd),
    /// Wi-Fi deauthentication/disassociation attack detection.
    #[command(subcommand)]
    Wids(wids_cmd::WidsCmd),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCmd),
}

fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("THRESHOLD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour codes only for a person at a terminal, never in a file or a journal.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

fn main() -> std::process::ExitCode {
    allocator::one_c_arena();
    let cli = Cli::parse();
    threshold_hub::allocator::install(allocator::stats);
    init_tracing(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Serve(a) => hub_cmd::serve(*a).await,
            Cmd::Demo(a) => demo::run(a).await,
            Cmd::Agent(a) => agent_cmd::run(a).await,
            Cmd::Door(a) => door_cmd::run(a).await,
            Cmd::Audit(a) => hub_cmd::audit(a).await,
            Cmd::User(a) => hub_cmd::user(a).await,
            Cmd::Wids(a) => wids_cmd::wids(a),
            Cmd::Bench(a) => bench_cmd::run(a).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command says what it does, and every option what it is for.
    fn undescribed(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        let here = format!("{path} {}", cmd.get_name());
        if cmd.get_about().is_none() && !cmd.is_hide_set() {
            out.push(format!("{here}: no description"));
        }
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if id == "help" || id == "version" || a.is_hide_set() {
                continue;
            }
            if a.get_help().is_none() {
                out.push(format!("{here} --{id}: no help"));
            }
        }
        for sub in cmd.get_subcommands() {
            if !sub.is_hide_set() {
                undescribed(sub, &here, out);
            }
        }
    }

    #[test]
    fn every_command_and_option_is_described() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        undescribed(&cmd, "", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
