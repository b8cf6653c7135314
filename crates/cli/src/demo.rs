//! `threshold demo`.

use clap::Args;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct DemoArgs {}

pub async fn run(_a: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("demo not wired yet")
}
