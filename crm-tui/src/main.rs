use std::process::ExitCode;

use clap::Parser;
use crm_tui::api::ApiClient;
use crm_tui::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match crm_tui::runtime::run(ApiClient::new(cli.server)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crm-tui: {error}");
            ExitCode::FAILURE
        }
    }
}
