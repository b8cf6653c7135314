//! `threshold agent camera|lock|contact`.

use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum AgentCmd {}

pub async fn run(c: AgentCmd) -> anyhow::Result<ExitCode> {
    match c {}
}
